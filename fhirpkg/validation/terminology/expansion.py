"""Value set expansion as far as the packages allow: includes, excludes, imports, filters over
code system hierarchies and properties, and parts left open (grammars, server-only systems)."""
from __future__ import annotations


from fhirpkg.validation.terminology.systems import SERVER_SIDE
from fhirpkg.validation.terminology.compiled import (
    CodeSystemDef,
    ConceptSet,
    Expansion,
    Filter,
    OpenPart,
    ValueSetDef,
)
from fhirpkg.validation.terminology.grammars import GRAMMAR_SYSTEMS, M49_CLASSES
from fhirpkg.validation.terminology.building import ALWAYS_PROPS


class ValueSetExpansion:
    """Expansion and filters for ``Terminology`` (which holds the code systems, value sets and memos
    these methods read)."""

    # -- expansion ------------------------------------------------------------------------
    def expand(self, url: str) -> Expansion | None:
        """What is known of a value set's members; None when the value set is unknown."""
        vs = self.value_set(url)
        if vs is None:
            return None
        key = vs.versioned_url
        exp = self._memo.get(key)
        if exp is None:
            if key in self._expanding:  # an import cycle
                return Expansion(unknown=f"the value set {vs.url} imports itself")
            self._expanding.add(key)
            try:
                exp = self._expand(vs)
            finally:
                self._expanding.discard(key)
            self._memo[key] = exp
        return exp

    def _expand(self, vs: ValueSetDef) -> Expansion:
        if not vs.has_compose or not vs.includes:
            if vs.expansion is not None:
                return self._from_packaged(vs)
            return Expansion(unknown=f"the value set {vs.versioned_url} has neither a compose nor an expansion")
        exp = Expansion()
        codes: dict[str, set[str]] = {}
        for inc in vs.includes:
            self._include(inc, vs, exp, codes)
        excluded: dict[str, set[str]] = {}
        for exc in vs.excludes:
            part = Expansion()
            part_codes: dict[str, set[str]] = {}
            self._include(exc, vs, part, part_codes)
            for system, cs in part_codes.items():
                excluded.setdefault(system, set()).update(cs)
            for op in part.open:
                exp.open_excludes[op.system] = f"an exclude in {vs.versioned_url} cannot be listed: {op.reason}"
            if part.unknown:
                exp.open_excludes[exc.system or "*"] = part.unknown
        if vs.inactive is False:
            for system in list(codes):
                cs = self.code_system(system)
                if cs is not None and cs.inactive:
                    dropped = codes[system] & cs.inactive
                    if dropped:
                        exp.inactive_removed[system] = frozenset(dropped)
                        codes[system] -= dropped
        for system, cs in excluded.items():
            if system in codes:
                codes[system] -= cs
        exp.codes = {s: frozenset(c) for s, c in codes.items()}
        exp.excluded = {s: frozenset(c) for s, c in excluded.items()}
        if not exp.enumerable and vs.expansion is not None and vs.expansion_complete:
            return self._from_packaged(vs)
        return exp

    def _from_packaged(self, vs: ValueSetDef) -> Expansion:
        exp = Expansion(codes=dict(vs.expansion or {}))
        if not vs.expansion_complete:
            exp.unknown = f"the packaged expansion of {vs.versioned_url} is partial"
        return exp

    def _include(self, inc: ConceptSet, vs: ValueSetDef, exp: Expansion, codes: dict[str, set[str]]) -> None:
        """Add one include to ``codes`` (listed) or ``exp.open`` / ``exp.unknown``."""
        imported: list[Expansion] = []
        for ref in inc.value_sets:
            sub = self.expand(ref)
            if sub is None:
                exp.unknown = exp.unknown or f"the value set {ref} imported by {vs.versioned_url} is not available"
                return
            imported.append(sub)
        if inc.system is None:
            if not imported:
                return
            merged = imported[0]
            for other in imported[1:]:
                merged = _intersect(merged, other)
            _merge_into(exp, codes, merged)
            return
        system = inc.system
        part = self._system_part(system, inc, vs)
        for sub in imported:
            part = _intersect(part, sub)
        _merge_into(exp, codes, part)

    def _system_part(self, system: str, inc: ConceptSet, vs: ValueSetDef) -> Expansion:
        """The codes of one include over one system (no imports)."""
        cs = self.code_system(system, inc.version)
        fallback = {}
        if cs is None and inc.version:
            cs = self.code_system(system)
            if cs is not None:
                fallback = {system: (inc.version, cs.version)}
        if cs is not None and (cs.content == "supplement"
                               or (cs.content == "not-present" and system in GRAMMAR_SYSTEMS)):
            cs = None
        if inc.concepts is not None and not inc.filters:
            listed = set(inc.concepts)
            if cs is not None and cs.content == "complete":
                listed = self._known_codes(cs, listed)
            return Expansion(codes={system: frozenset(listed)}, version_fallbacks=fallback)
        if cs is None or cs.content != "complete":
            grammar = GRAMMAR_SYSTEMS.get(system)
            if grammar and grammar != "uri":
                regex = None
                for f in inc.filters:
                    if f.property in ("code", "concept") and f.op == "regex" and regex is None:
                        regex = f.value
                    elif grammar == "m49" and f.property == "class" and f.op == "=" and f.value in M49_CLASSES:
                        grammar = M49_CLASSES[f.value]
                    else:
                        return Expansion(open=[OpenPart(
                            system, f"the filter {f.property} {f.op} {f.value!r} on {system} is not supported offline",
                            "filter")])
                key = "grammar" if self._grammar_has_data(grammar) else "no-data"
                why = (f"{system} codes are checked by their grammar" if key == "grammar"
                       else f"the codes of {system} are not available offline")
                return Expansion(open=[OpenPart(system, why, key, grammar, regex)])
            why_key, why = self._why_not_listable(system, inc.version, cs)
            return Expansion(open=[OpenPart(system, why, why_key)])
        selected: set[str] | None = set(cs.concepts) if not inc.filters else None
        for f in inc.filters:
            got = self._filter(cs, f)
            if got is None:
                return Expansion(open=[OpenPart(
                    system, f"the filter {f.property} {f.op} {f.value!r} on {system} is not supported offline",
                    "filter")])
            selected = got if selected is None else selected & got
        if inc.concepts is not None:
            selected = (selected or set()) & set(inc.concepts)
        return Expansion(codes={system: frozenset(selected or ())}, version_fallbacks=fallback)

    def _known_codes(self, cs: CodeSystemDef, codes: set[str]) -> set[str]:
        if cs.case_sensitive is False:
            fold = self._fold(cs)
            return {fold.get(c.lower(), c) for c in codes if c.lower() in fold}
        return {c for c in codes if c in cs.concepts}

    def _why_not_listable(self, system: str, version: str | None, cs: CodeSystemDef | None) -> tuple[str, str]:
        """(reason key, sentence) for an include whose codes cannot be listed."""
        if cs is not None:
            if cs.content == "fragment":
                return "fragment", f"the code system {cs.versioned_url} is only a fragment"
            if cs.content == "example":
                return "example", f"the code system {cs.versioned_url} only has example content"
            if cs.content == "not-present":
                return "not-present", f"the code system {cs.versioned_url} does not include its codes"
            return cs.content, f"the code system {cs.versioned_url} has content '{cs.content}'"
        if system in GRAMMAR_SYSTEMS:
            if self._grammar_has_data(GRAMMAR_SYSTEMS[system]):
                return "grammar", f"{system} codes are checked by their grammar"
            return "no-data", f"the codes of {system} are not available offline"
        if system in SERVER_SIDE:
            return "server-side", f"{SERVER_SIDE[system]} is not available offline"
        return "unknown-system", f"the code system {system} is not in the loaded packages"

    def _grammar_has_data(self, grammar: str) -> bool:
        if grammar in ("iso-4217", "iso-3166", "iso-3166-2", "m49", "m49-country"):
            return self._iso_blob is not None
        if grammar == "iana-tz":
            return bool(self.time_zones)
        return True

    # -- filters ----------------------------------------------------------------------------
    def _descendants(self, cs: CodeSystemDef, code: str) -> set[str]:
        out: set[str] = set()
        todo = [code]
        while todo:
            c = todo.pop()
            for child in cs.children.get(c, ()):
                if child not in out:
                    out.add(child)
                    todo.append(child)
        return out

    def _ancestors(self, cs: CodeSystemDef, code: str) -> set[str]:
        parents: dict[str, set[str]] = {}
        for p, kids in cs.children.items():
            for k in kids:
                parents.setdefault(k, set()).add(p)
        out: set[str] = set()
        todo = [code]
        while todo:
            c = todo.pop()
            for p in parents.get(c, ()):
                if p not in out:
                    out.add(p)
                    todo.append(p)
        return out

    def _filter(self, cs: CodeSystemDef, f: Filter) -> set[str] | None:
        """The codes a filter selects, or None when the filter is not supported offline."""
        prop, op, value = f.property, f.op, f.value
        everything = set(cs.concepts)
        values = [v.strip() for v in value.split(",")] if op in ("in", "not-in") else [value]
        if prop in ("concept", "code"):
            if op == "is-a":
                return ({value} | self._descendants(cs, value)) if value in cs.concepts else set()
            if op == "descendent-of":
                return self._descendants(cs, value)
            if op == "is-not-a":
                return everything - ({value} | self._descendants(cs, value))
            if op == "generalizes":
                return ({value} | self._ancestors(cs, value)) if value in cs.concepts else set()
            if op == "child-of":
                return set(cs.children.get(value, ()))
            if op == "descendent-leaf":
                return {c for c in self._descendants(cs, value) if not cs.children.get(c)}
            if op == "=":
                return {value} & everything
            if op == "in":
                return set(values) & everything
            if op == "not-in":
                return everything - set(values)
            if op == "regex":
                rx = compile(value)
                return None if rx is None else {c for c in everything if rx.fullmatch(c)}
            return None
        if prop in ("parent", "child") and op in ("=", "in"):
            out: set[str] = set()
            for v in values:
                if prop == "parent":
                    out.update(cs.children.get(v, ()))
                else:
                    out.update(p for p, kids in cs.children.items() if v in kids)
            return out
        if prop in ("inactive",) and op == "=":
            return set(cs.inactive) if value == "true" else everything - cs.inactive
        if prop in ("notSelectable", "not-selectable", "abstract") and op in ("=", "not-in", "in"):
            if op == "=":
                return set(cs.abstract) if value == "true" else everything - cs.abstract
            wanted = {v == "true" for v in values}
            sel = {c for c in everything if (c in cs.abstract) in wanted}
            return sel if op == "in" else everything - sel
        table = cs.properties.get(prop)
        if prop == "status" and table is None:
            table = {c: (s,) for c, s in cs.status.items()}
        if table is None:
            if op == "exists":
                return set() if value == "true" else everything
            if cs.properties or prop in ALWAYS_PROPS:
                return set() if op in ("=", "in", "regex") else None
            return None
        if op == "=":
            if prop == "status" and value == "active":
                return everything - set(table)
            return {c for c, vals in table.items() if value in vals}
        if op == "in":
            return {c for c, vals in table.items() if set(vals) & set(values)}
        if op == "not-in":
            return everything - {c for c, vals in table.items() if set(vals) & set(values)}
        if op == "exists":
            have = set(table)
            return have if value == "true" else everything - have
        if op == "regex":
            rx = compile(value)
            return None if rx is None else {c for c, vals in table.items() if any(rx.fullmatch(v) for v in vals)}
        return None

    def _fold(self, cs: CodeSystemDef) -> dict[str, str]:
        key = cs.versioned_url
        fold = self._folded.get(key)
        if fold is None:
            fold = {}
            for c in cs.concepts:
                fold.setdefault(c.lower(), c)
            self._folded[key] = fold
        return fold


