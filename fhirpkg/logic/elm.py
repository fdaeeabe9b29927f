"""An evaluator for the ELM JSON that the official CQL-to-ELM translator writes (FHIR 4.0.1 model).

Why our own: ``fhirpkg apply`` must run offline, without a JVM, in well under a second per patient.
Each ELM node is compiled once into a Python closure (a :class:`Library` compiles a definition on
first use and keeps it), so evaluating a patient walks no JSON.  Values follow CQL's three-valued
logic: ``None`` is null.  FHIRHelpers functions are implemented natively by name (they are the
FHIR-to-CQL type mapping: ToConcept, ToCode, ToString, ToDateTime, ToInterval, ...), so FHIRHelpers'
own ELM is not needed.  A node type the evaluator does not implement raises :class:`UnsupportedElm`
naming it and where it is (``locator`` line:col, else ``localId``, and the definition).
"""
from __future__ import annotations

from fhirpkg.errors import UnsupportedElm
from fhirpkg.logic import cqltypes as t
from fhirpkg.logic import runtime as rt
from fhirpkg.logic.cqltypes import Code, Concept, DateTime, Interval, Quantity
from fhirpkg.logic.runtime import Choice, Context, Data, ValueSets, equal, equivalent, compare, distinct, unwrap

__all__ = ["Library", "load", "Context", "Data", "ValueSets", "UnsupportedElm", "SUPPORTED", "Choice", "Code", "Concept",
           "DateTime", "Interval", "Quantity"]


def _and(a, b):
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def _or(a, b):
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


def _not(a):
    return None if a is None else not a


def _as_list(v) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _cmp(op):
    def fn(a, b, precision=None):
        c = compare(a, b, precision)
        return None if c is None else op(c)
    return fn


_COMPARISONS = {
    "Less": _cmp(lambda c: c < 0), "Greater": _cmp(lambda c: c > 0),
    "LessOrEqual": _cmp(lambda c: c <= 0), "GreaterOrEqual": _cmp(lambda c: c >= 0),
    "Before": _cmp(lambda c: c < 0), "After": _cmp(lambda c: c > 0),
    "SameOrBefore": _cmp(lambda c: c <= 0), "SameOrAfter": _cmp(lambda c: c >= 0), "SameAs": _cmp(lambda c: c == 0),
}


def _in_list(x, items):
    if items is None:
        return False
    if isinstance(items, Interval):
        return _in_interval(x, items)
    if x is None:
        return any(i is None for i in items)
    results = [equal(x, i) for i in items]
    return True if True in results else (None if None in results else False)


def _in_interval(x, iv: Interval):
    if x is None or iv is None:
        return None
    lo = True if iv.low is None and iv.low_closed else None if iv.low is None else (
        _COMPARISONS["GreaterOrEqual" if iv.low_closed else "Greater"](x, iv.low))
    hi = True if iv.high is None and iv.high_closed else None if iv.high is None else (
        _COMPARISONS["LessOrEqual" if iv.high_closed else "Less"](x, iv.high))
    return _and(lo, hi)


def _aggregate(pick):
    def fn(items):
        vals = [v for v in _as_list(items) if v is not None]
        if not vals:
            return None
        best = vals[0]
        for v in vals[1:]:
            c = compare(v, best)
            if c is not None and pick(c):
                best = v
        return best
    return fn


