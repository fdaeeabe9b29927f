"""``fhirpkg cql``: the project's CQL (``<project>/cql/*.cql``) compiled to ELM by the official
CQL-to-ELM translator, and the ``Library`` resources that carry both.

The translator (``org.cqframework:cql-to-elm-jvm`` with ``quick`` for the FHIR 4.0.1 model info and
FHIRHelpers, Maven Central) runs through a small Java front end in ``translator/``, built by Maven into
a cache folder on first use.  Java is needed only when a CQL file changed: a Library whose ``text/cql``
attachment equals its source file is left as it is, so ``make package`` runs without a JVM.  The
generated Library holds the CQL and ELM as base64 attachments and what CRMI asks of a computable
library: ``relatedArtifact`` depends-on (included libraries, value sets, code systems),
``dataRequirement`` (one per retrieve) and ``parameter`` (the Patient context, an output per public
definition).
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from fhirpkg.logic import jvm
from fhirpkg.fsutil import FileLock, atomic_write_text

HERE = Path(__file__).resolve().parent
TRANSLATOR_PROJECT = HERE / "translator"
CQFRAMEWORK_VERSION = "4.4.0"  # see translator/pom.xml
FHIRHELPERS = ("FHIRHelpers", "4.0.1")  # from the translator's distribution (quick), never hand-written
CQL_FOLDER = "cql"
CQL_TYPE = "text/cql"
ELM_TYPE = "application/elm+json"
#: The language of a condition that names a definition in the PlanDefinition's CQL library.  FHIR R5's
#: expression-language value set (hl7.fhir.r5.core#5.0.0 ValueSet-expression-language; the IANA media type
#: https://iana.org/assignments/media-types/text/cql-identifier, registered 2020-12-08) spells it
#: ``text/cql-identifier``: the one spelling fhirpkg writes.  R4's expression-language code system has no
#: such code, and the R5 ballot of May 2021 spelled it ``text/cql.identifier``
#: (https://www.hl7.org/fhir/2021May/valueset-expression-language.json), which content authored against
#: that ballot still uses: both are read as the same language (``is_cql_identifier``).
CQL_IDENTIFIER = "text/cql-identifier"
CQL_IDENTIFIER_SPELLINGS = frozenset({CQL_IDENTIFIER, "text/cql.identifier"})
RUN_TIMEOUT = 600


def is_cql_identifier(language) -> bool:
    """Whether an Expression.language names a CQL definition (either spelling, see CQL_IDENTIFIER)."""
    return language in CQL_IDENTIFIER_SPELLINGS

FHIR_TYPES = "http://hl7.org/fhir/StructureDefinition/"
# result types of CQL definitions -> FHIR data types of ParameterDefinition.type
SYSTEM_TYPES = {"Boolean": "boolean", "Integer": "integer", "Decimal": "decimal", "String": "string",
                "Date": "date", "DateTime": "dateTime", "Time": "time", "Quantity": "Quantity",
                "Code": "Coding", "Concept": "CodeableConcept"}


class CqlError(Exception):
    """The translator reported errors in the CQL (one ``file:line:col: message`` a line)."""


@dataclass(frozen=True)
class Translation:
    """One library as the translator produced it."""
    name: str
    cql: bytes  # the source it translated (for FHIRHelpers: the distribution's)
    elm: bytes  # the translator's JSON, byte for byte
    types: dict[str, str]  # definition name -> CQL result type ("System.Boolean", "list<FHIR.Condition>")

    @property
    def library(self) -> dict:
        return json.loads(self.elm)["library"]

    @property
    def version(self) -> str | None:
        return self.library.get("identifier", {}).get("version")


@dataclass
class CqlResult:
    translated: list[str] = field(default_factory=list)  # library names translated by this run
    written: list[Path] = field(default_factory=list)  # Library files rewritten (content changed)
    unchanged: list[str] = field(default_factory=list)  # libraries whose CQL had not changed


# ------------------------------------------------------------------------------------ translator

def translator_dir() -> Path:
    """Where the front end is built: ``$FHIRPKG_CQL_TRANSLATOR_DIR`` or ``<fhirpkg cache>/cql-translator``."""
    from fhirpkg.fsutil import cache_root

    env = os.environ.get("FHIRPKG_CQL_TRANSLATOR_DIR")
    return Path(env).expanduser() if env else cache_root() / f"cql-translator-{CQFRAMEWORK_VERSION}"


def jar_path(build: bool = True) -> Path:
    """The front end's jar, built with Maven (``mvn -q -B package``) if missing or older than its sources."""
    out = translator_dir()
    jar = out / "cql_translator.jar"
    if not build:
        if not jar.is_file():
            raise jvm.JavaUnavailable(f"{jar} is not built (run: fhirpkg cql, or make translator)")
        return jar
    return jvm.maven_build(TRANSLATOR_PROJECT, jar, extra=[f"-Dtranslator.buildDir={out}"])


