"""PlanDefinition/$apply, offline: which actions apply to one patient, and the requests they create.

Follows FHIR R5 PlanDefinition/$apply as cqf-fhir-cr implements it: an action is included when
every ``applicability`` condition is true (an action without conditions always is); a false or
null condition drops the action and all under it; an included action whose ``definitionCanonical``
is an ActivityDefinition creates a request from it, one that names a PlanDefinition applies that
plan (its own library) in a RequestOrchestration of its own that the container action references
(as cqf-fhir-cr nests a RequestGroup).  The result is an R5 Bundle: the CarePlan, the
RequestOrchestration of the plan, those of nested plans, then the requests.  Why each action applies is
kept in the RequestOrchestration: its conditions are copied with the value each had.
"""
from __future__ import annotations

import html
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from fhirpkg.content import project as proj
from fhirpkg.errors import ApplyError
from fhirpkg import loader
from fhirpkg.fhir.inputs import Source, read_source
from fhirpkg.fhir.jsonsource import copy_json
from fhirpkg.logic import elm, translate
from fhirpkg.logic.r4data import convert_bundle

ELM_JSON = translate.ELM_TYPE
_NS = uuid.UUID("9d7d3f0e-4a59-5a4e-9a8e-6e6570632d61")  # fixed: the same input gives the same fullUrls


@dataclass
class Package:
    """The content a PlanDefinition is applied from, indexed once."""

    root: Path
    resources: list[dict]
    by_url: dict[str, dict] = field(default_factory=dict)
    by_key: dict[str, dict] = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)
    valuesets: elm.ValueSets | None = None
    libraries: dict[int, elm.Library] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> "Package":
        """The project's resources, read by ``fhirpkg.load`` (what ``validate`` reads), without the
        project's manifest schema check: that is validation's job, and importing jsonschema alone
        would cost 0.2 s per run."""
        pkg = cls(root, [])
        for r in loader.load(root).resources:
            res = r.json
            pkg.resources.append(res)
            pkg.by_key[r.key] = res
            if not r.location:
                pkg.files[str(Path(r.file).resolve())] = res
            if isinstance(res.get("url"), str):
                pkg.by_url[res["url"]] = res
                if isinstance(res.get("version"), str):
                    pkg.by_url[f"{res['url']}|{res['version']}"] = res
        pkg.valuesets = elm.ValueSets({r["url"]: r for r in pkg.resources
                                       if r.get("resourceType") == "ValueSet" and isinstance(r.get("url"), str)})
        return pkg

    def canonical(self, url: str) -> dict | None:
        return self.by_url.get(url) or self.by_url.get(url.split("|", 1)[0])

    def library(self, url: str) -> elm.Library:
        lib = self.canonical(url)
        if lib is None or lib.get("resourceType") != "Library":
            raise ApplyError(f"library {url} is not in the package ({self.root})")
        if id(lib) not in self.libraries:
            data = translate.attachment(lib, ELM_JSON)
            if not data:
                raise ApplyError(f"Library/{lib.get('id')} has no {ELM_JSON} content (run: fhirpkg cql)")
            try:
                tree = orjson.loads(data)
            except orjson.JSONDecodeError as e:
                raise ApplyError(f"Library/{lib.get('id')}: the {ELM_JSON} content is not JSON ({e})") from None
            self.libraries[id(lib)] = elm.load(tree)
        return self.libraries[id(lib)]


_PACKAGES: dict[tuple, Package] = {}


def load_package(root: Path) -> Package:
    """The package at ``root``, loaded once per process (reloaded when a file in it changes)."""
    root = Path(root).resolve()
    stamp = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        stamp.extend(os.stat(os.path.join(dirpath, f)).st_mtime_ns for f in sorted(filenames) if f.endswith(".json"))
    key = (str(root), hash(tuple(stamp)))
    if key not in _PACKAGES:
        _PACKAGES.clear()
        _PACKAGES[key] = Package.load(root)
    return _PACKAGES[key]


def package_root_of(path: Path) -> Path:
    """The content project a file belongs to: the nearest folder above it with a package.json."""
    for folder in Path(path).resolve().parents:
        if (folder / proj.MANIFEST).is_file():
            return folder
    return Path(path).resolve().parent


def resolve_plan(ref: str, package: str | Path | None) -> tuple[dict, Package]:
    """A PlanDefinition named by file, id (``x`` or ``PlanDefinition/x``) or canonical url."""
    p = Path(ref)
    if ref.endswith(".json") and p.is_file():
        pkg = load_package(Path(package) if package else package_root_of(p))
        pd = pkg.files.get(str(p.resolve()))
        if pd is None:
            docs = list(read_source(Source(str(p), p)))
            pd = docs[0].value if docs and docs[0].ok else None
    else:
        pkg = load_package(Path(package) if package else Path("definitions"))
        if "://" in ref:
            pd = pkg.canonical(ref)
        else:
            pd = pkg.by_key.get(ref if ref.startswith("PlanDefinition/") else f"PlanDefinition/{ref}")
    if not isinstance(pd, dict) or pd.get("resourceType") != "PlanDefinition":
        raise ApplyError(f"PlanDefinition {ref} not found (looked in {pkg.root})")
    return pd, pkg


