"""Strategies and checks shared by the property tests and the bounded fuzz runs.

Inputs are built three ways: JSON values from scratch (``json_values``), valid resources
from the seed corpus with a few structural mutations (``mutated_resources``: the way to
reach the deep validation layers), and seed bytes with byte-level mutations
(``mutated_bytes``: the way to reach the reader).  Values come from a vocabulary of
known troublemakers (``NASTY_STRINGS``, ``nasty_numbers``, FHIR-shaped snippets) mixed
with arbitrary ones.
"""
from __future__ import annotations

import collections
import contextlib
import copy
import json
import re
import resource
from decimal import Decimal
from pathlib import Path

from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
SEEDS = sorted((CORPUS / "seeds").glob("*.json"))
CRASHERS = HERE / "crashers"

XHTML_NS = "http://www.w3.org/1999/xhtml"

#: Executions per kind of input, printed at the end of the session (docs/reliability.md quotes them).
COUNTS: collections.Counter = collections.Counter()

NASTY_STRINGS = [
    "", " ", "\t\n", "\u00a0", "\ufeff", "\u200b", "\u202e", "\U0001f600", "\ufffd", "\x00", "\x1b[31m", "\\",
    '"', "'", "<", "&", "&amp;", "&nbsp;", "]]>", "%s%s%n", "{0}", "${jndi:ldap://x}", "$this", "%resource",
    "../../etc/passwd", "/", "#", "#x", "urn:uuid:", "urn:uuid:1e3c5b6e-7a4f-4d2c-9f0e-111111111111", "urn:oid:1.2",
    "http://", "http://example.org/fhir/Patient/p1", "http://example.org/fhir/Patient/p1/_history/1", "Patient/",
    "Patient/p1", "Patient/1", "Patient/p1|1.0", "http://hl7.org/fhir/StructureDefinition/Patient",
    "http://hl7.org/fhir/StructureDefinition/Patient|5.0.0", "http://example.org/cs|", "|", "||",
    "javascript:alert(1)", "data:text/html,<script>x</script>", "2024-02-30", "2024-13-01T25:61:61Z",
    "0000-00-00", "9999-12-31T23:59:59.999999999+14:00", "-1", "1e999", "NaN", "Infinity", "0x1F", "true",
    "null", "a" * 65, "x" * 5000, "\u0130", "ß", "ǅ", "İstanbul", "\U0001f9ec" * 10,
    "resourceType", "contained", "extension", "modifierExtension", "_id", "div", "value[x]",
    "where(true).exists()", "iif(", "%`ext-x`", "$index", "(", ")" * 50, "'", "\\u0000",
]
NASTY_KEYS = ["resourceType", "id", "meta", "text", "contained", "extension", "modifierExtension", "url", "value",
              "valueString", "valueQuantity", "valueReference", "_id", "_status", "status", "reference", "coding",
              "system", "code", "div", "fhir_comments", "", " ", "__proto__", "constructor", "a.b", "x[0]",
              "@context", "\U0001f600", "action", "definitionCanonical", "relatedArtifact", "entry", "resource",
              "request", "fullUrl", "item", "linkId", "answer", "valueDecimal", "valueInteger", "valueBoolean",
              "valueDateTime", "effectiveDateTime", "subject", "encounter", "identifier", "display"]
XHTML_ELEMENTS = ["p", "b", "i", "a", "img", "table", "tr", "td", "th", "tbody", "ul", "ol", "li", "div", "span",
                  "br", "h1", "pre", "code", "sub", "sup", "script", "iframe", "object", "embed", "form", "input",
                  "style", "link", "meta", "base", "svg", "math", "button", "textarea", "video", "audio", "frame",
                  "applet", "body", "html", "head", "title", "blink", "marquee", "SCRIPT", "Script"]
XHTML_ATTRIBUTES = ["id", "class", "style", "title", "href", "src", "alt", "lang", "xml:lang", "colspan", "width",
                    "onclick", "onerror", "onload", "ONMOUSEOVER", "onfocus", "formaction", "srcdoc", "xlink:href",
                    "data-x", "name", "action", "background", "dir", "xml:space", "xmlns", "xmlns:x"]
