"""Load the transaction Bundle into a FHIR server and report what the server then holds.

Three steps, so that nothing is claimed that the server does not show:

1. read every artifact first (``GET [base]/[Type]/[id]``) to learn its current versionId;
2. send the transaction (``POST [base]``), retrying only what is safe to retry;
3. read every artifact back by its business identity (canonical ``url`` + ``version``,
   or ``identifier`` for MedicationKnowledge/ClinicalUseDefinition), check that exactly
   one resource matches, that it is ours and that it holds what we sent, and compare
   versionIds: absent before = created, same versionId = unchanged, new = updated.

Retrying the transaction is safe because every entry is a ``PUT [Type]/[id]``: applying
it twice leaves the same state as applying it once (a server that sees identical content
keeps the version).  Only 429, 502, 503, 504 and connection failures/timeouts are retried,
a bounded number of times; other 4xx/5xx answers are final.

Header values (``Authorization`` etc.) are secrets: every message, log line and report
passes through a redactor.  The HTTP itself (connection, retries, redaction) is
``fhirpkg.publish.transport``; this module decides what to send and what the answers mean.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable
from urllib.parse import quote, urlencode

from fhirpkg.publish import diff as _diff
from fhirpkg.fhir.inputs import Source, read_source
from fhirpkg.fhir.jsonsource import Document
from fhirpkg.fhir.serialize import dumps
from fhirpkg.publish.transport import (
    Exchange, Http, PushError, PushOptions, Redactor, Response, Server, parse_server, redactor_for, send,
    tls_context)

OUTCOMES = ("created", "updated", "unchanged", "failed", "missing")
#: Server bookkeeping that differs from what was sent without the content differing.
#: Narrative XHTML is re-serialized by servers (HAPI), so only its status is compared.
SERVER_NOISE = ("meta.versionId", "meta.lastUpdated", "meta.source", "text.div")


@dataclass
class ArtifactStatus:
    key: str  # "PlanDefinition/x"
    outcome: str  # one of OUTCOMES
    version_id: str | None = None  # the server's versionId after the push
    detail: str = ""


@dataclass
class PushReport:
    ok: bool
    statuses: list[ArtifactStatus] = field(default_factory=list)
    http_status: int | None = None  # of the transaction
    operation_outcome: dict | None = None  # the server's, when the transaction failed
    attempts: int = 0  # transaction attempts
    messages: list[str] = field(default_factory=list)
    waited: float = 0.0  # seconds spent waiting between attempts (all requests)

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in OUTCOMES}
        for s in self.statuses:
            out[s.outcome] = out.get(s.outcome, 0) + 1
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["counts"] = self.counts()
        return d

    def to_json(self) -> str:
        return dumps(self.to_dict()) + "\n"


# --- what we push -----------------------------------------------------------------

@dataclass
class Target:
    key: str  # "Type/id"
    resource: dict


def targets(bundle: dict) -> list[Target]:
    """The entries to push; only ``PUT Type/id`` transactions (idempotent) are accepted."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise PushError("push needs a Bundle")
    if bundle.get("type") != "transaction":
        raise PushError(f"push needs a transaction Bundle (this one is '{bundle.get('type')}')")
    out, seen = [], set()
    for n, entry in enumerate(bundle.get("entry") or []):
        res = entry.get("resource") if isinstance(entry, dict) else None
        req = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(res, dict) or not isinstance(req, dict):
            raise PushError(f"Bundle.entry[{n}] needs a resource and a request")
        key = f"{res.get('resourceType')}/{res.get('id')}"
        if req.get("method") != "PUT" or req.get("url") != key:
            raise PushError(f"Bundle.entry[{n}]: push supports only 'PUT {key}' entries (idempotent reloads), "
                            f"not '{req.get('method')} {req.get('url')}'")
        if key in seen:
            raise PushError(f"Bundle.entry[{n}]: {key} appears twice")
        seen.add(key)
        out.append(Target(key, res))
    if not out:
        raise PushError("the Bundle has no entries")
    return out


#: R5 types with a ``url`` element but no ``url`` search parameter (found by identifier instead).
NO_URL_SEARCH = frozenset({"ResearchStudy"})


