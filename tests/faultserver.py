"""A scriptable local FHIR server for push tests: an in-memory store plus injected faults.

Without faults it is a tiny FHIR server: ``POST [base]`` applies a transaction of
``PUT Type/id`` entries atomically (a new versionId only when the content changed,
like HAPI), ``GET [base]/Type/id`` reads, and ``GET [base]/Type?url=&version=`` /
``?identifier=system|value`` / ``?_id=`` search.  Faults are queued per method
(and optionally path prefix) and used up one per matching request::

    with FaultServer() as srv:
        srv.on("POST", status(429, retry_after="1"), status(503))
        report = push(bundle, PushOptions(srv.base_url, ...))
        assert srv.count("POST") == 3

Every request is recorded (method, path, headers, body) so tests can count attempts.
"""
from __future__ import annotations

import json
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from fhirpkg.fhir.serialize import dumps
from fhirpkg.publish.diff import same

NOISE = ("versionId", "lastUpdated", "source")


# --- faults -----------------------------------------------------------------------

@dataclass
class Fault:
    kind: str  # "status" | "reset" | "truncate" | "sleep"
    status: int = 0
    headers: dict = field(default_factory=dict)
    body: dict | None = None
    seconds: float = 0.0
    then: str = "apply"  # after "sleep": "apply" (answer normally, too late) or "close"


