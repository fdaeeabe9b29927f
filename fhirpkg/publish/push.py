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
passes through a redactor, and headers are never part of a repr.  Only the standard
library does HTTP; redirects are not followed (they would carry the headers elsewhere).
"""
from __future__ import annotations

import base64
import http.client
import json
import random
import re
import socket
import ssl
import time
from http import HTTPStatus
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable
from urllib.parse import quote, urlencode, urlsplit

from fhirpkg.publish import diff as _diff
from fhirpkg.errors import FhirpkgError
from fhirpkg.fhir.jsonsource import read_documents
from fhirpkg.fhir.serialize import dumps

#: Retried within the attempt bound: every 5xx (the reliability issue asks it; HAPI answers some
#: persistent errors with 500, which then fail after max_attempts) and 429.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
OUTCOMES = ("created", "updated", "unchanged", "failed", "missing")
#: Server bookkeeping that differs from what was sent without the content differing.
#: Narrative XHTML is re-serialized by servers (HAPI), so only its status is compared.
SERVER_NOISE = ("meta.versionId", "meta.lastUpdated", "meta.source", "text.div")
MAX_BODY_BYTES = 256 * 2**20
REDACTED = "***"
FHIR_JSON = "application/fhir+json"


class PushError(FhirpkgError):
    """The request cannot be made (bad server URL, bad header, bundle we cannot push)."""


@dataclass
class PushOptions:
    server: str  # base URL, e.g. http://127.0.0.1:8080/fhir
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # secrets: never printed
    timeout: float = 60.0  # seconds per attempt: connect + send + whole response
    max_attempts: int = 5  # per request
    backoff: float = 1.0  # base seconds, doubled per attempt, with jitter
    max_wait: float = 60.0  # cap for a single wait (Retry-After included)
    verify_tls: bool = True
    ca_file: str | None = None


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


# --- secrets ----------------------------------------------------------------------

@dataclass(frozen=True)
class Redactor:
    """Replaces every secret (header values and their parts) with ***."""

    secrets: tuple[str, ...] = ()

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, REDACTED)
        return text

    def deep(self, value: Any) -> Any:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(str(k)): self.deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        return value


def redactor_for(headers: dict[str, str]) -> Redactor:
    """Secrets: each header value, its credential part, their URL-encoded and Basic-decoded forms."""
    found: set[str] = set()
    for value in headers.values():
        value = str(value).strip()
        forms = {value}
        scheme, _, cred = value.partition(" ")
        if cred.strip():
            forms.add(cred.strip())
            if scheme.lower() == "basic":
                try:
                    user_pass = base64.b64decode(cred.strip(), validate=True).decode("utf-8")
                    forms.add(user_pass)
                    forms.add(user_pass.partition(":")[2])
                except (ValueError, UnicodeDecodeError):
                    pass
        for f in list(forms):
            forms.add(quote(f, safe=""))
        found |= {f for f in forms if len(f) >= 4}
    return Redactor(tuple(sorted(found, key=len, reverse=True)))


def parse_headers(lines: list[str]) -> dict[str, str]:
    """``["Name: value", ...]`` (the CLI's repeated --header) to a dict; errors never echo values."""
    out: dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name or any(c.isspace() for c in name):
            raise PushError(f"--header #{n} must look like 'Name: value' (value not shown)")
        if "\r" in value or "\n" in value:
            raise PushError(f"--header #{n} ({name}) contains a line break")
        out[name] = value.strip()
    return out


# --- HTTP -------------------------------------------------------------------------

@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        """The body as JSON (exact decimals), or None when it is not JSON."""
        if not self.body.strip():
            return None
        doc = next(read_documents(self.body, "response"))
        return doc.value if doc.ok else None


class TransportError(Exception):
    """No HTTP answer: connection refused/reset, timeout, TLS failure."""

    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class Server:
    scheme: str
    host: str
    port: int
    path: str  # base path without trailing slash, e.g. "/fhir"

    @property
    def display(self) -> str:
        default = 443 if self.scheme == "https" else 80
        port = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}{self.path}"


