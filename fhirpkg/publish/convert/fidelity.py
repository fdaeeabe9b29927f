"""How much of the R5 content an export carries, per resource type: the table of docs/r4.md and the
one line ``fhirpkg build`` prints.

The unit is an element value: every primitive value of an R5 resource, and every extension on it,
counted once per resource and path (``Citation.citedArtifact.title.text`` in a Citation with three
titles counts once).  A value is *lost* when the conversion recorded a loss at its path or above it
(wholly or partly: losses.json says which), *carried as an extension* when it was recorded as carried
in a cross-version extension, and *carried* otherwise.  Resources the export does not write count
all their values as lost.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

from fhirpkg.publish.convert.context import Conversion, resource_key


@dataclass
class Row:
    """One R5 resource type in an export."""

    resource_type: str
    resources: int = 0  # R5 resources of this type
    exported: int = 0  # written with their own type
    as_basic: int = 0  # written as Basic (cross-version)
    not_exported: int = 0
    carried: int = 0  # element values
    as_extension: int = 0
    lost: int = 0


def table(resources: list[dict], conversion: Conversion) -> list[Row]:
    """One row per R5 resource type of ``resources`` (what was converted), sorted by type.

    A resource's counts are kept on its :class:`~fhirpkg.publish.convert.context.Unit`, so that a
    conversion the build cache reuses is not counted again."""
    losses, carried = defaultdict(list), defaultdict(list)
    for loss in conversion.losses:
        losses[loss.resource].append(loss.path.split("."))
    for c in conversion.carried:
        carried[c.resource].append(c.path.split("."))
    dropped, as_basic = set(conversion.dropped), set(conversion.as_basic)
    rows: dict[str, Row] = {}
    for res in resources:
        if not isinstance(res, dict):
            continue
        key = resource_key(res)
        rt = str(res.get("resourceType"))
        row = rows.setdefault(rt, Row(rt))
        row.resources += 1
        if key in dropped:
            row.not_exported += 1
        elif key in as_basic:
            row.as_basic += 1
        else:
            row.exported += 1
        unit = conversion.units.get(key)
        if unit is None:
            values = _values(res, rt, losses[key], carried[key], key in dropped)
        else:
            if unit.values is None:
                unit.values = _values(res, rt, losses[key], carried[key], key in dropped)
            values = unit.values
        row.carried += values[0]
        row.as_extension += values[1]
        row.lost += values[2]
    return [rows[k] for k in sorted(rows)]


def _values(res: dict, rt: str, losses: list[list[str]], carried: list[list[str]], dropped: bool) -> tuple:
    """(carried, carried as an extension, lost) element values of one resource."""
    out = [0, 0, 0]
    for path in set(value_paths(res, [rt])):
        if dropped or any(_covers(p, path) for p in losses):
            out[2] += 1
        elif any(_covers(p, path) for p in carried):
            out[1] += 1
        else:
            out[0] += 1
    return tuple(out)


def value_paths(value, path: list[str]):
    """The element path of every primitive value and extension under ``value`` (``[rt, "a", "b"]`` lists)."""
    if isinstance(value, list):
        for v in value:
            yield from value_paths(v, path)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k == "resourceType":
                continue
            if k in ("extension", "modifierExtension"):
                for ext in v if isinstance(v, list) else []:
                    name = str(ext.get("url", "")).rsplit("/", 1)[-1] if isinstance(ext, dict) else ""
                    yield tuple(path + [f"{k}('{name}')"]) if k == "modifierExtension" else \
                        tuple(path + [f"extension('{name}')"])
                continue
            yield from value_paths(v, path + [k[1:] if k.startswith("_") else k])
    else:
        yield tuple(path)


def _covers(record: list[str], path: tuple) -> bool:
    """A recorded path (R5 element names, ``source[x]``) is ``path`` or above it (JSON names, ``sourceUri``)."""
    if len(record) > len(path):
        return False
    for r, p in zip(record, path):
        if r == p:
            continue
        if r.endswith("[x]") and p.startswith(r[:-3]) and p[len(r) - 3:len(r) - 2].isupper():
            continue
        return False
    return True


def totals(rows: list[Row]) -> dict[str, int]:
    """The counts summed over all types."""
    keys = ("resources", "exported", "as_basic", "not_exported", "carried", "as_extension", "lost")
    return {k: sum(getattr(r, k) for r in rows) for k in keys}


def line(version_name: str, rows: list[Row], losses: int) -> str:
    """The one line the build prints for an export."""
    t = totals(rows)
    return (f"{version_name} export: {t['exported'] + t['as_basic']} of {t['resources']} resources written "
            f"({t['as_basic']} as Basic), {t['not_exported']} not exported; element values: {t['carried']} carried, "
            f"{t['as_extension']} as cross-version extensions, {t['lost']} lost or changed ({losses} entries "
            f"in losses.json)")


def as_dicts(rows: list[Row]) -> list[dict]:
    return [asdict(r) for r in rows]


def markdown(rows: list[Row], *, package: str, losses: int) -> str:
    """docs/r4.md: the fidelity table of the R4 export."""
    t = totals(rows)
    out = [
        "# R4 export: what is carried",
        "",
        "<!-- Generated by scripts/r4_fidelity.py from definitions/ (fhirpkg build's R4 export); do not edit. "
        "tests/publish/test_convert.py checks that it is up to date. -->",
        "",
        f"Package `{package}`, exported to FHIR R4 (4.0.1) by `fhirpkg build` (`build/r4/`). How the conversion "
        "works: docs/cross-version.md. Every element value of every R5 resource is counted once per resource "
        "and element path:",
        "",
        "- **carried**: in an R4 element (same or mapped name);",
        "- **as extension**: in an R5 cross-version extension "
        "(`http://hl7.org/fhir/5.0/StructureDefinition/extension-<Path>`, HL7's hl7.fhir.uv.xver-r5.r4 scheme), "
        "including whole resources R4 lacks, written as Basic with the scheme's profile;",
        "- **lost or changed**: the conversion listed a loss at that path or above it in `build/r4/losses.json` "
        "(per resource: path and why). That includes values kept in another form (a citation folded into "
        "text, a canonical that does not resolve in R4) and resources not exported at all.",
        "",
        "| R5 resource type | Resources | Written as | Carried | As extension | Lost or changed |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        written = []
        if r.exported:
            written.append(f"{r.exported} {r.resource_type}")
        if r.as_basic:
            written.append(f"{r.as_basic} Basic")
        if r.not_exported:
            written.append(f"{r.not_exported} not exported")
        out.append(f"| {r.resource_type} | {r.resources} | {', '.join(written)} | {r.carried} | {r.as_extension} "
                   f"| {r.lost} |")
    out.append(f"| **All** | {t['resources']} | {t['exported'] + t['as_basic']} written, {t['not_exported']} not "
               f"exported | {t['carried']} | {t['as_extension']} | {t['lost']} |")
    out += ["", f"`build/r4/losses.json` lists {losses} losses.", ""]
    return "\n".join(out)
