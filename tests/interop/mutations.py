"""Generated mutations of HL7's R5 examples, for the agreement matrix (issue 14).

Each mutation changes one thing in an example that no one here wrote.  The verdict on the
result is never written here: the agreement test takes it from the HL7 validator, so what a
mutation "should" give is the HL7 validator's call, not ours.  Some mutations usually break the
resource (a number where a string belongs, an unknown property), some usually keep it valid (the
properties in another order, the narrative dropped), so the matrix probes both false errors and
missed ones.

Deterministic: the same examples give the same files, byte for byte, on any machine.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Iterator

Mutation = Callable[[dict], "dict | None"]  # a changed copy, or None where it does not apply

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SKIP_KEYS = {"resourceType", "div", "url", "system", "reference", "id", "status"}  # left to other mutations


def _copy(resource: dict) -> dict:
    return json.loads(json.dumps(resource))


def _strings(value, path=()) -> Iterator[tuple[tuple, str]]:
    """(path, string) of every JSON string value, document order."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k.startswith("_") or k in SKIP_KEYS:
                continue
            if isinstance(v, str):
                yield path + (k,), v
            elif isinstance(v, (dict, list)):
                yield from _strings(v, path + (k,))
    elif isinstance(value, list):
        for n, v in enumerate(value):
            if isinstance(v, str):
                yield path + (n,), v
            elif isinstance(v, (dict, list)):
                yield from _strings(v, path + (n,))


def _get(resource: dict, path: tuple):
    node = resource
    for step in path:
        node = node[step]
    return node


def _set(resource: dict, path: tuple, value) -> dict:
    out = _copy(resource)
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


def _first_string(resource: dict, test=lambda s: True) -> tuple | None:
    for path, value in _strings(resource):
        if "contained" not in path and test(value):
            return path
    return None


def _first_value(value, test, path=()) -> tuple | None:
    """Path of the first JSON value (outside contained resources and the narrative) for which ``test`` holds."""
    if isinstance(value, dict):
        items = [(k, v) for k, v in value.items() if not k.startswith("_") and k not in ("contained", "text")]
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return None
    for k, v in items:
        if test(k, v):
            return path + (k,)
        found = _first_value(v, test, path + (k,))
        if found:
            return found
    return None


def unknown_property(r: dict) -> dict | None:
    out = _copy(r)
    out["fhirpkgMutationNote"] = "an element no FHIR resource defines"
    return out


def string_as_number(r: dict) -> dict | None:
    path = _first_string(r, lambda s: not s.isdigit())
    return _set(r, path, 12345) if path else None


def empty_string(r: dict) -> dict | None:
    path = _first_string(r)
    return _set(r, path, "") if path else None


def padded_string(r: dict) -> dict | None:
    path = _first_string(r, lambda s: s == s.strip() and " " in s)
    return _set(r, path, f"  {_get(r, path)}  ") if path else None


def impossible_date(r: dict) -> dict | None:
    path = _first_string(r, lambda s: bool(DATE.match(s)))
    return _set(r, path, "2020-13-01") if path else None


def array_as_object(r: dict) -> dict | None:
    for k, v in r.items():
        if k not in ("contained", "entry") and isinstance(v, list) and v and isinstance(v[0], dict):
            out = _copy(r)
            out[k] = v[0]
            return out
    return None


def object_as_array(r: dict) -> dict | None:
    for k, v in r.items():
        if k not in ("text", "meta") and isinstance(v, dict):
            out = _copy(r)
            out[k] = [v]
            return out
    return None


def _without(r: dict, key: str) -> dict | None:
    if key not in r:
        return None
    out = _copy(r)
    del out[key]
    return out


def status_removed(r: dict) -> dict | None:
    return _without(r, "status")


def status_unknown_code(r: dict) -> dict | None:
    if not isinstance(r.get("status"), str):
        return None
    out = _copy(r)
    out["status"] = "no-such-status"
    return out


def extension_without_url(r: dict) -> dict | None:
    out = _copy(r)
    out["extension"] = list(out.get("extension") or []) + [{"valueString": "an extension that names nothing"}]
    return out


def invalid_id(r: dict) -> dict | None:
    if "id" not in r:
        return None
    out = _copy(r)
    out["id"] = "not a valid id!"
    return out


def _with_extension(r: dict, url: str) -> dict:
    out = _copy(r)
    out["extension"] = list(out.get("extension") or []) + [{"url": url, "valueString": "x"}]
    return out


def extension_unknown_example(r: dict) -> dict | None:
    return _with_extension(r, "http://example.org/fhir/StructureDefinition/no-such-extension")