DANGEROUS_ELEMENTS = {"script", "iframe", "object", "embed", "form", "input", "style", "link", "meta", "base",
                      "button", "textarea", "video", "audio", "frame", "applet", "body", "html", "head", "title",
                      "blink", "marquee", "svg", "math"}
URL_VALUES = ["http://example.org/a?b=1&amp;c=2", "#x", "javascript:alert(1)", " JaVaScRiPt:x", "vbscript:x",
              "java\tscript:x", "data:text/html;base64,PHNjcmlwdD4=", "data:image/png;base64,iVBORw0KGgo=",
              "data:image/svg+xml,<svg onload=x>", "//evil.example/x", "Patient/p1", "mailto:x@example.org",
              "file:///etc/passwd", "url(javascript:x)", "expression(alert(1))"]


def nasty_numbers():
    return st.one_of(
        st.integers(min_value=-2**70, max_value=2**70),
        st.sampled_from([0, -0.0, 1.5, 2**31, -2**31 - 1, 2**53 + 1, 10**20, 1e308, 5e-324, 0.1, 1e-7]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.decimals(allow_nan=False, allow_infinity=False, places=None).map(lambda d: Decimal(d)),
    )


def scalars():
    return st.one_of(st.none(), st.booleans(), nasty_numbers(), st.sampled_from(NASTY_STRINGS),
                     st.text(max_size=40), st.text(alphabet=st.characters(codec="utf-8"), max_size=20))


def json_values(max_leaves: int = 25):
    keys = st.one_of(st.sampled_from(NASTY_KEYS), st.text(max_size=12))
    return st.recursive(scalars(), lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=5)), max_leaves=max_leaves)


@st.composite
def xhtml_fragments(draw, depth: int = 3) -> str:
    """XHTML-like markup (well-formed more often than not) from allowed and dangerous vocabulary."""
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["text", "element", "element", "entity", "comment", "cdata", "raw"]))
        if kind == "text":
            parts.append(draw(st.sampled_from(["x", "a &amp; b", "1 &lt; 2", "é", " ", "\n"])))
        elif kind == "entity":
            parts.append(draw(st.sampled_from(["&nbsp;", "&#x3C;script&#x3E;", "&lt;", "&#0;", "&bogus;", "&"])))
        elif kind == "comment":
            parts.append("<!-- " + draw(st.sampled_from(["x", "<script>", "-- -"])) + " -->")
        elif kind == "cdata":
            parts.append("<![CDATA[<script>alert(1)</script>]]>")
        elif kind == "raw":
            parts.append(draw(st.sampled_from(["<", ">", "</p>", "<p", "<?pi x?>", "<!DOCTYPE x>", "\x00"])))
        else:
            name = draw(st.sampled_from(XHTML_ELEMENTS))
            attrs = []
            for _ in range(draw(st.integers(0, 2))):
                attr = draw(st.sampled_from(XHTML_ATTRIBUTES))
                value = draw(st.one_of(st.sampled_from(URL_VALUES), st.sampled_from(["x", "1", ""]))) \
                    if attr in ("href", "src", "style", "background", "action", "formaction", "xlink:href") \
                    else draw(st.sampled_from(["x", "alert(1)", "1", ""]))
                quote = draw(st.sampled_from(['"', "'"]))
                attrs.append(f' {attr}={quote}{value.replace(quote, "")}{quote}')
            inner = draw(xhtml_fragments(depth - 1)) if depth > 0 else ""
            parts.append(f"<{name}{''.join(attrs)}>{inner}</{name}>" if inner or draw(st.booleans())
                         else f"<{name}{''.join(attrs)}/>")
    return "".join(parts)


@st.composite
def narratives(draw) -> str:
    body = draw(xhtml_fragments())
    ns = draw(st.sampled_from([f' xmlns="{XHTML_NS}"'] * 4 + ["", ' xmlns="http://www.w3.org/1999/xhtmlx"']))
    return f"<div{ns}>{body}</div>"


