from podbay.agent.containerlogs import parse_cri_line, render, tail

LOG = [
    b"2026-01-01T00:00:00.000000001Z stdout F one\n",
    b"2026-01-01T00:00:00.000000002Z stderr P tw\n",
    b"2026-01-01T00:00:00.000000003Z stderr F o\n",
    b"2026-01-01T00:00:00.000000004Z stdout F \n",
    b"2026-01-01T00:00:00.000000005Z stdout F three has spaces\n",
]


def lines():
    return [parse_cri_line(raw) for raw in LOG]


def test_parse_and_render():
    ls = lines()
    assert b"".join(render(ln, False) for ln in ls) == b"one\ntwo\n\nthree has spaces\n"
    assert render(ls[0], True) == b"2026-01-01T00:00:00.000000001Z one\n"


def test_tail_counts_whole_lines():
    assert b"".join(render(ln, False) for ln in tail(lines(), 3)) == b"two\n\nthree has spaces\n"
    assert tail(lines(), 0) == []
    assert len(tail(lines(), None)) == 5


def test_since_keeps_lines_at_or_after_the_cutoff():
    from datetime import datetime, timezone

    from podbay.agent.containerlogs import log_since, newer

    now = datetime(2026, 1, 1, 0, 0, 10, tzinfo=timezone.utc)
    assert log_since({}, now) is None
    since = log_since({"sinceSeconds": "10"}, now)
    assert since == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert all(newer(ln, since) for ln in lines())  # nanoseconds past the cutoff count as after it
    later = log_since({"sinceTime": "2026-01-01T00:00:01Z"}, now)
    assert not any(newer(ln, later) for ln in lines())
    assert all(newer(ln, None) for ln in lines())
