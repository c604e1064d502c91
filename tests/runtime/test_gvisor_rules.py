"""Pure rules of the runsc handler: the OCI annotations runsc reads to put a container in its
pod's sandbox, one PID namespace only with shareProcessNamespace, and the CRI log records
gvisormon writes."""
from __future__ import annotations

from pathlib import Path

from podbay.agent.containerlogs import parse_cri_line
from podbay.runtime.gvisor import CONTAINER_TYPE, SANDBOX_ID, GVisorConfig, GVisorHandler
from podbay.runtime.gvisormon import _MAX_LINE, _CRILog
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