def translate(cql_dir: Path | str, libraries: Sequence[str]) -> dict[str, Translation]:
    """Translate ``libraries`` (``Name`` from ``cql_dir/Name.cql``, or ``Name@version`` from the
    translator's distribution) in one JVM.  Raises :class:`CqlError` on any translation error and
    :class:`fhirpkg.logic.jvm.JavaUnavailable` when Java or Maven is missing."""
    java = jvm.java_exe()
    if not java:
        raise jvm.JavaUnavailable("; ".join(jvm.missing_tools()))
    jar = jar_path()
    cql_dir = Path(cql_dir)
    with tempfile.TemporaryDirectory(prefix="fhirpkg-cql-") as tmp:
        cmd = [java, "-XX:+UseSerialGC", "-Xss4m", "-jar", str(jar), str(cql_dir.resolve()), tmp, *libraries]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise CqlError(f"the CQL translator timed out after {RUN_TIMEOUT} s") from None
        if proc.returncode != 0:
            lines = [_located(cql_dir, line) for line in proc.stderr.splitlines() if line.strip()]
            raise CqlError("\n".join(lines) or f"the CQL translator failed (exit {proc.returncode})")
        out = {}
        for lib in libraries:
            name = lib.split("@")[0]
            base = Path(tmp) / name
            types = {}
            for line in (base.with_suffix(".types.tsv")).read_text(encoding="utf-8").splitlines():
                key, _, value = line.partition("\t")
                types.setdefault(key, value)
            out[name] = Translation(name, base.with_suffix(".cql").read_bytes(),
                                    base.with_suffix(".json").read_bytes(), types)
        return out


def _located(cql_dir: Path, line: str) -> str:
    """``Name:line:col: message`` from the front end -> ``<cql_dir>/Name.cql:line:col: message``."""
    m = re.match(r"^([A-Za-z0-9_]+):(\d+):(\d+): (.*)$", line)
    if m and (cql_dir / f"{m.group(1)}.cql").is_file():
        return f"{cql_dir / (m.group(1) + '.cql')}:{m.group(2)}:{m.group(3)}: {m.group(4)}"
    return line


# ------------------------------------------------------------------------------------ reading Libraries

def attachment(library: dict, content_type: str) -> bytes | None:
    """The decoded data of the Library's first content attachment of ``content_type``, or None."""
    for att in library.get("content") or ():
        if isinstance(att, dict) and att.get("contentType") == content_type and isinstance(att.get("data"), str):
            try:
                return base64.b64decode(att["data"], validate=True)
            except ValueError:
                return None
    return None


def elm_definitions(library: dict) -> set[str] | None:
    """The names of the expression and function definitions in the Library's ELM (None: no readable ELM)."""
    data = attachment(library, ELM_TYPE)
    if data is None:
        return None
    try:
        defs = json.loads(data)["library"].get("statements", {}).get("def", [])
    except (ValueError, KeyError, AttributeError, TypeError):
        return None
    return {d["name"] for d in defs if isinstance(d, dict) and isinstance(d.get("name"), str)}


def cql_sources(project_root: Path | str) -> list[Path]:
    """The project's CQL files: ``<project>/cql/*.cql``, each named after its library."""
    folder = Path(project_root) / CQL_FOLDER
    return sorted(folder.glob("*.cql")) if folder.is_dir() else []


