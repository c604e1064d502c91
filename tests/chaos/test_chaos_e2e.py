"""Chaos: a seeded random run of pod operations (apply, delete, HyperContainer create, stop,
start, replace, exec) with several in flight at once, against a real `podbay up --foreground`
process that is SIGKILLed at random points, mid-request, and started again on the same roots
(sometimes killed again while it starts up). What matters is the end state: once the system
settles, every stored pod matches what runs (containers under crun and their conmon, the pinned
sandbox, the pod IP and its IPAM lease) and nothing runs or holds an IP for a pod not stored,
except the warm sandbox the runtime keeps on purpose. Then everything is deleted, `podbay down
--purge` runs and nothing is left on the host.

PODBAY_CHAOS_SEED replays a run's operations and kill points (their interleaving with the
server's work still varies); PODBAY_CHAOS_OPS sets how many operations run (default 500).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import ipaddress
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Iterator

import pytest

from podbay.agent.runtimeview import CONTAINER_NAME, POD_UID
from podbay.api import Node, Pod
from podbay.api.serialize import to_dict
from podbay.api.wellknown import RUN_STATE_ANNOTATION
from podbay.cli import hyper
from podbay.cli.kubectl import apply
from podbay.cli.settings import Settings
from podbay.client import Client
from podbay.runtime.types import SandboxState
from tests.cli.podbay_cli import ROOT, crun_containers, podbay_cli
from tests.conftest import HostEnv, require_root
from tests.e2e.conftest import settings_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SEED = int(os.environ.get("PODBAY_CHAOS_SEED") or secrets.randbits(32))
OPS = int(os.environ.get("PODBAY_CHAOS_OPS", "500"))
NAMES = tuple(f"chaos-{i}" for i in range(8))
CONTAINERS = ("main", "side")
IMAGES = ("busybox:1.35", "busybox:latest")
WORKERS = 5  # operations in flight at once, so a kill lands in the middle of some
OP_TIMEOUT = 30.0
MAX_PAUSE = 0.8  # seconds between one worker's operations: the agent's work overlaps the next ones
READY_TIMEOUT = 90.0
SETTLE_TIMEOUT = 150.0
LIVE = ("running", "created")  # crun's states of a container that has a conmon and may run
# verb -> weight in the random sequence
VERBS = {"apply": 30, "hyper-create": 10, "delete": 8, "delete-now": 10, "stop": 12, "start": 10, "replace": 16,
         "exec": 14}


@dataclass(frozen=True)
class Op:
    index: int
    verb: str
    name: str
    other: str  # replace: the pod that is stopped (Created) and then takes `name`'s sandbox
    image: str
    label: str
    kill_after: float | None  # SIGKILL the server this many seconds into this op
    kill_startup_after: float | None  # ... and the restarted one this many seconds after it starts
    pause: float  # before the worker's next operation, so pods get to run between operations


def operations(seed: int, count: int) -> list[Op]:
    rng = random.Random(seed)
    verbs, weights = zip(*VERBS.items())
    next_kill = rng.randint(50, 100)
    ops = []
    for i in range(count):
        kill = i == next_kill
        if kill:
            next_kill += rng.randint(50, 100)
        ops.append(Op(index=i, verb=rng.choices(verbs, weights)[0], name=rng.choice(NAMES),
                      other=rng.choice(NAMES), image=rng.choice(IMAGES), label=f"v{rng.randint(0, 3)}",
                      kill_after=rng.uniform(0.0, 0.008) if kill else None,
                      kill_startup_after=rng.uniform(0.3, 2.0) if kill and rng.random() < 0.3 else None,
                      pause=rng.uniform(0.0, MAX_PAUSE)))
    return ops


def manifest(op: Op) -> str:
    # sleep as PID 1 ignores SIGTERM, so a default-grace delete waits out the (short) grace; both
    # images are the project's own busybox, never pulled.
    containers = "\n".join(f"  - {{name: {c}, image: {op.image}, imagePullPolicy: IfNotPresent, "
                           f"command: [sleep, '3600']}}" for c in CONTAINERS)
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {op.name}
  labels: {{chaos: {op.label}}}
  annotations: {{chaos/op: "{op.index}"}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
{containers}
"""