def searches_for(resource: dict) -> list[tuple[str, str]]:
    """Business-identity searches (query, label), best first: url+version, then identifier."""
    rt = resource["resourceType"]
    out = []
    url = resource.get("url")
    if isinstance(url, str) and url and rt not in NO_URL_SEARCH:
        params = {"url": _escape(url)}
        label = f"url {url}"
        if isinstance(resource.get("version"), str):
            params["version"] = _escape(resource["version"])
            label = f"url {url}|{resource['version']}"
        out.append((f"/{rt}?{urlencode(params, quote_via=quote, safe='')}", label))
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and isinstance(ident.get("system"), str) and isinstance(ident.get("value"), str):
            token = f"{_escape(ident['system'])}|{_escape(ident['value'])}"
            out.append((f"/{rt}?{urlencode({'identifier': token}, quote_via=quote, safe='')}",
                        f"identifier {ident['system']}|{ident['value']}"))
            break
    return out


def _escape(value: str) -> str:
    """FHIR search escaping of \\ , $ | inside a parameter value."""
    for ch in ("\\", ",", "$", "|"):
        value = value.replace(ch, "\\" + ch)
    return value


# --- states and decisions (pure) --------------------------------------------------

@dataclass
class Held:
    """What the server holds for one artifact at one moment."""

    present: bool
    version_id: str | None = None
    resource: dict | None = None


@dataclass
class Found:
    """The verification read after the push."""

    ok: bool  # exactly our resource, found by business identity, holding what we sent
    outcome: str = ""  # "missing" or "failed" when not ok
    version_id: str | None = None
    detail: str = ""


def version_of(resource: dict | None, response: Response | None = None) -> str | None:
    vid = ((resource or {}).get("meta") or {}).get("versionId")
    if isinstance(vid, str) and vid:
        return vid
    etag = (response.headers.get("etag") if response is not None else None) or ""
    return etag.removeprefix("W/").strip('"') or None


def content_differences(sent: dict, held: dict) -> list[_diff.Change]:
    return _diff.diff_resource(sent, held, ignore=SERVER_NOISE)


def check_match(target: Target, bundle_: Any, label: str) -> Found:
    """Exactly one match, with our id and our content."""
    if not isinstance(bundle_, dict) or bundle_.get("resourceType") != "Bundle":
        return Found(False, "failed", detail=f"search by {label} did not return a Bundle")
    rt = target.resource["resourceType"]
    matches = [e["resource"] for e in bundle_.get("entry") or []
               if isinstance(e, dict) and isinstance(e.get("resource"), dict)
               and e["resource"].get("resourceType") == rt
               and (e.get("search") or {}).get("mode", "match") == "match"]
    if not matches:
        return Found(False, "missing", detail=f"no {rt} with {label} on the server")
    if len(matches) > 1 or (isinstance(bundle_.get("total"), int) and bundle_["total"] > 1):
        ids = ", ".join(sorted(str(m.get("id")) for m in matches))
        return Found(False, "failed", detail=f"{max(len(matches), bundle_.get('total') or 0)} resources match "
                                             f"{label} ({ids}): resolution is ambiguous")
    held = matches[0]
    if f"{rt}/{held.get('id')}" != target.key:
        return Found(False, "failed", detail=f"the only {rt} with {label} is {rt}/{held.get('id')}, not ours")
    vid = version_of(held)
    changes = content_differences(target.resource, held)
    if changes:
        first = changes[0]
        more = f" (+{len(changes) - 1} more)" if len(changes) > 1 else ""
        return Found(False, "failed", vid, f"the server's copy differs from the bundle at {first.path} "
                                           f"({first.kind}){more}")
    return Found(True, version_id=vid)


def decide(target: Target, before: Held, found: Found, entry_status: str | None) -> ArtifactStatus:
    """created / updated / unchanged from before-and-after versionIds; failures as found."""
    if not found.ok:
        return ArtifactStatus(target.key, found.outcome, found.version_id, found.detail)
    vid = found.version_id
    note = f"; transaction said {entry_status}" if entry_status else ""
    if not before.present:
        return ArtifactStatus(target.key, "created", vid, f"new, version {vid}{note}")
    if before.version_id and vid:
        if before.version_id == vid:
            return ArtifactStatus(target.key, "unchanged", vid, f"version {vid} kept{note}")
        return ArtifactStatus(target.key, "updated", vid, f"version {before.version_id} -> {vid}{note}")
    # The server gives no versionIds: judge by content, and say so.
    same = before.resource is not None and not content_differences(target.resource, before.resource)
    return ArtifactStatus(target.key, "unchanged" if same else "updated", vid,
                          f"server gives no versionId; judged by content{note}")


