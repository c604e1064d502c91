"""`podbay up` and `podbay down`: the local all-in-one server's life."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from podbay.cli.settings import Settings, settings_from
from podbay.runtime.config import prepare_roots

READY_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="start the all-in-one server (API, scheduler, controllers, node agent)")
    up.add_argument("--foreground", action="store_true", help="stay in the foreground (for service managers)")
    up.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the all-in-one server; pods keep running unless --purge")
    down.add_argument("--purge", action="store_true",
                      help="also stop and remove every pod, the pod network and all state")
    down.set_defaults(func=cmd_down)
    register_kubeconfig(sub)
    agent = sub.add_parser("agent", help="run only this machine's node agent, joined to --server URL")
    agent.add_argument("--token", default=os.environ.get("PODBAY_TOKEN"), help="the API server's bearer token")
    agent.set_defaults(func=cmd_agent)
    for name, text in (("scheduler", "run only the scheduler against --server URL"),
                       ("controllers", "run only the controllers (pod GC, node lifecycle) against --server URL")):
        part = sub.add_parser(name, help=text)
        part.add_argument("--token", default=os.environ.get("PODBAY_TOKEN"), help="the API server's bearer token")
        part.set_defaults(func=cmd_control_part)


def running_pid(settings: Settings) -> int | None:
    try:
        pid = int(settings.pidfile.read_text().strip())
        # A killed server nobody has reaped yet is a zombie: it answers signal 0 but serves nothing.
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, ValueError, IndexError):
        return None
    return None if state == "Z" else pid


def cmd_up(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    pid = running_pid(settings)
    if pid is not None:
        print(f"podbay is already running (pid {pid}); its API: {settings.server_url}")
        return 0
    if args.foreground:
        return _foreground(settings, args.ready_fd)
    prepare_roots(settings.runtime_config())
    read_fd, write_fd = os.pipe()
    with open(settings.logfile, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "podbay", *settings.as_args(), "up", "--foreground", "--ready-fd", str(write_fd)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(write_fd,), start_new_session=True)
    os.close(write_fd)
    # The child says "ready" on the pipe once it serves; EOF first means it died.
    deadline = time.monotonic() + READY_TIMEOUT
    got = b""
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while b"\n" not in got and time.monotonic() < deadline:
            readable, _, _ = select.select([pipe], [], [], deadline - time.monotonic())
            if not readable:
                break
            chunk = pipe.read(64)
            if not chunk:
                break
            got += chunk
    if got.strip() != b"ready":
        with contextlib.suppress(ProcessLookupError):
            if child.poll() is None:
                child.terminate()
        tail = settings.logfile.read_text(errors="replace").splitlines()[-15:]
        print("podbay failed to start; the end of its log (" + str(settings.logfile) + "):", file=sys.stderr)
        print("\n".join(tail), file=sys.stderr)
        return 1
    print(f"podbay is up (pid {child.pid}); API: {settings.server_url}; log: {settings.logfile}")
    return 0


def _foreground(settings: Settings, ready_fd: int | None) -> int:
    from podbay.cli.allinone import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    prepare_roots(settings.runtime_config())
    settings.pidfile.write_text(f"{os.getpid()}\n")

    async def main() -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(serve(settings, ready=ready))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set() and ready_fd is not None:
            os.write(ready_fd, b"ready\n")
            os.close(ready_fd)
        waiter.cancel()
        await task

    try:
        asyncio.run(main())
    finally:
        with contextlib.suppress(FileNotFoundError):
            if settings.pidfile.read_text().strip() == str(os.getpid()):
                settings.pidfile.unlink()
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    pid = running_pid(settings)
    if pid is None:
        print("podbay is not running")
    else:
        pidfd = os.pidfd_open(pid)
        os.kill(pid, signal.SIGTERM)
        readable, _, _ = select.select([pidfd], [], [], STOP_TIMEOUT)
        os.close(pidfd)
        if not readable:
            print(f"podbay (pid {pid}) did not stop within {STOP_TIMEOUT:.0f}s", file=sys.stderr)
            return 1
        print(f"podbay stopped (pid {pid})")
    if args.purge:
        asyncio.run(_purge(settings))
        print("removed every pod, the pod network and podbay's state")
    return 0


async def _purge(settings: Settings) -> None:
    from podbay.runtime.service import RuntimeService

    runtime = RuntimeService(settings.runtime_config())
    await runtime.start()
    await runtime.shutdown(purge=True)
    shutil.rmtree(settings.state_root, ignore_errors=True)
    shutil.rmtree(settings.run_root, ignore_errors=True)


def cmd_agent(args: argparse.Namespace) -> int:
    from podbay.cli.allinone import serve_agent

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve_agent(settings_from(args), args.token))
    return 0


def cmd_control_part(args: argparse.Namespace) -> int:
    from podbay.cli.allinone import serve_controllers

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve_controllers(settings_from(args), args.token, scheduler=args.verb == "scheduler",
                                  controllers=args.verb == "controllers"))
    return 0


def register_kubeconfig(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kubeconfig", help="print a kubeconfig that points kubectl at this podbay")
    p.set_defaults(func=cmd_kubeconfig)


def cmd_kubeconfig(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.server and settings.server.startswith("http"):
        url = settings.server
    elif settings.api_port:
        url = f"http://127.0.0.1:{settings.api_port}"
    else:
        print("error: kubectl needs a TCP address: start podbay with --api-port PORT (or PODBAY_API_PORT) "
              "and run this with the same setting", file=sys.stderr)
        return 1
    print(KUBECONFIG.format(url=url))
    return 0


KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: podbay
  cluster:
    server: {url}
contexts:
- name: podbay
  context:
    cluster: podbay
    user: podbay
    namespace: default
current-context: podbay
users:
- name: podbay
  user: {{}}"""
