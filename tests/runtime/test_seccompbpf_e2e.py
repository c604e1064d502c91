"""A filter compiled once holds for every container of its profile: the first container's filter
is compiled by crun, the next ones load it from the annotation, and each refuses the same calls."""
from __future__ import annotations

import json

import pytest

from podbay.runtime.seccompbpf import BPF_ANNOTATION
from podbay.runtime.service import RuntimeService
from podbay.runtime.types import PodSandboxConfig, PodSandboxMetadata, ProfileType, SecurityProfile
from tests.runtime.test_seccomp_e2e import container, run_to_exit

pytestmark = pytest.mark.e2e


async def test_containers_after_the_first_run_under_the_same_filter(runtime: RuntimeService) -> None:
    sid = await runtime.run_pod_sandbox(PodSandboxConfig(PodSandboxMetadata("bpf", "default", "uid-bpf"), "bpf"))
    annotated = []
    for n in range(3):
        cfg = container(f"c{n}", SecurityProfile(ProfileType.RUNTIME_DEFAULT))
        code, log = await run_to_exit(runtime, sid, cfg)
        assert code == 0 and "unshare(0x10000000): Operation not permitted" in log and "made" in log
        cid = next(s.id for s in runtime.containers.statuses(sid) if s.metadata.name == f"c{n}")
        spec = json.loads((runtime.containers.bundle(cid) / "config.json").read_text())
        annotated.append(BPF_ANNOTATION in spec["annotations"])
    assert annotated == [False, True, True]
    # Unconfined has no filter to load; it still may do what RuntimeDefault refuses.
    code, log = await run_to_exit(runtime, sid, container("open", SecurityProfile(ProfileType.UNCONFINED)))
    assert code == 0 and "unshared" in log
    await runtime.remove_pod_sandbox(sid)
