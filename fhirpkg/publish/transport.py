"""HTTP to a FHIR server for ``push``: one keep-alive connection, bounded retries, redacted secrets.

Only 429, 5xx and connection failures/timeouts are retried, a bounded number of times
(Retry-After honoured, else exponential backoff with jitter); other answers are final.
Header values (``Authorization`` etc.) are secrets: ``Redactor`` hides them in every
message, and headers are never part of a repr.  Only the standard library does HTTP;
redirects are not followed (they would carry the headers elsewhere).
"""
from __future__ import annotations

import base64
import http.client
import random
import re
import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, Callable
from urllib.parse import quote, urlsplit

from fhirpkg.errors import FhirpkgError
from fhirpkg.fhir.jsonsource import read_documents

#: Retried within the attempt bound: every 5xx (the reliability issue asks it; HAPI answers some
#: persistent errors with 500, which then fail after max_attempts) and 429.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
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
