"""Property-based tests (hypothesis) of the reader and every validation layer.

No exception may escape, every issue is complete and printable, and each input is
validated within a per-input time bound (hypothesis ``deadline``) and a memory bound
(the process's address space capped at its size + MEMORY_CAP_MB while the examples
run, so a runaway input fails with MemoryError; plus exact tracemalloc peaks for a
sample).  Runs are derandomized with fixed example counts: the same inputs every time.
"""
from __future__ import annotations

import copy
import io
import json
import re
import tarfile
import tracemalloc
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings, strategies as st

import fuzzing as F
from reliability_support import examples
from fhirpkg.fhir.jsonsource import LineIndex, read_documents, seek

MEMORY_CAP_MB = 1024  # per input, above what the process already holds
DEADLINE_MS = 5000  # per input; typical inputs take 5-50 ms

SETTINGS = dict(deadline=DEADLINE_MS)
COUNTS = F.COUNTS


@pytest.fixture(scope="module")
def validators(defs):
    from fhirpkg.validation import Options, Validator
    from fhirpkg.validation.references import Resolver
    seeds = F.load_seeds()
    resolver = Resolver()
    for s in seeds:
        resolver.add(s)
    return Validator(defs), Validator(defs, Options(package_mode=True), resolver)


@pytest.fixture(scope="module")
def seeds():
    return F.load_seeds()


# --- the reader ----------------------------------------------------------------------------------------------

@settings(settings.get_profile("reliability"), max_examples=examples(300), **SETTINGS)
@given(F.json_values())
def test_reader_reads_any_json_value_exactly(value):
    COUNTS["reader: JSON values"] += 1
    text = F.dumps(value)
    (doc,) = list(read_documents(text.encode("utf-8", "surrogatepass"), "v.json"))
    F.check_issues(doc.issues, doc)
    if value is None:
        assert not doc.ok and doc.issues[0].rule == "json-not-resource"
        return
    if doc.ok:
        json.dumps(doc.value, default=str).encode("utf-8")  # what was read is printable (no lone surrogates)
    # every location the reader knows is where the text says it is
    pm = doc.positions()
    for loc, offset in pm.offsets.items():
        assert 0 <= offset <= len(text)
        line, col = pm.line_col(offset)
        assert line == text.count("\n", 0, offset) + 1
        assert col == offset - (text.rfind("\n", 0, offset) + 1) + 1


@settings(settings.get_profile("reliability"), max_examples=examples(300), **SETTINGS)
@given(st.text(alphabet="ab\n\r{}\"\\ é", max_size=3000), st.data())
def test_line_index_matches_a_naive_count(text, data):
    COUNTS["reader: line index"] += 1
    LineIndex.BLOCK, saved = 64, LineIndex.BLOCK  # small blocks, so that block edges are exercised
    try:
        idx = LineIndex(text)
        for offset in data.draw(st.lists(st.integers(0, len(text)), max_size=20)):
            assert idx.line_col(offset) == (text.count("\n", 0, offset) + 1,
                                             offset - (text.rfind("\n", 0, offset) + 1) + 1)
    finally:
        LineIndex.BLOCK = saved


@settings(settings.get_profile("reliability"), max_examples=examples(300), **SETTINGS)
@given(st.text(max_size=200), st.text(max_size=20))
def test_string_scan_finds_the_closing_quote(s, after):
    """Whatever a string holds (escaped quotes, runs of backslashes), the element after it is located
    just past its closing quote: by ``seek`` (one location) and by the full position scan alike."""
    COUNTS["reader: string scan"] += 1
    for ascii_only in (True, False):
        head = '{"a": ' + json.dumps(s, ensure_ascii=ascii_only) + ", "
        text = head + '"b": ' + json.dumps(after, ensure_ascii=ascii_only) + "}"
        doc = next(read_documents(text.encode(), "x.json"))
        assert doc.positions().offsets[("b",)] == len(head)
        if not ascii_only:  # seek leaves texts with surrogate escapes (\ud800) to the full scan: returns None
            assert seek(text, ("b",)) == len(head)


