"""fhirpkg push against the local fault injector: honest outcomes, bounded retries, no leaked secrets."""
from __future__ import annotations

import copy
import json
import re
import socket
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from email.utils import format_datetime

import pytest

from faultserver import FaultServer, make_cert, operation_outcome, reset, sleep, status, truncate
from fhirpkg.publish import push as P
from fhirpkg.fhir.serialize import dumps
from fhirpkg.publish.push import push
from fhirpkg.publish.transport import PushError, PushOptions

TOKEN = "tok-9f8e7d6c5b4a-SECRET"
BASE = "http://example.org/fhir/nepc"


def resources() -> list[dict]:
    return [
        {"resourceType": "PlanDefinition", "id": "pd-regimen", "url": f"{BASE}/PlanDefinition/pd-regimen",
         "version": "0.1.0", "status": "draft", "title": "Regimen", "description": "Platinum + etoposide",
         "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Regimen</div>"},
         "action": [{"id": "a1", "title": "Cisplatin"}, {"id": "a2", "title": "Etoposide"}],
         "extension": [{"url": "http://example.org/x", "valueDecimal": Decimal("1.50")}]},
        {"resourceType": "ActivityDefinition", "id": "ad-cisplatin", "url": f"{BASE}/ActivityDefinition/ad-cisplatin",
         "version": "0.1.0", "status": "draft"},
        {"resourceType": "MedicationKnowledge", "id": "mk-etoposide", "status": "active",
         "identifier": [{"system": f"{BASE}/medicationknowledge-id", "value": "mk-etoposide"}]},
        {"resourceType": "ClinicalUseDefinition", "id": "cud-neutropenia", "type": "undesirable-effect",
         "identifier": [{"system": f"{BASE}/clinicalusedefinition-id", "value": "cud-neutropenia"}]},
        {"resourceType": "Citation", "id": "cit-one", "url": f"{BASE}/Citation/cit-one", "version": "0.1.0",
         "status": "draft"},
        {"resourceType": "ResearchStudy", "id": "rs-trial", "url": f"{BASE}/ResearchStudy/rs-trial",
         "status": "active", "identifier": [{"system": "https://clinicaltrials.gov", "value": "NCT00000001"}]},
    ]