def format_outcome(oo: Any) -> list[str]:
    """One line per OperationOutcome issue: severity code: text @ expression."""
    if not isinstance(oo, dict) or oo.get("resourceType") != "OperationOutcome":
        return []
    lines = []
    for issue in oo.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details") or {}
        text = issue.get("diagnostics") or details.get("text") or "; ".join(
            str(c.get("display") or c.get("code")) for c in details.get("coding") or [] if isinstance(c, dict))
        where = issue.get("expression") or issue.get("location") or []
        at = f" @ {', '.join(map(str, where))}" if where else ""
        lines.append(f"{issue.get('severity', '?')} {issue.get('code', '?')}: {text or '(no text)'}{at}")
    return lines


def _entry_statuses(resp_bundle: Any, count: int) -> list[str | None]:
    """``response.status`` per entry from a transaction-response, in entry order."""
    entries = resp_bundle.get("entry") if isinstance(resp_bundle, dict) else None
    if not isinstance(entries, list) or len(entries) != count:
        return [None] * count
    return [((e or {}).get("response") or {}).get("status") if isinstance(e, dict) else None for e in entries]


# --- the push ---------------------------------------------------------------------

def load_bundle(path) -> dict:
    """The transaction Bundle from a JSON file, or the one transaction Bundle in a folder (exact decimals).

    Files are read as ``validate`` reads them (``inputs.read_source``: size limit, no waiting on a FIFO)."""
    from pathlib import Path
    path = Path(path)
    if path.is_dir():
        found = [f for f in sorted(path.glob("*.json")) if _is_transaction(_read_json(f))]
        if len(found) != 1:
            raise PushError(f"{path}: expected one transaction Bundle (*.json) in the folder, found {len(found)}"
                            + (f": {', '.join(f.name for f in found)}" if found else ""))
        path = found[0]
    doc = _read_json(path)
    if not doc.ok:
        first = next((i for i in doc.issues if i.is_error), None)
        message = first.message if first else "unreadable"
        if first is not None and first.rule == "input":  # cannot read (missing, not a file, too large)
            raise PushError(f"{path}: {message[:1].lower()}{message[1:]}")
        raise PushError(f"{path}: not JSON ({message})")
    return doc.value


def _read_json(path) -> Document:
    """One JSON document from a file (the first, if the file holds more)."""
    return next(read_source(Source(str(path), path)))


def _is_transaction(doc: Document) -> bool:
    value = doc.value if doc.ok else None
    return isinstance(value, dict) and value.get("resourceType") == "Bundle" and value.get("type") == "transaction"


def preflight(bundle: dict, options: PushOptions) -> None:
    """Usage errors before any request (bad URL, CA file, Bundle); PushError, message without secrets."""
    server = parse_server(options.server)
    if server.scheme == "https":
        tls_context(options)
    if options.max_attempts < 1 or options.timeout <= 0 or options.backoff < 0 or options.max_wait < 0:
        raise PushError("max attempts must be at least 1, timeout positive, backoff and max wait not negative")
    targets(bundle)


@dataclass
class _Run:
    http: Http
    options: PushOptions
    log: Callable[[str], None]
    sleep: Callable[[float], None]
    report: PushReport

    def send(self, method: str, target: str, body: bytes | None = None, attempts: int | None = None) -> Exchange:
        ex = send(self.http, method, target, body, self.options, self.log, self.sleep, attempts)
        self.report.waited += ex.waited
        return ex

    def note(self, message: str) -> None:
        self.report.messages.append(message)
        self.log(message)


def push(bundle: dict, options: PushOptions, log: Callable[[str], None] = print, *,
         sleep: Callable[[float], None] = time.sleep) -> PushReport:
    """Send the transaction and verify it; never raises for server or network trouble."""
    redact = redactor_for(options.headers)
    report = PushReport(ok=False)

    def safe_log(message: str) -> None:
        log(redact(message))

    try:
        preflight(bundle, options)
        server = parse_server(options.server)
        run = _Run(Http(server, options), options, safe_log, sleep, report)
        try:
            _push(bundle, server, run)
        finally:
            run.http.close()
    except PushError as e:
        report.messages.append(str(e))
        safe_log(f"push: {e}")
    except Exception as e:  # noqa: BLE001 - report, never a traceback that could carry a secret
        report.messages.append(f"push stopped by an internal error: {type(e).__name__}: {e}")
        safe_log(report.messages[-1])
        report.ok = False
    return _redacted(report, redact)