def library_file(project_root: Path | str, name: str) -> Path:
    return Path(project_root) / "Library" / f"{name}.json"


def stale_sources(project_root: Path | str) -> Iterator[tuple[Path, Path, str]]:
    """(cql file, Library file, why) for each CQL file whose Library is missing or carries other CQL."""
    for src in cql_sources(project_root):
        lib_path = library_file(project_root, src.stem)
        if not lib_path.is_file():
            yield src, lib_path, "no Library resource"
            continue
        try:
            lib = json.loads(lib_path.read_bytes())
        except ValueError:
            yield src, lib_path, "the Library is not JSON"
            continue
        if attachment(lib, CQL_TYPE) != src.read_bytes():
            yield src, lib_path, f"its {CQL_TYPE} attachment differs from the CQL file"
        elif attachment(lib, ELM_TYPE) is None:
            yield src, lib_path, f"it has no {ELM_TYPE} attachment"


# ------------------------------------------------------------------------------------ writing Libraries

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _walk(node) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _defs(lib: dict, section: str) -> list[dict]:
    return [d for d in (lib.get(section) or {}).get("def", []) if isinstance(d, dict)]


def _fhir_type(qualified: str) -> str:
    """``{http://hl7.org/fhir}Condition`` or ``FHIR.Condition`` -> ``Condition``."""
    return qualified.rsplit("}", 1)[-1].rsplit(".", 1)[-1]


def data_requirements(lib: dict) -> list[dict]:
    """One DataRequirement per distinct retrieve: its type, and the value set or codes it filters on."""
    valuesets = {d["name"]: d["id"] for d in _defs(lib, "valueSets")}
    codes = {d["name"]: d for d in _defs(lib, "codes")}
    systems = {d["name"]: d["id"] for d in _defs(lib, "codeSystems")}
    out: list[dict] = []
    for node in _walk(lib.get("statements")):
        if node.get("type") != "Retrieve" or not isinstance(node.get("dataType"), str):
            continue
        rtype = _fhir_type(node["dataType"])
        req: dict = {"type": rtype, "profile": [FHIR_TYPES + rtype]}
        filt = node.get("codes")
        if isinstance(filt, dict):
            cf: dict = {"path": node.get("codeProperty") or "code"}
            if filt.get("type") == "ValueSetRef" and filt.get("name") in valuesets:
                cf["valueSet"] = valuesets[filt["name"]]
            else:
                refs = [n for n in _walk(filt) if n.get("type") == "CodeRef" and n.get("name") in codes]
                cf["code"] = [{"system": systems.get(codes[r["name"]].get("codeSystem", {}).get("name")),
                               "code": codes[r["name"]]["id"],
                               **({"display": codes[r["name"]]["display"]} if codes[r["name"]].get("display") else {})}
                              for r in refs]
            req["codeFilter"] = [cf]
        if req not in out:
            out.append(req)
    return out


def _parameter_type(cql_type: str) -> tuple[str, str]:
    """(FHIR type, max) of a CQL result type."""
    many = cql_type.startswith("list<")
    inner = cql_type[5:-1] if many else cql_type
    model, _, name = inner.partition(".")
    fhir = SYSTEM_TYPES.get(name, "string") if model == "System" else name or "string"
    return fhir, "*" if many else "1"


def parameters(lib: dict, types: dict[str, str]) -> list[dict]:
    """The Patient context (in) and one output per public expression definition, as CPG/CRMI list them."""
    out = [{"name": "Patient", "use": "in", "min": 0, "max": "1", "type": "Patient",
            "documentation": "The subject: CQL context Patient"}]
    for d in _defs(lib, "statements"):
        if d.get("type") == "FunctionDef" or d.get("accessLevel", "Public") != "Public" or d.get("name") == "Patient":
            continue
        ftype, fmax = _parameter_type(types.get(d["name"], ""))
        out.append({"name": d["name"], "use": "out", "min": 0, "max": fmax, "type": ftype})
    return out


