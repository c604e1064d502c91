"""What the verbs that talk to the API share: the client, the table printer, errors."""
from __future__ import annotations

import asyncio
import sys
from typing import Any, Awaitable, Callable

import aiohttp

from podbay.api.errors import APIError, Invalid
from podbay.cli.settings import Settings, settings_from
from podbay.client import Client
from podbay.client.client import split_servers


class CLIError(Exception):
    """A message for the user; the verb exits 1."""


def run_with_client(args: Any, body: Callable[[Client, Settings], Awaitable[int]]) -> int:
    """Runs `body` against the API; errors become one clear line on stderr."""
    settings = settings_from(args)
    if settings.server is None and not settings.socket_path.exists():
        print(f"error: podbay is not running (no API socket at {settings.socket_path}); "
              f"start it with: sudo podbay up", file=sys.stderr)
        return 1

    async def main() -> int:
        client = _client(settings)
        try:
            return await body(client, settings)
        finally:
            await client.close()

    try:
        return asyncio.run(main())
    except (CLIError, Invalid) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except APIError as exc:
        print(f"Error from server ({exc.reason}): {exc.message}", file=sys.stderr)
        return 1
    except aiohttp.ClientConnectionError as exc:
        print(f"error: cannot reach the API at {settings.server_url} ({exc}); is `podbay up` running?",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _client(settings: Settings) -> Client:
    """The unix socket by default; an https --server (several, comma-separated, fail over in turn)
    with the credentials of --kubeconfig ($KUBECONFIG)."""
    if settings.server and settings.server.startswith("https://"):
        if settings.client_kubeconfig is None:
            raise CLIError(f"{settings.server} needs credentials: pass --kubeconfig PATH or set KUBECONFIG "
                           "(`podbay kubeconfig` on the server's machine prints one)")
        try:
            return Client.from_kubeconfig(settings.client_kubeconfig, server=split_servers(settings.server))
        except (OSError, ValueError) as exc:
            raise CLIError(str(exc)) from None
    try:
        return Client.connect(settings.server_url)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def table(rows: list[list[str]]) -> str:
    """kubectl's tabwriter layout: columns padded to the widest cell plus three spaces."""
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [c.ljust(w + 3) if i < len(r) - 1 else c for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)
