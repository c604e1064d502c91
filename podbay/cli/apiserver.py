"""`podbay apiserver`: the API server alone, kube-apiserver's role.

With --etcd-servers several of them share one etcd and are interchangeable: each keeps no state
of its own but its credentials, so any of them answers any request and a watch broken on one
resumes on another from the same resourceVersion. For clients to trust them all and be trusted
by them all, they share the cluster's PKI and token: each reads `<state-root>/pki/` (the CA's
certificate and key, the admin's and the API server's client certificates) and
`<state-root>/api-token`, made by the first server and copied to the others' state roots, as
kubeadm copies /etc/kubernetes/pki to every control-plane node. Each makes its own serving
certificate (signed by the shared CA) for the names it is reached by.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os

from podbay.cli.allinone import _stop_on_signals, serve_api
from podbay.cli.arenas import limit_malloc_arenas
from podbay.cli.settings import Settings, settings_from

log = logging.getLogger("podbay")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("apiserver", help="run only the API server; several on one --etcd-servers serve one cluster")
    p.set_defaults(func=cmd_apiserver)


def cmd_apiserver(args: argparse.Namespace) -> int:
    limit_malloc_arenas()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve_apiserver(settings_from(args)))
    return 0


async def serve_apiserver(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Serves the API on `settings.socket_path` and, unless --api-port is 0, on HTTPS until `stop`
    is set (or SIGTERM/SIGINT); the admin kubeconfig it writes names this server's URL."""
    stop = _stop_on_signals(stop)
    async with serve_api(settings) as server:
        where = server.https_url if server.port is not None else server.url
        log.info("podbay apiserver serving on %s (pid %d)", where, os.getpid())
        await stop.wait()
