"""seccompProfile in a Pod, end to end: the pod's default, a container's own Localhost
profile, and a missing profile file reported as CreateContainerError."""
from __future__ import annotations

import json

import pytest

from podbay.api import Pod
from podbay.api.formats import load_pods
from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e

POD = """
apiVersion: v1
kind: Pod
metadata: {name: sc}
spec:
  restartPolicy: Never
  securityContext: {seccompProfile: {type: RuntimeDefault}}
  containers:
  - {name: default, image: busybox:1.35, command: [unshare, -U, "true"]}
  - name: local
    image: busybox:1.35
    command: [sh, -c, "unshare -U true || exit 2; mkdir /made || exit 3"]
    securityContext: {seccompProfile: {type: Localhost, localhostProfile: podbay/no-mkdir.json}}
  - name: missing
    image: busybox:1.35
    securityContext: {seccompProfile: {type: Localhost, localhostProfile: missing.json}}
"""


def settled(pod: Pod) -> bool:
    states = {s.name: s.state for s in pod.status.container_statuses}
    return (len(states) == 3 and all(states[n] and states[n].terminated for n in ("default", "local"))
            and bool(states["missing"] and states["missing"].waiting
                     and states["missing"].waiting.reason == "CreateContainerError"))


async def test_pod_and_container_seccomp_profiles(cluster: Cluster) -> None:
    root = cluster.settings.state_root / "seccomp"
    (root / "podbay").mkdir(parents=True)
    (root / "podbay" / "no-mkdir.json").write_text(json.dumps(
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    await cluster.client.create(load_pods(POD)[0])
    pod = await cluster.wait_for("sc", settled)
    states = {s.name: s.state for s in pod.status.container_statuses}
    assert states["default"].terminated.exit_code == 1  # unshare(2) is outside the default allow-list
    assert states["local"].terminated.exit_code == 3  # its own profile, not the pod's: unshare allowed, mkdir not
    assert states["missing"].waiting.message == (
        f'cannot load seccomp profile "{root}/missing.json": No such file or directory')
