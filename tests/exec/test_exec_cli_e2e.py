"""`podbay exec` and `kubectl exec` with -i and -it through the exec stream, on a real container."""
from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import sys
import termios
from pathlib import Path

import pytest

from podbay.runtime.console import read_now, set_window_size, wait_readable, write_all
from tests.exec.conftest import ExecTarget

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


async def run(argv: list[str], stdin: bytes) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out, err


def podbay(target: ExecTarget, *args: str) -> list[str]:
    return [sys.executable, "-m", "podbay", *target.cluster.settings.as_args(), *args]


async def test_podbay_exec_i_pipes_stdin_and_passes_the_exit_code(target: ExecTarget) -> None:
    data = b"".join(b"line %d\n" % i for i in range(2000))  # more than one pipe buffer
    code, out, err = await run(podbay(target, "exec", "-i", target.pod, "--", "cat"), data)
    assert (code, out) == (0, data), err
    code, out, err = await run(podbay(target, "exec", "-i", target.pod, "--", "sh", "-c", "wc -l; exit 5"), data)
    assert (code, out.strip()) == (5, b"2000"), err
    code, out, err = await run(podbay(target, "exec", "-i", "-c", "nope", target.pod, "--", "true"), b"")
    assert code == 1 and b"container nope is not valid for pod shell" in err


@pytest.fixture
def kubectl(target: ExecTarget) -> list[str]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (Debian 12 does not package it)")
    return ["kubectl", f"--kubeconfig={target.kubeconfig}"]


async def test_kubectl_exec_i(target: ExecTarget, kubectl: list[str]) -> None:
    code, out, err = await run([*kubectl, "exec", "-i", target.pod, "--", "cat"], b"from kubectl\n")
    assert (code, out) == (0, b"from kubectl\n"), err
    code, out, err = await run([*kubectl, "exec", target.pod, "--", "sh", "-c", "echo out; echo err >&2; exit 6"], b"")
    assert (code, out, err) == (6, b"out\n", b"err\ncommand terminated with exit code 6\n")


def _controlling_terminal() -> None:
    # In the child: its own session with the test's terminal as the controlling one, so
    # the terminal's resizes reach it as SIGWINCH, as in a shell.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


async def read_until(fd: int, wanted: bytes) -> bytes:
    out = b""

    async def more() -> None:
        nonlocal out
        while wanted not in out:
            data = read_now(fd)
            if data is None:
                await wait_readable(fd)
            else:
                out += data
    try:
        await asyncio.wait_for(more(), 30)
    except asyncio.TimeoutError:
        raise AssertionError(f"never saw {wanted!r}; got {out!r}") from None
    return out


async def press_enter_until(fd: int, wanted: bytes) -> bytes:
    """Types Enter until `wanted` shows: a size travels as a resize message beside the
    keys, so a line typed right after a resize may still see the old size."""
    async def press() -> None:
        while True:
            await write_all(fd, b"\r")
            await asyncio.sleep(0.2)
    typing = asyncio.create_task(press())
    try:
        return await read_until(fd, wanted)
    finally:
        typing.cancel()


@pytest.mark.parametrize("cli", ["podbay", "kubectl"])
async def test_exec_it_is_a_raw_terminal_that_follows_ours(target: ExecTarget, cli: str,
                                                           request: pytest.FixtureRequest) -> None:
    master, slave = os.openpty()
    script = "tty; while read line; do stty size 2>&1; done; exit 3"
    argv = podbay(target, "exec", "-it", target.pod) if cli == "podbay" else \
        [*request.getfixturevalue("kubectl"), "exec", "-it", target.pod]
    try:
        os.set_blocking(master, False)
        set_window_size(master, 111, 33)
        before = termios.tcgetattr(slave)
        proc = await asyncio.create_subprocess_exec(
            *argv, "--", "sh", "-c", script, stdin=slave, stdout=slave,
            stderr=slave, cwd=ROOT, start_new_session=True, preexec_fn=_controlling_terminal)
        assert b"/dev/pts/" in await read_until(master, b"\r\n")
        await press_enter_until(master, b"33 111")
        set_window_size(master, 120, 44)
        await press_enter_until(master, b"44 120")
        await write_all(master, b"\x04")  # ^D, passed through raw: the remote terminal's end of input
        assert await asyncio.wait_for(proc.wait(), 30) == 3
        assert termios.tcgetattr(slave) == before  # our terminal is back out of raw mode
    finally:
        os.close(master)
        os.close(slave)
