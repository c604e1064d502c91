"""The peer: `podman kube play`, in a private root so podman's own state is left as found.

Podman needs two settings on these machines, kept in podman's own config file
(containers.conf, passed with CONTAINERS_CONF): open-file and process ulimits
within the hard limits here, and the cgroupfs manager (there is no systemd).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


class PodmanPeer:
    def __init__(self, rootfs_tar: Path, image: str = "docker.io/library/busybox:1.35") -> None:
        if not shutil.which("podman"):
            raise RuntimeError("podman is not installed: apt-get install -y podman")
        self.image = image
        self.base = Path(tempfile.mkdtemp(prefix="podbay-bench-podman-"))
        conf = self.base / "containers.conf"
        hard_nofile = min(int(subprocess.check_output(["sh", "-c", "ulimit -Hn"]).strip()), 20000)
        conf.write_text(CONTAINERS_CONF.format(nofile=hard_nofile))
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        # A private --tmpdir too: the default (/run/libpod) is shared, and another podman's
        # `system reset` there makes this one "refresh" (lose) every pod mid-run.
        self.argv = ["podman", "--root", str(self.base / "root"), "--runroot", str(self.base / "run"),
                     "--tmpdir", str(self.base / "tmp"), "--cgroup-manager", "cgroupfs"]
        self.podman("import", "--change", 'CMD=["sh"]', "--change", "ENV=PATH=/bin:/sbin:/usr/bin:/usr/sbin",
                    str(rootfs_tar), image)

    def podman(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run([*self.argv, *args], env=self.env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def play(self, manifest: Path) -> None:
        self.podman("kube", "play", str(manifest))

    def remove_pod(self, name: str) -> None:
        self.podman("pod", "rm", "--force", "--time", "0", name)

    def pod_pids(self, name: str) -> list[int]:
        """Every process podman keeps for the pod besides the applications: conmons and the infra."""
        ids = self.podman("ps", "-a", "--filter", f"pod={name}", "--format", "{{.ID}}").split()
        pids: list[int] = []
        for cid in ids:
            out = self.podman("inspect", "--format", "{{.State.ConmonPid}} {{.State.Pid}} {{.IsInfra}}", cid)
            conmon, pid, infra = out.split()
            pids.append(int(conmon))
            if infra == "true":
                pids.append(int(pid))
        return [p for p in pids if p > 0]

    def close(self) -> None:
        for name in self.podman("pod", "ls", "--format", "{{.Name}}", check=False).split():
            self.remove_pod(name)
        self.podman("system", "reset", "--force", check=False)
        for mount in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            point = mount.split()[4]
            if point.startswith(str(self.base)):
                subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(self.base, ignore_errors=True)
