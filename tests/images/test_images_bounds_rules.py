"""The pure rules behind unpacking's bounds: the eviction threshold, what a tar's start
looks like, and how the limits are written on the command line."""
from __future__ import annotations

import argparse
import io
import tarfile

import pytest

from podbay.cli.settings import parse_percent, parse_size
from podbay.runtime.images.unpack import NotATar, check_tar_header, falls_below_threshold

GiB = 1 << 30


@pytest.mark.parametrize(("available", "incoming", "below"), [
    (20 * GiB, 4 * GiB, False),   # 16 of 100 GiB left: above 15 %
    (20 * GiB, 5 * GiB, False),   # exactly 15 % left is still allowed
    (20 * GiB, 6 * GiB, True),    # 14 % left
    (10 * GiB, 0, True),          # already below: not one more byte
])
def test_imagefs_threshold(available: int, incoming: int, below: bool) -> None:
    assert falls_below_threshold(available, 100 * GiB, incoming, 0.15) is below


def test_tar_headers_and_empty_archives_pass_anything_else_is_refused() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("f"), io.BytesIO(b""))
    check_tar_header(buf.getvalue()[:512], "layer x")
    check_tar_header(bytes(512), "layer x")  # an empty layer is one end-of-archive block
    for junk in (b"\x89PNG\r\n" + bytes(506), b"x" * 512, b"short"):
        with pytest.raises(NotATar, match="layer x: not a tar archive"):
            check_tar_header(junk, "layer x")


def test_limits_on_the_command_line() -> None:
    assert (parse_size("20Gi"), parse_size("500Mi"), parse_size("1000")) == (20 * GiB, 500 << 20, 1000)
    assert parse_percent("15%") == 0.15 and parse_percent("0") == 0
    for bad in ("lots", "-1Gi", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_percent("100%")