def bundle_of(items: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r,
         "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in items]}


def options(srv: FaultServer, **kw) -> PushOptions:
    base = dict(server=srv.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=2.0,
                max_attempts=3, backoff=0.01, max_wait=0.2)
    return PushOptions(**{**base, **kw})


class Log(list):
    def __call__(self, line: str) -> None:
        self.append(line)


N = len(resources())


# --- outcomes ---------------------------------------------------------------------

def test_first_push_creates_and_second_push_changes_nothing():
    with FaultServer() as srv:
        first = push(bundle_of(resources()), options(srv), log=Log())
        assert first.ok, first.messages
        assert first.counts()["created"] == N
        assert first.http_status == 200 and first.attempts == 1
        assert all(s.version_id == "1" for s in first.statuses)
        second = push(bundle_of(resources()), options(srv), log=Log())
        assert second.ok, second.messages
        c = second.counts()
        assert (c["created"], c["updated"], c["unchanged"]) == (0, 0, N)
        assert srv.resources["PlanDefinition/pd-regimen"]["meta"]["versionId"] == "1"
        # every request carried the header, and reads bypass server-side search caches
        assert all(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in srv.requests)
        assert all(r.headers.get("Cache-Control") == "no-cache" for r in srv.requests if r.method == "GET")


def test_verification_uses_business_identity():
    with FaultServer() as srv:
        push(bundle_of(resources()), options(srv), log=Log())
        searches = [r.path for r in srv.requests if r.method == "GET" and "?" in r.path]
        assert any(p.startswith("/fhir/PlanDefinition?url=") and "version=0.1.0" in p for p in searches)
        assert any(p.startswith("/fhir/MedicationKnowledge?identifier=") and "%7Cmk-etoposide" in p for p in searches)
        assert any(p.startswith("/fhir/ClinicalUseDefinition?identifier=") for p in searches)
        # R5 has no ResearchStudy url search parameter: found by identifier
        assert any(p.startswith("/fhir/ResearchStudy?identifier=") for p in searches)


def test_changed_resource_is_reported_updated_with_new_version():
    with FaultServer() as srv:
        push(bundle_of(resources()), options(srv), log=Log())
        items = resources()
        items[0]["title"] = "Regimen (revised)"
        report = push(bundle_of(items), options(srv), log=Log())
        assert report.ok
        by_key = {s.key: s for s in report.statuses}
        assert by_key["PlanDefinition/pd-regimen"].outcome == "updated"
        assert by_key["PlanDefinition/pd-regimen"].version_id == "2"
        assert "1 -> 2" in by_key["PlanDefinition/pd-regimen"].detail
        assert report.counts()["unchanged"] == N - 1


def test_resource_missing_after_push_is_never_claimed():
    def lose_url(res):  # the server stores something else than what it was sent
        res = dict(res)
        if res["resourceType"] == "Citation":
            res["url"] = "http://elsewhere.example/Citation/x"
        return res

    with FaultServer() as srv:
        srv.store_filter = lose_url
        report = push(bundle_of(resources()), options(srv), log=Log())
        assert not report.ok
        cit = next(s for s in report.statuses if s.key == "Citation/cit-one")
        assert cit.outcome == "missing" and "no Citation with url" in cit.detail
        assert "NOT verified" in report.messages[-1]


def test_server_copy_that_differs_is_a_failure():
    def drop_description(res):
        return {k: v for k, v in res.items() if k != "description"}

    with FaultServer() as srv:
        srv.store_filter = drop_description
        report = push(bundle_of(resources()), options(srv), log=Log())
        pd = next(s for s in report.statuses if s.key == "PlanDefinition/pd-regimen")
        assert pd.outcome == "failed" and "PlanDefinition.description" in pd.detail
        assert not report.ok


def test_ambiguous_canonical_is_a_failure():
    with FaultServer() as srv:
        twin = copy.deepcopy(resources()[0])
        twin["id"] = "pd-regimen-copy"
        srv.put(twin)
        report = push(bundle_of(resources()), options(srv), log=Log())
        pd = next(s for s in report.statuses if s.key == "PlanDefinition/pd-regimen")
        assert pd.outcome == "failed" and "2 resources match" in pd.detail and "pd-regimen-copy" in pd.detail


def test_refused_search_falls_back_to_identifier_then_id():
    with FaultServer() as srv:
        srv.refuse_search = {("Citation", "url")}
        report = push(bundle_of(resources()), options(srv), log=Log())
        assert report.ok, report.messages
        cit = next(s for s in report.statuses if s.key == "Citation/cit-one")
        assert cit.outcome == "created" and cit.version_id == "1"


def test_exact_decimals_survive_the_round_trip():
    with FaultServer() as srv:
        report = push(bundle_of(resources()), options(srv), log=Log())
        assert report.ok
        post = next(r for r in srv.requests if r.method == "POST")
        assert b'"valueDecimal":1.50' in post.body


# --- retries ----------------------------------------------------------------------

def test_429_and_503_are_retried_then_succeed():
    with FaultServer() as srv:
        srv.on("POST", status(429, retry_after="0"), status(503))
        log = Log()
        report = push(bundle_of(resources()), options(srv), log=log)
        assert report.ok and report.attempts == 3 and srv.count("POST") == 3
        assert report.counts()["created"] == N
        assert sum("retrying" in line for line in log) == 2


def test_retry_after_seconds_and_date_are_honoured():
    waits: list[float] = []
    future = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    with FaultServer() as srv:
        srv.on("POST", status(429, retry_after="3"), status(503, retry_after=future))
        report = push(bundle_of(resources()), options(srv, max_wait=60, max_attempts=5), log=Log(),
                      sleep=waits.append)
        assert report.ok
        assert waits[0] == 3.0
        assert 25 <= waits[1] <= 30


def test_retry_after_is_capped_by_max_wait():
    with FaultServer() as srv:
        srv.on("POST", status(429, retry_after="120"))
        t0 = time.monotonic()
        report = push(bundle_of(resources()), options(srv, max_wait=0.3), log=Log())
        elapsed = time.monotonic() - t0
        posts = [r.at for r in srv.requests if r.method == "POST"]
        assert report.ok and len(posts) == 2
        assert report.waited == pytest.approx(0.3)
        assert 0.3 <= posts[1] - posts[0] < 1.5 and elapsed < 5


def test_retries_are_bounded_and_nothing_is_claimed():
    with FaultServer() as srv:
        srv.on("POST", *[status(503) for _ in range(10)])
        report = push(bundle_of(resources()), options(srv, max_attempts=4), log=Log())
        assert srv.count("POST") == 4 and report.attempts == 4
        assert not report.ok and report.http_status == 503
        assert {s.outcome for s in report.statuses} == {"failed"}
        assert all("no copy" in s.detail for s in report.statuses)


def test_client_error_is_not_retried_and_shows_the_outcome():
    oo = operation_outcome("error", "invalid", "PlanDefinition.status: unknown code 'bogus'",
                           "Bundle.entry[0].resource.status")
    with FaultServer() as srv:
        srv.on("POST", status(422, outcome=oo))
        log = Log()
        report = push(bundle_of(resources()), options(srv), log=log)
        assert srv.count("POST") == 1 and report.attempts == 1
        assert not report.ok and report.http_status == 422
        assert report.operation_outcome == oo
        text = P.render_text(report)
        line = "error invalid: PlanDefinition.status: unknown code 'bogus' @ Bundle.entry[0].resource.status"
        assert line in text and any(line in m for m in log)
        assert not any(s.outcome in ("created", "updated", "unchanged") for s in report.statuses)


def test_server_error_500_shows_the_outcome_and_claims_nothing():
    oo = operation_outcome("fatal", "exception", "HAPI-0550: something broke")
    with FaultServer() as srv:
        push(bundle_of(resources()), options(srv), log=Log())  # everything at version 1
        items = resources()
        items[0]["title"] = "changed"
        srv.on("POST", *[status(500, outcome=oo)] * 3)
        report = push(bundle_of(items), options(srv), log=Log())
        assert srv.count("POST") == 4  # 1 for the first push, then 3 bounded attempts, all 500
        assert not report.ok and report.operation_outcome == oo
        pd = next(s for s in report.statuses if s.key == "PlanDefinition/pd-regimen")
        assert pd.outcome == "failed" and "still holds version 1" in pd.detail


def test_connection_reset_and_truncated_answer_are_retried():
    with FaultServer() as srv:
        srv.on("POST", reset(), truncate())
        log = Log()
        report = push(bundle_of(resources()), options(srv), log=log)
        assert report.ok and srv.count("POST") == 3 and report.attempts == 3
        assert any("reset" in line for line in log)


def test_reads_are_retried_too():
    with FaultServer() as srv:
        srv.on("GET", reset(), status(503), path="/PlanDefinition")
        report = push(bundle_of(resources()), options(srv), log=Log())
        assert report.ok, report.messages


def test_timeout_is_retried_and_the_outcome_is_what_the_server_holds():
    with FaultServer() as srv:
        srv.on("POST", sleep(1.0))  # first attempt times out; the server still applies it later
        report = push(bundle_of(resources()), options(srv, timeout=0.3), log=Log())
        assert report.ok and report.attempts == 2
        assert report.counts()["created"] == N
        assert all(s.version_id == "1" for s in report.statuses)


def test_timeouts_are_bounded():
    with FaultServer() as srv:
        srv.on("POST", *[sleep(5, then="close") for _ in range(3)])
        t0 = time.monotonic()
        report = push(bundle_of(resources()), options(srv, timeout=0.2, max_attempts=3), log=Log())
        assert time.monotonic() - t0 < 3
        assert srv.count("POST") == 3 and not report.ok
        assert any("within the timeout" in m for m in report.messages)
        assert all(s.outcome == "failed" for s in report.statuses)


def test_unreadable_server_before_push_sends_nothing():
    with FaultServer() as srv:
        srv.on("GET", *[status(503) for _ in range(3)])
        report = push(bundle_of(resources()), options(srv), log=Log())
        assert srv.count("POST") == 0 and not report.ok and not report.statuses
        assert "Not pushed" in report.messages[-1]


def test_connection_refused_is_bounded_and_clear():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = PushOptions(f"http://127.0.0.1:{port}/fhir", {"Authorization": f"Bearer {TOKEN}"},
                       timeout=1, max_attempts=2, backoff=0.01)
    report = push(bundle_of(resources()), opts, log=Log())
    assert not report.ok
    assert "refused" in report.messages[-1] and "Traceback" not in report.messages[-1]


# --- TLS --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    made = make_cert(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("no self-signed certificate: the openssl command is not available "
                    "(Python's ssl module cannot create certificates)")
    return made


