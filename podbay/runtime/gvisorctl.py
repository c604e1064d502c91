"""A client of a gVisor sandbox's control server: what `runsc kill` and `runsc exec` ask the
sandbox, without executing runsc (each of those is a Go program's start and a read of runsc's
state under its locks: 60-150 ms on the way of every replace and warm-pool start).

The server is gVisor's urpc (pkg/urpc) on the unix socket `runsc create` makes for the sandbox:
since 2023 a socket file, `runsc-<sandbox id>.sock` in runsc's root (or, where runsc cannot bind
it there, in /var/run, /run or /tmp), whose path runsc's state records; before, as in Debian 12's
release-20221219, the abstract name `@runsc-sandbox.<sandbox id>`, which every local user can see
but whose server answers root's connections only. One call is one JSON object `{"method": ..., "arg": ...}` on a stream socket;
the answer is one JSON object `{"success": ..., "err": ..., "result": ...}` (files would come as
SCM_RIGHTS, and none of the calls here pass any). The methods and arguments are
runsc/boot/controller.go's, the same at release-20221219 and release-20240729.

Blocking calls on plain sockets, standard library only: gvisormon loads this file by its path
(it runs without the package, to start quickly) for the Wait it holds for a container's life;
the runtime calls through a thread.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket

# typing.TYPE_CHECKING without importing typing: gvisormon loads this file, and typing's import
# is 0.75 MiB of heap in each monitor (two per pod).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeAlias, Union

    JSONValue: TypeAlias = Union[None, bool, int, float, str, list["JSONValue"], dict[str, "JSONValue"]]

# release-20221219's runsc/boot.ControlSocketAddr, bound with its terminating NUL in the name
# (unet counts it)
ABSTRACT_CONTROL_SOCKET = "\0runsc-sandbox.{}\0"
_SUN_PATH = 108  # sockaddr_un's sun_path, its terminating NUL included
_MAX_STATE = 1024 * 1024  # runsc's state of one container: its spec and a few fields
_MAX_REPLY = 64 * 1024  # the answers here are a few bytes; a longer one is not the server's
_CALL_SECONDS = 30.0  # a signal or a short exec: the Sentry answers at once unless it is stuck
_DELIVER_TO_PROCESS = 0  # boot.SignalDeliveryMode: the container's init only, as `runsc kill` without --all


class ControlError(Exception):
    """The call reached no sandbox, or its answer was not urpc's."""


class RemoteError(ControlError):
    """The sandbox answered with an error (a container it does not run, a failed exec)."""


# Plain classes, not NamedTuples or dataclasses: typing's or dataclasses' imports would add
# 0.75-1.3 MiB to every gvisormon (two per pod).
class Capabilities:
    """auth.TaskCapabilities: bit sets of capabilities in the sandbox's kernel."""

    __slots__ = ("permitted", "effective", "bounding")

    def __init__(self, permitted: int, effective: int, bounding: int) -> None:
        self.permitted, self.effective, self.bounding = permitted, effective, bounding

    def to_json(self) -> dict[str, JSONValue]:
        return {"PermittedCaps": self.permitted, "InheritableCaps": 0, "EffectiveCaps": self.effective,
                "BoundingCaps": self.bounding, "AmbientCaps": 0}


class Exec:
    """control.ExecArgs: a process run in a container, with no stdio (no files passed)."""

    __slots__ = ("container_id", "filename", "argv", "env", "cwd", "uid", "gid", "capabilities")

    def __init__(self, container_id: str, filename: str, argv: tuple[str, ...], env: tuple[str, ...] = (),
                 cwd: str = "/", uid: int = 0, gid: int = 0, capabilities: Capabilities | None = None) -> None:
        self.container_id, self.filename, self.argv, self.env = container_id, filename, argv, env
        self.cwd, self.uid, self.gid, self.capabilities = cwd, uid, gid, capabilities

    def to_json(self) -> dict[str, JSONValue]:
        return {"Filename": self.filename, "Argv": list(self.argv), "Envv": list(self.env),
                "WorkingDirectory": self.cwd, "KUID": self.uid, "KGID": self.gid, "ExtraKGIDs": [],
                "Capabilities": None if self.capabilities is None else self.capabilities.to_json(),
                "StdioIsPty": False, "ContainerID": self.container_id}


