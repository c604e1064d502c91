"""podbay's own annotations on Pod objects (HyperContainer's lifecycle, kept in the object)."""

# "Created": stored, scheduled, images pulled, volumes allocated, nothing running.
RUN_STATE_ANNOTATION = "podbay.io/run-state"
# On a pod started by `replace`: the pod whose running sandbox it takes over.
SANDBOX_FROM_ANNOTATION = "podbay.io/sandbox-from"