# --- every validation layer ------------------------------------------------------------------------------------

@settings(settings.get_profile("reliability"), max_examples=examples(400), **SETTINGS)
@given(st.data())
def test_validator_never_raises_on_mutated_resources(validators, seeds, data):
    """Valid resources from the corpus with a few structural mutations reach every layer
    (json, structure, terminology, invariants, references, narrative, rules), in both
    plain and package mode."""
    COUNTS["validator: mutated resources"] += 1
    resource = data.draw(F.mutated_resources(seeds))
    package_mode = data.draw(st.booleans())
    text = F.dumps(resource)
    with F.memory_cap(MEMORY_CAP_MB), F.tolerating_known_bugs():
        for doc in read_documents(text.encode("utf-8", "surrogatepass"), "m.json"):
            F.check_issues(validators[package_mode].validate_document(doc), doc)


@settings(settings.get_profile("reliability"), max_examples=examples(200), **SETTINGS)
@given(st.sampled_from(["Patient", "Observation", "Bundle", "PlanDefinition", "ActivityDefinition", "Questionnaire",
                        "Parameters", "Binary", "StructureDefinition", "ValueSet", "Nope", ""]),
       st.dictionaries(st.sampled_from(F.NASTY_KEYS), st.one_of(F.json_values(10), F.fhir_snippets()), max_size=6))
def test_validator_never_raises_on_arbitrary_objects(validators, resource_type, body):
    COUNTS["validator: arbitrary objects"] += 1
    resource = {"resourceType": resource_type, **body}
    with F.memory_cap(MEMORY_CAP_MB), F.tolerating_known_bugs():
        F.check_issues(validators[0].validate_resource(resource))


@settings(settings.get_profile("reliability"), max_examples=examples(40), deadline=None)
@given(st.data())
def test_memory_per_input_is_bounded(validators, seeds, data):
    """Exact peaks (tracemalloc is slow, so a sample): at most 64 MB plus 100 bytes per byte of input."""
    COUNTS["validator: traced memory"] += 1
    resource = data.draw(F.mutated_resources(seeds))
    text = F.dumps(resource).encode("utf-8", "surrogatepass")
    tracemalloc.start()
    try:
        with F.tolerating_known_bugs():
            for doc in read_documents(text, "m.json"):
                validators[0].validate_document(doc)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 64 * 2**20 + 100 * len(text), f"{peak / 2**20:.1f} MB for {len(text)} bytes"


# --- content projects: the loader and the package rules ---------------------------------------------------------

MANIFEST = {"name": "org.example.fuzz", "version": "1.0.0", "canonical": "http://example.org/fuzz",
            "title": "Fuzz", "description": "Fuzz", "fhirVersions": ["5.0.0"],
            "dependencies": {"hl7.fhir.r5.core": "5.0.0"}, "author": "tests", "license": "CC0-1.0",
            "date": "20260101000000"}


