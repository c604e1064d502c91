"""Taints and tolerations: Kubernetes' matching rule, and the taints kept for node conditions."""
from __future__ import annotations

from podbay.api.models import Taint, Toleration

# The taints the node lifecycle controller keeps on a node while a pressure condition is True
# (TaintNodesByCondition), so the scheduler sends no new pod there.
CONDITION_TAINTS = {
    "MemoryPressure": "node.kubernetes.io/memory-pressure",
    "DiskPressure": "node.kubernetes.io/disk-pressure",
    "PIDPressure": "node.kubernetes.io/pid-pressure",
}


def tolerates(t: Toleration, taint: Taint) -> bool:
    """Whether the toleration `t` matches `taint` (ToleratesTaint in k8s.io/api/core/v1)."""
    if t.effect and t.effect != taint.effect:
        return False
    if (t.operator or "Equal") == "Exists":
        return not t.key or t.key == taint.key
    return t.key == taint.key and (t.value or "") == (taint.value or "")