def parse_server(url: str) -> Server:
    """Checks the base URL; credentials in it are refused (they belong in a header)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise PushError("the server URL is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise PushError("the server URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise PushError("the server URL must not contain credentials; pass them with --header")
    if not parts.hostname:
        raise PushError("the server URL has no host")
    if parts.query or parts.fragment:
        raise PushError("the server URL must be a FHIR base URL without ?query or #fragment")
    return Server(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80),
                  parts.path.rstrip("/"))


def tls_context(options: PushOptions) -> ssl.SSLContext:
    try:
        ctx = ssl.create_default_context(cafile=options.ca_file)
    except (OSError, ssl.SSLError) as e:
        raise PushError(f"cannot use CA file {options.ca_file}: {getattr(e, 'strerror', None) or e}") from None
    if not options.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def describe_transport(exc: BaseException, server: Server, timeout: float = 0) -> TransportError:
    """A one-line, actionable message for a failure below HTTP; retryable when it may pass."""
    where = f"{server.host}:{server.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or "certificate rejected"
        return TransportError(f"TLS certificate verification failed for {where}: {reason} "
                              "(trust the server's CA with --ca-file, or use --insecure for a test server)", False)
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return TransportError(f"TLS connection to {where} closed during the handshake", True)
    if isinstance(exc, ssl.SSLError):
        hint = " (is it a plain-HTTP server? then use http://)" if "WRONG_VERSION" in str(exc) else ""
        return TransportError(f"TLS handshake with {where} failed: {exc.reason or exc}{hint}", False)
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return TransportError(f"no complete answer from {where} within the timeout ({timeout:g}s)", True)
    if isinstance(exc, socket.gaierror):
        return TransportError(f"cannot resolve host {server.host}", False)
    if isinstance(exc, ConnectionRefusedError):
        return TransportError(f"connection to {where} refused", True)
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError,
                        http.client.RemoteDisconnected, http.client.IncompleteRead)):
        return TransportError(f"connection to {where} was reset before the answer was complete", True)
    if isinstance(exc, (http.client.HTTPException, OSError)):
        text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return TransportError(f"connection to {where} failed: {text}", True)
    return TransportError(f"request to {where} failed: {type(exc).__name__}", False)


class Http:
    """One keep-alive connection to the server, every attempt bounded by the timeout."""

    def __init__(self, server: Server, options: PushOptions):
        self.server = server
        self.options = options
        self._ctx = tls_context(options) if server.scheme == "https" else None
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._ctx is not None:
                self._conn = http.client.HTTPSConnection(self.server.host, self.server.port,
                                                         timeout=self.options.timeout, context=self._ctx)
            else:
                self._conn = http.client.HTTPConnection(self.server.host, self.server.port,
                                                        timeout=self.options.timeout)
        return self._conn

    def once(self, method: str, target: str, body: bytes | None = None) -> Response:
        """One attempt; TransportError when there is no complete HTTP answer."""
        headers = {"Accept": FHIR_JSON, "Cache-Control": "no-cache", **self.options.headers}
        if body is not None:
            headers["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"
            headers["Prefer"] = "return=minimal"
        deadline = time.monotonic() + self.options.timeout
        try:
            conn = self._connection()
            conn.request(method, self.server.path + target, body=body, headers=headers)
            resp = conn.getresponse()
            chunks, size = [], 0
            while True:
                chunk = resp.read1(1 << 16) if hasattr(resp, "read1") else resp.read(1 << 16)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise TransportError(f"answer from {self.server.host} is larger than "
                                         f"{MAX_BODY_BYTES // 2**20} MB", False)
                if time.monotonic() > deadline:
                    raise TimeoutError()
                chunks.append(chunk)
            resp.close()  # fully read: the connection may carry the next request
            if resp.will_close:
                self.close()
            answer_headers = {k.lower(): v for k, v in resp.getheaders()}
            return Response(resp.status, resp.reason or _phrase(resp.status), answer_headers, b"".join(chunks))
        except TransportError:
            self.close()
            raise
        except Exception as e:  # noqa: BLE001 - every failure below HTTP becomes one message
            self.close()
            raise describe_transport(e, self.server, self.options.timeout) from None


def _phrase(status: int) -> str:
    """The standard reason phrase (HTTP/1.1 servers such as Tomcat send none)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


# --- retry policy (pure) ----------------------------------------------------------

def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]+", value):  # ASCII digits only ("²".isdigit() is true, float("²") fails)
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter: base·2^(attempt-1), scaled by 0.5–1.0, at most cap."""
    return min(cap, base * (2 ** (attempt - 1)) * (0.5 + rand() / 2))


def retry_wait(attempt: int, response: Response | None, options: PushOptions) -> float:
    """The server's Retry-After when given, else backoff; always capped by max_wait."""
    hinted = parse_retry_after(response.headers.get("retry-after")) if response is not None else None
    wait = hinted if hinted is not None else backoff_delay(attempt, options.backoff, options.max_wait)
    return max(0.0, min(wait, options.max_wait))


@dataclass
class Exchange:
    """A request after its retries: the final response, or why there was none."""

    response: Response | None
    attempts: int
    error: str | None = None
    waited: float = 0.0


def send(http_: Http, method: str, target: str, body: bytes | None, options: PushOptions,
         log: Callable[[str], None], sleep: Callable[[float], None], max_attempts: int | None = None) -> Exchange:
    """A request with bounded retries of 429/502/503/504 and retryable transport failures."""
    limit = max(1, max_attempts or options.max_attempts)
    waited = 0.0
    for attempt in range(1, limit + 1):
        try:
            resp = http_.once(method, target, body)
        except TransportError as e:
            if not e.retryable or attempt == limit:
                return Exchange(None, attempt, e.message, waited)
            resp, why = None, e.message
        else:
            if resp.status not in RETRY_STATUSES or attempt == limit:
                return Exchange(resp, attempt, None, waited)
            why = f"HTTP {resp.status} {resp.reason}".rstrip()
        wait = retry_wait(attempt, resp, options)
        http_.close()  # never reuse a connection across a wait: the server may drop it meanwhile
        log(f"{method} {target.split('?')[0] or '/'}: {why}; retrying in {wait:.1f}s "
            f"(attempt {attempt + 1} of {limit})")
        sleep(wait)
        waited += wait
    raise AssertionError("unreachable")


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
    """The transaction Bundle from a JSON file, or the one transaction Bundle in a folder (exact decimals)."""
    from pathlib import Path
    path = Path(path)
    if path.is_dir():
        found = [f for f in sorted(path.glob("*.json")) if _is_transaction_file(f)]
        if len(found) != 1:
            raise PushError(f"{path}: expected one transaction Bundle (*.json) in the folder, found {len(found)}"
                            + (f": {', '.join(f.name for f in found)}" if found else ""))
        path = found[0]
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PushError(f"{path}: cannot read ({e.strerror})") from None
    doc = next(read_documents(data, str(path)))
    if not doc.ok:
        raise PushError(f"{path}: not JSON ({doc.issues[0].message if doc.issues else 'unreadable'})")
    return doc.value


def _is_transaction_file(path) -> bool:
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
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