class Server:
    """`podbay up --foreground` on the test's roots, as a service manager runs it: the test holds
    its PID, so it may SIGKILL exactly this process and start another."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "podbay", *self.settings.as_args(), "up", "--foreground"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=ROOT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        assert self.alive(), f"the server died on its own (exit {self.proc.returncode}):\n{self.tail()}"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    async def wait_ready(self, client: Client) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert self.alive(), f"the server exited while starting:\n{self.tail()}"
            try:
                await client.get(Node, self.settings.node_name)
                return
            except Exception:
                if time.monotonic() >= deadline:
                    raise AssertionError(f"the server did not serve within {READY_TIMEOUT}s:\n"
                                         f"{self.tail()}") from None
                await asyncio.sleep(0.2)

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


class Chaos:
    def __init__(self, server: Server, client: Client, workdir: Path) -> None:
        self.server = server
        self.client = client
        self.workdir = workdir
        self.up = asyncio.Event()
        self.in_flight = 0
        self.outcomes: Counter[str] = Counter()
        self.kills_mid_request = 0
        self.wrong_answers: list[str] = []

    async def run(self, ops: list[Op]) -> None:
        queue = iter(ops)
        self.up.set()
        # The verbs print what they did, as for a user; the tally of outcomes is what counts here.
        with contextlib.redirect_stdout(io.StringIO()):
            await asyncio.gather(*(self._worker(queue) for _ in range(WORKERS)))

    async def _worker(self, queue: Iterator[Op]) -> None:
        for op in queue:
            await self.up.wait()
            task = asyncio.create_task(self._perform(op))
            if op.kill_after is not None:
                await asyncio.wait([task], timeout=op.kill_after)
                await self._kill_and_restart(op)
            await task
            await asyncio.sleep(op.pause)

    async def _kill_and_restart(self, op: Op) -> None:
        self.up.clear()
        if self.in_flight:
            self.kills_mid_request += 1
        self.server.kill()
        self.server.start()
        if op.kill_startup_after is not None:
            await asyncio.sleep(op.kill_startup_after)  # a point in its startup, not a wait for a state
            self.server.kill()
            self.server.start()
        await self.server.wait_ready(self.client)
        self.up.set()

    async def _perform(self, op: Op) -> None:
        self.in_flight += 1
        try:
            result = await asyncio.wait_for(self._verb(op)(), OP_TIMEOUT)
            # An exec answers with the command's own exit code and output, or fails.
            ok = op.verb != "exec" or result[:2] == (0, b"chaos\n")
            self.outcomes[f"{op.verb}: {'ok' if ok else f'exit {result[0]}'}"] += 1
            if not ok:
                self.wrong_answers.append(f"op {op.index} ({op.verb} {op.name}): {result}")
        except Exception as exc:  # the server may be down, the pod gone or not in the right state
            self.outcomes[f"{op.verb}: {type(exc).__name__}"] += 1
            self._log(op, f"{type(exc).__name__}: {exc}")
        finally:
            self.in_flight -= 1

    def _log(self, op: Op, outcome: str) -> None:
        with open(self.workdir / "ops.log", "a") as log:
            log.write(f"{op.index} {op.verb} {op.name} {op.other}: {outcome}\n")

    def _verb(self, op: Op) -> Callable[[], Awaitable[object]]:
        c, name = self.client, op.name
        if op.verb in ("apply", "hyper-create"):
            path = self.workdir / f"op-{op.index}.yaml"
            path.write_text(manifest(op))
            if op.verb == "apply":
                return lambda: apply(c, argparse.Namespace(filename=[str(path)], namespace=None, validate="strict"),
                                     update=True)
            return lambda: hyper.create(c, argparse.Namespace(filename=None, podfile=str(path), namespace=None))
        if op.verb == "delete":
            return lambda: c.delete(Pod, name, "default")
        if op.verb == "delete-now":
            return lambda: c.delete(Pod, name, "default", grace_period_seconds=0)
        if op.verb in ("stop", "start"):
            state = "Created" if op.verb == "stop" else "Running"
            return lambda: hyper.set_state(c, argparse.Namespace(pods=[name], namespace=None), state)
        if op.verb == "replace":
            async def stop_then_replace() -> None:
                # As a user would: NEW must be Created before it can take OLD's sandbox.
                await hyper.set_state(c, argparse.Namespace(pods=[op.other], namespace=None), "Created")
                await hyper.replace(c, argparse.Namespace(old=name, new=op.other, namespace="default"))
            return stop_then_replace
        assert op.verb == "exec", op.verb
        return lambda: c.exec(name, "default", ["sh", "-c", "echo chaos"], container=CONTAINERS[0])


@dataclass
class HostView:
    """What the runtime's records, crun, the IPAM plugin, the mounts and the processes say now."""

    sandboxes: dict[str, dict]  # the runtime's sandbox records, by id
    containers: dict[str, dict]  # the runtime's container records, by id
    crun: dict[str, dict]  # crun's own list, by id
    warm: set[str]  # sandbox directories without a record: the warm pool
    leases: dict[str, str]  # IP -> the sandbox id host-local leased it to
    mounts: set[str]
    conmons: list[str]  # the container id of each conmon process on these roots

    def ready_sandboxes(self, uid: str) -> list[dict]:
        return [s for s in self.sandboxes.values()
                if s["labels"].get(POD_UID) == uid and s["state"] == SandboxState.READY.value]

    def running(self, uid: str, container: str | None = None) -> list[str]:
        """crun's containers of the pod that run or wait to (a created one may yet be started)."""
        return [i for i, c in self.crun.items() if c["status"] in LIVE and (r := self.containers.get(i))
                and r["labels"].get(POD_UID) == uid and container in (None, r["labels"].get(CONTAINER_NAME))]


