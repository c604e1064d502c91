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
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from podbay.cli.arenas import limit_malloc_arenas
from podbay.cli.settings import Settings, settings_from
from podbay.runtime.config import prepare_roots

if TYPE_CHECKING:
    from podbay.client.leaderelection import LeaderElectionConfig

READY_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = sub.add_parser("up", help="start the all-in-one server (API, scheduler, controllers, node agent)")
    up.add_argument("--foreground", action="store_true", help="stay in the foreground (for service managers)")
    up.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    # Not `--etcd=embedded`: argparse would read it as an abbreviation of the global --etcd-* flags.
    up.add_argument("--embedded-etcd", action="store_true",
                    help="keep the API's objects in an etcd of this server's own (started and stopped with "
                         "it, on 127.0.0.1:--embedded-etcd-port, data in <state-root>/etcd) instead of "
                         "SQLite; --etcd-servers names an etcd of your own instead")
    up.add_argument("--embedded-etcd-port", type=int, default=2379,
                    help="the embedded etcd's client port (2379); its peer port is the next one")
    add_node_ipam_flag(up)
    up.set_defaults(func=cmd_up)
    join = sub.add_parser("join", help="join this machine to a cluster as a node: start its agent in the "
                                       "background (`podbay down` stops it)")
    join.add_argument("--server", dest="join_server", default=None, metavar="URL[,URL...]",
                      help="the cluster's API servers (as the global --server; several fail over in turn)")
    join.add_argument("--token", default=os.environ.get("PODBAY_TOKEN"),
                      help="the join token `podbay up` printed (<state-root>/node-token on the server's machine); "
                           "or PODBAY_TOKEN, which keeps it off this command line")
    join.set_defaults(func=cmd_join)
    down = sub.add_parser("down", help="stop the all-in-one server; pods keep running unless --purge")
    down.add_argument("--purge", action="store_true",
                      help="also stop and remove every pod, the pod network and all state")
    down.set_defaults(func=cmd_down)
    register_kubeconfig(sub)
    agent = sub.add_parser("agent", help="run only this machine's node agent, joined to --server URL")
    agent.add_argument("--token", default=os.environ.get("PODBAY_TOKEN"),
                       help="the join token: <state-root>/node-token on the API server's machine")
    agent.add_argument("--foreground", action="store_true", help=argparse.SUPPRESS)  # as `podbay join` runs it
    agent.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    agent.set_defaults(func=cmd_agent)
    for name, text in (("scheduler", "run only the scheduler against --server URL"),
                       ("controllers",
                        "run only the controllers (pod GC, node lifecycle, node IPAM) against --server URL")):
        part = sub.add_parser(name, help=text)
        part.add_argument("--token", default=os.environ.get("PODBAY_TOKEN"),
                          help="the join token: <state-root>/node-token on the API server's machine")
        add_leader_election_flags(part)
        if name == "controllers":
            add_node_ipam_flag(part)
        part.set_defaults(func=cmd_control_part)


