"""The all-in-one server keeping its objects in a real etcd (--etcd-servers): a pod runs,
and etcdctl sees it where kube-apiserver would have put it."""
from __future__ import annotations

import dataclasses
import json

import pytest

from podbay.api import Pod
from podbay.api.serialize import from_dict
from tests.conftest import HostEnv, require_root
from tests.e2e.conftest import running_cluster, settings_for
from tests.etcd_server import EtcdServer

pytestmark = pytest.mark.e2e


async def test_a_pod_runs_with_its_objects_in_etcd(host_env: HostEnv, etcd_server: EtcdServer) -> None:
    require_root()
    settings = dataclasses.replace(settings_for(host_env), etcd_servers=(etcd_server.url,))
    async with running_cluster(settings) as cluster:
        await cluster.client.create(from_dict(Pod, {"metadata": {"name": "in-etcd"}, "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "busybox:1.35", "command": ["sleep", "600"]}]}}))
        pod = await cluster.wait_for("in-etcd", lambda p: p.status.phase == "Running")
        assert pod.spec.node_name == settings.node_name

        keys = etcd_server.etcdctl("get", "--prefix", "/registry/pods", "--keys-only").split()
        assert keys == ["/registry/pods/default/in-etcd"]
        assert f"/registry/minions/{settings.node_name}" in etcd_server.etcdctl(
            "get", "--prefix", "/registry/minions", "--keys-only").split()
        stored = json.loads(etcd_server.etcdctl("get", "/registry/pods/default/in-etcd", "--print-value-only"))
        assert stored["status"]["phase"] == "Running" and "resourceVersion" not in stored["metadata"]

        await cluster.client.delete(Pod, "in-etcd", "default", grace_period_seconds=0)
        await cluster.wait_for_deleted("in-etcd")
        assert etcd_server.etcdctl("get", "--prefix", "/registry/pods", "--keys-only").split() == []
