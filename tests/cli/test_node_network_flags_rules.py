"""The node network flags: kube-controller-manager's node IPAM flags and the kubelet's --node-ip."""
from __future__ import annotations

import pytest

from podbay.cli.main import build_parser
from podbay.cli.settings import settings_from


def test_defaults_leave_the_subnet_to_node_ipam() -> None:
    s = settings_from(build_parser().parse_args(["controllers"]))
    assert (s.subnet, s.cluster_cidr, s.node_cidr_mask_size, s.allocate_node_cidrs, s.node_ip) == (
        None, "10.244.0.0/16", 24, True, "127.0.0.1")
    assert "--subnet" not in s.as_args()


def test_flags_are_read_and_handed_to_the_up_child() -> None:
    argv = ["--subnet", "10.9.0.0/24", "--cluster-cidr", "10.8.0.0/14", "--node-cidr-mask-size", "25",
            "--node-ip", "192.168.250.2", "up", "--allocate-node-cidrs=false"]
    s = settings_from(build_parser().parse_args(argv))
    assert (s.subnet, s.cluster_cidr, s.node_cidr_mask_size, s.allocate_node_cidrs, s.node_ip) == (
        "10.9.0.0/24", "10.8.0.0/14", 25, False, "192.168.250.2")
    again = settings_from(build_parser().parse_args([*s.as_args(), "up", "--allocate-node-cidrs=false"]))
    assert again == s


@pytest.mark.parametrize("argv", [["--node-cidr-mask-size", "16", "controllers"],
                                  ["--cluster-cidr", "10.244.0.0/33", "controllers"]])
def test_a_bad_range_is_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit, match="error:"):
        settings_from(build_parser().parse_args(argv))