@settings(settings.get_profile("reliability"), max_examples=examples(30), deadline=20000)
@given(st.data())
def test_project_loader_and_package_rules_never_raise(tmp_path_factory, shared_definitions, seeds, monkeypatch, data):
    from fhirpkg import api
    COUNTS["projects: loader and package rules"] += 1
    monkeypatch.setenv("FHIRPKG_OFFLINE", "1")  # a fuzzed manifest may name any dependency: never fetch it
    root = tmp_path_factory.mktemp("proj")
    manifest = dict(MANIFEST)
    for _ in range(data.draw(st.integers(0, 2))):
        manifest[data.draw(st.sampled_from(sorted(MANIFEST) + ["type", "url", "jurisdiction"]))] = \
            data.draw(F.json_values(4))
    (root / "package.json").write_text(F.dumps(manifest), encoding="utf-8", errors="surrogatepass")
    for n in range(data.draw(st.integers(1, 4))):
        res = data.draw(F.mutated_resources(seeds)) if data.draw(st.booleans()) else copy.deepcopy(
            data.draw(st.sampled_from(seeds)))
        if isinstance(res, dict) and data.draw(st.booleans()):  # give it this package's canonical, or a colliding one
            rt, rid = str(res.get("resourceType")), str(res.get("id"))
            res["url"] = f"{MANIFEST['canonical']}/{rt}/{rid if data.draw(st.booleans()) else 'same'}"
            res["version"] = "1.0.0"
        rt = res.get("resourceType") if isinstance(res, dict) and isinstance(res.get("resourceType"), str) else "X"
        folder = root / (re.sub(r"[^A-Za-z]", "", rt) or "X")
        folder.mkdir(exist_ok=True)
        (folder / f"r{n}.json").write_text(F.dumps(res), encoding="utf-8", errors="surrogatepass")
    with F.tolerating_known_bugs():
        project, issues, _ = api.validate_project(root)
        F.check_issues(issues)


# --- narrative safety: the validator and the site -----------------------------------------------------------------

SCRIPT_URL = re.compile(r"^\s*(javascript|vbscript|data:(?!image/(png|gif|jpeg|webp)[;,]))", re.I)
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "background", "xlink:href", "srcdoc", "poster", "data"}


