"""Pure rules of the runtime: capabilities, OCI spec, /etc files, users, cgroup arithmetic."""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from podbay.runtime import cgroups
from podbay.runtime.etcfiles import hosts_file, resolv_conf
from podbay.runtime.oci import process_start_time, signal_process
from podbay.runtime.spec import DEFAULT_CAPABILITIES, SandboxPaths, capabilities, oci_spec
from podbay.runtime.types import (
    ContainerConfig, ContainerMetadata, DNSConfig, HostAlias, LinuxContainerResources, LinuxContainerSecurity, Mount,
)
from podbay.runtime.users import resolve_user

PATHS = SandboxPaths(net="/ns/net", ipc="/ns/ipc", uts="/ns/uts", pid=None, host_pid=False, shm="/sb/shm",
                     cgroups_path="podbay/pod-x/c")


def test_capabilities_follow_kubernetes_add_and_drop() -> None:
    assert capabilities([], [], False) == DEFAULT_CAPABILITIES
    assert "CAP_NET_RAW" not in capabilities([], ["NET_RAW"], False)
    assert capabilities(["NET_ADMIN"], ["ALL"], False) == ["CAP_NET_ADMIN"]
    assert "CAP_SYS_ADMIN" in capabilities([], [], True)


def test_spec_joins_the_sandbox_namespaces_and_keeps_its_own_mount_and_pid() -> None:
    cfg = ContainerConfig(ContainerMetadata("web"), "busybox", ["httpd", "-f"], env=["A=1"],
                          mounts=[Mount("/data", "/host/data", readonly=True)],
                          resources=LinuxContainerResources(cpu_quota=50000, cpu_period=100000, cpu_shares=512,
                                                            memory_limit_in_bytes=64 << 20),
                          security=LinuxContainerSecurity(readonly_rootfs=True, no_new_privs=True))
    spec = oci_spec(cfg, PATHS, "/rootfs", 1000, 1000, [10])
    ns = {n["type"]: n.get("path") for n in spec["linux"]["namespaces"]}
    assert ns == {"mount": None, "network": "/ns/net", "ipc": "/ns/ipc", "uts": "/ns/uts", "pid": None}
    assert spec["root"] == {"path": "/rootfs", "readonly": True}
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10]}
    assert spec["process"]["noNewPrivileges"] is True
    assert spec["linux"]["resources"]["memory"] == {"limit": 64 << 20}
    assert spec["linux"]["resources"]["cpu"] == {"shares": 512, "quota": 50000, "period": 100000}
    data = next(m for m in spec["mounts"] if m["destination"] == "/data")
    assert data["source"] == "/host/data" and "ro" in data["options"]
    shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
    assert shm["source"] == "/sb/shm"


def test_host_pid_means_no_pid_namespace() -> None:
    paths = SandboxPaths(None, None, None, None, True, None, "p/c")
    spec = oci_spec(ContainerConfig(ContainerMetadata("c"), "i", ["sh"]), paths, "/r", 0, 0, [])
    assert [n["type"] for n in spec["linux"]["namespaces"]] == ["mount"]


def test_hosts_file_as_the_kubelet_writes_it() -> None:
    text = hosts_file("10.0.0.5", "web", "web.sub.default.svc.cluster.local", [HostAlias("1.2.3.4", ["a", "b"])])
    assert text.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert "10.0.0.5\tweb.sub.default.svc.cluster.local\tweb\n" in text
    assert text.endswith("# Entries added by HostAliases.\n1.2.3.4\ta\tb\n")


def test_resolv_conf() -> None:
    assert resolv_conf(None, "nameserver 9.9.9.9\n") == "nameserver 9.9.9.9\n"
    assert resolv_conf(DNSConfig(["1.1.1.1"], ["a.b"], ["ndots:2"]), "") == \
        "nameserver 1.1.1.1\nsearch a.b\noptions ndots:2\n"


def test_users_from_image_passwd(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\nwheel:x:10:nobody\n")
    assert resolve_user(tmp_path, LinuxContainerSecurity(run_as_username="nobody")) == (65534, 65534, [10])
    assert resolve_user(tmp_path, LinuxContainerSecurity(run_as_user=1234)) == (1234, 0, [])
    assert resolve_user(tmp_path, LinuxContainerSecurity(run_as_user=0, run_as_group=7,
                                                          supplemental_groups=[5])) == (0, 7, [5])


def test_cpu_arithmetic_matches_the_kubelet() -> None:
    assert cgroups.cpu_shares(0) == 2
    assert cgroups.cpu_shares(250) == 256
    assert cgroups.cpu_quota(500) == 50000
    assert cgroups.cpu_quota(0) == 0


def test_a_process_is_signalled_only_while_its_pid_still_names_it() -> None:
    proc = subprocess.Popen(["sleep", "600"])
    try:
        started = process_start_time(proc.pid)
        assert started is not None
        assert signal_process(proc.pid, started + 1, signal.SIGTERM) is False  # another process's pid
        assert proc.poll() is None
        assert signal_process(proc.pid, started, signal.SIGTERM) is True
        assert proc.wait(timeout=10) == -signal.SIGTERM
        assert signal_process(proc.pid, started, signal.SIGTERM) is False  # gone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
