"""Well-known names: podbay's own annotations on Pod objects (HyperContainer's lifecycle, kept
in the object) and Kubernetes' node condition taints."""

# "Created": stored, scheduled, images pulled, volumes allocated, nothing running.
RUN_STATE_ANNOTATION = "podbay.io/run-state"
# On a pod started by `replace`: the pod whose running sandbox it takes over.
SANDBOX_FROM_ANNOTATION = "podbay.io/sandbox-from"

# The taints the node lifecycle controller keeps on a node while a pressure condition is True
# (TaintNodesByCondition), so the scheduler sends no new pod there.
CONDITION_TAINTS = {
    "MemoryPressure": "node.kubernetes.io/memory-pressure",
    "DiskPressure": "node.kubernetes.io/disk-pressure",
    "PIDPressure": "node.kubernetes.io/pid-pressure",
}
