"""What `podbay image pull` draws for a sequence of progress events, on a terminal and off one."""
from __future__ import annotations

import io

from podbay.cli.progress import PullProgress, bar, human_size

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64
UP = "\x1b[{}A"
CLEAR = "\r\x1b[2K"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bar_and_sizes() -> None:
    assert bar(0, 100, width=10) == "[>         ]"
    assert bar(50, 100, width=10) == "[=====>    ]"
    assert bar(100, 100, width=10) == "[==========]"
    assert bar(5, 0, width=10) == ""
    assert [human_size(n) for n in (999, 1000, 1234567, 3 * 10**9)] == ["999B", "1kB", "1.23MB", "3GB"]


def test_not_a_terminal_gives_one_line_per_blob_when_it_finishes() -> None:
    out = io.StringIO()
    progress = PullProgress(out, tty=False)
    progress(A, 100, 100)          # already in the store: a single done == total
    progress(B, 0, 2000)           # a download starts...
    progress(B, 1000, 2000)
    assert out.getvalue() == "aaaaaaaaaaaa: Already exists\n"
    progress(C, 0, 0)              # ...a blob whose length nobody told
    progress(B, 2000, 2000)
    progress(C, 4096, 0)
    progress.finish()
    assert out.getvalue().splitlines() == ["aaaaaaaaaaaa: Already exists", "bbbbbbbbbbbb: Pull complete",
                                           "cccccccccccc: Pull complete"]


def test_a_failed_pull_reports_only_what_finished() -> None:
    out = io.StringIO()
    progress = PullProgress(out, tty=False)
    progress(A, 0, 10)
    progress(B, 0, 10)
    progress(B, 10, 10)
    progress.finish(ok=False)
    assert out.getvalue() == "bbbbbbbbbbbb: Pull complete\n"


def test_a_terminal_redraws_every_line_in_place_at_most_every_tenth_of_a_second() -> None:
    out, clock = io.StringIO(), Clock()
    progress = PullProgress(out, tty=True, clock=clock)
    progress(A, 100, 100)
    assert out.getvalue() == CLEAR + "aaaaaaaaaaaa: Already exists\n"

    out.truncate(0), out.seek(0)
    clock.now = 0.05
    progress(B, 0, 3_000_000)              # too soon: nothing drawn
    progress(B, 1_000_000, 3_000_000)
    assert out.getvalue() == ""
    clock.now = 0.15
    progress(B, 1_500_000, 3_000_000)
    assert out.getvalue() == (UP.format(1) + CLEAR + "aaaaaaaaaaaa: Already exists\n"
                              + CLEAR + "bbbbbbbbbbbb: Downloading [===============>              ] 1.5MB/3MB\n")

    out.truncate(0), out.seek(0)
    clock.now = 0.2
    progress(B, 3_000_000, 3_000_000)      # within the interval: the final draw shows it
    assert out.getvalue() == ""
    progress.finish()
    assert out.getvalue() == (UP.format(2) + CLEAR + "aaaaaaaaaaaa: Already exists\n"
                              + CLEAR + "bbbbbbbbbbbb: Pull complete\n")


def test_terminal_lines_are_cut_to_its_width() -> None:
    out = io.StringIO()
    progress = PullProgress(out, tty=True, columns=20)
    progress(A, 5, 10)
    assert out.getvalue() == CLEAR + "aaaaaaaaaaaa: Downl\n"
    unknown = io.StringIO()
    PullProgress(unknown, tty=True, columns=0)(A, 10, 10)  # a terminal that reports no size
    assert unknown.getvalue() == CLEAR + "aaaaaaaaaaaa: Already exists\n"
