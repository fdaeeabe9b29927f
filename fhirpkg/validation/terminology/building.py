"""From CodeSystem and ValueSet resources to their compiled forms, with version matching, and the
compact store that keeps thousands of them small when pickled."""
from __future__ import annotations

import re
import zlib
from typing import Iterable, Iterator

import orjson

from fhirpkg.validation.terminology.compiled import CodeSystemDef, ConceptSet, Filter, ValueSetDef


# --- version matching ---------------------------------------------------------------------

def _version_key(v: str | None) -> tuple:
    parts = []
    for p in re.split(r"[.\-+]", v or ""):
        parts.append((0, int(p), "") if p.isdigit() else (1, 0, p))
    return tuple(parts)


def versions_match(wanted: str | None, have: str | None) -> bool:
    """'5.0' matches '5.0.0' (the HL7 validator's partial version match); None matches any."""
    if not wanted:
        return True
    if not have:
        return False
    return have == wanted or have.startswith(wanted + ".") or have.startswith(wanted + "-")


def split_canonical(url: str) -> tuple[str, str | None]:
    if "|" in url:
        u, _, v = url.partition("|")
        return u, v or None
    return url, None


# --- building ---------------------------------------------------------------------------

_STATUS_INACTIVE = frozenset({"inactive", "retired"})
_HIERARCHY_PROPS = ("parent", "subsumedBy")
ALWAYS_PROPS = frozenset({"status", "inactive", "notSelectable", "not-selectable", "deprecated", "abstract"})


def _prop_value(p: dict) -> str | None:
    for key, val in p.items():
        if key.startswith("value"):
            if isinstance(val, dict):  # valueCoding
                return val.get("code")
            if isinstance(val, bool):
                return "true" if val else "false"
            return str(val)
    return None


def compile_code_system(cs: dict, package: str = "", keep_props: frozenset[str] | set[str] | None = frozenset()
                        ) -> CodeSystemDef | None:
    """Reduce a CodeSystem resource; None when it has no url.

    ``keep_props``: the properties value set filters use (others are dropped to keep
    the index small); None keeps every property.
    """
    url = cs.get("url")
    if not isinstance(url, str) or not url:
        return None
    concepts: dict[str, str | None] = {}
    designations: dict[str, tuple] = {}
    children: dict[str, list[str]] = {}
    inactive: set[str] = set()
    status: dict[str, str] = {}
    abstract: set[str] = set()
    props: dict[str, dict[str, list[str]]] = {}
    keep = None if keep_props is None else set(keep_props) | ALWAYS_PROPS
    stack: list[tuple[dict, str | None]] = [(c, None) for c in reversed(cs.get("concept") or []) if isinstance(c, dict)]
    while stack:
        c, parent = stack.pop()
        code = c.get("code")
        if not isinstance(code, str):
            continue
        disp = c.get("display")
        if code not in concepts or concepts[code] is None:
            concepts[code] = disp if isinstance(disp, str) else None
        if parent is not None:
            children.setdefault(parent, []).append(code)
        desig = tuple((d["value"], d.get("language")) for d in c.get("designation") or ()
                      if isinstance(d, dict) and isinstance(d.get("value"), str))
        if desig:
            designations[code] = desig
        for p in c.get("property") or ():
            if not isinstance(p, dict):
                continue
            pcode, val = p.get("code"), _prop_value(p)
            if pcode is None or val is None:
                continue
            if pcode in _HIERARCHY_PROPS:
                children.setdefault(val, []).append(code)
            if pcode == "status" and val != "active":
                status[code] = val
                if val in _STATUS_INACTIVE:
                    inactive.add(code)
            elif pcode == "inactive" and val == "true":
                inactive.add(code)
                status.setdefault(code, "inactive")
            elif pcode in ("notSelectable", "not-selectable", "abstract") and val == "true":
                abstract.add(code)
            elif pcode == "deprecated" and val == "true":
                status.setdefault(code, "deprecated")
            if keep is None or pcode in keep:
                props.setdefault(pcode, {}).setdefault(code, []).append(val)
        for ext in c.get("extension") or ():
            if (isinstance(ext, dict) and ext.get("url", "").endswith("structuredefinition-standards-status")
                    and ext.get("valueCode") == "withdrawn"):
                inactive.add(code)
                status.setdefault(code, "withdrawn")
        for child in reversed(c.get("concept") or []):
            if isinstance(child, dict):
                stack.append((child, code))
    cs_sens = cs.get("caseSensitive")
    return CodeSystemDef(
        url=url, version=cs.get("version"), name=cs.get("name"), title=cs.get("title"),
        content=cs.get("content") or "complete", case_sensitive=cs_sens if isinstance(cs_sens, bool) else None,
        language=cs.get("language"), package=package, concepts=concepts, designations=designations,
        children={k: tuple(dict.fromkeys(v)) for k, v in children.items()}, inactive=frozenset(inactive),
        status=status, abstract=frozenset(abstract),
        properties={k: {c: tuple(v) for c, v in m.items()} for k, m in props.items()},
        supplements=cs.get("supplements"))


