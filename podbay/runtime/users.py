"""Which uid, gid and groups a container runs as, from its security context and
its image's User and /etc/passwd, as containerd resolves them."""
from __future__ import annotations

from pathlib import Path

from podbay.runtime.types import ContainerRuntimeError, LinuxContainerSecurity


def _entries(path: Path) -> list[list[str]]:
    try:
        return [line.split(":") for line in path.read_text().splitlines() if line and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(rootfs: Path, sec: LinuxContainerSecurity) -> tuple[int, int, list[int]]:
    passwd = _entries(rootfs / "etc/passwd")
    group = _entries(rootfs / "etc/group")
    user, _, grp = (sec.run_as_username or "").partition(":")
    if sec.run_as_user is not None:
        uid = sec.run_as_user
        name = next((e[0] for e in passwd if len(e) > 3 and e[2] == str(uid)), None)
        gid = next((int(e[3]) for e in passwd if len(e) > 3 and e[2] == str(uid)), 0)
    elif user and not user.isdigit():
        entry = next((e for e in passwd if e[0] == user and len(e) > 3), None)
        if entry is None:
            raise ContainerRuntimeError(f'unable to find user {user}: no matching entries in passwd file')
        uid, gid, name = int(entry[2]), int(entry[3]), user
    else:
        uid = int(user) if user else 0
        name = next((e[0] for e in passwd if len(e) > 3 and e[2] == str(uid)), None)
        gid = next((int(e[3]) for e in passwd if len(e) > 3 and e[2] == str(uid)), 0)
    if grp:
        if grp.isdigit():
            gid = int(grp)
        else:
            entry = next((e for e in group if e[0] == grp and len(e) > 2), None)
            if entry is None:
                raise ContainerRuntimeError(f"unable to find group {grp}: no matching entries in group file")
            gid = int(entry[2])
    if sec.run_as_group is not None:
        gid = sec.run_as_group
    extra = [int(e[2]) for e in group if name and len(e) > 3 and name in e[3].split(",") and e[2].isdigit()]
    extra += [g for g in sec.supplemental_groups if g not in extra]
    return uid, gid, [g for g in extra if g != gid]
