"""``fhirpkg push`` under random fault schedules: bounded retries, and a report that matches the server.

Each seed draws the server's state before the push (each artifact absent, identical, or an older
copy), a queue of faults for reads and for the transaction (429 with Retry-After, 500/502/503/504,
connection resets, answers cut off mid-body, time-outs after which the server still applies the
transaction, final 4xx with an OperationOutcome) and the retry settings.  After the push (and after
any late transaction has landed) the report must agree with what the server holds:

* created / updated / unchanged only for an artifact the server holds with exactly our content, at
  the version the report gives, with created = absent before, unchanged = same version as before;
* ``ok`` only when every artifact is such;
* "not loaded; the server has no copy" only when the server has none, "still holds version V" only
  when it does;
* requests per logical request never above --max-attempts, waits never above --max-wait;
* the credential never in the report, the log or the output.

Then the same through the CLI (exit code, text and JSON output) and over TLS.
"""
from __future__ import annotations

import copy
import json
import random
import re
import time

import pytest

import fuzzing as F
from reliability_support import cli_subprocess, subprocess_env
from faultserver import FaultServer, make_cert, operation_outcome, reset, sleep, status, truncate
from fhirpkg.publish import push as P, transport as T

SEEDS = range(40)
TOKEN = "tok-3c1b-SECRET-77aa"
BASE = "http://example.org/fhir/rel"
TIMEOUT = 0.15
LATE = 0.3  # a 'sleep' fault answers (and applies) after this long: past the client's timeout


def resources() -> list[dict]:
    return [
        {"resourceType": "PlanDefinition", "id": "pd-1", "url": f"{BASE}/PlanDefinition/pd-1", "version": "1.0.0",
         "status": "draft", "title": "Plan", "action": [{"id": "a1", "title": "Step"}]},
        {"resourceType": "ActivityDefinition", "id": "ad-1", "url": f"{BASE}/ActivityDefinition/ad-1",
         "version": "1.0.0", "status": "draft", "kind": "ServiceRequest"},
        {"resourceType": "MedicationKnowledge", "id": "mk-1", "status": "active",
         "identifier": [{"system": f"{BASE}/mk", "value": "mk-1"}]},
        {"resourceType": "Basic", "id": "b-1", "code": {"text": "found by id only"}},
    ]


