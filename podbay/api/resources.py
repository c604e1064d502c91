"""A pod's effective resource requests and limits, as Kubernetes computes them
(component-helpers' PodRequests): what the scheduler must fit on one node."""
from __future__ import annotations

from fractions import Fraction

from podbay.api.models import Pod, is_restartable_init
from podbay.api.quantity import parse_quantity

Resources = dict[str, Fraction]

# The resources whose requests and limits decide a pod's QoS class.
_QOS = ("cpu", "memory")


def _of(values: dict[str, str]) -> Resources:
    return {k: parse_quantity(v) for k, v in values.items()}


def _add(a: Resources, b: Resources) -> Resources:
    return {k: a.get(k, Fraction(0)) + b.get(k, Fraction(0)) for k in a.keys() | b.keys()}


def _max(a: Resources, b: Resources) -> Resources:
    return {k: max(a.get(k, Fraction(0)), b.get(k, Fraction(0))) for k in a.keys() | b.keys()}


def _effective(pod: Pod, pick: str) -> Resources:
    total: Resources = {}
    for c in pod.spec.containers:
        total = _add(total, _of(getattr(c.resources, pick)) if c.resources else {})
    sidecars: Resources = {}
    init_max: Resources = {}
    for c in pod.spec.init_containers:
        own = _of(getattr(c.resources, pick)) if c.resources else {}
        if is_restartable_init(c):
            # A sidecar keeps running beside everything that starts after it.
            total = _add(total, own)
            sidecars = _add(sidecars, own)
            need = sidecars
        else:
            need = _add(own, sidecars)
        init_max = _max(init_max, need)
    total = _max(total, init_max)
    return _add(total, _of(pod.spec.overhead)) if pod.spec.overhead else total


def pod_requests(pod: Pod) -> Resources:
    """max(sum of main and sidecar requests, the largest init step) + overhead."""
    return _effective(pod, "requests")


def pod_limits(pod: Pod) -> Resources:
    return _effective(pod, "limits")


def qos_class(pod: Pod) -> str:
    """Guaranteed, Burstable or BestEffort: Kubernetes' ComputePodQOS
    (pkg/apis/core/v1/helper/qos) over parsed cpu and memory quantities, with a
    container's requests defaulting to its limits as the API server defaults them."""
    requests: Resources = {}
    limits: Resources = {}
    guaranteed = True
    for c in pod.spec.containers + pod.spec.init_containers:
        lim = {k: v for k, v in (_of(c.resources.limits) if c.resources else {}).items() if k in _QOS and v > 0}
        req = {k: v for k, v in (_of(c.resources.requests) if c.resources else {}).items() if k in _QOS}
        for k, v in lim.items():
            req.setdefault(k, v)
        requests = _add(requests, {k: v for k, v in req.items() if v > 0})
        limits = _add(limits, lim)
        if set(lim) != set(_QOS):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"