def _conventions(project_root: Path) -> dict:
    """Publisher, jurisdiction, copyright, review tag and date, as the package's manifest Library states them."""
    for path in sorted((project_root / "Library").glob("*.json")):
        try:
            res = json.loads(path.read_bytes())
        except ValueError:
            continue
        codes = [c.get("code") for c in (res.get("type") or {}).get("coding", [])]
        if "asset-collection" in codes:
            keep = ("versionAlgorithmCoding", "date", "publisher", "jurisdiction", "usage", "copyright",
                    "copyrightLabel")
            conv = {k: res[k] for k in keep if k in res}
            if (res.get("meta") or {}).get("tag"):
                conv["tag"] = res["meta"]["tag"]
            return conv
    return {}


def _code_systems(project_root: Path, lib: dict, valueset_urls: list[str]) -> list[str]:
    """Code systems the library needs: those it declares and those the project's value sets include."""
    systems = [d["id"] for d in _defs(lib, "codeSystems")]
    for path in sorted((project_root / "ValueSet").glob("*.json")):
        try:
            vs = json.loads(path.read_bytes())
        except ValueError:
            continue
        if vs.get("url") in valueset_urls:
            for inc in (vs.get("compose") or {}).get("include", []):
                if isinstance(inc.get("system"), str) and inc["system"] not in systems:
                    systems.append(inc["system"])
    return systems


def _depends_on(display: str, canonical: str, resource_type: str) -> dict:
    """A depends-on related artifact, typed with cqf-resourceType as the package manifest does."""
    return {"type": "depends-on", "display": display, "resource": canonical,
            "_resource": {"extension": [{"url": FHIR_TYPES + "cqf-resourceType", "valueCode": resource_type}]}}


def library_resource(project_root: Path | str, canonical: str, t: Translation, *,
                     title: str, description: str) -> dict:
    """The Library resource for one translation (R5, logic-library, draft)."""
    root = Path(project_root)
    lib = t.library
    conv = _conventions(root)
    res: dict = {"resourceType": "Library", "id": t.name}
    # core's cqllibrary profile fixes type to module-definition, so only shareablelibrary is claimed
    meta: dict = {"profile": [FHIR_TYPES + "shareablelibrary"]}
    if conv.get("tag"):
        meta["tag"] = conv["tag"]
    res["meta"] = meta
    res["extension"] = [
        {"url": FHIR_TYPES + "cqf-knowledgeCapability", "valueCode": "shareable"},
        {"url": FHIR_TYPES + "cqf-knowledgeCapability", "valueCode": "computable"},
        {"url": FHIR_TYPES + "cqf-knowledgeCapability", "valueCode": "executable"},
        {"url": FHIR_TYPES + "cqf-knowledgeRepresentationLevel", "valueCode": "executable"},
    ]
    res["url"] = f"{canonical}/Library/{t.name}"
    res["version"] = t.version
    if "versionAlgorithmCoding" in conv:
        res["versionAlgorithmCoding"] = conv["versionAlgorithmCoding"]
    res["name"] = t.name
    res["title"] = title
    res["status"] = "draft"
    res["experimental"] = True
    res["type"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/library-type",
                               "code": "logic-library", "display": "Logic Library"}]}
    res["subjectCodeableConcept"] = {"coding": [{"system": "http://hl7.org/fhir/fhir-types", "code": "Patient",
                                                 "display": "Patient"}]}
    for key in ("date", "publisher"):
        if key in conv:
            res[key] = conv[key]
    res["description"] = description
    for key in ("jurisdiction", "usage", "copyright", "copyrightLabel"):
        if key in conv:
            res[key] = conv[key]
    related = []
    for inc in _defs(lib, "includes"):
        related.append(_depends_on(f"Library {inc['path']}", f"{canonical}/Library/{inc['path']}" +
                                   (f"|{inc['version']}" if inc.get("version") else ""), "Library"))
    vs_urls = [d["id"] for d in _defs(lib, "valueSets")]
    for d in _defs(lib, "valueSets"):
        related.append(_depends_on(f"Value set {d['name']}", d["id"], "ValueSet"))
    declared = {d["id"]: d["name"] for d in _defs(lib, "codeSystems")}
    for system in _code_systems(root, lib, vs_urls):
        related.append(_depends_on(f"Code system {declared.get(system, system)}", system, "CodeSystem"))
    if related:
        res["relatedArtifact"] = related
    params = parameters(lib, t.types) if _defs(lib, "statements") and any(
        d.get("type") != "FunctionDef" for d in _defs(lib, "statements")) else []
    if params:
        res["parameter"] = params
    reqs = data_requirements(lib)
    if reqs:
        res["dataRequirement"] = reqs
    res["content"] = [{"contentType": CQL_TYPE, "data": _b64(t.cql)},
                      {"contentType": ELM_TYPE, "data": _b64(t.elm)}]
    return res


