"""kubectl describe pod's text, from the pod's and its events' JSON as the API serves them (the
read-only verbs do not load the models). Times print as the models printed them: Start Time in
ISO form, the containers' times as Python writes a datetime."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from podbay.api.printing import age
from podbay.cli.common import table

_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


def _time(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) and text else None


def event_age(event: dict[str, Any], now: datetime | None = None) -> str:
    """kubectl describe's Age of an event: `10s`, or `10s (x3 over 2m)` for a repeated one."""
    count = event.get("count") or 0
    first = _time(event.get("firstTimestamp"))
    if count > 1:
        return f"{age(_time(event.get('lastTimestamp')), now)} (x{count} over {age(first, now)})"
    return age(first or _time(event.get("eventTime")), now)


def pod_events(pod: dict[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events about this pod (the field selector matched its name): of its uid, or of none."""
    uid = (pod.get("metadata") or {}).get("uid")
    return [e for e in events if (e.get("involvedObject") or {}).get("uid") in (None, uid)]


def describe_pod(pod: dict[str, Any], events: list[dict[str, Any]]) -> str:
    """kubectl's describePod: the header, containers, conditions, volumes, QoS class and events."""
    m, s, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    lines = _header_lines(m, s, st)
    lines += _containers_lines(s, st)
    if st.get("conditions"):
        lines.append("Conditions:\n  Type              Status")
        lines += [f"  {c.get('type'):<17} {c.get('status')}" for c in st["conditions"]]
    if s.get("volumes"):
        lines.append("Volumes:")
        for v in s["volumes"]:
            lines.append(f"  {v.get('name')}:")
            lines.append(f"    Type:  {', '.join(k for k, x in v.items() if k != 'name' and x is not None)}")
    lines.append(f"QoS Class:        {st.get('qosClass') or ''}")
    lines += _events_lines(events)
    return "\n".join(lines)


def _header_lines(m: dict[str, Any], s: dict[str, Any], st: dict[str, Any]) -> list[str]:
    """Name to IP: who the pod is, where it runs, and its phase."""
    labels, annotations = m.get("labels") or {}, m.get("annotations") or {}
    start = _time(st.get("startTime"))
    lines = [f"Name:             {m.get('name')}", f"Namespace:        {m.get('namespace')}",
             f"Priority:         {s.get('priority') or 0}"]
    # kubectl describe's line, only for a pod that names a RuntimeClass
    if s.get("runtimeClassName"):
        lines.append(f"Runtime Class Name:  {s['runtimeClassName']}")
    lines += [f"Node:             {s.get('nodeName') or '<none>'}" + (f"/{st['hostIP']}" if st.get("hostIP") else ""),
              f"Start Time:       {start.isoformat() if start else '<unset>'}",
              "Labels:           " + ("\n                  ".join(f"{k}={v}" for k, v in labels.items()) or "<none>"),
              "Annotations:      " + ("\n                  ".join(f"{k}: {v}" for k, v in annotations.items())
                                      or "<none>"),
              f"Status:           {'Terminating' if m.get('deletionTimestamp') else st.get('phase')}",
              f"IP:               {st.get('podIP') or ''}"]
    return lines


def _containers_lines(s: dict[str, Any], st: dict[str, Any]) -> list[str]:
    """describeContainers for the init, app and ephemeral containers, each list under its title."""
    lines: list[str] = []
    statuses = {c.get("name"): c for key in ("initContainerStatuses", "containerStatuses",
                                             "ephemeralContainerStatuses") for c in st.get(key) or []}
    for title, key in (("Init Containers", "initContainers"), ("Containers", "containers"),
                       ("Ephemeral Containers", "ephemeralContainers")):
        containers = s.get(key) or []
        if not containers:
            continue
        lines.append(f"{title}:")
        for c in containers:
            lines += _container_lines(c, statuses.get(c.get("name")))
    return lines


def _container_lines(c: dict[str, Any], cs: dict[str, Any] | None) -> list[str]:
    """One container: its image, command and ports, its status's state and counts, its mounts."""
    lines = [f"  {c.get('name')}:", f"    Container ID:  {(cs or {}).get('containerID') or ''}",
             f"    Image:         {c.get('image')}"]
    if c.get("command"):
        lines.append("    Command:\n" + "\n".join(f"      {x}" for x in c["command"]))
    if c.get("args"):
        lines.append("    Args:\n" + "\n".join(f"      {x}" for x in c["args"]))
    for p in c.get("ports") or []:
        lines.append(f"    Port:          {p.get('containerPort')}/{p.get('protocol') or 'TCP'}")
        if p.get("hostPort"):
            lines.append(f"    Host Port:     {p['hostPort']}/{p.get('protocol') or 'TCP'}")
    if cs is not None:
        lines += _state_lines("State", cs.get("state"))
        last = cs.get("lastState") or {}
        if last.get("terminated") or last.get("waiting") or last.get("running"):
            lines += _state_lines("Last State", last)
        lines.append(f"    Ready:         {bool(cs.get('ready'))}")
        lines.append(f"    Restart Count: {cs.get('restartCount') or 0}")
    for vm in c.get("volumeMounts") or []:
        lines.append(f"    Mounts:        {vm.get('mountPath')} from {vm.get('name')} "
                     f"({'ro' if vm.get('readOnly') else 'rw'})")
    return lines


def _events_lines(events: list[dict[str, Any]]) -> list[str]:
    """DescribeEvents: a table, oldest first, or <none>."""
    if not events:
        return ["Events:           <none>"]
    rows = [["  Type", "Reason", "Age", "From", "Message"], ["  ----", "------", "----", "----", "-------"]]
    for e in sorted(events, key=_event_order):
        rows.append([f"  {e.get('type')}", e.get("reason") or "", event_age(e),
                     (e.get("source") or {}).get("component") or "", e.get("message") or ""])
    return ["Events:", table(rows)]


def _event_order(event: dict[str, Any]) -> tuple[datetime, int]:
    """First seen first; the resourceVersion breaks ties."""
    when = _time(event.get("firstTimestamp")) or _time(event.get("eventTime")) or _EPOCH
    return when, int((event.get("metadata") or {}).get("resourceVersion") or 0)


def _state_lines(title: str, state: dict[str, Any] | None) -> list[str]:
    if state is None:
        return []
    pad = f"    {title}:".ljust(19)
    if state.get("running") is not None:
        return [f"{pad}Running", f"      Started:     {_time(state['running'].get('startedAt'))}"]
    if state.get("terminated") is not None:
        t = state["terminated"]
        return [f"{pad}Terminated", f"      Reason:      {t.get('reason')}", f"      Exit Code:   {t.get('exitCode', 0)}",
                f"      Started:     {_time(t.get('startedAt'))}", f"      Finished:    {_time(t.get('finishedAt'))}"]
    if state.get("waiting") is not None:
        return [f"{pad}Waiting", f"      Reason:      {state['waiting'].get('reason')}"]
    return []