#: Operators with a fixed number of evaluated operands: name -> function of the operand values.
_UNARY = {
    "Not": _not, "IsNull": lambda a: a is None, "IsTrue": lambda a: a is True, "IsFalse": lambda a: a is False,
    "Exists": lambda a: any(v is not None for v in _as_list(a)),
    "ToList": lambda a: [] if a is None else [a],
    "SingletonFrom": lambda a: None if not a else (a[0] if len(a) == 1 else rt_error("SingletonFrom: more than one")),
    "Flatten": lambda a: None if a is None else [y for x in a for y in (x if isinstance(x, list) else [x])],
    "Distinct": lambda a: None if a is None else distinct(a),
    "Count": lambda a: len([v for v in _as_list(a) if v is not None]),
    "Start": lambda a: a.low if isinstance(a, Interval) else None,
    "End": lambda a: a.high if isinstance(a, Interval) else None,
    "ToString": rt.to_string, "ToConcept": rt.to_concept, "ToDateTime": rt.to_datetime, "ToDate": rt.to_date,
    "ToBoolean": lambda a: {"true": True, "false": False}.get(str(a).lower()) if a is not None else None,
    "ToInteger": lambda a: int(a) if a is not None else None,
    "ToDecimal": lambda a: a, "ToQuantity": lambda a: a,
    "DateFrom": lambda a: DateTime(a.parts[:3], True) if isinstance(a, DateTime) else None,
    "Negate": lambda a: None if a is None else -a,
    "Upper": lambda a: None if a is None else a.upper(), "Lower": lambda a: None if a is None else a.lower(),
    "Length": lambda a: None if a is None else len(a),
}
_BINARY = {
    "And": _and, "Or": _or,
    "Xor": lambda a, b: None if a is None or b is None else a != b,
    "Implies": lambda a, b: _or(_not(a), b),
    "Equal": equal, "NotEqual": lambda a, b: _not(equal(a, b)), "Equivalent": equivalent,
    "In": _in_list, "Contains": lambda a, b: _in_list(b, a),
    "Add": lambda a, b: None if a is None or b is None else a + b,
    "Subtract": lambda a, b: None if a is None or b is None else a - b,
    "Multiply": lambda a, b: None if a is None or b is None else a * b,
    "StartsWith": lambda a, b: None if a is None or b is None else a.startswith(b),
    "EndsWith": lambda a, b: None if a is None or b is None else a.endswith(b),
}
_LISTS = {
    "Union": lambda a, b: None if a is None and b is None else distinct(_as_list(a) + _as_list(b)),
    "Intersect": lambda a, b: None if a is None or b is None else [x for x in distinct(a) if _in_list(x, b)],
    "Concatenate": lambda a, b: None if a is None or b is None else a + b,
    "Except": lambda a, b: None if a is None else [x for x in distinct(a) if not _in_list(x, b or [])],
}
_AGGREGATES = {
    "Min": _aggregate(lambda c: c < 0), "Max": _aggregate(lambda c: c > 0),
    "First": lambda a: a[0] if a else None, "Last": lambda a: a[-1] if a else None,
    "AllTrue": lambda a: all(v is not False for v in _as_list(a)),
    "AnyTrue": lambda a: any(v is True for v in _as_list(a)),
}


def rt_error(msg: str):
    raise UnsupportedElm(msg)


#: The ELM node types this evaluator implements (docs/logic.md lists them).
SUPPORTED = sorted(set(_UNARY) | set(_BINARY) | set(_LISTS) | set(_AGGREGATES) | set(_COMPARISONS) | {
    "Literal", "Null", "List", "Tuple", "Instance", "ExpressionRef", "FunctionRef", "OperandRef", "ParameterRef",
    "ValueSetRef", "CodeRef", "ConceptRef", "Code", "Concept", "Retrieve", "Query", "AliasRef",
    "QueryLetRef", "IdentifierRef", "Property", "As", "Is", "Coalesce", "If", "Case", "InValueSet", "AnyInValueSet", "Interval",
    "Date", "DateTime", "Today", "Now", "Quantity", "Indexer", "Split"})