def extension_unknown_hl7(r: dict) -> dict | None:
    return _with_extension(r, "http://hl7.org/fhir/StructureDefinition/no-such-extension")


def extension_unknown_other(r: dict) -> dict | None:
    return _with_extension(r, "http://fhirpkg.invalid/fhir/StructureDefinition/no-such-extension")


def wrong_display(r: dict) -> dict | None:
    path = _first_value(r, lambda k, v: isinstance(v, dict) and isinstance(v.get("display"), str)
                        and isinstance(v.get("code"), str) and isinstance(v.get("system"), str)
                        and v["system"].startswith(("http://hl7.org/fhir/", "http://terminology.hl7.org/CodeSystem/")))
    if path is None:
        return None
    out = _copy(r)
    _get(out, path)["display"] = "Not the display of this code"
    return out


def primitive_extension(r: dict) -> dict | None:
    path = _first_string(r, lambda s: True)
    if path is None or not isinstance(path[-1], str):
        return None
    out = _copy(r)
    parent = _get(out, path[:-1])
    shadow = f"_{path[-1]}"
    if shadow in parent:
        return None
    parent[shadow] = {"extension": [{"url": "http://example.org/fhir/StructureDefinition/note", "valueString": "x"}]}
    return out


def contained_unreferenced(r: dict) -> dict | None:
    out = _copy(r)
    out["contained"] = list(out.get("contained") or []) + [
        {"resourceType": "Basic", "id": "fhirpkg-mutation", "code": {"text": "referenced by nothing"}}]
    return out


def number_as_string(r: dict) -> dict | None:
    path = _first_value(r, lambda k, v: isinstance(v, (int, float)) and not isinstance(v, bool))
    return _set(r, path, str(_get(r, path))) if path else None


def boolean_as_string(r: dict) -> dict | None:
    path = _first_value(r, lambda k, v: isinstance(v, bool))
    return _set(r, path, "true" if _get(r, path) else "false") if path else None


def uri_with_space(r: dict) -> dict | None:
    path = _first_value(r, lambda k, v: k in ("url", "system") and isinstance(v, str) and v.startswith("http"))
    return _set(r, path, _get(r, path) + "/with space") if path else None


def reference_wrong_type(r: dict) -> dict | None:
    path = _first_value(r, lambda k, v: k == "reference" and isinstance(v, str) and v.count("/") == 1
                        and not v.startswith("#") and not v.startswith("Basic/"))
    return _set(r, path, "Basic/" + _get(r, path).split("/")[1]) if path else None


def datetime_without_zone(r: dict) -> dict | None:
    path = _first_value(r, lambda k, v: isinstance(v, str) and re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", v)
                        and k != "lastUpdated")
    return _set(r, path, _get(r, path)[:19]) if path else None


def code_with_double_space(r: dict) -> dict | None:
    path = _first_value(r, lambda k, v: k == "code" and isinstance(v, str) and " " not in v)
    return _set(r, path, _get(r, path) + "  x") if path else None


def markup_in_string(r: dict) -> dict | None:
    path = _first_value(r, lambda k, v: k in ("title", "name", "display") and isinstance(v, str))
    return _set(r, path, _get(r, path) + " <b>bold</b>") if path else None


def script_in_narrative(r: dict) -> dict | None:
    div = (r.get("text") or {}).get("div")
    if not isinstance(div, str) or not div.endswith("</div>"):
        return None
    out = _copy(r)
    out["text"]["div"] = div[:-len("</div>")] + "<script>alert(1)</script></div>"
    return out


def unknown_profile(r: dict) -> dict | None:
    out = _copy(r)
    meta = out.setdefault("meta", {})
    meta["profile"] = list(meta.get("profile") or []) + ["http://hl7.org/fhir/StructureDefinition/no-such-profile"]
    return out


def contained_reference_missing(r: dict) -> dict | None:
    path = _first_value(r, lambda k, v: k == "reference" and isinstance(v, str) and not v.startswith("#"))
    return _set(r, path, "#fhirpkg-no-such-contained") if path else None


def contained_with_version(r: dict) -> dict | None:
    out = contained_unreferenced(r)
    out["contained"][-1]["meta"] = {"versionId": "1"}
    out["contained"][-1]["id"] = "fhirpkg-versioned"
    return out


def version_with_hash(r: dict) -> dict | None:
    if not isinstance(r.get("version"), str) or not isinstance(r.get("url"), str):
        return None
    return _set(r, ("version",), r["version"] + "#1")


