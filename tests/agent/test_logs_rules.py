from podbay.agent.server import parse_cri_line, render, tail

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
