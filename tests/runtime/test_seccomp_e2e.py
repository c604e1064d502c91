"""Seccomp on real containers: RuntimeDefault, Unconfined and Localhost profiles under crun."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from podbay.runtime.service import RuntimeService
from podbay.runtime.types import (
    ContainerConfig, ContainerMetadata, ContainerRuntimeError, ContainerState, LinuxContainerSecurity, PodSandboxConfig,
    PodSandboxMetadata, ProfileType, SecurityProfile,
)
from tests.conftest import HostEnv

pytestmark = pytest.mark.e2e
# unshare(2) of a user namespace needs no capability, so only a seccomp filter refuses it.
PROBE = "unshare -U true && echo unshared; mkdir /made && echo made"


def container(name: str, profile: SecurityProfile, script: str = PROBE) -> ContainerConfig:
    return ContainerConfig(ContainerMetadata(name), "busybox:1.35", ["sh", "-c", script],
                           env=["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                           security=LinuxContainerSecurity(seccomp=profile))


async def run_to_exit(runtime: RuntimeService, sandbox_id: str, cfg: ContainerConfig) -> tuple[int | None, str]:
    cid = await runtime.create_container(sandbox_id, cfg)
    await runtime.start_container(cid)
    status = await runtime.wait_container(cid)
    assert status.state is ContainerState.EXITED
    return status.exit_code, Path(status.log_path).read_text()


async def test_runtime_default_unconfined_and_localhost_profiles(runtime: RuntimeService, host_env: HostEnv) -> None:
    profiles = host_env.state_root / "seccomp"
    profiles.mkdir()
    no_mkdir = profiles / "no-mkdir.json"
    no_mkdir.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
    sid = await runtime.run_pod_sandbox(PodSandboxConfig(PodSandboxMetadata("sc", "default", "uid-sc"), "sc"))

    code, log = await run_to_exit(runtime, sid, container("default", SecurityProfile(ProfileType.RUNTIME_DEFAULT)))
    assert code == 0 and "unshare(0x10000000): Operation not permitted" in log and "made" in log
    # An exec'd process runs under the container's filter too.
    sleeper = await runtime.create_container(sid, container("sleeper", SecurityProfile(ProfileType.RUNTIME_DEFAULT),
                                                            "sleep 600"))
    await runtime.start_container(sleeper)
    code, _, err = await runtime.exec_sync(sleeper, ["unshare", "-U", "true"], 10)
    assert code == 1 and b"Operation not permitted" in err
    await runtime.stop_container(sleeper, 0)
    code, log = await run_to_exit(runtime, sid, container("open", SecurityProfile(ProfileType.UNCONFINED)))
    assert code == 0 and "unshared" in log and "made" in log
    code, log = await run_to_exit(runtime, sid, container("local", SecurityProfile(ProfileType.LOCALHOST,
                                                                                  str(no_mkdir))))
    assert code == 1 and "unshared" in log and "can't create directory '/made': Operation not permitted" in log
    await runtime.remove_pod_sandbox(sid)


async def test_a_missing_or_invalid_localhost_profile_fails_creation_and_leaves_nothing(
        runtime: RuntimeService, host_env: HostEnv) -> None:
    sid = await runtime.run_pod_sandbox(PodSandboxConfig(PodSandboxMetadata("nf", "default", "uid-nf"), "nf"))
    missing = host_env.state_root / "seccomp" / "missing.json"
    with pytest.raises(ContainerRuntimeError) as e:
        await runtime.create_container(sid, container("c", SecurityProfile(ProfileType.LOCALHOST, str(missing))))
    assert str(e.value) == f'cannot load seccomp profile "{missing}": No such file or directory'
    broken = host_env.state_root / "broken.json"
    broken.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"]}]}))
    with pytest.raises(ContainerRuntimeError, match=r'invalid seccomp profile ".*broken.json": syscalls\[0\].action'):
        await runtime.create_container(sid, container("c", SecurityProfile(ProfileType.LOCALHOST, str(broken))))
    assert await runtime.list_containers() == []
    assert list(runtime.config.containers_root.iterdir()) == []
    await runtime.remove_pod_sandbox(sid)