class Library:
    """One translated library: its definitions indexed by name, each compiled on first use."""

    def __init__(self, elm: dict):
        lib = elm.get("library") if isinstance(elm, dict) else None
        if not isinstance(lib, dict):
            raise UnsupportedElm("not ELM JSON: no 'library' object")
        ident = lib.get("identifier") or {}
        self.name = ident.get("id", "")
        self.version = ident.get("version", "")
        self.statements: dict[str, dict] = {}
        self.functions: dict[str, list[dict]] = {}
        for d in (lib.get("statements") or {}).get("def") or []:
            if d.get("type") == "FunctionDef":
                self.functions.setdefault(d["name"], []).append(d)
            else:
                self.statements[d["name"]] = d
        self.codesystems = {d["name"]: d for d in (lib.get("codeSystems") or {}).get("def") or []}
        self.valuesets = {d["name"]: d for d in (lib.get("valueSets") or {}).get("def") or []}
        self.codes = {d["name"]: d for d in (lib.get("codes") or {}).get("def") or []}
        self.concepts = {d["name"]: d for d in (lib.get("concepts") or {}).get("def") or []}
        self.parameters = {d["name"]: d for d in (lib.get("parameters") or {}).get("def") or []}
        self.includes = {d.get("localIdentifier"): d for d in (lib.get("includes") or {}).get("def") or []}
        self._compiled: dict[str, rt.Fn] = {}
        self._functions: dict[int, rt.Fn] = {}
        self._where = ""

    def defines(self, name: str) -> bool:
        return name in self.statements

    def evaluate(self, name: str, ctx: Context):
        """The value of the named definition for this context's patient (memoised per context)."""
        if name in ctx.memo:
            return ctx.memo[name]
        fn = self._compiled.get(name)
        if fn is None:
            d = self.statements.get(name)
            if d is None:
                raise UnsupportedElm(f"library {self.name} has no definition named {name!r}")
            self._where = name
            fn = self._compiled[name] = self.compile(d.get("expression"))
        ctx.memo[name] = fn(ctx)
        return ctx.memo[name]

    # ------------------------------------------------------------------------- compiler
    def unsupported(self, node: dict, what: str = "") -> UnsupportedElm:
        where = node.get("locator") or (f"localId {node['localId']}" if node.get("localId") else "no locator")
        return UnsupportedElm(f"unsupported ELM node {what or node.get('type')} at {where} "
                              f"(in definition {self._where!r} of library {self.name})")

    def compile(self, node) -> rt.Fn:
        if node is None:
            return lambda ctx: None
        kind = node.get("type")
        if kind in _UNARY:
            f, a = _UNARY[kind], self.compile(self._operand(node))
            return lambda ctx: f(a(ctx))
        if kind in _BINARY:
            f = _BINARY[kind]
            a, b = (self.compile(o) for o in node["operand"])
            if kind in ("And", "Or"):  # short-circuit where CQL's answer is already known
                stop = False if kind == "And" else True
                return lambda ctx: stop if (x := a(ctx)) is stop else f(x, b(ctx))
            return lambda ctx: f(a(ctx), b(ctx))
        if kind in _LISTS:
            f = _LISTS[kind]
            ops = [self.compile(o) for o in node["operand"]]

            def lists(ctx):
                acc = ops[0](ctx)
                for o in ops[1:]:
                    acc = f(acc, o(ctx))
                return acc
            return lists
        if kind in _AGGREGATES:
            f, a = _AGGREGATES[kind], self.compile(node.get("source") or self._operand(node))
            return lambda ctx: f(a(ctx))
        if kind in _COMPARISONS:
            f, precision = _COMPARISONS[kind], node.get("precision")
            a, b = (self.compile(o) for o in node["operand"])
            return lambda ctx: f(a(ctx), b(ctx), precision)
        method = getattr(self, "c_" + str(kind), None)
        if method is None:
            raise self.unsupported(node)
        return method(node)

    @staticmethod
    def _operand(node):
        op = node.get("operand")
        return op[0] if isinstance(op, list) else op

    # leaves
    def c_Literal(self, node):
        vt, v = t_name(node.get("valueType")), node.get("value")
        if vt == "Boolean":
            value = v == "true"
        elif vt == "Integer":
            value = int(v)
        elif vt == "Decimal":
            from decimal import Decimal
            value = Decimal(v)
        else:
            value = v
        return lambda ctx: value

    def c_Null(self, node):
        return lambda ctx: None

    def c_List(self, node):
        items = [self.compile(e) for e in node.get("element") or []]
        return lambda ctx: [i(ctx) for i in items]

    def c_Tuple(self, node):
        items = [(e["name"], self.compile(e["value"])) for e in node.get("element") or []]
        return lambda ctx: {n: f(ctx) for n, f in items}

    c_Instance = c_Tuple

    def c_Quantity(self, node):
        q = Quantity(node.get("value"), node.get("unit"))
        return lambda ctx: q

    def c_Interval(self, node):
        lo, hi = self.compile(node.get("low")), self.compile(node.get("high"))
        lc, hc = node.get("lowClosed", True), node.get("highClosed", True)
        return lambda ctx: Interval(lo(ctx), hi(ctx), lc, hc)

    def c_Date(self, node):
        return self._date(node, ("year", "month", "day"), True)

    def c_DateTime(self, node):
        return self._date(node, ("year", "month", "day", "hour", "minute", "second", "millisecond"), False)

    def _date(self, node, names, date_only):
        parts = [self.compile(node[n]) for n in names if n in node]

        def make(ctx):
            vals = [p(ctx) for p in parts]
            return None if any(v is None for v in vals) else DateTime(tuple(int(v) for v in vals), date_only)
        return make

    def c_Today(self, node):
        return lambda ctx: t.today()

    def c_Now(self, node):
        return lambda ctx: ctx.now or t.now()

    # references
    def c_ExpressionRef(self, node):
        name = node["name"]
        if node.get("libraryName") not in (None, self.name):
            raise self.unsupported(node, f"ExpressionRef into library {node['libraryName']}")
        if name not in self.statements:
            raise self.unsupported(node, f"ExpressionRef to undefined {name!r}")
        return lambda ctx: self.evaluate(name, ctx)

    def c_ParameterRef(self, node):
        name = node["name"]
        default = self.compile((self.parameters.get(name) or {}).get("default"))
        return lambda ctx: ctx.parameters[name] if name in ctx.parameters else default(ctx)

    def c_OperandRef(self, node):
        name = node["name"]
        return lambda ctx: ctx.scope.get(name)

    def c_AliasRef(self, node):
        name = node["name"]
        return lambda ctx: ctx.scope.get(name)

    c_QueryLetRef = c_AliasRef

    def c_IdentifierRef(self, node):
        """A name in a sort clause: an alias, or a property of the item being sorted."""
        name = node["name"]

        def ident(ctx):
            if name in ctx.scope:
                return ctx.scope[name]
            return rt.flatten_property(ctx.scope.get("$this"), name)
        return ident

    def c_ValueSetRef(self, node):
        d = self.valuesets.get(node["name"])
        if d is None:
            raise self.unsupported(node, f"ValueSetRef to undefined {node['name']!r}")
        url = d["id"]
        return lambda ctx: ("valueset", url)

    def _code(self, d) -> Code:
        cs = self.codesystems.get((d.get("codeSystem") or {}).get("name"), {})
        return Code(d.get("id") or d.get("code"), cs.get("id"), cs.get("version"), d.get("display"))

    def c_CodeRef(self, node):
        d = self.codes.get(node["name"])
        if d is None:
            raise self.unsupported(node, f"CodeRef to undefined {node['name']!r}")
        code = self._code(d)
        return lambda ctx: code

    def c_Code(self, node):
        cs = self.codesystems.get((node.get("system") or {}).get("name"), {})
        code = Code(node.get("code"), cs.get("id"), cs.get("version"), node.get("display"))
        return lambda ctx: code

    def c_ConceptRef(self, node):
        d = self.concepts.get(node["name"])
        if d is None:
            raise self.unsupported(node, f"ConceptRef to undefined {node['name']!r}")
        concept = Concept(tuple(self._code(self.codes[c["name"]]) for c in d.get("code") or []), d.get("display"))
        return lambda ctx: concept

    def c_Concept(self, node):
        codes = [self.compile(c) for c in node.get("code") or []]
        display = node.get("display")
        return lambda ctx: Concept(tuple(c(ctx) for c in codes), display)

    # properties and types
    def c_Property(self, node):
        path = node["path"]
        steps = path.split(".")
        if "scope" in node:
            scope = node["scope"]

            def source(ctx):
                return ctx.scope.get(scope)
        else:
            source = self.compile(node.get("source"))

        def prop(ctx):
            v = source(ctx)
            for s in steps:
                if v is None:
                    return None
                v = rt.flatten_property(v, s)
            return v
        return prop

    def c_As(self, node):
        a = self.compile(node.get("operand"))
        qname = node.get("asType") or (node.get("asTypeSpecifier") or {}).get("name")
        if qname is None:
            spec = node.get("asTypeSpecifier") or {}
            if spec.get("type") == "ListTypeSpecifier":
                return a
            raise self.unsupported(node, "As with a " + str(spec.get("type")))

        def as_(ctx):
            v = a(ctx)
            if v is None:
                return None
            if isinstance(v, list):
                return [unwrap(x) for x in v if rt.is_type(x, qname)]
            return unwrap(v) if rt.is_type(v, qname) else None
        return as_

    def c_Is(self, node):
        a = self.compile(node.get("operand"))
        qname = node.get("isType") or (node.get("isTypeSpecifier") or {}).get("name")
        return lambda ctx: (v := a(ctx)) is not None and rt.is_type(v, qname)

    # conditionals
    def c_Coalesce(self, node):
        ops = [self.compile(o) for o in node["operand"]]

        def coalesce(ctx):
            for o in ops:
                v = o(ctx)
                if isinstance(v, list) and len(ops) == 1:
                    return next((x for x in v if x is not None), None)
                if v is not None:
                    return v
            return None
        return coalesce

    def c_If(self, node):
        c, a, b = self.compile(node["condition"]), self.compile(node["then"]), self.compile(node["else"])
        return lambda ctx: a(ctx) if c(ctx) is True else b(ctx)

    def c_Case(self, node):
        comparand = self.compile(node["comparand"]) if "comparand" in node else None
        items = [(self.compile(i["when"]), self.compile(i["then"])) for i in node.get("caseItem") or []]
        other = self.compile(node.get("else"))

        def case(ctx):
            c = comparand(ctx) if comparand else None
            for w, th in items:
                if (equal(c, w(ctx)) if comparand else w(ctx)) is True:
                    return th(ctx)
            return other(ctx)
        return case

    def c_Split(self, node):
        a, sep = self.compile(node.get("stringToSplit")), self.compile(node.get("separator"))

        def split(ctx):
            text, by = a(ctx), sep(ctx)
            if text is None:
                return None
            return [text] if not by else text.split(by)
        return split

    def c_Indexer(self, node):
        a, i = (self.compile(o) for o in node["operand"])

        def index(ctx):
            items, n = a(ctx), i(ctx)
            return items[n] if isinstance(items, list) and isinstance(n, int) and 0 <= n < len(items) else None
        return index

    # terminology
    def c_InValueSet(self, node):
        code = self.compile(node.get("code"))
        vs = self._valueset(node)
        return lambda ctx: None if (v := code(ctx)) is None else ctx.valuesets.contains(vs(ctx)[1], v)

    def c_AnyInValueSet(self, node):
        codes = self.compile(node.get("codes"))
        vs = self._valueset(node)
        return lambda ctx: any(ctx.valuesets.contains(vs(ctx)[1], c) for c in _as_list(codes(ctx)))

    def _valueset(self, node):
        ref = node.get("valueset") or node.get("valuesetExpression")
        if isinstance(ref, dict) and "type" not in ref and "name" in ref:
            ref = {**ref, "type": "ValueSetRef"}  # ELM JSON leaves out the type where the schema fixes it
        if not isinstance(ref, dict) or ref.get("type") != "ValueSetRef":
            raise self.unsupported(node, f"{node.get('type')} without a ValueSetRef")
        return self.compile(ref)

    # functions
    def c_FunctionRef(self, node):
        name, lib = node["name"], node.get("libraryName")
        args = [self.compile(o) for o in node.get("operand") or []]
        if lib == "FHIRHelpers" or (lib is None and name not in self.functions and name in rt.FHIR_HELPERS):
            f = rt.FHIR_HELPERS.get(name)
            if f is None or len(args) != 1:
                raise self.unsupported(node, f"FHIRHelpers.{name}")
            a = args[0]
            return lambda ctx: f(a(ctx))
        if lib not in (None, self.name):
            raise self.unsupported(node, f"FunctionRef into library {lib}")
        fdef = self._overload(node, len(args))
        names = [o["name"] for o in fdef.get("operand") or []]
        key = id(fdef)
        where = self._where

        def call(ctx):
            body = self._functions.get(key)
            if body is None:
                self._where = f"{where} -> {name}"
                body = self._functions[key] = self.compile(fdef.get("expression"))
            saved = ctx.scope
            ctx.scope = {**saved, **{n: a(ctx) for n, a in zip(names, args)}}
            try:
                return body(ctx)
            finally:
                ctx.scope = saved
        return call

    def _overload(self, node, arity):
        candidates = [d for d in self.functions.get(node["name"], []) if len(d.get("operand") or []) == arity]
        if not candidates:
            raise self.unsupported(node, f"FunctionRef to undefined {node['name']!r}/{arity}")
        if len(candidates) > 1 and node.get("signature"):
            want = [s.get("name") for s in node["signature"]]
            for d in candidates:
                if [(o.get("operandTypeSpecifier") or {}).get("name") for o in d["operand"]] == want:
                    return d
        if len(candidates) > 1:
            raise self.unsupported(node, f"FunctionRef to overloaded {node['name']!r} without a matching signature")
        if candidates[0].get("external"):
            raise self.unsupported(node, f"external function {node['name']!r}")
        return candidates[0]

    # data
    def c_Retrieve(self, node):
        rtype = rt.type_name(node.get("dataType"))
        if not node.get("dataType", "").startswith(rt.FHIR):
            raise self.unsupported(node, f"Retrieve of {node.get('dataType')}")
        for k in ("context", "dateProperty", "dateRange", "dateLowProperty", "dateHighProperty", "include",
                  "codeFilter", "dateFilter", "otherFilter"):
            if node.get(k):
                raise self.unsupported(node, f"Retrieve with {k}")
        codes = self.compile(node["codes"]) if node.get("codes") else None
        path = node.get("codeProperty") or rt.PRIMARY_CODE.get(rtype)
        comparator = node.get("codeComparator") or "in"
        if codes is not None and path is None:
            raise self.unsupported(node, f"Retrieve of {rtype} by code without a code property")
        if comparator not in ("in", "~", "="):
            raise self.unsupported(node, f"Retrieve with codeComparator {comparator!r}")

        def retrieve(ctx):
            items = ctx.data.by_type.get(rtype, [])
            if codes is None:
                return list(items)
            want = codes(ctx)
            if isinstance(want, tuple) and want[:1] == ("valueset",):
                return [r for r in items if ctx.valuesets.contains(want[1], _code_value(r, path))]
            want = [w for w in _as_list(want) if w is not None]
            return [r for r in items if any(equivalent(rt.to_concept(_code_value(r, path)), w) for w in want)]
        return retrieve

    def c_Query(self, node):
        sources = [(s["alias"], self.compile(s["expression"])) for s in node.get("source") or []]
        lets = [(d["identifier"], self.compile(d["expression"])) for d in node.get("let") or []]
        rels = []
        for r in node.get("relationship") or []:
            if r.get("type") not in ("With", "Without"):
                raise self.unsupported(r)
            rels.append((r["type"] == "With", r["alias"], self.compile(r["expression"]), self.compile(r["suchThat"])))
        where = self.compile(node["where"]) if node.get("where") else None
        ret = node.get("return")
        ret_fn = self.compile(ret["expression"]) if ret else None
        ret_distinct = ret.get("distinct", True) if ret else False
        if node.get("aggregate"):
            raise self.unsupported(node, "Query with an aggregate clause")
        sort = self._sort(node.get("sort"))

        def query(ctx):
            values = [s(ctx) for _, s in sources]
            single = len(sources) == 1 and not isinstance(values[0], list)
            if single and values[0] is None:
                return None
            rows = [{}]
            for (alias, _), v in zip(sources, values):
                rows = [{**r, alias: x} for r in rows for x in _as_list(v)]
            out = []
            saved = ctx.scope
            try:
                for row in rows:
                    ctx.scope = {**saved, **row}
                    for name, f in lets:
                        ctx.scope[name] = f(ctx)
                    if not all(self._related(ctx, *r) for r in rels):
                        continue
                    if where is not None and where(ctx) is not True:
                        continue
                    out.append(ret_fn(ctx) if ret_fn else (row[sources[0][0]] if len(sources) == 1 else row))
            finally:
                ctx.scope = saved
            if ret_distinct:
                out = distinct(out)
            if sort:
                out = sort(out, ctx)
            if single:
                return out[0] if out else None
            return out
        return query

    @staticmethod
    def _related(ctx, is_with, alias, expr, such_that):
        found = False
        saved = ctx.scope
        for x in _as_list(expr(ctx)):
            ctx.scope = {**saved, alias: x}
            if such_that(ctx) is True:
                found = True
                break
        ctx.scope = saved
        return found if is_with else not found

    def _sort(self, sort):
        if not sort:
            return None
        keys = []
        for by in sort.get("by") or []:
            desc = by.get("direction", "asc").startswith("desc")
            if by.get("type") == "ByDirection":
                keys.append((None, desc))
            elif by.get("type") == "ByExpression":
                keys.append((self.compile(by["expression"]), desc))
            elif by.get("type") == "ByColumn":
                path = by["path"]
                keys.append((lambda ctx, p=path: rt.flatten_property(ctx.scope.get("$this"), p), desc))
            else:
                raise self.unsupported(by)

        def run(items, ctx):
            import functools

            def value(item, f):
                if f is None:
                    return item
                saved = ctx.scope
                ctx.scope = {**saved, "$this": item}
                try:
                    return f(ctx)
                finally:
                    ctx.scope = saved

            def cmp(x, y):
                for f, desc in keys:
                    a, b = value(x, f), value(y, f)
                    if a is None or b is None:  # nulls first, as CQL sorts them
                        c = 0 if a is None and b is None else (-1 if a is None else 1)
                    else:
                        c = compare(a, b) or 0
                    if c:
                        return -c if desc else c
                return 0
            return sorted(items, key=functools.cmp_to_key(cmp))
        return run


def t_name(qname) -> str:
    return rt.type_name(qname)


def _code_value(resource: dict, path: str):
    v = resource
    for step in path.split("."):
        v = rt.flatten_property(v, step)
        if v is None:
            return None
    return v


def load(elm: dict) -> Library:
    """A library from its ELM JSON."""
    return Library(elm)