class SandboxControl:
    """One sandbox's control server, `root` being runsc's; each call on a connection of its own."""

    def __init__(self, sandbox_id: str, root: str) -> None:
        self.sandbox_id, self.root = sandbox_id, root
        self._address: str | None = None

    def address(self) -> str:
        """Where the server listens: the socket file runsc's state names, or the abstract name
        of a runsc that keeps none. Looked up once: a sandbox keeps its socket for its life."""
        if self._address is None:
            name = os.path.join(self.root, f"{self.sandbox_id}_sandbox:{self.sandbox_id}")
            try:
                # runsc rewrites the state in place under an exclusive flock of its lock file:
                # read under a shared one, never half a file.
                with open(f"{name}.lock", "rb") as lock, open(f"{name}.state", "rb") as f:
                    fcntl.flock(lock, fcntl.LOCK_SH)
                    recorded = json.loads(f.read(_MAX_STATE)).get("sandbox", {}).get("controlSocketPath")
            except (OSError, ValueError, AttributeError) as exc:
                raise ControlError(f"no control server for sandbox {self.sandbox_id}: {exc}") from exc
            self._address = recorded if isinstance(recorded, str) and recorded else \
                ABSTRACT_CONTROL_SOCKET.format(self.sandbox_id)
        return self._address

    def call(self, method: str, arg: JSONValue, timeout: float | None = _CALL_SECONDS) -> JSONValue:
        """The call's result; `timeout` None waits as long as the call lasts (a container's Wait)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            try:
                _connect(sock, self.address())
            except OSError as exc:
                raise ControlError(f"no control server for sandbox {self.sandbox_id}: {exc}") from exc
            try:
                sock.sendall(json.dumps({"method": method, "arg": arg}).encode())
                answer = _read_one(sock)
            except OSError as exc:  # the sandbox ended during the call, or it overran `timeout`
                raise ControlError(f"{method} on sandbox {self.sandbox_id}: {exc}") from exc
        if not isinstance(answer, dict):
            raise ControlError(f"{method}: not a urpc answer: {answer!r:.200}")
        if not answer.get("success"):
            raise RemoteError(f"{method}: {answer.get('err') or 'failed'}")
        return answer.get("result")

    def signal(self, container_id: str, signo: int) -> None:
        """`signo` to the init process of the container (containerManager.Signal)."""
        self.call("containerManager.Signal",
                        {"CID": container_id, "Signo": signo, "PID": 0, "Mode": _DELIVER_TO_PROCESS})

    def run(self, process: Exec) -> int:
        """Runs `process` to its end (containerManager.ExecuteAsync, then WaitPID) and returns its
        exit code, as `wait`'s: 128 + the signal that killed it."""
        pid = _number(self.call("containerManager.ExecuteAsync", process.to_json()), "ExecuteAsync")
        return exit_code(_number(self.call("containerManager.WaitPID", {"PID": pid, "CID": process.container_id}),
                                 "WaitPID"))

    def wait(self, container_id: str) -> int | None:
        """The exit code of the container's init once it has exited (containerManager.Wait, as
        `runsc wait`): 128 + the signal that killed it; None when the sandbox ended first (the
        container died with it) or knows no such container."""
        try:
            return exit_code(_number(self.call("containerManager.Wait", container_id, timeout=None), "Wait"))
        except ControlError:
            return None


def _connect(sock: socket.socket, address: str) -> None:
    """Connects to `address`, a socket file's path longer than a sockaddr holds included (runsc
    binds those as `runsc-<64 hex>.sock` in its root): through the directory's descriptor."""
    if address.startswith("\0") or len(os.fsencode(address)) < _SUN_PATH:
        sock.connect(address)
        return
    directory, name = os.path.split(address)
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    try:
        sock.connect(f"/proc/self/fd/{fd}/{name}")
    finally:
        os.close(fd)


def exit_code(wait_status: int) -> int:
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def _number(value: JSONValue, method: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ControlError(f"{method}: not a number: {value!r:.200}")
    return value


def _read_one(sock: socket.socket) -> JSONValue:
    """One JSON value off the stream: urpc frames nothing, the value's end is the message's."""
    data = b""
    decoder = json.JSONDecoder()
    while len(data) < _MAX_REPLY:
        chunk = sock.recv(_MAX_REPLY - len(data))
        if not chunk:
            break
        data += chunk
        try:
            value, _ = decoder.raw_decode(data.decode())
        except (ValueError, UnicodeDecodeError):
            continue
        return value  # type: ignore[no-any-return]
    raise ControlError(f"the control server's answer ended or overran {_MAX_REPLY} bytes: {data[:200]!r}")
