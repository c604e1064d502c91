"""Pure rules of the runsc handler: the OCI annotations runsc reads to put a container in its
pod's sandbox, one PID namespace only with shareProcessNamespace, cgroups from the hierarchies'
roots, and what gvisormon writes: CRI log records, and the exit of a sandbox the OOM killer took."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
from pathlib import Path

import pytest

from podbay.agent.containerlogs import parse_cri_line
from podbay.runtime.gvisor import CONTAINER_TYPE, SANDBOX_ID, GVisorConfig, GVisorHandler
from podbay.runtime.gvisorctl import ABSTRACT_CONTROL_SOCKET, SandboxControl, exit_code
from podbay.runtime.gvisormon import _MAX_LINE, _CRILog, _exit_status, _run_start, _timestamp
from podbay.runtime.handler import SandboxSpec


def spec_for(tmp_path: Path, share_pid: bool) -> SandboxSpec:
    return SandboxSpec(id="sb1", hostname="h", directory=tmp_path / "sb1", netns="/run/x/ns/net",
                       cgroup="podbay/pod-1", share_pid=share_pid, host_network=False, host_pid=False,
                       host_ipc=False)


def test_containers_join_their_pods_sandbox(tmp_path: Path) -> None:
    handler = GVisorHandler(GVisorConfig("runsc", tmp_path / "root", tmp_path / "exits"))
    base = {"linux": {"namespaces": [{"type": "pid", "path": "/proc/9/ns/pid"}], "cgroupsPath": "p/c"},
            "annotations": {"io.kubernetes.container.name": "c"}}
    for share in (False, True):
        sandbox = spec_for(tmp_path, share)
        spec = handler.container_spec(base, sandbox)
        assert spec["annotations"] == {"io.kubernetes.container.name": "c", CONTAINER_TYPE: "container",
                                       SANDBOX_ID: "sb1"}
        assert {"type": "network", "path": "/run/x/ns/net"} in spec["linux"]["namespaces"]
        pid = next(n for n in spec["linux"]["namespaces"] if n["type"] == "pid")
        root = next(n for n in handler._sandbox_config(sandbox, tmp_path)["linux"]["namespaces"]
                    if n["type"] == "pid")
        # runsc shares a PID namespace between containers that name the same path.
        assert (pid == root and "path" in pid) is share
    assert base["annotations"] == {"io.kubernetes.container.name": "c"}  # the input is not changed


def test_cgroups_are_below_the_hierarchies_roots(tmp_path: Path) -> None:
    # runsc reads a relative cgroupsPath below its own cgroup, out of reach of the pod's limits.
    handler = GVisorHandler(GVisorConfig("runsc", tmp_path / "root", tmp_path / "exits"))
    sandbox = spec_for(tmp_path, False)
    spec = handler.container_spec({"linux": {"namespaces": [], "cgroupsPath": "podbay/pod-1/c"}}, sandbox)
    assert spec["linux"]["cgroupsPath"] == "/podbay/pod-1/c"
    assert handler._sandbox_config(sandbox, tmp_path)["linux"]["cgroupsPath"] == "/podbay/pod-1/sandbox"


@pytest.mark.parametrize(("oom_kills", "code", "marked"), [(0, 255, False), (1, 137, True)])
def test_a_lost_sandbox_is_oom_killed_when_its_cgroup_counts_a_kill(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, oom_kills: int, code: int, marked: bool) -> None:
    # A sandbox that is gone: no control server answers, so no exit status comes back.
    monkeypatch.chdir(tmp_path)  # the bundle, where conmon's mark goes
    events = tmp_path / "memory.oom_control"
    events.write_text(f"oom_kill_disable 0\nunder_oom 0\noom_kill {oom_kills}\n")
    result: list[int] = []
    _exit_status(SandboxControl("no-such-sandbox", str(tmp_path)), "c1", str(events), result)
    assert result == [code] and (tmp_path / "oom").exists() is marked


def write_state(root: Path, sandbox_id: str, sandbox: dict[str, str]) -> None:
    name = f"{sandbox_id}_sandbox:{sandbox_id}"
    (root / f"{name}.lock").touch()
    (root / f"{name}.state").write_text(json.dumps({"id": sandbox_id, "sandbox": {"id": sandbox_id, **sandbox}}))


def test_the_control_server_is_found_where_runsc_records_it(tmp_path: Path) -> None:
    # runsc since 2023 (Debian 13's) serves on a socket file its state names, a path often longer
    # than a socket address holds; Debian 12's 20221219 on an abstract name, its state naming none.
    root = tmp_path / ("r" * 60)
    root.mkdir()
    sandbox_id = "a" * 64
    path = root / f"runsc-{sandbox_id}.sock"
    assert len(str(path)) >= 108
    calls: list[object] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        directory = os.open(root, os.O_PATH)
        server.bind(f"/proc/self/fd/{directory}/{path.name}")
        os.close(directory)
        server.listen()

        def answer_one() -> None:
            conn, _ = server.accept()
            with conn:
                calls.append(json.loads(conn.recv(4096)))
                conn.sendall(b'{"success": true, "err": "", "result": null}')

        serving = threading.Thread(target=answer_one)
        serving.start()
        write_state(root, sandbox_id, {"controlSocketPath": str(path)})
        SandboxControl(sandbox_id, str(root)).signal("c1", signal.SIGTERM)
        serving.join()
    assert calls == [{"method": "containerManager.Signal", "arg": {"CID": "c1", "Signo": 15, "PID": 0, "Mode": 0}}]

    old = "b" * 64
    write_state(root, old, {})
    assert SandboxControl(old, str(root)).address() == ABSTRACT_CONTROL_SOCKET.format(old)


def test_cri_log_records(tmp_path: Path) -> None:
    log = _CRILog(str(tmp_path / "0.log"))
    log.write("stdout", b"one\ntw")
    log.write("stderr", b"err\n")
    log.write("stdout", b"o\n" + b"x" * (_MAX_LINE + 1))
    log.flush()
    lines = [parse_cri_line(raw) for raw in (tmp_path / "0.log").read_bytes().splitlines(keepends=True)]
    assert [(ln.stream, ln.partial, ln.content) for ln in lines if ln] == [
        ("stdout", False, b"one"), ("stderr", False, b"err"), ("stdout", False, b"two"),
        ("stdout", True, b"x" * _MAX_LINE), ("stdout", True, b"x")]


def test_wait_statuses_become_exit_codes_as_runsc_wait_reports_them() -> None:
    assert [exit_code(s) for s in (0, 3 << 8, signal.SIGTERM, signal.SIGKILL)] == [0, 3, 143, 137]


def test_cri_timestamps_are_rfc3339_utc_with_nanoseconds() -> None:
    assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", _timestamp())


def test_runsc_start_is_spawned_with_the_pipes_for_stdio_and_its_exit_code() -> None:
    """The monitor runs `runsc start` without subprocess: the pipes are its stdio, and its exit
    code is the monitor's to report."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    os.write(in_w, b"in\n")
    os.close(in_w)
    try:
        assert _run_start(["sh", "-c", "read x; echo $x-out; echo err >&2; exit 3"], in_r, out_w, err_w) == 3
        assert os.read(out_r, 100) == b"in-out\n" and os.read(err_r, 100) == b"err\n"
    finally:
        for fd in (in_r, out_r, out_w, err_r, err_w):
            os.close(fd)


def test_runsc_start_gets_the_signals_python_ignores_back(tmp_path: Path) -> None:
    out = tmp_path / "status"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert _run_start(["sh", "-c", "grep SigIgn /proc/self/status"], fd, fd, fd) == 0
    finally:
        os.close(fd)
    ignored = int(out.read_text().split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1)) and not ignored & (1 << (signal.SIGXFSZ - 1))
