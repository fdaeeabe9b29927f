"""fhirpkg diff: three kinds of sides, element-level changes, keyed arrays, exact numbers, errors."""
from __future__ import annotations

import copy
import io
import json
import tarfile
from decimal import Decimal
from pathlib import Path

import pytest

from fhirpkg.publish.diff import DiffError, diff, diff_resource, load_side, render_json, render_text
from fhirpkg.fhir.jsonsource import FhirDecimal

BASE = "http://example.org/fhir/nepc"


def plan(**extra) -> dict:
    res = {"resourceType": "PlanDefinition", "id": "pd-regimen", "url": f"{BASE}/PlanDefinition/pd-regimen",
           "version": "0.1.0", "status": "draft", "title": "Regimen",
           "meta": {"versionId": "3", "lastUpdated": "2026-01-01T00:00:00Z"},
           "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Regimen</div>"},
           "action": [{"id": "a1", "title": "Cisplatin"}, {"id": "a2", "title": "Etoposide"},
                      {"id": "a3", "title": "Supportive care"}]}
    res.update(extra)
    return res


def side_old() -> list[dict]:
    return [plan(),
            {"resourceType": "Citation", "id": "cit-old", "url": f"{BASE}/Citation/cit-old", "status": "draft"},
            {"resourceType": "MedicationKnowledge", "id": "mk-etoposide", "status": "active",
             "identifier": [{"system": f"{BASE}/mk", "value": "mk-etoposide"}]}]


def side_new() -> list[dict]:
    p = plan(title="Regimen (revised)")
    p["action"].insert(1, {"id": "a1b", "title": "Carboplatin"})
    p["action"][3]["title"] = "Supportive care and G-CSF"
    del p["status"]
    return [p,
            {"resourceType": "Citation", "id": "cit-new", "url": f"{BASE}/Citation/cit-new", "status": "draft"},
            {"resourceType": "MedicationKnowledge", "id": "mk-etoposide", "status": "active",
             "identifier": [{"system": f"{BASE}/mk", "value": "mk-etoposide"}]}]


def write_folder(folder: Path, items: list[dict]) -> Path:
    folder.mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps({"name": "org.example.x", "version": "0.1.0"}))
    for r in items:
        sub = folder / r["resourceType"]
        sub.mkdir(exist_ok=True)
        (sub / f"{r['id']}.json").write_text(json.dumps(r, indent=2))
    return folder


def write_bundle(path: Path, items: list[dict]) -> Path:
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r,
         "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in items]}))
    return path