def test_tls_verification_error_is_clear_and_not_retried(cert):
    with FaultServer(tls=cert) as srv:
        log = Log()
        report = push(bundle_of(resources()), options(srv), log=log)
        assert not report.ok and srv.count() == 0
        msg = report.messages[-1]
        assert "TLS certificate verification failed" in msg and "--ca-file" in msg
        assert not any("retrying" in line for line in log)
        assert "Traceback" not in "\n".join(log)


def test_tls_with_ca_file_or_insecure_works(cert):
    with FaultServer(tls=cert) as srv:
        assert push(bundle_of(resources()), options(srv, ca_file=str(cert[0])), log=Log()).ok
        assert push(bundle_of(resources()), options(srv, verify_tls=False), log=Log()).ok


def test_missing_ca_file_is_a_clear_message(tmp_path):
    with FaultServer() as srv:
        report = push(bundle_of(resources()), options(srv, ca_file=str(tmp_path / "nope.pem")), log=Log())
        # plain http never needs the CA; an https server would
    assert report.ok
    opts = PushOptions("https://127.0.0.1:1/fhir", {}, ca_file=str(tmp_path / "nope.pem"))
    report = push(bundle_of(resources()), opts, log=Log())
    assert not report.ok and "cannot use CA file" in report.messages[-1]