def _dumps(res: dict) -> str:
    return json.dumps(res, indent=2, ensure_ascii=False) + "\n"


def _description(t: Translation) -> tuple[str, str]:
    """Title and description: the first comment block of the CQL, else a plain statement."""
    if t.name == FHIRHELPERS[0]:
        return ("FHIRHelpers", f"FHIRHelpers {t.version}, as shipped with the official CQL-to-ELM translator "
                f"(org.cqframework:quick:{CQFRAMEWORK_VERSION}), with the ELM that translator produces. Included "
                "by the package's logic libraries for the FHIR 4.0.1 model (docs/logic.md).")
    m = re.search(r"/\*(.*?)\*/", t.cql.decode("utf-8"), re.S)
    text = " ".join(line.strip(" *") for line in m.group(1).splitlines()).strip() if m else ""
    head, _, rest = text.partition(": ")
    title = head if rest and len(head) < 60 else t.name
    body = rest or text or f"CQL library {t.name}."
    return title, body[:1].upper() + body[1:] + \
        f" ELM by the official CQL-to-ELM translator (org.cqframework:cql-to-elm-jvm:{CQFRAMEWORK_VERSION})."


def update(project_root: Path | str = "definitions", *, force: bool = False,
           log: Callable[[str], None] = lambda m: None) -> CqlResult:
    """Translate the CQL files whose Library is missing or stale (all with ``force``) and rewrite
    their Library resources atomically; FHIRHelpers' Library is written when missing.  No Java is
    started when nothing changed."""
    root = Path(project_root)
    result = CqlResult()
    sources = cql_sources(root)
    if not sources:
        return result
    manifest = load_manifest(root)
    stale = {src for src, _, _ in stale_sources(root)}
    todo = [s for s in sources if force or s in stale]
    result.unchanged = [s.stem for s in sources if s not in todo]
    helpers_file = library_file(root, FHIRHELPERS[0])
    need_helpers = force or not helpers_file.is_file()
    if not todo and not need_helpers:
        return result
    names = [s.stem for s in todo] + (["@".join(FHIRHELPERS)] if need_helpers else [])
    log(f"fhirpkg cql: translating {', '.join(names)} (cql-to-elm {CQFRAMEWORK_VERSION})")
    with FileLock(translator_dir() / "translate.lock"):
        translations = translate(root / CQL_FOLDER, names)
        for name, t in translations.items():
            if name != FHIRHELPERS[0] and t.library.get("identifier", {}).get("id") != name:
                raise CqlError(f"{root / CQL_FOLDER / (name + '.cql')}:1:1: the file declares library "
                               f"{t.library.get('identifier', {}).get('id')!r}; name the file after the library")
        for name, t in translations.items():
            title, description = _description(t)
            text = _dumps(library_resource(root, manifest["canonical"], t, title=title, description=description))
            path = library_file(root, name)
            result.translated.append(name)
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                atomic_write_text(path, text)
                result.written.append(path)
    return result


def load_manifest(root: Path) -> dict:
    try:
        manifest = json.loads((root / "package.json").read_bytes())
    except (OSError, ValueError) as e:
        raise CqlError(f"{root / 'package.json'}: cannot read the package manifest ({e})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("canonical"), str):
        raise CqlError(f"{root / 'package.json'}: no 'canonical' in the package manifest")
    return manifest
