"""Seccomp profiles: Docker's rule selection into OCI's linux.seccomp, and Localhost files checked."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from podbay.runtime.seccomp import linux_seccomp, load_profile, profile_errors, runtime_default
from podbay.runtime.spec import DEFAULT_CAPABILITIES, SandboxPaths, oci_spec
from podbay.runtime.types import (
    ContainerConfig, ContainerMetadata, ContainerRuntimeError, LinuxContainerSecurity, ProfileType, SecurityProfile,
)

PATHS = SandboxPaths(net="/ns/net", ipc="/ns/ipc", uts="/ns/uts", pid=None, host_pid=False, shm="/sb/shm",
                     cgroups_path="podbay/pod-x/c")


def allowed(seccomp: dict) -> set[str]:
    """Syscalls allowed whatever their arguments."""
    return {n for rule in seccomp["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" and "args" not in rule
            for n in rule["names"]}


def test_runtime_default_is_an_allow_list_failing_with_eperm() -> None:
    out = linux_seccomp(runtime_default(), DEFAULT_CAPABILITIES, arch="amd64", kernel=(6, 1))
    assert (out["defaultAction"], out["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", 1)
    assert out["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = allowed(out)
    assert {"read", "execve", "mkdir", "arch_prctl", "ptrace", "chroot"} <= names
    assert not {"unshare", "mount", "setns", "bpf", "reboot", "init_module", "riscv_flush_icache"} & names
    # Without CAP_SYS_ADMIN clone may not make namespaces and clone3 reports ENOSYS, so libc falls back to clone.
    clone = next(r for r in out["syscalls"] if r["names"] == ["clone"])
    assert clone["args"] == [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]
    assert next(r for r in out["syscalls"] if r["names"] == ["clone3"])["errnoRet"] == 38


def test_capabilities_architecture_and_kernel_select_rules() -> None:
    admin = linux_seccomp(runtime_default(), DEFAULT_CAPABILITIES + ["CAP_SYS_ADMIN"], arch="amd64", kernel=(6, 1))
    assert {"unshare", "mount", "setns", "clone", "clone3"} <= allowed(admin)
    assert not any(r["names"] == ["clone3"] and r["action"] != "SCMP_ACT_ALLOW" for r in admin["syscalls"])
    arm = linux_seccomp(runtime_default(), DEFAULT_CAPABILITIES, arch="arm64", kernel=(6, 1))
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" not in allowed(arm) and "set_tls" in allowed(arm)
    old = linux_seccomp(runtime_default(), DEFAULT_CAPABILITIES, arch="amd64", kernel=(4, 4))
    assert "ptrace" not in allowed(old)


def test_a_plain_oci_profile_passes_through() -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                            {"name": "chmod", "action": "SCMP_ACT_KILL"}]}
    assert profile_errors(profile) == []
    assert linux_seccomp(profile, [], arch="amd64", kernel=(6, 1)) == {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                     {"names": ["chmod"], "action": "SCMP_ACT_KILL"}]}


def test_profile_errors_name_their_place() -> None:
    assert profile_errors([]) == ["a profile must be a JSON object"]
    errs = profile_errors({"defaultAction": "ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                           "archMap": [{"architecture": "SCMP_ARCH_X86_64"}],
                           "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"},
                                        {"names": [], "action": "SCMP_ACT_ERRNO", "errnoRet": "1"},
                                        {"names": ["c"], "action": "SCMP_ACT_ALLOW",
                                         "args": [{"index": 6, "value": -1, "op": "EQ"}],
                                         "includes": {"minKernel": "new"}}]})
    assert errs[0].startswith("defaultAction: 'ALLOW' is not a seccomp action (SCMP_ACT_ALLOW, ")
    assert errs[1:] == [
        "both 'architectures' and 'archMap' are specified, use either 'architectures' or 'archMap'",
        "syscalls[0]: both 'name' and 'names' are specified, use either 'name' or 'names'",
        "syscalls[1].names: must be a non-empty list of syscall names",
        "syscalls[1].errnoRet: must be an integer",
        "syscalls[2].args[0].index: must be an integer from 0 to 5",
        "syscalls[2].args[0].value: must be a non-negative integer",
        errs[7],
        "syscalls[2].includes.minKernel: 'new' is not a kernel version such as \"4.8\"",
    ]
    assert errs[7].startswith("syscalls[2].args[0].op: 'EQ' is not a comparison (")


def test_load_profile(tmp_path: Path) -> None:
    assert load_profile(SecurityProfile(ProfileType.UNCONFINED)) is None
    assert load_profile(SecurityProfile(ProfileType.RUNTIME_DEFAULT)) is runtime_default()
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"defaultAction": "SCMP_ACT_LOG"}))
    assert load_profile(SecurityProfile(ProfileType.LOCALHOST, str(good))) == {"defaultAction": "SCMP_ACT_LOG"}
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "empty.json").write_text("{}")
    for name, message in (("missing.json", f'cannot load seccomp profile "{tmp_path}/missing.json": '
                                           "No such file or directory"),
                          ("bad.json", f'decoding seccomp profile failed "{tmp_path}/bad.json": Expecting '),
                          ("empty.json", f'invalid seccomp profile "{tmp_path}/empty.json": defaultAction: None is '
                                         "not a seccomp action")):
        with pytest.raises(ContainerRuntimeError) as e:
            load_profile(SecurityProfile(ProfileType.LOCALHOST, str(tmp_path / name)))
        assert str(e.value).startswith(message)
    with pytest.raises(ContainerRuntimeError, match="must be an absolute path"):
        load_profile(SecurityProfile(ProfileType.LOCALHOST, ""))


def test_privileged_containers_are_unconfined() -> None:
    def spec(privileged: bool) -> dict:
        cfg = ContainerConfig(ContainerMetadata("c"), "i", ["sh"], security=LinuxContainerSecurity(
            privileged=privileged, seccomp=SecurityProfile(ProfileType.RUNTIME_DEFAULT)))
        return oci_spec(cfg, PATHS, "/r", 0, 0, [], runtime_default())

    assert "seccomp" not in spec(True)["linux"]
    assert spec(False)["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