def read_data(data) -> tuple[dict, str]:
    """The patient-data Bundle (a path or a dict) and a name for messages."""
    if isinstance(data, dict):
        bundle, name = data, "data"
    else:
        name = str(data)
        p = Path(name)
        if not p.is_file():
            raise ApplyError(f"{name}: no such file")
        docs = list(read_source(Source(name, p)))
        doc = docs[0] if docs else None
        if doc is None or not doc.ok:
            issue = next((i for i in doc.issues if i.is_error), None) if doc else None
            where = f"{name}:{issue.line}:{issue.column}" if issue and issue.line else name
            raise ApplyError(f"{where}: not JSON: {issue.message if issue else 'empty'}")
        bundle = doc.value
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        found = bundle.get("resourceType") if isinstance(bundle, dict) else type(bundle).__name__
        raise ApplyError(f"{name}: the patient data must be a FHIR Bundle (found {found})")
    return bundle, name


@dataclass
class Applied:
    """What $apply returned, and how it got there."""

    bundle: dict
    actions: list[str]
    activities: list[str]
    conditions: list[tuple[str, str, str, object]]


class _Run:
    """One $apply: the patient's data, the library contexts, the resources being created."""

    def __init__(self, pkg: Package, data: elm.Data, subject: str, root_url: str):
        self.pkg, self.data, self.subject = pkg, data, subject
        self.contexts: dict[int, elm.Context] = {}
        self.actions: list[str] = []
        self.activities: list[str] = []
        self.conditions: list[tuple[str, str, str, object]] = []
        self.requests: list[tuple[str, dict]] = []
        self.orchestrations: list[tuple[str, dict]] = []
        self.root_url = root_url

    def full_url(self, *parts: str) -> str:
        return "urn:uuid:" + str(uuid.uuid5(_NS, "|".join((self.root_url, self.subject, *parts))))

    def value(self, pd: dict, action: dict, cond: dict):
        expr = cond.get("expression") or {}
        lang, name = expr.get("language"), expr.get("expression")
        if not translate.is_cql_identifier(lang):
            raise ApplyError(f"PlanDefinition/{pd.get('id')} action {action.get('id')}: unsupported expression "
                             f"language {lang!r} (supported: {translate.CQL_IDENTIFIER})")
        libs = pd.get("library") or []
        if not libs:
            raise ApplyError(f"PlanDefinition/{pd.get('id')} action {action.get('id')}: condition {name!r} "
                             "but the PlanDefinition names no library")
        lib = self.pkg.library(libs[0])
        if not lib.defines(name):
            raise ApplyError(f"PlanDefinition/{pd.get('id')} action {action.get('id')}: library {lib.name} "
                             f"defines no {name!r}")
        ctx = self.contexts.get(id(lib))
        if ctx is None:
            ctx = self.contexts[id(lib)] = elm.Context(self.data, self.pkg.valuesets)
        return lib.evaluate(name, ctx)

    def plan(self, pd: dict, trail: tuple[str, ...]) -> list[dict]:
        """The RequestOrchestration actions of the plan's included actions."""
        if pd.get("url") in trail:
            raise ApplyError(f"PlanDefinition/{pd.get('id')} includes itself through definitionCanonical")
        out = []
        for a in pd.get("action") or []:
            ro = self.action(pd, a, trail + (pd.get("url", ""),))
            if ro is not None:
                out.append(ro)
        return out

    def action(self, pd: dict, a: dict, trail: tuple[str, ...]) -> dict | None:
        why = []
        include = True
        for cond in a.get("condition") or []:
            if cond.get("kind") != "applicability":
                continue
            v = self.value(pd, a, cond)
            expr = (cond.get("expression") or {}).get("expression")
            self.conditions.append((pd.get("id"), a.get("id"), expr, v))
            why.append((cond, v))
            include = include and v is True
        if not include:
            return None
        self.actions.append(f"{pd.get('id')}#{a.get('id')}")
        ro = {"linkId": a["id"]} if a.get("id") else {}
        for k in ("prefix", "title", "description", "textEquivalent", "priority", "documentation"):
            if k in a:
                ro[k] = copy_json(a[k])
        if a.get("code"):  # PlanDefinition.action.code is 0..1, RequestOrchestration.action.code 0..*
            ro["code"] = copy_json(a["code"] if isinstance(a["code"], list) else [a["code"]])
        if why:
            ro["condition"] = [self._because(c, v) for c, v in why]
        for k in ("type", "groupingBehavior", "selectionBehavior", "requiredBehavior", "precheckBehavior",
                  "cardinalityBehavior"):
            if k in a:
                ro[k] = copy_json(a[k])
        nested: list[dict] = []
        target = a.get("definitionCanonical")
        if target:
            ro["definitionCanonical"] = target
            res = self.pkg.canonical(target)
            if res is None:
                raise ApplyError(f"PlanDefinition/{pd.get('id')} action {a.get('id')}: definitionCanonical "
                                 f"{target} is not in the package")
            if res.get("resourceType") == "ActivityDefinition":
                ro["resource"] = {"reference": self.request(res, pd, a)}
            elif res.get("resourceType") == "PlanDefinition":
                ro["resource"] = {"reference": self.orchestration(res, self.plan(res, trail), pd, a)}
            else:
                raise ApplyError(f"PlanDefinition/{pd.get('id')} action {a.get('id')}: definitionCanonical names a "
                                 f"{res.get('resourceType')}, not an ActivityDefinition or PlanDefinition")
        for child in a.get("action") or []:
            c = self.action(pd, child, trail)
            if c is not None:
                nested.append(c)
        if nested:
            ro["action"] = nested
        if "resource" not in ro and "action" not in ro:
            # information only: RequestOrchestration needs a resource or sub-actions (rqg-1), so the
            # information is proposed as a CommunicationRequest carrying the action's text
            ro["resource"] = {"reference": self.inform(pd, a)}
        return ro

    def orchestration(self, plan: dict, actions: list[dict], pd: dict, a: dict) -> str:
        """A nested PlanDefinition's included actions, in a RequestOrchestration of their own
        (as cqf-fhir-cr nests a RequestGroup), referenced from the container action."""
        url = self.full_url("RequestOrchestration", pd.get("url", ""), a.get("id", ""), plan.get("url", ""),
                            str(len(self.orchestrations)))
        label = plan.get("title") or plan.get("name") or plan.get("id")
        res = {"resourceType": "RequestOrchestration",
               "text": _narrative(f"Actions of {label} that apply to {self.subject}: "
                                  + (", ".join(x.get("linkId", "") for x in actions) or "none") + "."),
               "instantiatesCanonical": [_canonical(plan)], "status": "draft", "intent": "proposal",
               "subject": {"reference": self.subject}}
        if actions:
            res["action"] = actions
        self.orchestrations.append((url, res))
        return url

    def inform(self, pd: dict, a: dict) -> str:
        text = a.get("textEquivalent") or a.get("description") or a.get("title") or a.get("id", "")
        url = self.full_url("CommunicationRequest", pd.get("url", ""), a.get("id", ""), str(len(self.requests)))
        self.requests.append((url, {
            "resourceType": "CommunicationRequest",
            "text": _narrative(f"Proposed (draft) information for {self.subject}: {text}"),
            "status": "draft", "intent": "proposal", "subject": {"reference": self.subject},
            "payload": [{"contentCodeableConcept": {"text": text}}]}))
        return url

    def _because(self, cond: dict, value) -> dict:
        out = copy_json(cond)
        expr = out.setdefault("expression", {})
        expr["description"] = (f"Applies: {expr.get('expression')!r} evaluated to "
                               f"{'true' if value is True else value} for {self.subject}")
        return out

    def request(self, ad: dict, pd: dict, a: dict) -> str:
        self.activities.append(ad.get("id"))
        url = self.full_url(pd.get("url", ""), a.get("id", ""), ad.get("url", ""), str(len(self.requests)))
        req = create_request(ad, self.subject)
        req = {"resourceType": req.pop("resourceType"),
               "text": _narrative(f"Proposed (draft): {ad.get('title') or ad.get('name') or ad.get('id')}, "
                                  f"for {self.subject}, from ActivityDefinition/{ad.get('id')}."), **req}
        self.requests.append((url, req))
        return url



