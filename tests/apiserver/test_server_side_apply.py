"""Server-side apply, dryRun and fieldValidation over HTTP (the Status bodies and headers a
client sees), and the managed-fields rules as pure functions."""
from __future__ import annotations

import json

import pytest

from podbay.api.errors import BadRequest, Conflict
from podbay.apiserver import fieldmanager as fm
from tests.apiserver.test_apiserver_bad_input import PODS, POD, API, api, assert_status  # noqa: F401 (fixture)

APPLY = "application/apply-patch+yaml"
APPLIED = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "s", "labels": {"app": "a"}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def _apply(labels: dict[str, str], image: str = "busybox") -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": labels},
            "spec": {"containers": [{"name": "c", "image": image}]}}


# -- pure rules ----------------------------------------------------------------------------

def test_fields_of_uses_the_published_list_types() -> None:
    obj = {"metadata": {"labels": {"a": "1"}, "finalizers": ["x"]},
           "spec": {"containers": [{"name": "c", "image": "i", "args": ["1", "2"]}], "securityContext": {}}}
    item = ("f:spec", "f:containers", 'k:{"name":"c"}')
    assert fm.fields_of(obj) == {
        ("f:metadata", "f:labels", "f:a"), ("f:metadata", "f:finalizers", 'v:"x"'),
        item, item + ("f:name",), item + ("f:image",), item + ("f:args",),  # args: atomic
        ("f:spec", "f:securityContext"),
    }


def test_fields_v1_round_trips_and_marks_members_with_children() -> None:
    paths = fm.fields_of({"spec": {"containers": [{"name": "c", "image": "i"}]}})
    encoded = fm.to_fields_v1(paths)
    assert encoded == {"f:spec": {"f:containers": {'k:{"name":"c"}': {".": {}, "f:image": {}, "f:name": {}}}}}
    assert fm.from_fields_v1(encoded, "x") == paths
    with pytest.raises(BadRequest, match='metadata.managedFields\\[0\\].fieldsV1: unexpected FieldsV1 key "q"'):
        fm.from_fields_v1({"q": {}}, "metadata.managedFields[0].fieldsV1")


def test_path_string_is_structured_merge_diffs() -> None:
    assert fm.path_string(("f:spec", "f:containers", 'k:{"name":"c"}', "f:image")) == \
        '.spec.containers[name="c"].image'
    assert fm.path_string(("f:metadata", "f:finalizers", 'v:"x"')) == '.metadata.finalizers[="x"]'


def test_apply_conflicts_with_another_managers_field_unless_forced() -> None:
    live = fm.apply(None, _apply({"app": "a"}), "kubectl", "v1", "t0", force=False)
    entries = fm.owned_by_update(live, fm.merge_applied(live, {"metadata": {"labels": {"app": "b"}}}),
                                 "kubectl-label", "v1", "t1", None)
    labelled = fm.merge_applied(live, {"metadata": {"labels": {"app": "b"}}})
    fm.write_entries(labelled, entries)
    with pytest.raises(Conflict) as refused:
        fm.apply(labelled, _apply({"app": "c"}), "kubectl", "v1", "t2", force=False)
    assert refused.value.message == \
        'Apply failed with 1 conflict: conflict with "kubectl-label" using v1: .metadata.labels.app'
    assert refused.value.details["causes"] == [{"reason": "FieldManagerConflict", "field": ".metadata.labels.app",
                                                "message": 'conflict with "kubectl-label" using v1'}]
    # The same value is no conflict: both own it.
    agreed = fm.apply(labelled, _apply({"app": "b"}), "kubectl", "v1", "t2", force=False)
    assert {e.manager for e in fm.read_entries(agreed)} == {"kubectl", "kubectl-label"}
    forced = fm.apply(labelled, _apply({"app": "c"}), "kubectl", "v1", "t2", force=True)
    assert forced["metadata"]["labels"] == {"app": "c"}
    assert [e.manager for e in fm.read_entries(forced)] == ["kubectl"]


def test_conflicts_are_listed_per_manager_and_force_takes_only_them() -> None:
    live = fm.apply(None, _apply({"app": "a", "tier": "x"}, "i1"), "one", "v1", "t0", force=False)
    live = fm.apply(live, _apply({"tier": "x"}, "i1"), "two", "v1", "t0", force=False)
    with pytest.raises(Conflict) as refused:
        fm.apply(live, _apply({"app": "b", "tier": "x"}, "i2"), "two", "v1", "t1", force=False)
    assert refused.value.message == ('Apply failed with 2 conflicts: conflicts with "one":\n'
                                     '- .metadata.labels.app\n- .spec.containers[name="c"].image')
    forced = fm.apply(live, _apply({"app": "b", "tier": "x"}, "i2"), "two", "v1", "t1", force=True)
    owned = {e.manager: e.fields for e in fm.read_entries(forced)}
    assert ("f:metadata", "f:labels", "f:tier") in owned["one"] & owned["two"]  # same value: still shared
    assert ("f:metadata", "f:labels", "f:app") in owned["two"] - owned["one"]


