"""Services as environment variables (the kubelet's getServiceEnvVarMap and envvars.FromServices):
`<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT[_<PORT>]` and the Docker-link `<NAME>_PORT...` variables
of the Services in the pod's namespace (with enableServiceLinks, the default) and, always, of the
`kubernetes` Service in default."""
from __future__ import annotations

from podbay.api.services import Service, is_headless

MASTER_NAMESPACE, MASTER_SERVICES = "default", ("kubernetes",)


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def service_env(services: list[Service], namespace: str, enable_service_links: bool) -> dict[str, str]:
    chosen: dict[str, Service] = {}
    for svc in services:
        if not svc.spec.cluster_ip or is_headless(svc):
            continue
        name = svc.metadata.name or ""
        if svc.metadata.namespace == MASTER_NAMESPACE and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif svc.metadata.namespace == namespace and enable_service_links:
            chosen[name] = svc
    env: dict[str, str] = {}
    for name, svc in sorted(chosen.items()):
        prefix, ip = _env_name(name), svc.spec.cluster_ip or ""
        ports = svc.spec.ports
        env[f"{prefix}_SERVICE_HOST"] = ip
        if ports:
            env[f"{prefix}_SERVICE_PORT"] = str(ports[0].port)
        for port in ports:
            if port.name:
                env[f"{prefix}_SERVICE_PORT_{_env_name(port.name)}"] = str(port.port)
        for i, port in enumerate(ports):
            protocol = port.protocol or "TCP"
            url = f"{protocol.lower()}://{ip}:{port.port}"
            if i == 0:
                env[f"{prefix}_PORT"] = url
            link = f"{prefix}_PORT_{port.port}_{protocol.upper()}"
            env[link] = url
            env[f"{link}_PROTO"] = protocol.lower()
            env[f"{link}_PORT"] = str(port.port)
            env[f"{link}_ADDR"] = ip
    return env
