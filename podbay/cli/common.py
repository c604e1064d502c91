"""What the verbs that talk to the API share: the clients, the table printer, errors.

aiohttp and the async Client are imported by the verbs that use them: the read-only verbs run
on podbay.client.rest and must not pay for them."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from podbay.api.errors import APIError, Invalid
from podbay.cli.settings import Settings, settings_from

if TYPE_CHECKING:
    from podbay.client import Client
    from podbay.client.rest import RESTClient


class CLIError(Exception):
    """A message for the user; the verb exits 1."""


def run_with_client(args: Any, body: Callable[[Client, Settings], Awaitable[int]]) -> int:
    """Runs `body` against the API; errors become one clear line on stderr."""
    import asyncio

    import aiohttp

    settings = settings_from(args)
    if not _api_exists(settings):
        return 1

    async def main() -> int:
        client = _client(settings)
        try:
            return await body(client, settings)
        finally:
            await client.close()

    try:
        return asyncio.run(main())
    except aiohttp.ClientConnectionError as exc:
        return _unreachable(settings, exc)
    except (CLIError, Invalid, APIError) as exc:
        return _failed(exc)
    except KeyboardInterrupt:
        return 130


def run_with_rest(args: Any, body: Callable[[RESTClient, Settings], int]) -> int:
    """`run_with_client` for one-shot reads, over the synchronous RESTClient: the same messages."""
    from podbay.client.rest import RESTClient, Unreachable, split_servers

    settings = settings_from(args)
    if not _api_exists(settings):
        return 1
    try:
        if settings.server and settings.server.startswith("https://"):
            try:
                rest = RESTClient.from_kubeconfig(_kubeconfig(settings), split_servers(settings.server))
            except (OSError, ValueError) as exc:
                raise CLIError(str(exc)) from None
        else:
            try:
                rest = RESTClient.connect(settings.server_url)
            except ValueError as exc:
                raise CLIError(str(exc)) from None
        return body(rest, settings)
    except Unreachable as exc:
        return _unreachable(settings, exc)
    except (CLIError, Invalid, APIError) as exc:
        return _failed(exc)
    except KeyboardInterrupt:
        return 130


def _api_exists(settings: Settings) -> bool:
    if settings.server is None and not settings.socket_path.exists():
        print(f"error: podbay is not running (no API socket at {settings.socket_path}); "
              f"start it with: sudo podbay up", file=sys.stderr)
        return False
    return True


def _failed(exc: CLIError | Invalid | APIError) -> int:
    if isinstance(exc, (CLIError, Invalid)):
        print(f"error: {exc}", file=sys.stderr)
    else:
        print(f"Error from server ({exc.reason}): {exc.message}", file=sys.stderr)
    return 1


def _unreachable(settings: Settings, exc: Exception) -> int:
    print(f"error: cannot reach the API at {settings.server_url} ({exc}); is `podbay up` running?", file=sys.stderr)
    return 1


def _kubeconfig(settings: Settings) -> Path:
    if settings.client_kubeconfig is None:
        raise CLIError(f"{settings.server} needs credentials: pass --kubeconfig PATH or set KUBECONFIG "
                       "(`podbay kubeconfig` on the server's machine prints one)")
    return settings.client_kubeconfig


def _client(settings: Settings) -> Client:
    """The unix socket by default; an https --server (several, comma-separated, fail over in turn)
    with the credentials of --kubeconfig ($KUBECONFIG)."""
    from podbay.client import Client
    from podbay.client.rest import split_servers

    if settings.server and settings.server.startswith("https://"):
        try:
            return Client.from_kubeconfig(_kubeconfig(settings), server=split_servers(settings.server))
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
