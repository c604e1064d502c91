from datetime import datetime, timezone

from podbay.agent.config import AgentConfig
from podbay.agent.node import node_images, node_object, node_runtime_handlers
from podbay.api.base import rfc3339
from podbay.api.serialize import to_dict
from podbay.runtime.images import Image, ImageConfig


def test_node_object_reads_the_machine(tmp_path):
    now = datetime.now(timezone.utc)
    node = to_dict(node_object(AgentConfig(node_name="n1", state_root=tmp_path, node_address="127.0.0.1"), 12345, now))
    st = node["status"]
    assert node["metadata"]["name"] == "n1" and node["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
    assert st["capacity"]["pods"] == "110" and int(st["capacity"]["cpu"]) >= 1
    assert st["capacity"]["memory"].endswith("Ki") and st["capacity"]["ephemeral-storage"].endswith("Ki")
    assert st["allocatable"] == st["capacity"]
    assert {"type": "InternalIP", "address": "127.0.0.1"} in st["addresses"]
    assert st["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 12345
    ready = st["conditions"][0]
    assert ready["type"] == "Ready" and ready["status"] == "True" and ready["lastHeartbeatTime"] == rfc3339(now)
    assert st["nodeInfo"]["operatingSystem"] == "linux"


def test_node_images_are_the_largest_first_named_by_digests_then_tags():
    images = [Image(f"sha256:{n}", [f"r/{n}:{t}" for t in range(7)], [f"r/{n}@sha256:{n}"], size, ImageConfig())
              for n, size in (("small", 10), ("big", 30), ("mid", 20))]
    images += [Image(f"sha256:x{n}", [], [], 1, ImageConfig()) for n in range(60)]
    listed = [to_dict(i) for i in node_images(images)]
    assert len(listed) == 50
    assert [i["sizeBytes"] for i in listed[:3]] == [30, 20, 10]
    assert listed[0]["names"] == ["r/big@sha256:big", "r/big:0", "r/big:1", "r/big:2", "r/big:3"]
    assert listed[-1]["names"][0].startswith("sha256:x")  # an untagged image goes by its id


def test_a_node_registered_again_asks_for_the_pod_cidr_its_network_was_made_from(tmp_path):
    now = datetime.now(timezone.utc)
    node = to_dict(node_object(AgentConfig(node_name="n1", state_root=tmp_path, pod_cidr="10.244.3.0/24"), 1, now))
    assert node["spec"] == {"podCIDR": "10.244.3.0/24", "podCIDRs": ["10.244.3.0/24"]}
    assert to_dict(node_object(AgentConfig(node_name="n1", state_root=tmp_path), 1, now))["spec"] == {}


def test_the_node_reports_each_runtime_handler_once_sorted_without_features_it_lacks():
    # RuntimeService.handlers names the default thrice ("", "runc", the OCI runtime's own name).
    assert [to_dict(h) for h in node_runtime_handlers({"": 1, "runc": 1, "crun": 1, "runsc": 1})] == [
        {"name": n, "features": {"recursiveReadOnlyMounts": False, "userNamespaces": False}}
        for n in ("", "crun", "runc", "runsc")]
