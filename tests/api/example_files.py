"""The files in examples/ and the state each one says a user will see (its `# Expect:` line)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from podbay.api import Pod
from podbay.api.apps import Deployment

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SHOWS = re.compile(r"^# Shows: \S.*$")
EXPECT = re.compile(r"^# Expect: (?P<phase>Pending|Running|Succeeded|Failed) (?P<ready>\d+)/(?P<total>\d+)$")


@dataclass(frozen=True)
class Expectation:
    """The pod's phase and the READY column of `podbay get pods` once it has settled."""
    phase: str
    ready: int
    total: int

    @property
    def ready_column(self) -> str:
        return f"{self.ready}/{self.total}"


def example_files() -> list[Path]:
    return sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".yml", ".json"))


def expectation(path: Path) -> Expectation | None:
    """The file's Expect line; None for JSON, which has no comments. A YAML example must begin
    with its `# Shows:` and `# Expect:` lines."""
    if path.suffix == ".json":
        return None
    lines = path.read_text().splitlines()[:2]
    if len(lines) < 2 or not SHOWS.match(lines[0]):
        raise ValueError(f"{path.name}: line 1 must be '# Shows: <what the example shows>'")
    m = EXPECT.match(lines[1])
    if m is None:
        raise ValueError(f"{path.name}: line 2 must be '# Expect: <phase> <ready>/<total>', got {lines[1]!r}")
    return Expectation(m["phase"], int(m["ready"]), int(m["total"]))


def example_pods(objs: list[object]) -> list[Pod]:
    """The pods an example makes: its bare pods, and one of each Deployment's template (named as
    its ReplicaSet names them, by generateName)."""
    pods = [o for o in objs if isinstance(o, Pod)]
    return pods + [Pod(metadata=d.spec.template.metadata.model_copy(update={"generate_name": f"{d.metadata.name}-"}),
                       spec=d.spec.template.spec) for d in objs if isinstance(d, Deployment)]