def test_kubectl_takes_client_side_applied_fields_unchanged_since_last_applied() -> None:
    def client_side_applied(live_image: str) -> dict[str, object]:
        obj = _apply({"app": "a"}, live_image)
        obj["metadata"]["annotations"] = {fm.LAST_APPLIED: json.dumps(_apply({"app": "a"}, "a"))}  # type: ignore[index]
        fm.write_entries(obj, fm.owned_by_update(None, obj, "kubectl-client-side-apply", "v1", "t0", None))
        return obj

    moved = fm.apply(client_side_applied("a"), _apply({"app": "a"}, "c"), "kubectl", "v1", "t1", force=False)
    assert json.loads(moved["metadata"]["annotations"][fm.LAST_APPLIED])["spec"]["containers"][0]["image"] == "c"
    with pytest.raises(Conflict) as refused:  # the image changed since it was applied client-side
        fm.apply(client_side_applied("b"), _apply({"app": "a"}, "c"), "kubectl", "v1", "t1", force=False)
    assert refused.value.message == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                                     'using v1: .spec.containers[name="c"].image')
    with pytest.raises(Conflict):  # only kubectl's manager is let off
        fm.apply(client_side_applied("a"), _apply({"app": "a"}, "c"), "mine", "v1", "t1", force=False)


def test_fields_no_longer_applied_go_unless_another_manager_owns_them() -> None:
    live = fm.apply(None, _apply({"app": "a", "tier": "x"}), "kubectl", "v1", "t0", force=False)
    live = fm.apply(live, _apply({"app": "a", "tier": "x"}), "other", "v1", "t0", force=False)
    live = fm.apply(live, _apply({"tier": "x", "gone": "y"}), "other", "v1", "t1", force=False)
    dropped = fm.apply(live, _apply({}), "kubectl", "v1", "t2", force=False)
    # app: only kubectl owned it; tier: "other" still applies it.
    assert dropped["metadata"]["labels"] == {"tier": "x", "gone": "y"}


