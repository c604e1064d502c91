"""Seccomp filters compiled once per profile and handed to crun ready-made.

crun compiles a container's `linux.seccomp` into BPF with libseccomp on every create (the
RuntimeDefault profile's ~350 rules cost it tens of milliseconds; crun 1.8 has no cache of its
own). What it compiled stays in its state directory as `<id>/seccomp.bpf`; the next container
with the same `linux.seccomp` gets those bytes in crun's `run.oci.seccomp_bpf_data` annotation,
which crun loads instead of compiling (podman passes precompiled filters the same way). The
section stays in the spec: crun still takes the filter's flags and listener from it.
"""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

BPF_ANNOTATION = "run.oci.seccomp_bpf_data"
# Distinct filters are one per profile and capability set: a handful on a node. Bounded all the same.
MAX_FILTERS = 32


def _key(seccomp: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(seccomp, sort_keys=True).encode()).hexdigest()


def _seccomp_of(spec: dict[str, Any]) -> dict[str, Any] | None:
    seccomp = (spec.get("linux") or {}).get("seccomp")
    return seccomp if isinstance(seccomp, dict) else None


class CompiledFilters:
    """The filters crun compiled, by their `linux.seccomp`; held by this process only, so a
    new crun or kernel after a restart compiles afresh."""

    def __init__(self, crun_root: Path) -> None:
        self._crun_root = crun_root
        self._bpf: dict[str, str] = {}  # key of a linux.seccomp -> its BPF in base64
        self._uncompiled: set[str] = set()  # keys handed to crun to compile, not yet learned

    def annotate(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The spec with its filter's BPF in the annotation crun loads, once one was compiled."""
        seccomp = _seccomp_of(spec)
        if seccomp is None:
            return spec
        key = _key(seccomp)
        bpf = self._bpf.get(key)
        if bpf is None:
            if len(self._uncompiled) < MAX_FILTERS:
                self._uncompiled.add(key)
            return spec
        return {**spec, "annotations": {**(spec.get("annotations") or {}), BPF_ANNOTATION: bpf}}

    def learn(self, container_id: str, bundle: Path) -> None:
        """Keeps the BPF crun has just compiled for the container in `bundle`, if it was one to learn."""
        if not self._uncompiled:
            return
        try:
            spec = json.loads((bundle / "config.json").read_text())
            seccomp = _seccomp_of(spec)
            if seccomp is None or BPF_ANNOTATION in (spec.get("annotations") or {}):
                return
            key = _key(seccomp)
            if key not in self._uncompiled:
                return
            bpf = (self._crun_root / container_id / "seccomp.bpf").read_bytes()
        except (OSError, ValueError):
            return  # compiled again next time, as without this cache
        if not bpf:
            return
        self._uncompiled.discard(key)
        if len(self._bpf) >= MAX_FILTERS:
            del self._bpf[next(iter(self._bpf))]
        self._bpf[key] = base64.b64encode(bpf).decode()