def fhir_snippets():
    """FHIR-shaped values: what the deeper layers look into (references, codings, quantities, narratives)."""
    return st.one_of(
        st.builds(lambda r: {"reference": r}, st.sampled_from(NASTY_STRINGS)),
        st.builds(lambda s, c: {"coding": [{"system": s, "code": c}]}, st.sampled_from(NASTY_STRINGS),
                  st.sampled_from(NASTY_STRINGS)),
        st.builds(lambda v, u: {"value": v, "unit": u, "system": "http://unitsofmeasure.org", "code": u},
                  nasty_numbers(), st.sampled_from(["mg", "", "{x}", "mg/m2", "'", "10*3/uL"])),
        st.builds(lambda d: {"status": "generated", "div": d}, narratives()),
        st.builds(lambda u, v: {"url": u, "valueString": v}, st.sampled_from(NASTY_STRINGS + [
            "http://hl7.org/fhir/StructureDefinition/artifact-title",
            "http://hl7.org/fhir/StructureDefinition/timing-daysOfCycle"]), st.sampled_from(NASTY_STRINGS)),
        st.builds(lambda r: {"resourceType": r, "id": "c1"}, st.sampled_from(
            ["Patient", "Basic", "Bundle", "Nope", "", "Parameters", "Binary"])),
    )


def load_seeds() -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in SEEDS]