class _HtmlScan(HTMLParser):
    """An independent oracle: what a browser would treat as script-capable."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.bad: list = []

    def handle_starttag(self, tag, attrs):
        if tag.lower() in F.DANGEROUS_ELEMENTS:
            self.bad.append(("element", tag))
        for k, v in attrs:
            k = k.lower()
            if k.startswith("on"):
                self.bad.append(("event handler", k))
            if k in URL_ATTRIBUTES and v and SCRIPT_URL.match(re.sub(r"[\s\x00-\x1f]", "", v)):
                self.bad.append(("url", k, v))
            if k == "style" and v and re.search(r"expression|javascript|url\s*\(", v, re.I):
                self.bad.append(("style", v))


def _dangerous(div: str) -> list | None:
    """Script-capable constructs in a well-formed narrative (None when it is not well-formed XML)."""
    try:
        root = ET.fromstring(div)
    except ET.ParseError:
        return None
    out = []
    for el in root.iter():
        name = el.tag.rsplit("}", 1)[-1]
        if name.lower() in F.DANGEROUS_ELEMENTS:
            out.append(name)
        for k, v in el.attrib.items():
            k = k.rsplit("}", 1)[-1].lower()
            if k.startswith("on"):
                out.append(k)
            if k in URL_ATTRIBUTES | {"style"} and re.search(r"javascript|vbscript|data:text|expression|data:image/svg",
                                                            v, re.I):
                out.append((k, v))
    return out


@pytest.fixture(scope="module")
def site_index():
    from fhirpkg.publish.site.index import SiteIndex
    return SiteIndex.build([{"resourceType": "Patient", "id": "p1"}], "http://example.org/t")


@settings(settings.get_profile("reliability"), max_examples=examples(500), **SETTINGS)
@given(F.narratives())
def test_narrative_safety_validator_and_site(site_index, div):
    """A dangerous construct is always an error; whatever the input, the site emits nothing script-capable."""
    from fhirpkg.publish.site.safe import narrative
    from fhirpkg.validation.xhtml import check_xhtml
    COUNTS["narratives: validator and site"] += 1
    errors = [p for p in check_xhtml(div) if p.severity in ("error", "fatal")]
    danger = _dangerous(div)
    if danger is None:
        assert errors, "a narrative that is not well-formed XML passed"
    elif danger:
        assert errors, f"{danger} passed the narrative check"
    html = narrative({"resourceType": "Patient", "id": "p1", "text": {"status": "generated", "div": div}},
                     site_index, "n-")
    scan = _HtmlScan()
    scan.feed(html)
    scan.close()
    assert not scan.bad, (scan.bad, html[:500])


MARK = "zq7x"
INJECTIONS = [f"<script>{MARK}()</script>", f'"><img src=x onerror={MARK}()>', f"javascript:{MARK}()",
              f"'><svg onload={MARK}()>", f"</title><script>{MARK}</script>", f"[x](javascript:{MARK}())",
              f"<a href='javascript:{MARK}()'>x</a>", f"{{{{{MARK}}}}}", f"&lt;script&gt;{MARK}&lt;/script&gt;"]


@settings(settings.get_profile("reliability"), max_examples=examples(25), deadline=30000)
@given(st.lists(st.sampled_from(INJECTIONS), min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_site_never_emits_resource_text_unescaped(tmp_path_factory, injections, rnd):
    """Markup in any string of any resource (titles, descriptions, action titles, codes, ids of contained
    parts, markdown) never becomes an element, an event handler or a script URL on any page."""
    from types import SimpleNamespace
    from fhirpkg.content.project import Manifest
    from fhirpkg.publish.site import generate
    COUNTS["site: injected strings"] += 1
    seeds = [s for s in F.load_seeds() if s.get("resourceType") in (
        "PlanDefinition", "ActivityDefinition", "Citation", "MedicationKnowledge", "ResearchStudy",
        "ClinicalUseDefinition", "CodeSystem")]

    def poison(value):
        if isinstance(value, dict):
            return {k: (v if k in ("resourceType", "id", "div") else poison(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [poison(v) for v in value]
        if isinstance(value, str) and rnd.random() < 0.5:
            return value + rnd.choice(injections)
        return value

    resources = [poison(copy.deepcopy(s)) for s in seeds]
    root = tmp_path_factory.mktemp("site") / "definitions"
    root.mkdir()
    manifest = Manifest({**MANIFEST, "title": "T " + injections[0], "description": "D " + injections[-1]},
                        root / "package.json")
    pages = generate(project=SimpleNamespace(root=root, manifest=manifest, resources=[]), resources=resources,
                     ig=None, files={"x.transaction.json": b"{}", "package.tgz": b"x"}, issues=[])
    for name, data in pages.items():
        if not name.endswith(".html"):
            continue
        scan = _HtmlScan()
        scan.feed(data.decode("utf-8"))
        scan.close()
        ours = [b for b in scan.bad if MARK in str(b) or b[0] == "element" and b[1] in ("script", "svg")]
        assert not ours, (name, ours)


# --- packages: extraction and reading ---------------------------------------------------------------------------

MEMBER_NAMES = ["package/package.json", "package/Patient-p1.json", "package/../x.json", "../x.json", "/abs.json",
                "package//double.json", "package/./dot.json", "package/sub/deep.json", "package", "C:\\x.json",
                "package\\..\\..\\win.json", "package/\u00e9.json", "package/" + "a" * 200 + ".json",
                "other/Patient-p2.json", "", ".", "package/.index.json", "package/x.json/"]


@st.composite
def tar_archives(draw) -> bytes:
    buf = io.BytesIO()
    mode = draw(st.sampled_from(["w:gz", "w:", "w:bz2"]))
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for _ in range(draw(st.integers(0, 6))):
            name = draw(st.one_of(st.sampled_from(MEMBER_NAMES), st.text(max_size=30)))
            info = tarfile.TarInfo(name)
            kind = draw(st.sampled_from(["file", "file", "file", "dir", "symlink", "hardlink", "fifo", "chardev"]))
            if kind == "file":
                data = draw(st.one_of(st.just(json.dumps({"name": "example.fuzz.pkg", "version": "1.0.0"}).encode()),
                                      st.binary(max_size=200), st.just(b'{"resourceType": "Patient", "id": "p1"}')))
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                             "fifo": tarfile.FIFOTYPE, "chardev": tarfile.CHRTYPE}[kind]
                info.linkname = draw(st.sampled_from(["/etc/passwd", "../../x", "package/package.json", ""]))
                tar.addfile(info)
    data = buf.getvalue()
    if draw(st.booleans()):  # damage it
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=20))
    return data


@settings(settings.get_profile("reliability"), max_examples=examples(200), **SETTINGS)
@given(tar_archives())
def test_package_extraction_refuses_or_stays_inside(tmp_path_factory, data):
    """safe_extract raises only PackageError, never writes outside its folder, never makes a link or a
    special file; the validator reads the same archive without raising."""
    from fhirpkg.fhir import packages as pk
    from fhirpkg.fhir.inputs import Source, read_package
    COUNTS["packages: archives"] += 1
    base = tmp_path_factory.mktemp("tar")
    archive = base / "a.tgz"
    archive.write_bytes(data)
    dest = base / "dest"
    dest.mkdir()
    try:
        pk.safe_extract(archive, dest)
    except pk.PackageError as e:
        assert "\n" not in str(e)
    outside = sorted(p.name for p in base.iterdir()) + sorted(p.name for p in base.parent.iterdir()
                                                               if p.name.startswith(("x.json", "abs.json", "win.json")))
    assert outside == ["a.tgz", "dest"], outside
    for path in dest.rglob("*"):
        assert not path.is_symlink() and (path.is_dir() or path.is_file()), path
        assert path.resolve().is_relative_to(dest.resolve()), path
    for doc in read_package(Source(str(archive), archive)):
        F.check_issues(doc.issues, doc)


# --- push and diff: the functions that read what servers and files send ------------------------------------------

@settings(settings.get_profile("reliability"), max_examples=examples(300), **SETTINGS)
@given(st.one_of(st.text(max_size=40), st.sampled_from(["5", "0", "-1", "1e9", "Wed, 21 Oct 2015 07:28:00 GMT",
                                                        "Wed, 21 Oct 2015 07:28:00", "Mon, 99 Foo 2015 99:99:99 GMT",
                                                        "99999999999999999999", " 3 ", "3.5", "\u0663"])),
       F.json_values(12))
def test_push_parsers_never_raise(header, value):
    from fhirpkg.publish import push as P, transport as T
    COUNTS["push: parsers"] += 1
    with F.tolerating_known_bugs():
        wait = T.parse_retry_after(header)
        assert wait is None or wait >= 0
        assert 0 <= T.retry_wait(1, T.Response(429, "", {"retry-after": header}, b""),
                                 T.PushOptions("http://127.0.0.1:9/fhir", max_wait=2.0)) <= 2.0
    assert all(isinstance(x, str) for x in P.format_outcome(value))
    try:
        P.targets(value)
    except T.PushError:
        pass
    target = P.Target("Patient/p1", {"resourceType": "Patient", "id": "p1", "url": "http://x/p"})
    assert isinstance(P.check_match(target, value, "url http://x/p"), P.Found)


@settings(settings.get_profile("reliability"), max_examples=examples(200), **SETTINGS)
@given(st.lists(st.text(min_size=1, max_size=30).filter(lambda s: "\r" not in s and "\n" not in s),
                min_size=1, max_size=3), st.text(max_size=60))
def test_redaction_removes_every_secret(secrets, filler):
    from fhirpkg.publish import transport as T
    COUNTS["push: redaction"] += 1
    headers = {f"X-H{i}": f"Bearer {s}" for i, s in enumerate(secrets)}
    redact = T.redactor_for(headers)
    text = filler.join(f"Bearer {s}" for s in secrets)
    out = redact(text)
    for s in secrets:
        if len(s.strip()) >= 4:
            assert s.strip() not in out


@settings(settings.get_profile("reliability"), max_examples=examples(150), **SETTINGS)
@given(st.data())
def test_diff_never_raises(seeds, data):
    from fhirpkg.publish import diff as D
    COUNTS["diff: resource pairs"] += 1
    a = data.draw(F.mutated_resources(seeds))
    b = data.draw(F.mutated_resources(seeds))
    D.diff_resource(a, b)