def period_reversed(r: dict) -> dict | None:
    path = _first_value(r, lambda k, v: isinstance(v, dict) and isinstance(v.get("start"), str)
                        and isinstance(v.get("end"), str) and v["start"] < v["end"])
    if path is None:
        return None
    out = _copy(r)
    period = _get(out, path)
    period["start"], period["end"] = period["end"], period["start"]
    return out


def quantity_code_without_system(r: dict) -> dict | None:
    path = _first_value(r, lambda k, v: isinstance(v, dict) and "value" in v and isinstance(v.get("code"), str)
                        and isinstance(v.get("system"), str))
    if path is None:
        return None
    out = _copy(r)
    del _get(out, path)["system"]
    return out


def modifier_extension_unknown(r: dict) -> dict | None:
    out = _copy(r)
    out["modifierExtension"] = list(out.get("modifierExtension") or []) + [
        {"url": "http://example.org/fhir/StructureDefinition/no-such-modifier", "valueBoolean": True}]
    return out


def identifier_system_relative(r: dict) -> dict | None:
    ids = r.get("identifier")
    first = ids[0] if isinstance(ids, list) and ids and isinstance(ids[0], dict) else None
    if first is None or not isinstance(first.get("system"), str):
        return None
    out = _copy(r)
    out["identifier"][0]["system"] = "local-identifiers"
    return out


def narrative_status_unknown(r: dict) -> dict | None:
    if not isinstance((r.get("text") or {}).get("status"), str):
        return None
    out = _copy(r)
    out["text"]["status"] = "no-such-status"
    return out


def narrative_removed(r: dict) -> dict | None:
    return _without(r, "text")


def reordered(r: dict) -> dict | None:
    keys = list(r)
    if len(keys) < 3:
        return None
    return {k: r[k] for k in ["resourceType"] + [k for k in reversed(keys) if k != "resourceType"]}


MUTATIONS: dict[str, Mutation] = {
    "unknown-property": unknown_property,
    "string-as-number": string_as_number,
    "empty-string": empty_string,
    "padded-string": padded_string,
    "impossible-date": impossible_date,
    "array-as-object": array_as_object,
    "object-as-array": object_as_array,
    "status-removed": status_removed,
    "status-unknown-code": status_unknown_code,
    "extension-without-url": extension_without_url,
    "invalid-id": invalid_id,
    "extension-unknown-example": extension_unknown_example,
    "extension-unknown-hl7": extension_unknown_hl7,
    "extension-unknown-other": extension_unknown_other,
    "wrong-display": wrong_display,
    "primitive-extension": primitive_extension,
    "contained-unreferenced": contained_unreferenced,
    "number-as-string": number_as_string,
    "boolean-as-string": boolean_as_string,
    "uri-with-space": uri_with_space,
    "reference-wrong-type": reference_wrong_type,
    "datetime-without-zone": datetime_without_zone,
    "code-with-double-space": code_with_double_space,
    "markup-in-string": markup_in_string,
    "script-in-narrative": script_in_narrative,
    "unknown-profile": unknown_profile,
    "contained-reference-missing": contained_reference_missing,
    "contained-with-version": contained_with_version,
    "version-with-hash": version_with_hash,
    "period-reversed": period_reversed,
    "quantity-code-without-system": quantity_code_without_system,
    "modifier-extension-unknown": modifier_extension_unknown,
    "identifier-system-relative": identifier_system_relative,
    "narrative-status-unknown": narrative_status_unknown,
    "narrative-removed": narrative_removed,
    "reordered": reordered,
}


def write_mutations(examples: list[Path], folder: Path, per_mutation: int = 8) -> list[Path]:
    """Up to ``per_mutation`` files per mutation, each from a different example: mutation number
    m starts at an offset into the (sorted) examples so that the mutations do not all land on the
    same few resources."""
    folder.mkdir(parents=True, exist_ok=True)
    examples = sorted(examples)
    written = []
    for m, (name, mutate) in enumerate(MUTATIONS.items()):
        start = (m * len(examples)) // len(MUTATIONS)
        made = 0
        for n in range(len(examples)):
            if made == per_mutation:
                break
            src = examples[(start + n * 7) % len(examples)]  # a stride, not neighbours
            try:
                resource = json.loads(src.read_text(encoding="utf-8"))
            except ValueError:
                continue
            if not isinstance(resource, dict) or resource.get("resourceType") == "Bundle":
                continue
            changed = mutate(resource)
            if changed is None or (changed == resource and name != "reordered"):
                continue
            path = folder / f"mutation-{name}-{src.stem}.json"
            if path.exists():
                continue
            path.write_text(json.dumps(changed, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            written.append(path)
            made += 1
    return written
