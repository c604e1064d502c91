"""TLS for clients and the private files it is loaded from, apart from the PKI (which needs the
cryptography package) so that a command line client loads only the ssl module."""
from __future__ import annotations

import contextlib
import os
import ssl
from pathlib import Path
from typing import Iterator


def write_private(path: Path, data: bytes) -> None:
    """Writes `data` to `path` mode 0600 through a temporary file, so a reader never sees half of it."""
    import tempfile  # only writers need it; a client's start does not

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def client_context(ca: bytes | None, cert: bytes | None = None, key: bytes | None = None, *,
                   verify: bool = True) -> ssl.SSLContext:
    """TLS for a client: the server is verified against `ca` (the system's CAs when None), or not
    at all with `verify=False`; the client certificate (PEM) is presented when given."""
    if verify:
        ctx = ssl.create_default_context(cadata=ca.decode() if ca is not None else None)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None and key is not None:
        # ssl loads a certificate chain from files only: memory files of this process, so the
        # key never reaches a disk and nothing is left to remove.
        with _memory_file("tls.crt", cert) as cert_file, _memory_file("tls.key", key) as key_file:
            ctx.load_cert_chain(cert_file, key_file)
    return ctx


@contextlib.contextmanager
def _memory_file(name: str, data: bytes) -> Iterator[str]:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