# --- secrets ----------------------------------------------------------------------

def _assert_clean(report, log, capsys=None):
    blobs = [report.to_json(), repr(report), P.render_text(report, verbose=True), "\n".join(log),
             json.dumps(report.messages)]
    if capsys is not None:
        out = capsys.readouterr()
        blobs += [out.out, out.err]
    for blob in blobs:
        assert TOKEN not in blob
        assert "9f8e7d6c5b4a" not in blob


def test_secret_never_appears_in_output_report_or_log(capsys, cert):
    echo = operation_outcome("error", "security", f"token 'Bearer {TOKEN}' is not valid for this server")
    with FaultServer() as srv:
        # success, with the default log (print)
        report = push(bundle_of(resources()), options(srv))
        assert report.ok
        _assert_clean(report, [], capsys)
        # a server that echoes the credential back in its OperationOutcome
        srv.on("POST", status(401, outcome=echo))
        log = Log()
        report = push(bundle_of(resources()), options(srv), log=log)
        assert not report.ok and "***" in json.dumps(report.operation_outcome)
        _assert_clean(report, log)
        # and on reads before the push
        srv.on("GET", status(403, outcome=echo))
        log = Log()
        report = push(bundle_of(resources()), options(srv), log=log)
        assert "***" in report.messages[-1]
        _assert_clean(report, log)
    # connection refused, TLS failure, Basic auth
    log = Log()
    report = push(bundle_of(resources()), PushOptions("http://127.0.0.1:1/fhir", {"Authorization": f"Bearer {TOKEN}"},
                                                      max_attempts=1), log=log)
    _assert_clean(report, log)
    with FaultServer(tls=cert) as srv:
        log = Log()
        report = push(bundle_of(resources()), options(srv), log=log)
        _assert_clean(report, log)
    assert TOKEN not in repr(options(srv))


