from typing import Any

import pytest

from podbay.agent.envvars import EnvError, PodFacts, container_argv, container_env, expand, mapping_for, merge_image_env
from podbay.api import (
    ConfigMapKeySelector, Container, EnvVar, EnvVarSource, ObjectFieldSelector, ObjectMeta, Pod, PodSpec,
    SecretKeySelector,
)


@pytest.mark.parametrize("text,want", [
    ("$(A)", "a"),
    ("x$(A)y$(B)", "xayb"),
    ("$(MISSING)", "$(MISSING)"),
    ("$$(A)", "$(A)"),
    ("$$", "$"),
    ("$$$$", "$$"),
    ("$(A", "$(A"),
    ("$A", "$A"),
    ("trailing$", "trailing$"),
    ("$()", ""),
    ("$(A)$(A)", "aa"),
])
def test_expand_matches_kubernetes(text, want):
    assert expand(text, mapping_for({"A": "a", "B": "b", "": ""})) == want


def var(name: str, value: str | None = None, **vf: Any) -> EnvVar:
    return EnvVar(name=name, value=value, value_from=EnvVarSource(**vf) if vf else None)


def mk_pod(env: list[EnvVar]) -> tuple[Pod, Container]:
    c = Container(name="c", env=env)
    meta = ObjectMeta(name="web", namespace="ns1", uid="u-1", labels={"app": "x"}, annotations={"a/b": "v"})
    return Pod(metadata=meta, spec=PodSpec(node_name="n1", service_account_name="default", containers=[c])), c


def test_env_in_order_with_references_and_downward_api():
    p, c = mk_pod([
        var("NAME", field_ref=ObjectFieldSelector(field_path="metadata.name")),
        var("GREETING", "hi $(NAME) in $(NS)"),
        var("NS", field_ref=ObjectFieldSelector(field_path="metadata.namespace")),
        var("APP", field_ref=ObjectFieldSelector(field_path="metadata.labels['app']")),
        var("ANN", field_ref=ObjectFieldSelector(field_path="metadata.annotations['a/b']")),
        var("IP", field_ref=ObjectFieldSelector(field_path="status.podIP")),
        var("NODE", field_ref=ObjectFieldSelector(field_path="spec.nodeName")),
        var("SA", field_ref=ObjectFieldSelector(field_path="spec.serviceAccountName")),
        var("UID", field_ref=ObjectFieldSelector(field_path="metadata.uid")),
        var("ESC", "$$(NAME)"),
    ])
    env, warnings = container_env(p, c, PodFacts(pod_ip="10.0.0.5", host_ip="127.0.0.1"))
    assert dict(env) == {"NAME": "web", "GREETING": "hi web in $(NS)", "NS": "ns1", "APP": "x", "ANN": "v",
                         "IP": "10.0.0.5", "NODE": "n1", "SA": "default", "UID": "u-1", "ESC": "$(NAME)"}
    assert warnings == []


def test_config_map_and_secret_refs_unsupported_unless_optional():
    p, c = mk_pod([var("X", config_map_key_ref=ConfigMapKeySelector(name="cm", key="k"))])
    with pytest.raises(EnvError, match="configMapKeyRef"):
        container_env(p, c, PodFacts())
    p, c = mk_pod([var("X", secret_key_ref=SecretKeySelector(name="s", key="k", optional=True)), var("Y", "1")])
    env, warnings = container_env(p, c, PodFacts())
    assert env == [("Y", "1")] and "secretKeyRef" in warnings[0]


def test_argv_combines_command_args_and_image():
    env = [("WHO", "you")]
    c = Container(name="c")
    assert container_argv(c, ["/ep"], ["cmd", "x"], env) == ["/ep", "cmd", "x"]
    c = Container(name="c", args=["a", "$(WHO)"])
    assert container_argv(c, ["/ep"], ["cmd"], env) == ["/ep", "a", "you"]
    c = Container(name="c", command=["sh", "-c", "echo $(WHO)"])
    assert container_argv(c, ["/ep"], ["cmd"], env) == ["sh", "-c", "echo you"]
    c = Container(name="c", command=["sh"], args=["-c", "$(NOPE)"])
    assert container_argv(c, ["/ep"], ["cmd"], env) == ["sh", "-c", "$(NOPE)"]


def test_image_env_overridden_by_container():
    assert merge_image_env(["PATH=/bin", "A=1"], [("A", "2"), ("B", "3")]) == ["PATH=/bin", "A=2", "B=3"]