def _concept_set(inc: dict) -> ConceptSet:
    concepts = None
    if inc.get("concept"):
        concepts = tuple(c["code"] for c in inc["concept"] if isinstance(c, dict) and isinstance(c.get("code"), str))
    filters = tuple(Filter(str(f.get("property", "")), str(f.get("op", "")), str(f.get("value", "")))
                    for f in inc.get("filter") or () if isinstance(f, dict))
    vss = tuple(v for v in inc.get("valueSet") or () if isinstance(v, str))
    return ConceptSet(inc.get("system"), inc.get("version"), concepts, filters, vss)


def _flatten_contains(items, out: dict[str, set[str]]) -> int:
    n = 0
    for c in items or ():
        if not isinstance(c, dict):
            continue
        if c.get("system") and c.get("code"):
            out.setdefault(c["system"], set()).add(c["code"])
            n += 1
        n += _flatten_contains(c.get("contains"), out)
    return n


def compile_value_set(vs: dict, package: str = "") -> ValueSetDef | None:
    url = vs.get("url")
    if not isinstance(url, str) or not url:
        return None
    compose = vs.get("compose") if isinstance(vs.get("compose"), dict) else None
    expansion = None
    complete = False
    exp = vs.get("expansion")
    if isinstance(exp, dict):
        found: dict[str, set[str]] = {}
        n = _flatten_contains(exp.get("contains"), found)
        expansion = {s: frozenset(c) for s, c in found.items()}
        total = exp.get("total")
        complete = (not exp.get("offset")) and (total is None or total == n)
        for p in exp.get("parameter") or ():
            if isinstance(p, dict) and p.get("name") in ("limitedExpansion", "count"):
                complete = False
    inactive = compose.get("inactive") if compose else None
    return ValueSetDef(
        url=url, version=vs.get("version"), name=vs.get("name"), title=vs.get("title"), status=vs.get("status"),
        package=package,
        includes=tuple(_concept_set(i) for i in (compose or {}).get("include") or () if isinstance(i, dict)),
        excludes=tuple(_concept_set(i) for i in (compose or {}).get("exclude") or () if isinstance(i, dict)),
        inactive=inactive if isinstance(inactive, bool) else None, has_compose=compose is not None,
        expansion=expansion, expansion_complete=complete)


def filter_properties(value_sets: Iterable[dict]) -> set[str]:
    props: set[str] = set()
    for vs in value_sets:
        for part in ("include", "exclude"):
            for inc in (vs.get("compose") or {}).get(part) or ():
                for f in inc.get("filter") or () if isinstance(inc, dict) else ():
                    if isinstance(f, dict) and isinstance(f.get("property"), str):
                        props.add(f["property"])
    return props


# --- compact storage: one compressed blob per resource, decoded on first use ------------

def _encode_cs(cs: CodeSystemDef) -> bytes:
    codes = list(cs.concepts)
    return orjson.dumps([
        cs.url, cs.version, cs.name, cs.title, cs.content, cs.case_sensitive, cs.language, cs.package,
        codes, [cs.concepts[c] for c in codes], cs.designations, cs.children, sorted(cs.inactive), cs.status,
        sorted(cs.abstract), cs.properties, cs.supplements])


def _decode_cs(raw: bytes) -> CodeSystemDef:
    (url, version, name, title, content, case_sensitive, language, package, codes, displays, desig, children,
     inactive, status, abstract, props, supplements) = orjson.loads(raw)
    return CodeSystemDef(
        url, version, name, title, content, case_sensitive, language, package, dict(zip(codes, displays)),
        {c: tuple(tuple(d) for d in ds) for c, ds in desig.items()}, {c: tuple(k) for c, k in children.items()},
        frozenset(inactive), status, frozenset(abstract),
        {p: {c: tuple(v) for c, v in m.items()} for p, m in props.items()}, supplements)


def _encode_set(cs: ConceptSet) -> list:
    return [cs.system, cs.version, list(cs.concepts) if cs.concepts is not None else None,
            [[f.property, f.op, f.value] for f in cs.filters], list(cs.value_sets)]


def _decode_set(data: list) -> ConceptSet:
    system, version, concepts, filters, vss = data
    return ConceptSet(system, version, tuple(concepts) if concepts is not None else None,
                      tuple(Filter(*f) for f in filters), tuple(vss))


