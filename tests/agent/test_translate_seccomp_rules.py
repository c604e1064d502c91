"""Which seccomp profile the agent asks the runtime for, as the kubelet decides it."""
from __future__ import annotations

from pathlib import Path

from podbay.agent.translate import seccomp_profile
from podbay.api.formats import load_pods
from podbay.runtime.types import ProfileType, SecurityProfile

ROOT = Path("/var/lib/podbay/seccomp")


def test_container_field_wins_over_the_pod_field_and_unset_is_unconfined() -> None:
    pod = load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  securityContext: {seccompProfile: {type: RuntimeDefault}}
  containers:
  - {name: inherits, image: busybox}
  - {name: own, image: busybox, securityContext: {seccompProfile: {type: Localhost, localhostProfile: prof/a.json}}}
  - {name: open, image: busybox, securityContext: {seccompProfile: {type: Unconfined}}}
""")[0]
    inherits, own, open_ = pod.spec.containers
    assert seccomp_profile(pod, inherits, ROOT) == SecurityProfile(ProfileType.RUNTIME_DEFAULT)
    assert seccomp_profile(pod, own, ROOT) == SecurityProfile(ProfileType.LOCALHOST, f"{ROOT}/prof/a.json")
    assert seccomp_profile(pod, open_, ROOT) == SecurityProfile(ProfileType.UNCONFINED)
    pod.spec.security_context = None
    assert seccomp_profile(pod, inherits, ROOT) == SecurityProfile(ProfileType.UNCONFINED)