def _records(paths: Iterator[Path]) -> dict[str, dict]:
    out = {}
    for path in paths:
        with contextlib.suppress(FileNotFoundError, ValueError):
            record = json.loads(path.read_text())
            out[record["id"]] = record
    return out


def host_view(env: HostEnv) -> HostView:
    sandboxes = _records(env.state_root.joinpath("sandboxes").glob("*.json"))
    dirs = env.run_root / "sandboxes"
    warm = {d.name for d in dirs.iterdir()} - set(sandboxes) if dirs.is_dir() else set()
    leases = {}
    for path in ipam_dir(env).glob("*"):
        with contextlib.suppress(ValueError, FileNotFoundError):
            ipaddress.ip_address(path.name)
            leases[path.name] = path.read_text().splitlines()[0].strip()
    mounts = {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}
    containers = _records(env.state_root.joinpath("containers").glob("*/record.json"))
    return HostView(sandboxes=sandboxes, containers=containers, crun=crun_containers(env), warm=warm, leases=leases,
                    mounts=mounts, conmons=conmons(env))


def ipam_dir(env: HostEnv) -> Path:
    """host-local's leases: one file per IP holding the container (here: sandbox) id."""
    return env.state_root / "cni" / "cache" / "ipam" / env.network_name


def conmons(env: HostEnv) -> list[str]:
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if Path(argv[0]).name == "conmon" and any(str(env.run_root) in a for a in argv):
                out.append(argv[argv.index("-c") + 1])
    return out


def mismatches(env: HostEnv, pods: list[Pod]) -> list[str]:
    """Where what is stored and what runs disagree; empty once the system has settled."""
    view = host_view(env)
    problems = []
    stored = {p.metadata.uid: p for p in pods}
    ips: Counter[str] = Counter()
    for uid, pod in stored.items():
        name = pod.metadata.name
        ready = view.ready_sandboxes(uid)
        if pod.metadata.deletion_timestamp is not None:
            problems.append(f"{name}: still being deleted")
        elif pod.metadata.annotations.get(RUN_STATE_ANNOTATION) == "Created":
            if pod.status.reason != "Created":
                problems.append(f"{name}: Created, but its status says {pod.status.phase}/{pod.status.reason}")
            if ready or view.running(uid):
                problems.append(f"{name}: Created, yet has sandboxes {[s['id'] for s in ready]} "
                                f"and running containers {view.running(uid)}")
        else:
            statuses = {s.name: s for s in pod.status.container_statuses}
            if pod.status.phase != "Running" or not all(
                    s in statuses and statuses[s].state.running is not None for s in CONTAINERS):
                states = {n: to_dict(st.state) for n, st in statuses.items()}
                problems.append(f"{name}: not running yet: {pod.status.phase}/{pod.status.reason} {states}")
                continue
            ip = pod.status.pod_ip or ""
            ips[ip] += 1
            if [s.get("ip") for s in ready] != [ip]:
                problems.append(f"{name}: podIP {ip!r}, its ready sandboxes {[(s['id'], s['ip']) for s in ready]}")
                continue
            sandbox = ready[0]
            if sandbox["netns"] not in view.mounts:
                problems.append(f"{name}: sandbox {sandbox['id']} has no pinned netns at {sandbox['netns']}")
            if view.leases.get(ip) != sandbox["id"]:
                problems.append(f"{name}: IP {ip} is leased to {view.leases.get(ip)!r}, not to {sandbox['id']}")
            for c in CONTAINERS:
                running = view.running(uid, c)
                want = (statuses[c].container_id or "").split("://")[-1]
                if running != [want]:
                    problems.append(f"{name}/{c}: status says container {want}, crun runs {running}")
    problems += [f"pod IP {ip} given to {n} pods" for ip, n in ips.items() if n > 1]
    for kind, records in (("sandbox", view.sandboxes), ("container", view.containers)):
        problems += [f"{kind} {i} of a pod not stored ({r['labels'].get(POD_UID)})" for i, r in records.items()
                     if r["labels"].get(POD_UID) not in stored]
    problems += [f"crun container {i} ({c['status']}) has no runtime record" for i, c in view.crun.items()
                 if i not in view.containers]
    holders = {s["id"] for s in view.sandboxes.values() if s["state"] == SandboxState.READY.value} | view.warm
    problems += [f"IP {ip} leased to {holder}, neither a ready sandbox nor a warm one"
                 for ip, holder in view.leases.items() if holder not in holders]
    if len(view.warm) > 1:
        problems.append(f"{len(view.warm)} warm sandboxes, the pool holds 1: {sorted(view.warm)}")
    live = sorted(i for i, c in view.crun.items() if c["status"] in LIVE)
    if sorted(view.conmons) != live:
        problems.append(f"conmon processes watch {sorted(view.conmons)}, crun holds {live}")
    bundles = env.run_root / "bundles"
    problems += [f"rootfs mounted at {m}, for no container crun holds" for m in view.mounts
                 if m.startswith(f"{bundles}/") and Path(m).relative_to(bundles).parts[0] not in live]
    return problems