def bundle_of(items: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r,
         "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in items]}


def transient(rnd: random.Random):
    return rnd.choice([
        lambda: status(429, retry_after=rnd.choice(["0", "1", "120", "Wed, 21 Oct 2015 07:28:00 GMT", "soon"])),
        lambda: status(500), lambda: status(502), lambda: status(503), lambda: status(504),
        reset, truncate, lambda: sleep(LATE), lambda: sleep(LATE, then="close"),
    ])()


def final(rnd: random.Random):
    return rnd.choice([
        lambda: status(400, outcome=operation_outcome("error", "invalid", "bad bundle", "Bundle.entry[0]")),
        lambda: status(401, outcome=operation_outcome("error", "security", f"token Bearer {TOKEN} refused")),
        lambda: status(422, outcome=operation_outcome("error", "business-rule", "rule failed")),
    ])()


def kind(fault) -> str:
    if fault.kind == "status":
        return f"HTTP {fault.status}" + (" + Retry-After" if fault.headers.get("Retry-After") else "")
    return f"{fault.kind}" + (f" then {fault.then}" if fault.kind == "sleep" else "")


def same_content(ours: dict, held: dict) -> bool:
    return not P.content_differences(ours, held)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_fault_schedule_report_matches_the_server(seed):
    rnd = random.Random(seed)
    ours = resources()
    opts_kw = dict(timeout=TIMEOUT, max_attempts=rnd.choice([1, 2, 3, 4]), backoff=0.0, max_wait=0.05)
    waits: list[float] = []
    log: list[str] = []
    used = []
    with FaultServer() as srv:
        before = {}
        for r in ours:
            state = rnd.choice(["absent", "same", "older"])
            if state == "same":
                srv.put(r, version="3")
            elif state == "older":
                srv.put(dict(copy.deepcopy(r), status="retired"), version="2")
            before[f"{r['resourceType']}/{r['id']}"] = state
        for method, n in (("GET", rnd.randint(0, 4)), ("POST", rnd.randint(0, 4))):
            faults = [transient(rnd) for _ in range(n)]
            if rnd.random() < 0.2:
                faults.append(final(rnd))
            srv.on(method, *faults)
            used += [f"{method} {kind(f)}" for f in faults]
        opts = T.PushOptions(srv.base_url, {"Authorization": f"Bearer {TOKEN}"}, **opts_kw)
        t = time.perf_counter()
        report = P.push(bundle_of(ours), opts, log=log.append, sleep=waits.append)
        elapsed = time.perf_counter() - t
        if any("sleep" in u for u in used):
            time.sleep(LATE + 0.2)  # a transaction answered too late may land now
        held = {k: copy.deepcopy(v) for k, v in srv.resources.items()}
        requests = [(r.method, r.path.split("?")[0]) for r in srv.requests]
    for u in used:
        F.COUNTS[f"faults: push {u.split()[0]} {' '.join(u.split()[1:])}"] += 1
    F.COUNTS["push: runs under random faults"] += 1

    context = f"seed {seed}, faults {used}, {opts_kw}\n" + "\n".join(log) + "\n" + P.render_text(report, True)
    by_key = {s.key: s for s in report.statuses}
    # 1. nothing is claimed that the server does not show
    for r in ours:
        key = f"{r['resourceType']}/{r['id']}"
        s = by_key.get(key)
        server = held.get(key)
        if s is None:
            continue
        if s.outcome in ("created", "updated", "unchanged"):
            assert server is not None and same_content(r, server), f"{key} claimed {s.outcome}\n{context}"
            assert s.version_id == server["meta"]["versionId"], context
            if s.outcome == "created":
                assert before[key] == "absent", context
            if s.outcome == "unchanged":
                assert before[key] == "same" and server["meta"]["versionId"] == "3", context
        if "the server has no copy" in s.detail:
            assert server is None, f"{key}: said 'no copy' but the server holds one\n{context}"
        m = re.search(r"still holds version (\S+)", s.detail)
        if m:
            assert server is not None and server["meta"]["versionId"] == m.group(1), context
    if report.ok:
        assert len(report.statuses) == len(ours), context
        assert all(f"{r['resourceType']}/{r['id']}" in held and same_content(r, held[f"{r['resourceType']}/{r['id']}"])
                   for r in ours), context
    # 2. bounded: no request is tried more often than --max-attempts, no wait is longer than --max-wait
    posts = sum(1 for m, _ in requests if m == "POST")
    assert posts <= opts_kw["max_attempts"], context
    assert len(requests) <= opts_kw["max_attempts"] * (1 + 4 * len(ours)), context
    assert all(0 <= w <= opts_kw["max_wait"] for w in waits), (waits, context)
    assert elapsed < 30, context
    # 3. the credential never comes out
    for blob in (report.to_json(), P.render_text(report, True), "\n".join(log)):
        assert TOKEN not in blob and "SECRET" not in blob


def test_push_cli_under_faults_exit_codes_and_outputs(tmp_path):
    """The CLI end to end: exit 0 only when verified; the JSON report agrees with the server; no secret
    in standard output, standard error or any file written in the working folder or the home folder."""
    bundle = tmp_path / "tx.json"
    bundle.write_text(json.dumps(bundle_of(resources())))
    home = tmp_path / "home"
    home.mkdir()
    env = subprocess_env(FHIRPKG_AUTHORIZATION=f"Bearer {TOKEN}", HOME=home, FHIRPKG_CACHE_DIR=tmp_path / "cache")
    with FaultServer() as srv:
        base = ["push", str(bundle), "--server", srv.base_url, "--timeout", "1", "--backoff", "0", "--max-wait", "0.1",
                "--format", "json"]
        srv.on("POST", status(503), reset(), status(429, retry_after="0"))
        ok = cli_subprocess(base + ["--max-attempts", "4"], env=env, cwd=tmp_path)
        srv.on("POST", status(503), status(503), status(503))
        failed = cli_subprocess(base + ["--max-attempts", "3"], env=env, cwd=tmp_path)
        srv.on("POST", status(401, outcome=operation_outcome("error", "security", f"Bearer {TOKEN} is not valid")))
        refused = cli_subprocess(base, env=env, cwd=tmp_path)
        held = dict(srv.resources)
    F.COUNTS["faults: push CLI runs"] += 3
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    assert report["ok"] and {s["key"] for s in report["statuses"]} == set(held)
    assert failed.exit_code == 1 and refused.exit_code == 1, (failed.output, refused.output)
    for r in (failed, refused):
        rep = json.loads(r.stdout)
        assert not rep["ok"] and not [s for s in rep["statuses"] if s["outcome"] in ("created", "updated")]
        assert all(s["version_id"] == held[s["key"]]["meta"]["versionId"] for s in rep["statuses"]), rep
    for r in (ok, failed, refused):
        assert TOKEN not in r.output and "SECRET" not in r.output and r.exit_code != 3
    for path in list(tmp_path.rglob("*")):
        if path.is_file() and path.stat().st_size < 10 * 2**20:
            assert TOKEN.encode() not in path.read_bytes() or path == bundle, path


def test_push_cli_tls_failure_is_final_and_claims_nothing(tmp_path):
    cert = make_cert(tmp_path)
    if cert is None:
        pytest.skip("the openssl command is not available to make a test certificate")
    bundle = tmp_path / "tx.json"
    bundle.write_text(json.dumps(bundle_of(resources())))
    env = subprocess_env(FHIRPKG_AUTHORIZATION=f"Bearer {TOKEN}")
    with FaultServer(tls=cert) as srv:
        run = cli_subprocess(["push", str(bundle), "--server", srv.base_url, "--max-attempts", "5", "--backoff", "0"],
                             env=env)
        attempts = len(srv.requests)
    F.COUNTS["faults: push TLS verification failure"] += 1
    assert run.exit_code == 1 and "TLS certificate verification failed" in run.output, run.output
    assert "push FAILED" in run.output and TOKEN not in run.output
    assert attempts == 0  # the handshake failed: nothing was sent, and it was not retried 5 times


def test_timed_out_transaction_that_lands_later_is_not_called_not_loaded():
    """Was: 'not loaded; the server has no copy' although the server applied it afterwards."""
    items = resources()[:1]
    with FaultServer() as srv:
        srv.on("POST", sleep(LATE, then="apply"))
        report = P.push(bundle_of(items), T.PushOptions(srv.base_url, timeout=TIMEOUT, max_attempts=1, backoff=0,
                                                        max_wait=0.05), log=lambda m: None)
        time.sleep(LATE + 0.3)
        held = dict(srv.resources)
    F.COUNTS["faults: push POST timed out, applied late"] += 1
    assert not report.ok and "PlanDefinition/pd-1" in held  # it landed after the client gave up
    for s in report.statuses:
        assert "no copy" not in s.detail or s.key not in held, P.render_text(report, True)


def test_retry_after_with_a_non_ascii_digit_is_retried_not_fatal():
    """Was: str.isdigit() accepted '\xb2', float() raised and the push stopped as an internal error."""
    with FaultServer() as srv:
        srv.on("POST", status(429, retry_after="\xb2"))
        report = P.push(bundle_of(resources()), T.PushOptions(srv.base_url, timeout=2, max_attempts=3, backoff=0,
                                                              max_wait=0.05), log=lambda m: None)
    F.COUNTS["faults: push POST HTTP 429 + Retry-After '\\xb2'"] += 1
    assert report.ok, report.messages