def _slots(value, out: list, parent=None, key=None, depth: int = 0) -> list:
    """Every (container, key) in a JSON value, for mutations."""
    if parent is not None:
        out.append((parent, key))
    if depth > 30:
        return out
    if isinstance(value, dict):
        for k, v in value.items():
            _slots(v, out, value, k, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _slots(v, out, value, i, depth + 1)
    return out


@st.composite
def mutated_resources(draw, seeds: list[dict]) -> dict:
    """A seed resource with 1-4 structural mutations (replace, delete, wrap, duplicate, add a key)."""
    res = copy.deepcopy(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        slots = _slots(res, [])
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        op = draw(st.sampled_from(["replace", "replace", "snippet", "delete", "wrap", "unwrap", "duplicate",
                                   "add-key", "swap-type"]))
        current = container[key]
        if op == "replace":
            container[key] = draw(json_values(8))
        elif op == "snippet":
            container[key] = draw(fhir_snippets())
        elif op == "delete":
            if isinstance(container, dict):
                del container[key]
            else:
                container.pop(key)
        elif op == "wrap":
            container[key] = [current] if draw(st.booleans()) else {"value": current}
        elif op == "unwrap" and isinstance(current, (list, dict)) and current:
            container[key] = current[0] if isinstance(current, list) else next(iter(current.values()))
        elif op == "duplicate" and isinstance(container, list):
            container.insert(key, copy.deepcopy(current))
        elif op == "add-key" and isinstance(current, dict):
            current[draw(st.sampled_from(NASTY_KEYS))] = draw(st.one_of(scalars(), fhir_snippets()))
        elif op == "swap-type":
            container[key] = str(current) if not isinstance(current, str) else draw(nasty_numbers())
    return res


_NUM = "\u0000NUM:"
_RAW = re.compile(r'"\\u0000NUM:([^"]*)"')


def dumps(value) -> str:
    """JSON text for a generated value: Decimals written as exact numbers, float NaN/Infinity as Python writes
    them (so the reader meets them too)."""
    def conv(v):
        if isinstance(v, Decimal):
            return _NUM + str(v)
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v
    return _RAW.sub(lambda m: m.group(1), json.dumps(conv(value), ensure_ascii=False, allow_nan=True))


TOKENS = [b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"\\u", b"\\ud800", b"\\udc00", b"\\ud83d\\ude00",
          b"NaN", b"-Infinity", b"1e999999", b"-0", b"0." + b"9" * 40, b"9" * 5000, b"null", b"true", b"\xef\xbb\xbf",
          b"\x00", b"\xff", b"\xc0\xaf", b"\xe2\x82", b"\xf4\x90\x80\x80", b"\r\n", b"\n", b'"resourceType":',
          b'"resourceType": "Bundle"', b'"div": "<div xmlns=\\"http://www.w3.org/1999/xhtml\\"><script>x</script></div>"',
          b'"reference": "#"', b'"id": "a b"', b"[" * 300, b"{\"a\":" * 150, b"<Patient/>", b"/*", b"'"]


@st.composite
def mutated_bytes(draw, seeds: list[bytes]) -> bytes:
    """Seed bytes with 1-8 byte-level mutations: flips, insertions of troublesome tokens, deletions,
    duplications, truncation, splicing with another seed."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "insert", "delete", "duplicate", "truncate", "splice", "byte"]))
        n = len(data)
        pos = draw(st.integers(0, n)) if n else 0
        if op == "flip" and n:
            i = min(pos, n - 1)
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(TOKENS))
        elif op == "delete" and n:
            del data[pos:pos + draw(st.integers(1, 64))]
        elif op == "duplicate" and n:
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 256))]
        elif op == "truncate":
            del data[pos:]
        elif op == "splice":
            other = draw(st.sampled_from(seeds))
            j = draw(st.integers(0, len(other)))
            data[pos:] = other[j:]
        elif op == "byte":
            data[pos:pos] = bytes([draw(st.integers(0, 255))])
    return bytes(data)


# --- checks ---------------------------------------------------------------------------------------------------

#: Open bugs: (exception, file, function) -> crasher name.  An entry matches when that function in that
#: file is anywhere on the traceback (innermost first).  Each has a crasher in crashers/, replayed as a
#: strict xfail; a fuzz example that hits one is counted, not failed, so the runs keep looking for new
#: bugs.  Remove an entry when its crasher starts to pass.
KNOWN_CRASHES: dict[tuple[str, str, str], str] = {}  # none open: every crasher in crashers/ is fixed
#: Engine errors still open (message pattern -> crasher name).  The two found ("unhashable type" from a
#: list resourceType, "string index out of range" from a "" property name) are fixed: none left.
KNOWN_ENGINE_ERRORS: dict = {}


def known_bug(exc: BaseException) -> str | None:
    """The crasher name of a known open bug this exception is an instance of, if any."""
    import traceback
    frames = [(Path(f.filename).name, f.name) for f in reversed(traceback.extract_tb(exc.__traceback__))]
    for frame in frames:
        for (etype, file, func), name in KNOWN_CRASHES.items():
            if (file, func) == frame and etype in ("*", type(exc).__name__):
                return name
    return None


@contextlib.contextmanager
def tolerating_known_bugs():
    """Count (rather than fail on) the open bugs listed in KNOWN_CRASHES; anything else propagates."""
    try:
        yield
    except Exception as e:  # noqa: BLE001
        name = known_bug(e)
        if name is None:
            raise
        COUNTS[f"known bug hit: {name}"] += 1


#: Python exception names in an issue message mean a layer swallowed a bug and reported it as a finding.
INTERNAL = re.compile(r"\b(TypeError|KeyError|AttributeError|IndexError|ZeroDivisionError|UnboundLocalError|"
                      r"NameError|RecursionError|AssertionError|InvalidOperation|DivisionByZero|Overflow|"
                      r"NotImplementedError|UnicodeEncodeError|UnicodeDecodeError|StopIteration)\b")


def check_issues(issues, doc=None) -> None:
    """Every issue is complete, printable, free of swallowed internal errors, and located in the document."""
    from fhirpkg.issues import Issue, Severity
    last_line = None
    if doc is not None and doc.text:
        last_line = doc.line_offset + doc.text.count("\n") + 1
    for i in issues:
        assert isinstance(i, Issue), i
        assert isinstance(i.severity, Severity) and i.rule and isinstance(i.rule, str), i
        assert isinstance(i.message, str) and i.message, i
        for field in (i.message, i.expression, i.file, i.rule):
            field.encode("utf-8")  # printable in every report format: no lone surrogates
        if INTERNAL.search(i.message):
            known = [name for pattern, name in KNOWN_ENGINE_ERRORS.items() if pattern.search(i.message)]
            assert known, f"a layer reported an internal error as a finding: {i}"
            COUNTS[f"known bug hit: {known[0]}"] += 1
        if i.line is not None:
            assert i.line >= 1 and (i.column is None or i.column >= 1), i
            if last_line is not None:
                assert i.line <= last_line, (i, last_line)


@contextlib.contextmanager
def memory_cap(extra_mb: int):
    """Lower this process's address-space limit to its current size + ``extra_mb`` for the duration:
    an input that needs more fails with MemoryError instead of exhausting the machine."""
    current = _vm_size()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = current + extra_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0