async def settle(env: HostEnv, client: Client, server: Server) -> list[Pod]:
    """The stored pods once they match the host; fails at the deadline with the differences."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        assert server.alive(), f"the server died:\n{server.tail()}"
        pods, _ = await client.list(Pod)
        problems = await asyncio.to_thread(mismatches, env, pods)
        if not problems:
            return pods
        if time.monotonic() >= deadline:
            raise AssertionError("stored pods and the host never agreed:\n" + "\n".join(problems))
        await asyncio.sleep(0.5)


async def delete_everything(env: HostEnv, client: Client) -> None:
    pods, _ = await client.list(Pod)
    for pod in pods:
        with contextlib.suppress(Exception):
            await client.delete(Pod, pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        pods, _ = await client.list(Pod)
        view = await asyncio.to_thread(host_view, env)
        left = [p.metadata.name for p in pods] + list(view.sandboxes) + list(view.containers) + list(view.crun) + \
            view.conmons + [ip for ip, holder in view.leases.items() if holder not in view.warm]
        if not left:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"after deleting every pod, still there: {left}")
        await asyncio.sleep(0.5)


async def test_chaos_kills_leave_stored_pods_and_host_in_agreement(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    settings = dataclasses.replace(settings_for(host_env), node_grace=Settings.node_grace,
                                   pod_eviction_timeout=Settings.pod_eviction_timeout,
                                   node_monitor_period=Settings.node_monitor_period)
    server = Server(settings, tmp_path / "server.log")
    client = Client.connect(settings.server_url)
    chaos = Chaos(server, client, tmp_path)
    replay = (f"replay with PODBAY_CHAOS_SEED={SEED} PODBAY_CHAOS_OPS={OPS}; server log {server.log}, "
              f"operations that failed in {tmp_path / 'ops.log'}")
    started = time.monotonic()
    print(f"chaos: {OPS} operations, {replay}")  # in the report of any failure, the teardown's too
    try:
        server.start()
        await server.wait_ready(client)
        await chaos.run(operations(SEED, OPS))
        pods = await settle(host_env, client, server)
        print(f"{server.kills} kills ({chaos.kills_mid_request} mid-request), {len(pods)} pods at the end, "
              f"{time.monotonic() - started:.0f}s; {dict(sorted(chaos.outcomes.items()))}")
        # Not asserted: an exec racing a stop can still get crun's own failure (exit 1, "write to
        # sync socket: Broken pipe") while crun reports the container running.
        print(f"exec answers other than the command's own: {chaos.wrong_answers}")
        assert server.kills >= OPS // 100 and (chaos.kills_mid_request or not server.kills), \
            "the kills did not happen as planned"
        await delete_everything(host_env, client)
    except Exception as exc:
        raise AssertionError(f"chaos run failed ({replay}): {exc}") from exc
    finally:
        await client.close()
        # `down` ends the server through its pidfile, as a user would (if a kill left it running).
        down = podbay_cli(host_env)("down", "--purge", check=False)
        if server.proc is not None:
            server.proc.wait(timeout=60)
    assert down.returncode == 0, f"podbay down --purge failed ({replay}): {down.stderr}"
    assert not conmons(host_env), f"conmon processes left after down --purge ({replay})"
    assert not list(ipam_dir(host_env).glob("*")), f"IPAM leases left after down --purge ({replay})"