def _bool(text: str) -> bool:
    """Go's strconv.ParseBool, as kube-scheduler reads `--leader-elect=false`."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise argparse.ArgumentTypeError(f'invalid boolean "{text}"')


def _duration(text: str) -> float:
    from podbay.cli.common import CLIError
    from podbay.cli.kubectl import parse_duration

    try:
        return parse_duration(text)
    except CLIError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_node_ipam_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allocate-node-cidrs", type=_bool, nargs="?", const=True, default=True,
                        help="run node IPAM: give every Node a podCIDR from --cluster-cidr (default true, unlike "
                             "kube-controller-manager, so nodes on several hosts route each other's pods)")


def add_leader_election_flags(parser: argparse.ArgumentParser) -> None:
    """kube-scheduler's and kube-controller-manager's --leader-elect* flags, their defaults too."""
    g = parser.add_argument_group("leader election")
    g.add_argument("--leader-elect", type=_bool, nargs="?", const=True, default=True,
                   help="act only while holding the lease, so several copies may run and one acts "
                        "(default true; --leader-elect=false acts at once)")
    g.add_argument("--leader-elect-lease-duration", type=_duration, default=15.0, metavar="DURATION",
                   help="how long a standby waits after the last renewal it saw before taking the lease (15s)")
    g.add_argument("--leader-elect-renew-deadline", type=_duration, default=10.0, metavar="DURATION",
                   help="how long the leader keeps trying to renew before it stops acting (10s)")
    g.add_argument("--leader-elect-retry-period", type=_duration, default=2.0, metavar="DURATION",
                   help="how often candidates try to acquire and the leader renews (2s)")
    g.add_argument("--leader-elect-resource-namespace", default="kube-system", help="the lease's namespace")
    g.add_argument("--leader-elect-resource-name", default="",
                   help="the lease's name (default: the component's, kube-scheduler or kube-controller-manager)")


def leader_election_from(args: argparse.Namespace) -> "LeaderElectionConfig | None":
    from podbay.client.leaderelection import LeaderElectionConfig, config_errors

    if not args.leader_elect:
        return None
    config = LeaderElectionConfig(lease_duration=args.leader_elect_lease_duration,
                                  renew_deadline=args.leader_elect_renew_deadline,
                                  retry_period=args.leader_elect_retry_period,
                                  namespace=args.leader_elect_resource_namespace,
                                  name=args.leader_elect_resource_name)
    errors = config_errors(config)
    if errors:
        raise SystemExit(f"error: invalid leader election flags: {'; '.join(errors)}")
    return config


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
    if args.embedded_etcd and settings.etcd_servers:
        print("error: --embedded-etcd and --etcd-servers name two stores; give one", file=sys.stderr)
        return 2
    pid = running_pid(settings)
    if pid is not None:
        print(f"podbay is already running (pid {pid}); its API: {settings.server_url}")
        if settings.kubeconfig.exists():
            print(f"export KUBECONFIG={settings.kubeconfig}")
        return 0
    if args.foreground:
        return _foreground(settings, args.ready_fd, args.embedded_etcd_port if args.embedded_etcd else None)
    child = _start_in_background(settings, [
        "up", f"--allocate-node-cidrs={str(settings.allocate_node_cidrs).lower()}",
        *(["--embedded-etcd", "--embedded-etcd-port", str(args.embedded_etcd_port)] if args.embedded_etcd
          else [])], {})
    if child is None:
        return 1
    print(f"podbay is up (pid {child}); API: {settings.server_url}; log: {settings.logfile}")
    if settings.api_port:
        print(f"export KUBECONFIG={settings.kubeconfig}")
        _print_join_command(settings)
    return 0


def _print_join_command(settings: Settings) -> None:
    """kubeadm's and k3s's hint: what another machine runs to join as a node."""
    try:
        token = (settings.state_root / "node-token").read_text().strip()
    except OSError:
        return
    print(f"join another machine as a node (as root there; the token is the cluster's credential, keep it secret):\n"
          f"  podbay --node-ip <ITS-IP> join --server https://{settings.api_address}:{settings.api_port} "
          f"--token {token}")
    if settings.api_address.startswith("127."):
        print("  (this API listens on loopback only: start it with --api-address <THIS-IP> to be reachable)")


def _start_in_background(settings: Settings, verb_args: list[str], env: dict[str, str]) -> int | None:
    """`podbay <settings> <verb_args> --foreground --ready-fd N` in its own session, logging to
    <state-root>/podbay.log; its PID once it says it is ready, or None (the log's end printed)."""
    prepare_roots(settings.runtime_config())
    read_fd, write_fd = os.pipe()
    with open(settings.logfile, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "podbay", *settings.as_args(), *verb_args, "--foreground",
             "--ready-fd", str(write_fd)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(write_fd,), start_new_session=True,
            env={**os.environ, **env})
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
        return None
    return child.pid


def _foreground(settings: Settings, ready_fd: int | None, etcd_port: int | None = None,
                agent_token: str | None = None) -> int:
    """The all-in-one (or, given `agent_token`, the joined agent alone) in this process, its PID in
    the pidfile; with `etcd_port`, over an embedded etcd it starts first and stops last."""
    from podbay.cli.allinone import serve, serve_agent
    from podbay.cli.embeddedetcd import embedded_etcd, start_etcd, stop_etcd

    limit_malloc_arenas()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    prepare_roots(settings.runtime_config())
    etcd = embedded_etcd(settings, etcd_port) if etcd_port is not None else None
    if etcd is not None:
        start_etcd(etcd, settings.node_name)
        settings = replace(settings, etcd_servers=(etcd.url,))
    settings.pidfile.write_text(f"{os.getpid()}\n")

    async def main() -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(serve(settings, ready=ready) if agent_token is None
                                   else serve_agent(settings, agent_token, ready=ready))
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
        # Reached on a clean stop only: a killed server leaves etcd running for its next start.
        if etcd is not None:
            stop_etcd(etcd)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from podbay.cli.embeddedetcd import embedded_etcd, stop_etcd

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
    # A server killed earlier leaves its embedded etcd running (the next `up` would use it): down
    # means down. The port only names the URL, which stopping does not need.
    stop_etcd(embedded_etcd(settings, 0))
    if args.purge:
        asyncio.run(_purge(settings))
        print("removed every pod, the pod network and podbay's state")
    return 0


async def _purge(settings: Settings) -> None:
    from podbay.agent.proxy import ProxyConfig, remove_rules
    from podbay.runtime.service import RuntimeService

    runtime = RuntimeService(settings.runtime_config())
    await runtime.start()
    await runtime.shutdown(purge=True)
    await remove_rules(ProxyConfig(settings.proxy_chain_prefix))
    shutil.rmtree(settings.state_root, ignore_errors=True)
    shutil.rmtree(settings.run_root, ignore_errors=True)


# What a node needs on its machine (scripts/setup.sh installs them): the OCI runtime, conmon,
# the CNI plugins and iptables.
NODE_COMMANDS = ("crun", "conmon", "iptables", "ip", "nsenter")
CNI_PLUGINS = ("bridge", "host-local", "portmap")


def missing_node_tools(settings: Settings) -> list[str]:
    config = settings.runtime_config()
    missing = [c for c in NODE_COMMANDS if shutil.which(c) is None]
    return missing + [f"CNI plugin {p}" for p in CNI_PLUGINS
                      if not any((d / p).exists() for d in config.cni_bin_dirs)]


def _install_node_tools(settings: Settings) -> bool:
    """scripts/setup.sh of the checkout podbay runs from, when a node's tools are missing; whether
    they are all there afterwards."""
    missing = missing_node_tools(settings)
    if not missing:
        return True
    setup = Path(__file__).resolve().parents[2] / "scripts" / "setup.sh"
    if not setup.exists():
        print(f"error: this machine lacks {', '.join(missing)}; install Debian's crun conmon "
              "containernetworking-plugins iptables iproute2 util-linux", file=sys.stderr)
        return False
    print(f"installing what a node needs ({', '.join(missing)}) with {setup}")
    subprocess.run([str(setup)], check=False)
    still = missing_node_tools(settings)
    if still:
        print(f"error: still missing after {setup}: {', '.join(still)}", file=sys.stderr)
    return not still


def cmd_join(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    settings = replace(settings, server=args.join_server or settings.server)
    if not settings.server or not args.token:
        print("error: join needs --server https://HOST:6443[,URL...] and --token (the token `podbay up` "
              "printed)", file=sys.stderr)
        return 2
    pid = running_pid(settings)
    if pid is not None:
        print(f"podbay is already running here (pid {pid}); `podbay down` stops it")
        return 0
    if not _install_node_tools(settings):
        return 1
    # The token travels in the environment, not argv, which every user may read in /proc.
    child = _start_in_background(settings, ["--server", settings.server, "agent"], {"PODBAY_TOKEN": args.token})
    if child is None:
        return 1
    print(f"node {settings.node_name} joined {settings.server} (agent pid {child}); log: {settings.logfile}; "
          "`podbay down` stops it")
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    if args.foreground:
        return _foreground(settings_from(args), args.ready_fd, agent_token=args.token)
    from podbay.cli.allinone import serve_agent

    limit_malloc_arenas()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve_agent(settings_from(args), args.token))
    return 0


def cmd_control_part(args: argparse.Namespace) -> int:
    from podbay.cli.allinone import serve_controllers

    limit_malloc_arenas()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve_controllers(settings_from(args), args.token, scheduler=args.verb == "scheduler",
                                  controllers=args.verb == "controllers", election=leader_election_from(args)))
    return 0


def register_kubeconfig(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("kubeconfig", help="print the admin kubeconfig `podbay up` wrote (kubectl, the Python client)")
    p.set_defaults(func=cmd_kubeconfig)


def cmd_kubeconfig(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        text = settings.kubeconfig.read_text()
    except FileNotFoundError:
        print(f"error: no kubeconfig at {settings.kubeconfig}: `podbay up` writes it when it first serves "
              "HTTPS (it has not, or was started with --api-port 0)", file=sys.stderr)
        return 1
    except PermissionError:
        print(f"error: {settings.kubeconfig} holds the cluster admin's key and is readable by root only; "
              "run this as root", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0