def _redacted(report: PushReport, redact: Redactor) -> PushReport:
    return PushReport(
        ok=report.ok,
        statuses=[ArtifactStatus(s.key, s.outcome, s.version_id, redact(s.detail)) for s in report.statuses],
        http_status=report.http_status,
        operation_outcome=redact.deep(report.operation_outcome),
        attempts=report.attempts,
        messages=[redact(m) for m in report.messages],
        waited=report.waited,
    )


def _push(bundle: dict, server: Server, run: _Run) -> None:
    items = targets(bundle)
    report = run.report
    run.log(f"Reading {len(items)} artifacts from {server.display} before pushing")
    before: dict[str, Held] = {}
    for t in items:
        held, problem = _read(run, t)
        if problem:
            run.note(f"Not pushed: cannot read {t.key} first: {problem}")
            return
        before[t.key] = held

    run.log(f"Sending the transaction ({len(items)} entries)")
    body = dumps(bundle, indent=None).encode("utf-8")
    ex = run.send("POST", "", body)
    report.attempts = ex.attempts
    resp = ex.response
    report.http_status = resp.status if resp else None
    if resp is None or not 200 <= resp.status < 300:
        _report_failure(run, items, before, ex)
        return
    run.log(f"Transaction accepted: HTTP {resp.status} after {ex.attempts} attempt(s); verifying")

    statuses = _entry_statuses(resp.json(), len(items))
    for t, entry_status in zip(items, statuses):
        if entry_status and not entry_status.strip().startswith("2"):
            report.statuses.append(ArtifactStatus(t.key, "failed", None, f"transaction entry answered {entry_status}"))
            continue
        report.statuses.append(decide(t, before[t.key], _verify(run, t), entry_status))

    counts = report.counts()
    report.ok = all(s.outcome in ("created", "updated", "unchanged") for s in report.statuses)
    for s in report.statuses:
        if s.outcome in ("failed", "missing"):
            run.note(f"{s.key}: {s.outcome}: {s.detail}")
    run.note(("Verified: " if report.ok else "NOT verified: ")
             + ", ".join(f"{counts[k]} {k}" for k in OUTCOMES if counts[k] or k in ("created", "updated", "unchanged")))


def _read(run: _Run, t: Target, attempts: int | None = None) -> tuple[Held, str | None]:
    """GET [Type]/[id]: what the server holds, or why it could not be read."""
    ex = run.send("GET", "/" + quote(t.key, safe="/"), attempts=attempts)
    resp = ex.response
    if resp is None:
        return Held(False), ex.error
    if resp.status in (404, 410):
        return Held(False), None
    if resp.status == 200:
        res = resp.json()
        if isinstance(res, dict) and f"{res.get('resourceType')}/{res.get('id')}" == t.key:
            return Held(True, version_of(res, resp), res), None
        return Held(False), "the answer was not the resource"
    return Held(False), _http_problem(resp)


def _verify(run: _Run, t: Target) -> Found:
    """Read back by business identity; a search the server refuses (400) falls to the next, then to the id."""
    refused = []
    for target, label in searches_for(t.resource):
        ex = run.send("GET", target)
        if ex.response is None:
            return Found(False, "failed", detail=f"could not search by {label}: {ex.error}")
        if ex.response.status == 400:
            refused.append(f"search by {label} refused ({_http_problem(ex.response)})")
            continue
        if ex.response.status != 200:
            return Found(False, "failed", detail=f"search by {label}: {_http_problem(ex.response)}")
        return check_match(t, ex.response.json(), label)
    held, problem = _read(run, t)
    if problem:
        return Found(False, "failed", detail=f"could not read back: {problem}")
    if not held.present:
        return Found(False, "missing", detail="not on the server after the push")
    changes = content_differences(t.resource, held.resource)
    if changes:
        return Found(False, "failed", held.version_id,
                     f"the server's copy differs from the bundle at {changes[0].path} ({changes[0].kind})")
    why = "; ".join(refused) if refused else "it has no url or identifier"
    return Found(True, version_id=held.version_id, detail=f"verified by id ({why})")


