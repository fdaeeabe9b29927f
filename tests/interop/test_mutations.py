"""The agreement matrix's generated mutations (tests/interop/mutations.py) are what they claim:
one change each, every mutation used, the same bytes on every run."""
from __future__ import annotations

import json

from fhirpkg.fhir import packages as pk

from . import mutations


def _examples():
    folder = pk.ensure([pk.R5_EXAMPLES])[0].folder
    return sorted(pk.resource_files(folder))[::9]


def test_mutations_are_deterministic_and_each_changes_its_example(tmp_path):
    examples = _examples()
    first = mutations.write_mutations(examples, tmp_path / "a", 3)
    second = mutations.write_mutations(examples, tmp_path / "b", 3)
    assert [p.name for p in first] == [p.name for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second))
    used = {name for name in mutations.MUTATIONS for p in first if p.name.startswith(f"mutation-{name}-")}
    assert used == set(mutations.MUTATIONS)
    by_stem = {p.stem: p for p in examples}
    for path in first:
        name = next(n for n in mutations.MUTATIONS if path.name.startswith(f"mutation-{n}-"))
        source = json.loads(by_stem[path.stem[len(f"mutation-{name}-"):]].read_text(encoding="utf-8"))
        changed = json.loads(path.read_text(encoding="utf-8"))
        if name == "reordered":
            assert changed == source and list(changed) != list(source)
        else:
            assert changed != source
            assert changed.get("resourceType") == source["resourceType"]


def test_one_mutation_changes_one_value():
    source = {"resourceType": "Observation", "id": "x", "status": "final",
              "code": {"text": "a b"}, "effectiveDateTime": "2020-01-02"}
    assert mutations.string_as_number(source)["code"] == {"text": 12345}
    assert mutations.impossible_date(source)["effectiveDateTime"] == "2020-13-01"
    assert mutations.padded_string(source)["code"] == {"text": "  a b  "}
    assert mutations.object_as_array(source)["code"] == [{"text": "a b"}]
    assert "status" not in mutations.status_removed(source)
    assert mutations.invalid_id(source)["id"] == "not a valid id!"
    assert source == {"resourceType": "Observation", "id": "x", "status": "final",
                      "code": {"text": "a b"}, "effectiveDateTime": "2020-01-02"}  # the input is untouched
