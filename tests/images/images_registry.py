"""A docker-registry under test, and how tests push to it."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tests.ports import free_port  # noqa: F401 - the image tests import it from here


@dataclass
class Registry:
    """Debian's docker-registry serving on 127.0.0.1, storing under the test's tmp dir."""

    host: str  # "127.0.0.1:PORT"
    storage: Path

    def push(self, source: str, name: str, *args: str, creds: str | None = None) -> None:
        auth = ["--dest-creds", creds] if creds else []
        subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false", *auth, *args,
                        source, f"docker://{self.host}/{name}"], check=True, capture_output=True)


RegistryFactory = Callable[..., Registry]
