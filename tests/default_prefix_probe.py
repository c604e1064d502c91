"""What the leftovers check says of a test that runs an agent with the default proxy prefix (KUBE)
and leaves its rules: run by tests/test_leftovers_check_e2e.py in a network namespace of its own,
so the KUBE rules it makes are never the host's, nor seen by tests running beside it.

Prints the check's failure and exits 0 when the check failed; exits 1 when it passed."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

from podbay.agent.proxy import ProxyConfig, jumps, remove_rules
from tests.cli.podbay_cli import ROOT, podbay_cli
from tests.conftest import HostEnv, claimed_env
from tests.e2e.conftest import purge, settings_for


def _with_default_prefix(flags: list[str]) -> list[str]:
    at = flags.index("--proxy-chain-prefix")
    return [*flags[:at], *flags[at + 2:]]


def _jumps_in_place() -> bool:
    """Every jump from the built-in chains to the default prefix's: the proxy adds them one by one
    after it wrote its chains."""
    return all(subprocess.run(["iptables", "-w", "-t", table, "-C", builtin, *args],
                              capture_output=True).returncode == 0 for table, builtin, args in jumps(ProxyConfig()))


def _run_agent_and_kill_it(env: HostEnv) -> None:
    """`podbay up` until its proxy's rules are in place, then SIGKILLed (they outlive it, as
    kube-proxy's do); its runtime's state is purged, its rules are not."""
    flags = _with_default_prefix(podbay_cli(env).flags)  # type: ignore[attr-defined]
    server = subprocess.Popen([sys.executable, "-m", "podbay", *flags, "--warm-sandboxes", "0", "up", "--foreground"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _jumps_in_place():
            assert server.poll() is None, f"podbay up exited {server.returncode}"
            assert time.monotonic() < deadline, "the proxy did not put its KUBE rules in place before the deadline"
            time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    asyncio.run(purge(settings_for(env)))


def main() -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    try:
        with claimed_env() as env:
            _run_agent_and_kill_it(env)
    except AssertionError as failure:
        print(failure)
        return 0
    finally:
        asyncio.run(remove_rules(ProxyConfig()))
    return 1


if __name__ == "__main__":
    sys.exit(main())