def write_tgz(path: Path, items: list[dict], extra: dict[str, bytes] | None = None) -> Path:
    members = {"package/package.json": json.dumps({"name": "org.example.x", "version": "0.1.0"}).encode(),
               "package/.index.json": b'{"index-version": 2, "files": []}',
               "package/other/validation-summary.json": b'{"not": "a resource"}',
               "package/openapi/x.json": b'{"openapi": "3.0.0"}',
               "package/xml/PlanDefinition-x.xml": b"<PlanDefinition/>"}
    for r in items:
        members[f"package/{r['resourceType']}-{r['id']}.json"] = json.dumps(r).encode()
    members.update(extra or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


# --- loading ----------------------------------------------------------------------

def test_folder_bundle_and_tgz_load_the_same_resources(tmp_path):
    items = side_old()
    a = load_side(write_folder(tmp_path / "definitions", items))
    b = load_side(write_bundle(tmp_path / "bundle.json", items))
    c = load_side(write_tgz(tmp_path / "package.tgz", items))
    assert set(a) == {"PlanDefinition/pd-regimen", "Citation/cit-old", "MedicationKnowledge/mk-etoposide"}
    assert a == b == c


def test_any_pair_of_side_kinds_can_be_compared(tmp_path):
    old = load_side(write_tgz(tmp_path / "old.tgz", side_old()))
    new = load_side(write_folder(tmp_path / "new", side_new()))
    report = diff(old, new)
    assert report.added == ["Citation/cit-new"] and report.removed == ["Citation/cit-old"]
    assert list(report.changed) == ["PlanDefinition/pd-regimen"] and report.unchanged == 1


def test_numbers_load_as_exact_decimals(tmp_path):
    f = tmp_path / "r.json"
    f.write_text('{"resourceType": "Basic", "id": "b", "extension": [{"url": "x", "valueDecimal": 1.50}]}')
    value = load_side(f)["Basic/b"]["extension"][0]["valueDecimal"]
    assert isinstance(value, Decimal) and str(value) == "1.50"


# --- element changes --------------------------------------------------------------

def test_element_changes_with_paths_and_keyed_arrays():
    report = diff({"PlanDefinition/pd-regimen": side_old()[0]}, {"PlanDefinition/pd-regimen": side_new()[0]})
    changes = {(c.path, c.kind): c for c in report.changed["PlanDefinition/pd-regimen"]}
    assert ("PlanDefinition.title", "changed") in changes
    assert changes[("PlanDefinition.title", "changed")].old == "Regimen"
    assert ("PlanDefinition.status", "removed") in changes
    # the inserted action is one change; later actions are matched by id, not shown as changed
    assert changes[("PlanDefinition.action[1]", "added")].new == {"id": "a1b", "title": "Carboplatin"}
    assert ("PlanDefinition.action[3].title", "changed") in changes
    assert len(changes) == 4, sorted(changes)


def test_arrays_without_keys_are_compared_by_index():
    old = {"resourceType": "Citation", "id": "c", "note": [{"text": "a"}, {"text": "b"}]}
    new = {"resourceType": "Citation", "id": "c", "note": [{"text": "a"}, {"text": "B"}, {"text": "c"}]}
    changes = [(c.path, c.kind) for c in diff_resource(old, new)]
    assert changes == [("Citation.note[1].text", "changed"), ("Citation.note[2]", "added")]


def test_duplicate_keys_fall_back_to_index_matching():
    old = {"resourceType": "Basic", "id": "b", "extension": [{"url": "x", "valueString": "1"},
                                                               {"url": "x", "valueString": "2"}]}
    new = copy.deepcopy(old)
    new["extension"][1]["valueString"] = "3"
    assert [c.path for c in diff_resource(old, new)] == ["Basic.extension[1].valueString"]


def test_reordering_keyed_items_is_reported():
    old = plan()
    new = plan()
    new["action"] = [new["action"][1], new["action"][0], new["action"][2]]
    changes = diff_resource(old, new)
    assert [(c.path, c.kind) for c in changes] == [("PlanDefinition.action", "changed")]
    assert changes[0].old == ["id=a1", "id=a2", "id=a3"] and changes[0].new == ["id=a2", "id=a1", "id=a3"]


def test_ignored_elements_do_not_count():
    old = plan()
    new = plan(meta={"versionId": "9", "lastUpdated": "2027-01-01T00:00:00Z"},
               text={"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">other</div>"})
    del new["meta"]  # a meta that held only ignored elements is the same as none
    report = diff({"k": old}, {"k": new})
    assert report.identical and report.unchanged == 1
    report = diff({"k": old}, {"k": new}, ignore=())
    assert {c.path for c in report.changed["k"]} == {"PlanDefinition.meta", "PlanDefinition.text.div"}


def test_decimal_precision_is_a_change_and_bool_is_not_a_number():
    old = {"resourceType": "Basic", "id": "b", "a": FhirDecimal("1.0"), "b": True, "c": 1}
    new = {"resourceType": "Basic", "id": "b", "a": FhirDecimal("1.00"), "b": 1, "c": 1}
    changes = diff_resource(old, new)
    assert [(c.path, c.old, c.new) for c in changes] == [("Basic.a", FhirDecimal("1.0"), FhirDecimal("1.00")),
                                                         ("Basic.b", True, 1)]
    text = render_text(diff({"Basic/b": old}, {"Basic/b": new}))
    assert "changed Basic.a: 1.0 -> 1.00" in text
    assert '"old": 1.0,' in render_json(diff({"Basic/b": old}, {"Basic/b": new}))


def test_long_values_are_shortened():
    old = {"resourceType": "Basic", "id": "b", "s": "x" * 500}
    new = {"resourceType": "Basic", "id": "b", "s": "y" * 500, "big": {"list": ["z" * 100] * 10}}
    changes = {c.path: c for c in diff_resource(old, new)}
    assert len(changes["Basic.s"].new) == 120 and changes["Basic.s"].new.endswith("…")
    assert isinstance(changes["Basic.big"].new, str) and len(changes["Basic.big"].new) == 300


# --- output -----------------------------------------------------------------------

def test_text_output():
    old = {f"{r['resourceType']}/{r['id']}": r for r in side_old()}
    new = {f"{r['resourceType']}/{r['id']}": r for r in side_new()}
    text = render_text(diff(old, new))
    assert "Added (1):\n  + Citation/cit-new" in text
    assert "Removed (1):\n  - Citation/cit-old" in text
    assert "~ PlanDefinition/pd-regimen (4 changes)" in text
    assert 'changed PlanDefinition.title: "Regimen" -> "Regimen (revised)"' in text
    assert 'added   PlanDefinition.action[1] = {"id":"a1b","title":"Carboplatin"}' in text
    assert text.rstrip().endswith("1 added, 1 removed, 1 changed, 1 unchanged")
    assert "No differences." in render_text(diff(old, old))


def test_json_output_shape():
    old = {f"{r['resourceType']}/{r['id']}": r for r in side_old()}
    new = {f"{r['resourceType']}/{r['id']}": r for r in side_new()}
    data = json.loads(render_json(diff(old, new)))
    assert data["summary"] == {"added": 1, "removed": 1, "changed": 1, "unchanged": 1}
    assert data["added"] == ["Citation/cit-new"] and data["removed"] == ["Citation/cit-old"]
    first = data["changed"]["PlanDefinition/pd-regimen"][0]
    assert set(first) == {"path", "kind", "old", "new"}
    assert first == {"path": "PlanDefinition.status", "kind": "removed", "old": "draft", "new": None}
    added = data["changed"]["PlanDefinition/pd-regimen"][2]
    assert added == {"path": "PlanDefinition.action[1]", "kind": "added", "old": None,
                     "new": {"id": "a1b", "title": "Carboplatin"}}


# --- errors -----------------------------------------------------------------------

def test_missing_path(tmp_path):
    with pytest.raises(DiffError, match="no such file"):
        load_side(tmp_path / "nope")


def test_not_json(tmp_path):
    f = tmp_path / "x.json"
    f.write_text('{"resourceType": "Basic", ')
    with pytest.raises(DiffError, match=r"x.json: not JSON: Invalid JSON"):
        load_side(f)


def test_not_a_resource(tmp_path):
    f = tmp_path / "x.json"
    f.write_text('{"hello": 1}')
    with pytest.raises(DiffError, match="no resourceType"):
        load_side(f)


def test_resource_without_id(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.json").write_text('{"resourceType": "Basic"}')
    with pytest.raises(DiffError, match="has no id"):
        load_side(folder)


def test_duplicate_resource(tmp_path):
    folder = write_folder(tmp_path / "d", side_old())
    (folder / "copy.json").write_text(json.dumps(side_old()[0]))
    with pytest.raises(DiffError, match="PlanDefinition/pd-regimen appears more than once"):
        load_side(folder)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DiffError, match="no FHIR resources"):
        load_side(tmp_path / "empty")


def test_unreadable_tgz(tmp_path):
    good = write_tgz(tmp_path / "good.tgz", side_old()).read_bytes()
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(DiffError, match="bad.tgz"):
        load_side(bad)
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"this is not an archive")
    with pytest.raises(DiffError, match="not a readable .tgz package"):
        load_side(junk)


def test_tgz_member_escaping_the_folder_is_refused(tmp_path):
    path = write_tgz(tmp_path / "evil.tgz", side_old(), {"package/../../etc/x.json": b"{}"})
    with pytest.raises(DiffError, match=r"evil\.tgz!package/\.\./\.\./etc/x\.json: archive member outside package/"):
        load_side(path)


def test_tgz_with_bad_json_member(tmp_path):
    path = write_tgz(tmp_path / "p.tgz", side_old(), {"package/Basic-b.json": b"{nope"})
    with pytest.raises(DiffError, match=r"p\.tgz!package/Basic-b\.json: not JSON: Invalid JSON"):
        load_side(path)