def _intersect(a: Expansion, b: Expansion) -> Expansion:
    """Members of both (imports inside one include intersect)."""
    out = Expansion(unknown=a.unknown or b.unknown, version_fallbacks={**a.version_fallbacks, **b.version_fallbacks})
    for system in set(a.codes) & set(b.codes):
        out.codes[system] = a.codes[system] & b.codes[system]
    b_open = {p.system: p for p in b.open}
    a_open = {p.system: p for p in a.open}
    for system, codes in a.codes.items():
        if system in b_open:  # listed on one side, open on the other: cannot tell
            out.open.append(b_open[system])
    for system, codes in b.codes.items():
        if system in a_open:
            out.open.append(a_open[system])
    for system in set(a_open) & set(b_open):
        out.open.append(a_open[system])
    return out


def _merge_into(exp: Expansion, codes: dict[str, set[str]], part: Expansion) -> None:
    for system, cs in part.codes.items():
        codes.setdefault(system, set()).update(cs)
    exp.open.extend(part.open)
    if part.unknown and not exp.unknown:
        exp.unknown = part.unknown
    for system, why in part.open_excludes.items():
        exp.open_excludes.setdefault(system, why)
    for system, removed in part.inactive_removed.items():
        exp.inactive_removed[system] = exp.inactive_removed.get(system, frozenset()) | removed
    exp.version_fallbacks.update(part.version_fallbacks)
