"""Validation: one module per layer, all yielding ``Issue``; this module runs them.

Layers, in the order a document meets them:
json (syntax and JSON rules) -> structure (StructureDefinitions, including
profiles and slicing) -> terminology (bindings) -> invariants (FHIRPath) ->
references -> narrative (XHTML).  The structure walker types every element once
and hands the typed nodes to the later layers.
"""
from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass
from itertools import chain
from typing import Iterable

from fhirpkg.fhir.definitions import Definitions
from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.jsonsource import Document
from fhirpkg.fhir.model import Node, ResourceFrame
from fhirpkg.validation import business_rules, json_rules, questionnaire_response, references
from fhirpkg.validation.structure import NATIVE_CONSTRAINTS, StructureWalker, WalkMemo

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
LAYERS = ("json", "structure", "terminology", "invariants", "references", "narrative", "rules")


@dataclass
class Options:
    profiles: tuple[str, ...] = ()  # validate every resource against these too (--profile)
    layers: frozenset = frozenset(LAYERS)
    allowed_extension_domains: tuple[str, ...] = ()
    allow_example_urls: bool = False
    #: HTML-like tags in strings are errors, not hints (the HL7 validator's -security-checks)
    security_checks: bool = False
    #: raw HTML in markdown: "ignore", "warning" or "error" (the HL7 validator's -html-in-markdown)
    html_in_markdown: str = "warning"
    #: read // and /* */ comments in JSON files as whitespace (the HL7 validator's allowComments)
    allow_comments: bool = False
    #: the type a RESTful reference URL names is the target's (the HL7 validator's -assumeValidRestReferences)
    assume_valid_rest_references: bool = False
    #: (resource type, profile URL): the ``global`` profiles of the ImplementationGuides given (--ig),
    #: which every resource of that type must also meet
    global_profiles: tuple[tuple[str, str], ...] = ()
    timings: bool = False  # keep per-layer time in Validator.layer_seconds
    #: Validating a package's own content: references and canonicals must resolve inside it.
    package_mode: bool = False