def status(code: int, retry_after: str | None = None, outcome: dict | None = None) -> Fault:
    """Answer with this status (and Retry-After, and an OperationOutcome body) instead of working."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Fault("status", code, headers, outcome or operation_outcome("error", "transient", f"injected {code}"))


def reset() -> Fault:
    """Read the request, then reset the connection without answering."""
    return Fault("reset")


def truncate() -> Fault:
    """Start the answer (status, headers, a few bytes), then reset the connection mid-body."""
    return Fault("truncate")


def sleep(seconds: float, then: str = "apply") -> Fault:
    """Wait (past the client's timeout), then answer normally ("apply") or just close."""
    return Fault("sleep", seconds=seconds, then=then)


def operation_outcome(severity: str, code: str, diagnostics: str, expression: str | None = None) -> dict:
    issue = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


# --- TLS --------------------------------------------------------------------------

def make_cert(folder: Path) -> tuple[Path, Path] | None:
    """A self-signed cert for 127.0.0.1 via the openssl command; None when it is not available.

    (Python's ssl module can use certificates but cannot create them.)
    """
    exe = shutil.which("openssl")
    if not exe:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    cmd = [exe, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
           "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
    proc = subprocess.run(cmd, capture_output=True, timeout=60)
    return (cert, key) if proc.returncode == 0 and cert.exists() else None


# --- the server -------------------------------------------------------------------

@dataclass
class Seen:
    method: str
    path: str
    headers: dict
    body: bytes
    at: float


class FaultServer:
    """Threaded HTTP(S) server on 127.0.0.1 with a free port; use as a context manager."""

    def __init__(self, base_path: str = "/fhir", tls: tuple[Path, Path] | None = None):
        self.base_path = base_path
        self.tls = tls
        self.resources: dict[str, dict] = {}  # "Type/id" -> current version (with meta)
        self.requests: list[Seen] = []
        self.refuse_search: set[tuple[str, str]] = set()  # (Type, param) answered with 400
        self.store_filter: Callable[[dict], dict] | None = None  # what the server does to stored copies
        self._faults: list[tuple[str, str, Fault]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # scripting
    def on(self, method: str, *faults: Fault, path: str = "") -> "FaultServer":
        """Queue faults for the next requests with this method (and path prefix after the base)."""
        with self._lock:
            self._faults += [(method.upper(), path, f) for f in faults]
        return self

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return sum(1 for r in self.requests
                   if (method is None or r.method == method) and (path is None or r.path.startswith(path)))

    def put(self, resource: dict, version: str = "1") -> None:
        """Seed the store directly."""
        res = json.loads(dumps(resource, indent=None), parse_float=Decimal)
        res["meta"] = {**(res.get("meta") or {}), "versionId": version, "lastUpdated": _now()}
        self.resources[f"{res['resourceType']}/{res['id']}"] = res

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}{self.base_path}"

    def __enter__(self) -> "FaultServer":
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    # internals used by the handler
    def _next_fault(self, method: str, rel: str) -> Fault | None:
        with self._lock:
            for i, (m, prefix, fault) in enumerate(self._faults):
                if m == method and rel.startswith(prefix):
                    del self._faults[i]
                    return fault
        return None

    def _transaction(self, bundle: dict) -> tuple[int, dict]:
        if not isinstance(bundle, dict) or bundle.get("type") != "transaction":
            return 400, operation_outcome("error", "invalid", "expected a transaction Bundle")
        with self._lock:
            staged, answers = dict(self.resources), []
            for n, entry in enumerate(bundle.get("entry") or []):
                res, req = entry.get("resource") or {}, entry.get("request") or {}
                key = f"{res.get('resourceType')}/{res.get('id')}"
                if req.get("method") != "PUT" or req.get("url") != key:
                    return 400, operation_outcome("error", "not-supported", f"entry {n}: only PUT Type/id",
                                                  f"Bundle.entry[{n}].request")
                stored = self.store_filter(res) if self.store_filter else res
                old = staged.get(key)
                if old is not None and same(_content(old), _content(stored)):
                    answers.append({"status": "200 OK", "etag": f'W/"{old["meta"]["versionId"]}"',
                                    "location": f"{key}/_history/{old['meta']['versionId']}"})
                    continue
                version = str(int(old["meta"]["versionId"]) + 1) if old else "1"
                new = json.loads(dumps(stored, indent=None), parse_float=Decimal)
                new["meta"] = {**(new.get("meta") or {}), "versionId": version, "lastUpdated": _now()}
                staged[key] = new
                answers.append({"status": "201 Created" if old is None else "200 OK", "etag": f'W/"{version}"',
                                "location": f"{key}/_history/{version}"})
            self.resources = staged
        return 200, {"resourceType": "Bundle", "type": "transaction-response",
                     "entry": [{"response": a} for a in answers]}

    def _search(self, rtype: str, query: str) -> tuple[int, dict]:
        params = parse_qsl(query, keep_blank_values=True)
        for name, _ in params:
            if name not in ("url", "version", "identifier", "_id", "_count") or (rtype, name) in self.refuse_search:
                return 400, operation_outcome("error", "processing", f"Unknown search parameter '{name}'")
        hits = []
        for key, res in sorted(self.resources.items()):
            if not key.startswith(rtype + "/"):
                continue
            if all(_matches(res, name, _unescape(value)) for name, value in params if name != "_count"):
                hits.append(res)
        return 200, {"resourceType": "Bundle", "type": "searchset", "total": len(hits),
                     "entry": [{"fullUrl": f"{self.base_url}/{rtype}/{r['id']}", "resource": r,
                                "search": {"mode": "match"}} for r in hits]}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _content(res: dict) -> dict:
    out = dict(res)
    meta = {k: v for k, v in (res.get("meta") or {}).items() if k not in NOISE}
    out.pop("meta", None)
    if meta:
        out["meta"] = meta
    return out


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _matches(res: dict, name: str, value: str) -> bool:
    if name == "url":
        return res.get("url") == value
    if name == "version":
        return res.get("version") == value
    if name == "_id":
        return res.get("id") in value.split(",")
    if name == "identifier":
        system, _, val = value.rpartition("|")
        return any(i.get("system") == system and i.get("value") == val for i in res.get("identifier") or [])
    return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid delayed-ACK stalls
    server_owner: FaultServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def setup(self) -> None:
        self.tls_failed = False
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.settimeout(5)
                self.request.do_handshake()
                self.request.settimeout(None)
            except (ssl.SSLError, OSError):
                self.tls_failed = True
        super().setup()

    def handle(self) -> None:
        if self.tls_failed:
            return
        try:
            super().handle()
        except (OSError, ValueError):
            pass

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        srv = self.server_owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        srv.requests.append(Seen(method, self.path, dict(self.headers.items()), body, time.monotonic()))
        parts = urlsplit(self.path)
        if not parts.path.startswith(srv.base_path):
            return self._send(404, operation_outcome("error", "not-found", "not under the FHIR base"))
        rel = parts.path[len(srv.base_path):]
        fault = srv._next_fault(method, rel)
        if fault is not None:
            if fault.kind == "status":
                return self._send(fault.status, fault.body, fault.headers)
            if fault.kind in ("reset", "truncate"):
                if fault.kind == "truncate":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
                                     b"Content-Length: 5000\r\n\r\n{\"resourceType\": \"Bun")
                    self.wfile.flush()
                return self._reset()
            if fault.kind == "sleep":
                srv._stop.wait(fault.seconds)
                if fault.then == "close":
                    return self._reset()
        code, payload = self._work(method, rel, parts.query, body)
        self._send(code, payload)

    def _work(self, method: str, rel: str, query: str, body: bytes) -> tuple[int, dict]:
        srv = self.server_owner
        if method == "POST" and rel in ("", "/"):
            try:
                bundle = json.loads(body, parse_float=Decimal)
            except ValueError:
                return 400, operation_outcome("error", "structure", "body is not JSON")
            return srv._transaction(bundle)
        if method == "GET":
            segs = [unquote(s) for s in rel.strip("/").split("/") if s]
            if len(segs) == 2:
                res = srv.resources.get(f"{segs[0]}/{segs[1]}")
                if res is None:
                    return 404, operation_outcome("error", "not-found", f"{segs[0]}/{segs[1]} is not known")
                return 200, res
            if len(segs) == 1:
                return srv._search(segs[0], query)
        return 400, operation_outcome("error", "not-supported", f"{method} {rel} is not supported here")

    def _send(self, code: int, payload: dict | None, headers: dict | None = None) -> None:
        data = dumps(payload, indent=None).encode("utf-8") if payload is not None else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/fhir+json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if isinstance(payload, dict) and (payload.get("meta") or {}).get("versionId"):
            self.send_header("ETag", f'W/"{payload["meta"]["versionId"]}"')
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _reset(self) -> None:
        """Close with RST (SO_LINGER 0), so the client sees a reset, not a clean end."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
