"""One sealed in-memory copy of the OCI runtime's binary, made once per process.

crun and runc defend against CVE-2019-5736 (a container overwriting the host's runtime binary
through /proc/PID/exe) by re-executing themselves from a copy on every `create` and `exec`:
crun 1.8 bind-mounts its binary read-only on a temporary file, unmounts it lazily and execs it
again, a few milliseconds per container. Both skip that step when /proc/self/exe is already a
memfd carrying exactly the seals below (runc's memfd-bind daemon rests on the same check). So the
agent seals one copy when it starts and runs the runtime from it: the same defence, since nothing
can write to a fully sealed memfd, without the per-container copy.
"""
from __future__ import annotations

import fcntl
import functools
import os
from dataclasses import dataclass
from pathlib import Path

# The seals crun's and runc's is_self_cloned() compare F_GET_SEALS with; any other set is a copy
# they do not trust, and they would clone themselves again.
RUNTIME_MEMFD_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


@dataclass(frozen=True)
class SealedBinary:
    fd: int  # held open for the life of the process: the path below names it

    @property
    def path(self) -> str:
        """A path that executes the copy from any process of this host (conmon's `-r`, crun's argv).
        Through /proc/PID/fd rather than an inherited descriptor: conmon execs the runtime by path."""
        return f"/proc/{os.getpid()}/fd/{self.fd}"


def seal_copy(binary: Path) -> SealedBinary:
    """A fully sealed memfd holding `binary`'s bytes; OSError if it cannot be made (the caller then
    runs the binary from its file, and the runtime makes its own copy each time)."""
    fd = os.memfd_create(f"sealed:{binary.name}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        with open(binary, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            sent = 0
            while sent < size:
                n = os.sendfile(fd, source.fileno(), sent, size - sent)
                if n == 0:
                    raise OSError(f"{binary} shrank while it was copied")
                sent += n
        os.fchmod(fd, 0o500)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, RUNTIME_MEMFD_SEALS)
    except BaseException:
        os.close(fd)
        raise
    return SealedBinary(fd)


@functools.cache
def runtime_path(binary: str) -> str:
    """The path to run `binary` from: its sealed copy (one per process, held open for its life),
    or the file itself where no memfd can be made."""
    try:
        return seal_copy(Path(binary)).path
    except OSError:
        return binary