def _http_problem(resp: Response) -> str:
    lines = format_outcome(resp.json())
    text = f"HTTP {resp.status} {resp.reason}".rstrip()
    if 300 <= resp.status < 400:
        text += (f" to {resp.headers.get('location', '?')} (push does not follow redirects, which would carry "
                 "the headers elsewhere; use that URL as --server)")
    return f"{text}: {'; '.join(lines)}" if lines else text


def _report_failure(run: _Run, items: list[Target], before: dict[str, Held], ex: Exchange) -> None:
    """Nothing is claimed: show why, then read back (one try each) what the server holds now."""
    report = run.report
    resp = ex.response
    if resp is None:
        run.note(f"Transaction failed after {ex.attempts} attempt(s): {ex.error}")
    else:
        oo = resp.json()
        if isinstance(oo, dict) and oo.get("resourceType") == "OperationOutcome":
            report.operation_outcome = oo
        lines = format_outcome(oo)
        headline = f"HTTP {resp.status} {resp.reason}".rstrip() if lines else _http_problem(resp)
        run.note(f"Transaction rejected after {ex.attempts} attempt(s): {headline}")
        for line in lines:
            run.note(f"  {line}")
        if not lines and resp.body:
            snippet = resp.body[:300].decode("utf-8", "replace").replace("\n", " ")
            run.note(f"  server said: {snippet}")
    unreachable = None
    for t in items:
        if unreachable:
            report.statuses.append(ArtifactStatus(t.key, "failed", before[t.key].version_id,
                                                  f"not loaded; could not read back ({unreachable})"))
            continue
        now, problem = _read(run, t, attempts=1)
        if problem:
            unreachable = problem
            report.statuses.append(ArtifactStatus(t.key, "failed", before[t.key].version_id,
                                                  f"not loaded; could not read back ({problem})"))
        elif not now.present:
            if resp is None:  # no answer: a timed-out transaction may still be applied by the server
                report.statuses.append(ArtifactStatus(
                    t.key, "failed", None, "outcome unknown: the transaction got no answer and was not found "
                    "when read back, but the server may still apply it; push again to verify (pushing is "
                    "idempotent)"))
            else:
                report.statuses.append(ArtifactStatus(t.key, "failed", None, "not loaded; the server has no copy"))
        elif before[t.key].present and now.version_id == before[t.key].version_id:
            report.statuses.append(ArtifactStatus(t.key, "failed", now.version_id,
                                                  f"not loaded; the server still holds version {now.version_id}"))
        else:
            report.statuses.append(ArtifactStatus(
                t.key, "failed", now.version_id,
                f"the transaction failed, yet the server now holds version {now.version_id} "
                "(an earlier attempt that timed out may have been applied); push again to verify"))
    report.ok = False


# --- for the interop suite and the CLI --------------------------------------------

def push_roundtrip_check(base_url: str, bundle: dict, **options) -> tuple[PushReport, PushReport]:
    """Push twice; the second push of the same bundle must report 0 created and 0 updated."""
    opts = PushOptions(server=base_url, **{"timeout": 120.0, "max_attempts": 3, "backoff": 0.5, **options})
    first = push(bundle, opts, log=lambda m: None)
    second = push(bundle, opts, log=lambda m: None)
    return first, second


def render_text(report: PushReport, verbose: bool = False) -> str:
    """Per-artifact lines (all when verbose, else only problems) and the summary."""
    lines = []
    for s in report.statuses:
        if verbose or s.outcome in ("failed", "missing"):
            vid = f" v{s.version_id}" if s.version_id else ""
            lines.append(f"{s.outcome:9} {s.key}{vid}  {s.detail}".rstrip())
    counts = report.counts()
    if report.statuses:
        lines.append(", ".join(f"{counts[k]} {k}" for k in OUTCOMES))
    if report.operation_outcome:
        lines += ["server OperationOutcome:"] + [f"  {x}" for x in format_outcome(report.operation_outcome)]
    lines.append("push verified: OK" if report.ok else "push FAILED: nothing above is claimed loaded unless "
                 "marked created/updated/unchanged")
    return "\n".join(lines) + "\n"
