"""Where a gVisor container's `runsc start` spends its time, from runsc's own debug log.

    sudo .venv/bin/python -m bench.gvisor_phases [--rounds 6]

Pods of two containers (busybox sleep) through the runtime service on a booted warm sandbox, as
`bench.gvisor`'s runtime steps, with runsc run as `runsc --debug --debug-log=DIR/...`: every runsc
process (create, start, and the gofer each start spawns) writes a timestamped log, and the phases
of each subcontainer's start are read off them. The logging itself costs a little of each phase.
"""
from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.hostnet import claimed_host
from podbay.runtime.images import ensure_busybox_image
from podbay.runtime.service import RuntimeService
from podbay.runtime.types import ContainerConfig, ContainerMetadata, PodSandboxConfig, PodSandboxMetadata

_STAMP = re.compile(r"[IDWE]\d{4} (\d\d:\d\d:\d\d\.\d+)")
_GOFER_LOG = re.compile(r'Donating FD \d+: "([^"]+\.gofer\.txt)"')
PHASES = (
    ("runsc start: its state loaded, container locked", "main", "start"),
    ("runsc start: joins the sandbox's cgroups", "start", "spawn gofer"),
    ("gofer: exec and Go start", "gofer spawned", "gofer main"),
    ("gofer: mounts the rootfs and binds", "gofer main", "gofer chroot"),
    ("gofer: pivot_root, capabilities", "gofer chroot", "gofer caps"),
    ("gofer: re-exec and Go start", "gofer caps", "gofer main 2"),
    ("gofer: reads the spec, sends the mounts", "gofer main 2", "subcontainer"),
    ("Sentry: StartSubcontainer (rootfs, first process)", "subcontainer", "started"),
    ("runsc start: saves state, OOM score (others' locks)", "started", "exit"),
    ("runsc start, in all", "main", "exit"),
)


@dataclass(frozen=True)
class Mark:
    name: str
    text: str  # in the log line
    last: bool = False  # the last line with it, not the first


START_MARKS = (Mark("main", "main.go:216]"), Mark("start", "Start container, cid"),
               Mark("spawn gofer", "Starting gofer"), Mark("gofer spawned", "Gofer started"),
               Mark("subcontainer", "Start sub-container"), Mark("started", "unmarshal success", last=True),
               Mark("exit", "Exiting with status"))
GOFER_MARKS = (Mark("gofer main", "main.go:216]"), Mark("gofer chroot", "Create working directory"),
               Mark("gofer caps", "Capabilities applied"), Mark("gofer main 2", "main.go:216]", last=True))


def stamp(line: str) -> float | None:
    match = _STAMP.match(line)
    return datetime.strptime(match.group(1), "%H:%M:%S.%f").timestamp() if match else None


def marks(lines: list[str], wanted: tuple[Mark, ...]) -> dict[str, float]:
    found: dict[str, float] = {}
    for mark in wanted:
        times = [t for t in (stamp(line) for line in lines if mark.text in line) if t is not None]
        if times:
            found[mark.name] = times[-1] if mark.last else times[0]
    return found


def start_phases(logs: Path) -> dict[str, list[float]]:
    """Milliseconds of each phase, one sample per subcontainer start found in `logs`."""
    out: dict[str, list[float]] = {label: [] for label, _, _ in PHASES}
    for path in sorted(logs.glob("*.start.txt")):
        lines = path.read_text(errors="replace").splitlines()
        found = marks(lines, START_MARKS)
        gofer = next((m.group(1) for m in map(_GOFER_LOG.search, lines) if m), None)
        if gofer is not None and Path(gofer).exists():
            found.update(marks(Path(gofer).read_text(errors="replace").splitlines(), GOFER_MARKS))
        if "subcontainer" not in found:
            continue  # the sandbox's own start
        for label, begin, end in PHASES:
            if begin in found and end in found:
                out[label].append((found[end] - found[begin]) * 1000)
    return out


def debug_runsc(directory: Path) -> Path:
    """runsc with its debug log on, first in no PATH: the runtime is given its path."""
    real = shutil.which("runsc")
    if real is None:
        raise SystemExit("runsc is not installed (scripts/setup.sh)")
    wrapper = directory / "runsc"
    wrapper.write_text(f'#!/bin/sh\nexec {real} --debug --debug-log={directory}/logs/%TIMESTAMP%.%COMMAND%.txt "$@"\n')
    wrapper.chmod(0o700)
    (directory / "logs").mkdir()
    return wrapper


async def run(rounds: int) -> dict[str, list[float]]:
    base = Path(tempfile.mkdtemp(prefix="podbay-bench-gvph-"))
    try:
        with claimed_host() as host:
            runtime = RuntimeService(host.runtime_config(base, runsc=str(debug_runsc(base)), warm_sandboxes=1,
                                                         warm_gvisor_sandboxes=1))
            await runtime.start()
            try:
                ensure_busybox_image(runtime.images)
                for i in range(rounds):
                    await runtime.wait_warm()
                    sandbox = await runtime.run_pod_sandbox(PodSandboxConfig(
                        PodSandboxMetadata(f"p{i}", "default", f"u{i}"), f"p{i}", runtime_handler="runsc"))
                    ids = await asyncio.gather(*(runtime.create_container(sandbox, ContainerConfig(
                        ContainerMetadata(name), "busybox:1.35", ["sleep", "600"], env=["PATH=/bin"]))
                        for name in ("a", "b")))
                    await asyncio.gather(*(runtime.start_container(cid) for cid in ids))
                    await runtime.remove_pod_sandbox(sandbox)
            finally:
                await runtime.shutdown(purge=True)
        return start_phases(base / "logs")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    for label, samples in asyncio.run(run(args.rounds)).items():
        if samples:
            print(f"{label:<52} median {statistics.median(samples):6.1f} ms  "
                  f"min {min(samples):6.1f}  max {max(samples):6.1f}  (n={len(samples)})")


if __name__ == "__main__":
    main()
