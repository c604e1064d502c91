"""podbay: Kubernetes Pods on real Linux containers."""