def _encode_vs(vs: ValueSetDef) -> bytes:
    return orjson.dumps([
        vs.url, vs.version, vs.name, vs.title, vs.status, vs.package, [_encode_set(i) for i in vs.includes],
        [_encode_set(e) for e in vs.excludes], vs.inactive, vs.has_compose,
        {s: sorted(c) for s, c in vs.expansion.items()} if vs.expansion is not None else None,
        vs.expansion_complete])


def _decode_vs(raw: bytes) -> ValueSetDef:
    (url, version, name, title, status, package, includes, excludes, inactive, has_compose, expansion,
     complete) = orjson.loads(raw)
    return ValueSetDef(
        url, version, name, title, status, package, tuple(_decode_set(i) for i in includes),
        tuple(_decode_set(e) for e in excludes), inactive, has_compose,
        {s: frozenset(c) for s, c in expansion.items()} if expansion is not None else None, complete)


class Store:
    """Canonical resources by url (and version), kept as compressed blobs.

    A validation run touches a handful of value sets, so decoding all 3,000 on
    load would be wasted: only the index (url -> blob numbers, preferred first)
    and the blobs are pickled, and each entry is decoded once, on first use.
    """

    def __init__(self, kind: str):
        self.kind = kind  # "cs" | "vs"
        self.index: dict[str, int | tuple[int, ...]] = {}
        self.blobs: list[bytes] = []
        self.versions: list[str | None] = []
        self._decoded: dict[int, object] = {}

    def __getstate__(self):
        return (self.kind, self.index, self.blobs, self.versions)

    def __setstate__(self, state):
        self.kind, self.index, self.blobs, self.versions = state
        self._decoded = {}

    def _numbers(self, url: str) -> tuple[int, ...]:
        got = self.index.get(url)
        return () if got is None else (got,) if isinstance(got, int) else got

    def add(self, item, replace: bool = False) -> None:
        """Add one resource; the highest version is preferred for a bare url (first wins ties,
        unless ``replace``: a project's own resource overrides a package's)."""
        n = len(self.blobs)
        self.blobs.append(compress(_encode_cs(item) if self.kind == "cs" else _encode_vs(item)))
        self.versions.append(item.version)
        self._decoded[n] = item
        have = self._numbers(item.url)
        if replace:
            have = tuple(i for i in have if self.versions[i] != item.version)
            nums = (n,) + have
        elif have and _version_key(item.version) > _version_key(self.versions[have[0]]):
            nums = (n,) + have
        else:
            nums = have + (n,)
        self.index[item.url] = nums[0] if len(nums) == 1 else nums

    def copy(self) -> "Store":
        """A store sharing the blobs and decoded entries so far; additions stay in the copy."""
        other = Store(self.kind)
        other.index, other.blobs, other.versions = dict(self.index), list(self.blobs), list(self.versions)
        other._decoded = dict(self._decoded)
        return other

    def __contains__(self, url: str) -> bool:
        return url in self.index

    def __len__(self) -> int:
        return len(self.blobs)

    def get(self, url: str, version: str | None = None):
        """The preferred resource for url; with a version, that version (exact, then partial)."""
        nums = self._numbers(url)
        if not nums:
            return None
        if version is None:
            return self._item(nums[0])
        for n in nums:
            if self.versions[n] == version:
                return self._item(n)
        for n in nums:
            if versions_match(version, self.versions[n]):
                return self._item(n)
        return None

    def _item(self, n: int):
        item = self._decoded.get(n)
        if item is None:
            raw = decompress(self.blobs[n])
            item = _decode_cs(raw) if self.kind == "cs" else _decode_vs(raw)
            self._decoded[n] = item
        return item

    def all(self) -> Iterator:
        """Every preferred resource, one per url (decodes them all)."""
        for nums in self.index.values():
            yield self._item(nums if isinstance(nums, int) else nums[0])


#: A preset dictionary for the blobs: the strings every definition repeats.
_ZDICT = (b'"http://terminology.hl7.org/CodeSystem/v3-","http://terminology.hl7.org/CodeSystem/v2-",'
          b'"http://terminology.hl7.org/ValueSet/v3-","http://terminology.hl7.org/ValueSet/v2-",'
          b'"hl7.terminology.r5#7.0.1","hl7.fhir.r5.core#5.0.0","http://hl7.org/fhir/ValueSet/",'
          b'"http://terminology.hl7.org/CodeSystem/","http://terminology.hl7.org/ValueSet/","http://hl7.org/fhir/",'
          b'[["concept","is-a","active",true,false,null,"5.0.0",[]')


def compress(raw: bytes) -> bytes:
    z = zlib.compressobj(6, zdict=_ZDICT)
    return z.compress(raw) + z.flush()


def decompress(blob: bytes) -> bytes:
    z = zlib.decompressobj(zdict=_ZDICT)
    return z.decompress(blob) + z.flush()