def test_secret_in_an_unexpected_error_is_redacted(monkeypatch):
    def boom(*a, **k):
        raise RuntimeError(f"exploded while holding Bearer {TOKEN}")

    monkeypatch.setattr(P, "_push", boom)
    log = Log()
    report = push(bundle_of(resources()), PushOptions("http://127.0.0.1:1/fhir", {"X-Api-Key": TOKEN}), log=log)
    assert not report.ok and "internal error" in report.messages[-1]
    _assert_clean(report, log)


# --- bundle checks, pure helpers --------------------------------------------------

def test_only_put_transactions_are_pushed():
    with FaultServer() as srv:
        b = bundle_of(resources())
        b["entry"][1]["request"] = {"method": "POST", "url": "ActivityDefinition"}
        report = push(b, options(srv), log=Log())
        assert not report.ok and "only 'PUT" in report.messages[-1] and srv.count() == 0
        b = bundle_of(resources())
        b["type"] = "collection"
        report = push(b, options(srv), log=Log())
        assert "transaction Bundle" in report.messages[-1] and srv.count() == 0


def test_roundtrip_check_helper():
    with FaultServer() as srv:
        first, second = P.push_roundtrip_check(srv.base_url, bundle_of(resources()), backoff=0.01)
        assert first.ok and first.counts()["created"] == N
        assert second.ok and second.counts()["created"] == 0 and second.counts()["updated"] == 0


def test_redirect_is_not_followed():
    from faultserver import Fault
    with FaultServer() as srv:
        srv.on("GET", Fault("status", 301, {"Location": "https://elsewhere.example/fhir/PlanDefinition/pd-regimen"}))
        report = push(bundle_of(resources()), options(srv), log=Log())
        assert not report.ok and srv.count() == 1
        assert "does not follow redirects" in report.messages[-1] and "elsewhere.example" in report.messages[-1]


def test_load_bundle_from_file_or_build_folder(tmp_path):
    b = bundle_of(resources())
    (tmp_path / "bundle-transaction.json").write_text(dumps(b, indent=None))
    (tmp_path / "bundle-collection.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection"}))
    (tmp_path / "package.json").write_text("{}")
    loaded = P.load_bundle(tmp_path)
    assert loaded["entry"][0]["resource"]["extension"][0]["valueDecimal"] == Decimal("1.50")
    assert P.load_bundle(tmp_path / "bundle-transaction.json")["type"] == "transaction"
    (tmp_path / "second-transaction.json").write_text(dumps(b, indent=None))
    with pytest.raises(PushError, match="found 2"):
        P.load_bundle(tmp_path)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(PushError, match="not JSON"):
        P.load_bundle(tmp_path / "bad.json")
    with pytest.raises(PushError, match=r"missing\.json: cannot read: No such file"):
        P.load_bundle(tmp_path / "missing.json")


def test_load_bundle_does_not_wait_on_a_fifo(tmp_path):
    """Files are read as validate reads them: a FIFO among the folder's files is not opened for a writer."""
    import os
    (tmp_path / "bundle-transaction.json").write_text(dumps(bundle_of(resources()), indent=None))
    os.mkfifo(tmp_path / "pipe.json")
    assert P.load_bundle(tmp_path)["type"] == "transaction"


def test_preflight_reports_usage_errors_before_any_request(tmp_path):
    b = bundle_of(resources())
    P.preflight(b, PushOptions("http://127.0.0.1:1/fhir"))
    for opts, text in [(PushOptions("ftp://x/fhir"), "http:// or https://"),
                       (PushOptions("http://x/fhir?a=b"), "without ?query"),
                       (PushOptions("https://x/fhir", ca_file=str(tmp_path / "no.pem")), "cannot use CA file"),
                       (PushOptions("http://x/fhir", max_attempts=0), "at least 1")]:
        with pytest.raises(PushError, match=re.escape(text)):
            P.preflight(b, opts)