def test_update_owns_what_it_changed_and_takes_it_from_others() -> None:
    created = {"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}}
    fm.write_entries(created, fm.owned_by_update(None, created, "kubectl-create", "v1", "t0", None))
    changed = {**created, "metadata": {**created["metadata"], "labels": {"a": "2"}}}
    entries = fm.owned_by_update(created, changed, "kubectl-edit", "v1", "t1", None)
    assert {e.manager: e.fields for e in entries} == {
        "kubectl-create": {("f:spec", "f:x")}, "kubectl-edit": {("f:metadata", "f:labels", "f:a")}}


def test_write_options_follow_kubes_defaults_and_bounds() -> None:
    from multidict import MultiDict
    options = fm.write_options(MultiDict(), "kubectl/v1.33.0 (linux/amd64)", "CreateOptions", False)
    assert (options.manager, options.validation, options.dry_run) == ("kubectl", "Warn", False)
    assert fm.manager_from_user_agent("x" * 300) == "x" * 128


# -- over HTTP -----------------------------------------------------------------------------

async def test_apply_needs_a_field_manager_and_force_needs_apply(api: API) -> None:
    answer = await api.call("PATCH", f"{PODS}/s", APPLIED, content_type=APPLY)
    assert_status(answer, 422, "Invalid", "fieldManager: Required value: is required for apply patch")
    answer = await api.call("PATCH", f"{PODS}/p?force=true", {}, content_type="application/merge-patch+json")
    assert_status(answer, 422, "Invalid", "force: Forbidden: may not be specified for non-apply patch")
    answer = await api.call("PATCH", f"{PODS}/s?fieldManager=m&force=maybe", APPLIED, content_type=APPLY)
    assert_status(answer, 400, "BadRequest", 'invalid value for force: strconv.ParseBool: parsing "maybe"')
    answer = await api.call("PATCH", f"{PODS}/s?fieldManager=m&dryRun=Some", APPLIED, content_type=APPLY)
    assert_status(answer, 422, "Invalid", 'dryRun: Unsupported value: "Some": supported values: "All"')
    answer = await api.call("POST", f"{PODS}?fieldValidation=Loose", POD)
    assert_status(answer, 422, "Invalid", 'fieldValidation: Unsupported value: "Loose"')
    answer = await api.call("PATCH", f"{PODS}/s?fieldManager=m", raw=b"a: &x [1]\nb: *x", content_type=APPLY)
    assert_status(answer, 400, "BadRequest", "aliases are not allowed")


async def test_apply_creates_from_yaml_then_conflicts_with_409_causes(api: API) -> None:
    yaml_body = b"apiVersion: v1\nkind: Pod\nmetadata: {name: s, labels: {app: a}}\n" \
                b"spec: {containers: [{name: c, image: busybox}]}\n"
    created = await api.call("PATCH", f"{PODS}/s?fieldManager=m", raw=yaml_body, content_type=APPLY)
    assert created.status == 201, created.body
    [entry] = created.body["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("m", "Apply")
    conflict = await api.call("PATCH", f"{PODS}/s?fieldManager=n",
                              {**APPLIED, "metadata": {"name": "s", "labels": {"app": "b"}}}, content_type=APPLY)
    assert_status(conflict, 409, "Conflict", 'Apply failed with 1 conflict: conflict with "m": .metadata.labels.app')
    assert conflict.body["details"]["causes"][0]["field"] == ".metadata.labels.app"


async def test_dry_run_writes_nothing_on_create_update_patch_and_delete(api: API) -> None:
    before = (await api.call("GET", f"{PODS}/p")).body
    created = await api.call("POST", f"{PODS}?dryRun=All", {**POD, "metadata": {"name": "q"}})
    assert created.status == 201 and created.body["metadata"]["name"] == "q" and created.body["metadata"]["uid"]
    assert (await api.call("GET", f"{PODS}/q")).status == 404
    exists = await api.call("POST", f"{PODS}?dryRun=All", POD)
    assert_status(exists, 409, "AlreadyExists", 'pods "p" already exists')
    patched = await api.call("PATCH", f"{PODS}/p?dryRun=All", {"metadata": {"labels": {"x": "y"}}},
                             content_type="application/merge-patch+json")
    assert patched.status == 200 and patched.body["metadata"]["labels"] == {"x": "y"}
    put = await api.call("PUT", f"{PODS}/p?dryRun=All", {**before, "metadata": {**before["metadata"],
                                                                                "labels": {"z": "1"}}})
    assert put.status == 200 and put.body["metadata"]["labels"] == {"z": "1"}
    applied = await api.call("PATCH", f"{PODS}/s?fieldManager=m&dryRun=All", APPLIED, content_type=APPLY)
    assert applied.status == 201 and applied.body["metadata"]["managedFields"][0]["manager"] == "m"
    assert (await api.call("GET", f"{PODS}/s")).status == 404
    reapplied = await api.call("PATCH", f"{PODS}/p?fieldManager=m&dryRun=All", {**APPLIED, "metadata": {
        "name": "p", "labels": {"n": "1"}}}, content_type=APPLY)
    assert reapplied.status == 200 and reapplied.body["metadata"]["labels"] == {"n": "1"}
    deleted = await api.call("DELETE", f"{PODS}/p", {"dryRun": ["All"]})
    assert deleted.status == 200
    assert (await api.call("GET", f"{PODS}/p")).body == before


async def test_field_validation_warn_ignore_strict(api: API) -> None:
    typo = {"metadata": {"name": "w"}, "spec": {"containers": [{"name": "c", "image": "busybox", "imagee": "x"}]}}
    warned = await api.call("POST", PODS, typo)
    assert warned.status == 201
    assert warned.headers.getall("Warning") == ['299 - "unknown field \\"spec.containers[0].imagee\\""']
    ignored = await api.call("POST", f"{PODS}?fieldValidation=Ignore", {**typo, "metadata": {"name": "i"}})
    assert ignored.status == 201 and "Warning" not in ignored.headers
    strict = await api.call("POST", f"{PODS}?fieldValidation=Strict", {**typo, "metadata": {"name": "s"}})
    assert_status(strict, 400, "BadRequest", 'Pod in version "v1" cannot be handled as a Pod: strict decoding '
                                             'error: unknown field "spec.containers[0].imagee"')
    assert json.dumps(warned.body).count("imagee") == 0


async def test_apply_refuses_unknown_fields_whatever_the_validation(api: API) -> None:
    typo = {**APPLIED, "spec": {"containers": [{"name": "c", "image": "busybox", "imagee": "x"}]}}
    for validation in ("Ignore", "Warn", "Strict"):
        answer = await api.call("PATCH", f"{PODS}/s?fieldManager=m&fieldValidation={validation}", typo,
                                content_type=APPLY)
        assert_status(answer, 400, "BadRequest", "failed to create typed patch object (default/s; /v1, Kind=Pod): "
                                                 ".spec.containers[0].imagee: field not declared in schema")
    assert (await api.call("GET", f"{PODS}/s")).status == 404


async def test_a_dry_run_delete_of_a_pod_deleted_gracefully_changes_nothing(api: API) -> None:
    # A bound pod is deleted gracefully (marked, not removed): the dry run takes that path too.
    bound = {**POD, "metadata": {"name": "bound"}, "spec": {**POD["spec"], "nodeName": "n1"}}
    assert (await api.call("POST", PODS, bound)).status == 201
    before = (await api.call("GET", f"{PODS}/bound")).body
    deleted = await api.call("DELETE", f"{PODS}/bound?dryRun=All")
    assert deleted.status == 200 and deleted.body["metadata"]["deletionTimestamp"]
    assert (await api.call("GET", f"{PODS}/bound")).body == before