def _narrative(text: str) -> dict:
    """A one-paragraph generated narrative (dom-6: resources should have one)."""
    return {"status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{html.escape(text, quote=False)}</p></div>'}


def _canonical(res: dict) -> str:
    return f"{res['url']}|{res['version']}" if res.get("version") else res.get("url", "")


def create_request(ad: dict, subject: str) -> dict:
    """The R5 request resource an ActivityDefinition describes, for this subject (status draft)."""
    kind = ad.get("kind")
    intent = ad.get("intent", "proposal")
    common = {"status": "draft", "intent": intent}
    if ad.get("priority"):
        common["priority"] = ad["priority"]
    if ad.get("dynamicValue"):
        raise ApplyError(f"ActivityDefinition/{ad.get('id')}: dynamicValue is not supported by fhirpkg apply")
    if kind == "MedicationRequest":
        out = {"resourceType": kind, **common}
        if ad.get("doNotPerform") is not None:
            out["doNotPerform"] = ad["doNotPerform"]
        if "productCodeableConcept" in ad:
            out["medication"] = {"concept": copy_json(ad["productCodeableConcept"])}
        elif "productReference" in ad:
            out["medication"] = {"reference": copy_json(ad["productReference"])}
        else:
            raise ApplyError(f"ActivityDefinition/{ad.get('id')}: a MedicationRequest needs a product[x]")
        out["subject"] = {"reference": subject}
        if ad.get("dosage"):
            out["dosageInstruction"] = copy_json(ad["dosage"])
        if ad.get("quantity"):
            out["dispenseRequest"] = {"quantity": copy_json(ad["quantity"])}
        return out
    if kind == "ServiceRequest":
        out = {"resourceType": kind, "instantiatesCanonical": [_canonical(ad)], **common}
        if ad.get("doNotPerform") is not None:
            out["doNotPerform"] = ad["doNotPerform"]
        if ad.get("code"):
            out["code"] = {"concept": copy_json(ad["code"])}
        out["subject"] = {"reference": subject}
        if ad.get("bodySite"):
            out["bodySite"] = copy_json(ad["bodySite"])
        return out
    if kind == "CommunicationRequest":
        out = {"resourceType": kind, **common, "subject": {"reference": subject}}
        if ad.get("doNotPerform") is not None:
            out["doNotPerform"] = ad["doNotPerform"]
        text = (ad.get("code") or {}).get("text") or ad.get("title")
        if text:
            out["payload"] = [{"contentCodeableConcept": {"text": text}}]
        return out
    if kind == "Task":
        out = {"resourceType": kind, "instantiatesCanonical": _canonical(ad), **common}
        if ad.get("code"):
            out["code"] = copy_json(ad["code"])
        if ad.get("description"):
            out["description"] = ad["description"]
        out["for"] = {"reference": subject}
        return out
    raise ApplyError(f"ActivityDefinition/{ad.get('id')}: kind {kind!r} is not supported by fhirpkg apply "
                     "(MedicationRequest, ServiceRequest, CommunicationRequest, Task)")


def apply(plan_definition: str, data, subject: str, *, package: str | Path | None = None) -> Applied:
    """PlanDefinition/$apply for one subject; see :mod:`fhirpkg.logic.apply`."""
    pd, pkg = resolve_plan(str(plan_definition), package)
    bundle, name = read_data(data)
    if not isinstance(subject, str) or not subject.startswith("Patient/") or len(subject) <= len("Patient/"):
        raise ApplyError(f"subject {subject!r}: expected Patient/<id>")
    pid = subject.split("/", 1)[1]
    if not any(isinstance(e, dict) and isinstance(e.get("resource"), dict)
               and e["resource"].get("resourceType") == "Patient" and e["resource"].get("id") == pid
               for e in bundle.get("entry") or []):
        raise ApplyError(f"{name}: subject {subject} is not in the data (no Patient with id {pid!r})")
    r4 = convert_bundle(bundle)
    run = _Run(pkg, elm.Data.of(r4.bundle, pid), subject, pd.get("url", pd.get("id", "")))
    actions = run.plan(pd, ())
    ro_url, cp_url = run.full_url("RequestOrchestration"), run.full_url("CarePlan")
    canonical = _canonical(pd)
    label = pd.get("title") or pd.get("name") or pd.get("id")
    care_plan = {"resourceType": "CarePlan",
                 "text": _narrative(f"Proposed care plan (draft) for {subject} from {label}: "
                                    f"{len(run.actions)} action(s) apply."),
                 "instantiatesCanonical": [canonical], "status": "draft",
                 "intent": "proposal", "subject": {"reference": subject},
                 "activity": [{"plannedActivityReference": {"reference": ro_url}}]}
    if pd.get("title"):
        care_plan["title"] = pd["title"]
    orchestration = {"resourceType": "RequestOrchestration",
                     "text": _narrative(f"Actions of {label} that apply to {subject}: "
                                        + ("; ".join(run.actions) or "none") + "."),
                     "instantiatesCanonical": [canonical],
                     "status": "draft", "intent": "proposal", "subject": {"reference": subject}}
    if actions:
        orchestration["action"] = actions
    entries = [{"fullUrl": cp_url, "resource": care_plan}, {"fullUrl": ro_url, "resource": orchestration}]
    entries += [{"fullUrl": u, "resource": r} for u, r in run.orchestrations + run.requests]
    out = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    return Applied(out, sorted(run.actions), sorted(run.activities), run.conditions)