class Validator:
    """Validates documents against one set of loaded definitions; reuse it across files."""

    def __init__(self, defs: Definitions, options: Options | None = None,
                 resolver: references.Resolver | None = None):
        self.defs = defs
        self.options = options or Options()
        self.resolver = resolver or references.Resolver()
        self.layer_seconds: dict[str, float] = defaultdict(float)
        #: ElementDef id -> (the ElementDef, its non-native constraints); the entry holds the element,
        #: so its id is not reused by another while the entry lives
        self._constraints: dict[int, tuple] = {}
        #: (ElementDef id, node type, layers on) -> (the ElementDef, the positions of the layers that
        #: may look at such a node among those on)
        self._node_steps: dict[tuple, tuple] = {}
        self._walk_memo = WalkMemo()  # what walks work out about the definitions, for every resource
        self._engine = None
        self._invariants = None
        self._terminology_layer = None
        self._xhtml = None
        self._setup_layers()

    # optional layers are imported lazily: importing fhirpathpy costs start-up time
    def _setup_layers(self) -> None:
        layers = self.options.layers
        if "invariants" in layers:
            from fhirpkg.validation import fhirpath, invariants
            self._invariants = invariants
            self._engine_factory = fhirpath.FhirPathEngine
        if "terminology" in layers:
            from fhirpkg.validation.terminology import layer as term_layer
            self._terminology_layer = term_layer
        if "narrative" in layers:
            from fhirpkg.validation import xhtml
            self._xhtml = xhtml

    @property
    def engine(self):
        if self._engine is None and self._invariants is not None:
            term = self.defs.terminology
            self._engine = self._engine_factory(
                resolve=self.resolver.resolve,
                member_of=(term.member_of if term is not None else None),
                conforms_to=self._conforms_to,
                slice_matches=self._slice_matches,
                html_checks=(self._xhtml.html_checks if self._xhtml is not None else None),
                model="r5" if self.defs.fhir_version.startswith("5.") else "r4",
            )
        return self._engine

    def _slice_matches(self, value, profile_url: str, slice_name: str):
        prof = self.defs.get(profile_url)
        return None if prof is None else StructureWalker(self.defs).slices.matches_slice(value, prof, slice_name)

    def warm(self) -> None:
        """Load what every document may need (terminology, the FHIRPath engine) now: called
        before forking workers, so that they share it instead of each loading it."""
        _ = self.defs.terminology, self.engine

    def _conforms_to(self, resource: dict, profile_url: str):
        prof = self.defs.get(profile_url)
        if prof is None:
            return None
        return StructureWalker(self.defs).conforms(resource, prof)

    # --- one document ------------------------------------------------------------------
    def validate_document(self, doc: Document) -> list[Issue]:
        """All issues for one parsed document, located (file, line, column)."""
        issues: list[Issue] = list(doc.issues)
        if doc.ok:
            issues.extend(self.validate_resource(doc.value))
        return locate(doc, dedupe(issues))

    def validate_resource(self, resource, root_expr: str | None = None) -> list[Issue]:
        """Issues for one resource (a JSON value), with JSON locations but no line numbers."""
        if not isinstance(resource, dict):
            kind = "an array" if isinstance(resource, list) else "a " + type(resource).__name__
            return [Issue(Severity.FATAL, "structure",
                          f"The JSON is {kind}, not an object: a FHIR resource is a JSON object with a resourceType",
                          "json-not-resource")]
        rt = resource.get("resourceType")
        expr = root_expr or (rt if isinstance(rt, str) else "")
        timed = self.options.timings
        issues: list[Issue] = []
        layers = self.options.layers
        t0 = time.perf_counter()
        if "json" in layers:
            issues.extend(json_rules.check(resource, expr))
        t1 = time.perf_counter()
        nodes: list[Node] = []
        opts = self.options
        walker = StructureWalker(self.defs, nodes.append, opts.allowed_extension_domains, opts.allow_example_urls,
                                 opts.security_checks, opts.html_in_markdown, opts.global_profiles, self._walk_memo)
        frame = ResourceFrame(resource, rt if isinstance(rt, str) else "", expr, ())
        # the walk always runs: the other layers read its nodes, and an unknown or missing
        # resourceType is reported even when the structure layer is off
        walker.resource(frame)
        if isinstance(rt, str) and self.defs.is_resource_type(rt):
            self._profiles(walker, frame)
        if "structure" in layers:
            issues.extend(walker.issues)
        else:
            issues.extend(i for i in walker.issues if i.rule in ("resource-type-unknown", "resource-type-missing"))
        t2 = time.perf_counter()
        if timed:
            self.layer_seconds["json"] += t1 - t0
            self.layer_seconds["structure"] += t2 - t1
        self._node_layers(nodes, issues, timed)
        return issues

    def _profiles(self, walker: StructureWalker, frame: ResourceFrame) -> None:
        urls = []
        meta = frame.json.get("meta")
        if isinstance(meta, dict) and isinstance(meta.get("profile"), list):
            urls.extend((i, u) for i, u in enumerate(meta["profile"]) if isinstance(u, str))
        urls.extend((None, u) for u in self.options.profiles)
        urls.extend((None, u) for t, u in self.options.global_profiles if t == frame.type)
        seen = set()
        for i, url in urls:
            if url in seen:
                continue
            seen.add(url)
            prof = self.defs.get(url)
            where = f"{frame.expression}.meta.profile[{i}]" if i is not None else frame.expression
            loc = ("meta", "profile", i) if i is not None else ()
            if prof is None:
                walker.warning("structure", f"Profile reference '{url}' has not been checked because it could not be found",
                               "profile-unknown",
                               where, loc)
            elif prof.is_profile:
                walker.resource(frame, prof)
            elif prof.type != frame.type and prof.kind == "resource":
                walker.error("structure", f"The profile {url} is for {prof.type}, not {frame.type}", "profile-type",
                             where, loc)

    def _node_layers(self, nodes: list[Node], issues: list[Issue], timed: bool) -> None:
        """Run every later layer on the typed nodes the walker produced.

        A layer that fails on some odd input reports that as one issue on the element
        instead of stopping the validation (defence in depth: the structure layer has
        usually reported the odd input already).
        """
        layers = self.options.layers
        term = self.defs.terminology if "terminology" in layers else None
        term_layer = self._terminology_layer if term is not None else None
        term_types = term_layer.NODE_TYPES if term_layer is not None else frozenset()
        inv = self._invariants if "invariants" in layers else None
        engine = self.engine if inv is not None else None
        state = inv.RunState() if inv is not None else None
        package_mode = self.options.package_mode
        xhtml = self._xhtml if "narrative" in layers else None
        rules = business_rules.RULES if "rules" in layers else None
        resolver, defs = self.resolver, self.defs

        # Each layer runs only on the nodes ``might_look`` (below) lets through, and returns its issues
        # or () at once when it has nothing to check there: a generator per node and layer adds up.
        def terminology_of(node):
            return term_layer.check_node(term, node)

        def constraints_of(d):
            hit = self._constraints.get(id(d))
            if hit is None or hit[0] is not d:
                hit = self._constraints[id(d)] = (d, [c for c in d.constraints if c.key not in NATIVE_CONSTRAINTS])
            return hit[1]

        def invariants_of(node):
            return inv.check_node(engine, node, constraints_of(node.definition), state)

        assume_rest = self.options.assume_valid_rest_references

        def references_of(node):
            if node.type == "Reference":
                if package_mode:
                    return chain(references.check_reference(node, resolver, defs, assume_rest),
                                 references.check_package_reference(node, resolver))
                return references.check_reference(node, resolver, defs, assume_rest)
            if node.type == "canonical":
                if package_mode:
                    return references.check_canonical(node, resolver, defs)
                if isinstance(node.value, str) and node.value.startswith("#"):
                    return references.check_contained_canonical(node, resolver)
            return ()

        context_rules = business_rules.CONTEXT_RULES

        def rules_of(node):
            by_type = rules.get(node.type)
            in_context = context_rules.get(node.type)
            root = node.location == node.frame.location and node.definition.path == node.frame.type
            return all_rules(node, by_type or (), in_context or (), root) if by_type or in_context or root else ()

        def all_rules(node, by_type, in_context, root):
            for rule in by_type:
                yield from rule(node)
            for rule in in_context:
                yield from rule(node, defs, resolver)
            if root:
                for rule in business_rules.RESOURCE_RULES:
                    yield from rule(node)
                if node.frame.type == "QuestionnaireResponse" and isinstance(node.value, dict):
                    yield from questionnaire_response.check(node.value, resolver, node.expression,
                                                            node.location, defs.canonicals)

        def narrative_of(node):
            return xhtml.check_node(node) if isinstance(node.value, str) else ()

        steps = [(name, fn) for name, fn, on in (
            ("terminology", terminology_of, term_layer is not None),
            ("invariants", invariants_of, inv is not None),
            ("references", references_of, "references" in layers),
            ("rules", rules_of, rules is not None),
            ("narrative", narrative_of, xhtml is not None)) if on]
        if timed:  # two clock reads per node and layer add up: only when asked for
            steps = [(name, _timed(fn, name, self.layer_seconds)) for name, fn in steps]
        config = tuple(name for name, _ in steps)

        def might_look(name, d, type_):
            """Whether a layer may have something to check on a node of this element and type: the
            one place these tests are made (the layers' functions above rely on them)."""
            if name == "terminology":
                return d.binding is not None or type_ in term_types
            if name == "invariants":
                return bool(constraints_of(d))
            if name == "references":
                return type_ in ("Reference", "canonical")
            if name == "rules":  # by type, by context, or a resource root (an element path without '.')
                return type_ in rules or type_ in context_rules or "." not in d.path
            if name == "narrative":
                return type_ == "xhtml"
            return True

        memo = self._node_steps
        for node in nodes:
            d = node.definition
            key = (id(d), node.type, config)
            hit = memo.get(key)
            if hit is None or hit[0] is not d:
                hit = memo[key] = (d, tuple(n for n, (name, _) in enumerate(steps) if might_look(name, d, node.type)))
            for n in hit[1]:
                name, fn = steps[n]
                try:
                    issues.extend(fn(node))
                except Exception as e:  # noqa: BLE001 - one odd element must not stop the run
                    issues.append(Issue(Severity.WARNING, "processing",
                                        f"The {name} checks could not be completed here ({type(e).__name__}: "
                                        f"{str(e)[:200]})", "layer-failed", node.expression, location=node.location))


def _timed(fn, name: str, seconds: dict):
    """``fn`` with its time (issues included) added to ``seconds[name]``."""
    def run(node):
        t = time.perf_counter()
        try:
            yield from fn(node)
        finally:
            seconds[name] += time.perf_counter() - t
    return run


def dedupe(issues: Iterable[Issue]) -> list[Issue]:
    """Drop repeats (a profile walk re-finds what the base walk found)."""
    seen = set()
    out = []
    for i in issues:
        if " at 0x" in i.message:  # an engine's object repr would make reports differ run to run
            i = i.at(message=_ADDRESS.sub("", i.message))
        key = (i.severity, i.rule, i.expression, i.message)
        if key not in seen:
            seen.add(key)
            out.append(i)
    return out


def locate(doc: Document, issues: list[Issue]) -> list[Issue]:
    """Fill in file, line and column; the position scan runs only if something needs it."""
    out = []
    for i in issues:
        changes = {}
        if i.line is None:
            changes["line"], changes["column"] = doc.locate(i.location)
        if not i.file:
            changes["file"] = doc.file
        out.append(i.at(**changes) if changes else i)
    return out
