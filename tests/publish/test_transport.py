"""HTTP for push (fhirpkg/publish/transport.py): redaction, header and URL checks, the retry policy.

Retries, timeouts and TLS as a whole are tested through ``push`` against the fault injector
(tests/publish/test_push.py); these are the pure parts, checked alone."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from fhirpkg.publish import transport as T

TOKEN = "tok-9f8e7d6c5b4a-SECRET"


def test_basic_credentials_are_redacted_in_every_form():
    import base64
    value = "Basic " + base64.b64encode(b"alice:pa55-w0rd!").decode()
    r = T.redactor_for({"Authorization": value})
    text = f"{value} | {value.split()[1]} | alice:pa55-w0rd! | pa55-w0rd! | pa55-w0rd%21"
    assert r(text).count("***") == 5 and "pa55" not in r(text)


def test_bad_header_and_url_messages_do_not_echo_secrets():
    with pytest.raises(T.PushError) as e:
        T.parse_headers([f"Bearer{TOKEN}"])
    assert TOKEN not in str(e.value)
    with pytest.raises(T.PushError) as e:
        T.parse_server(f"https://user:{TOKEN}@example.org/fhir")
    assert TOKEN not in str(e.value) and "--header" in str(e.value)
    assert T.parse_headers(["Authorization: Bearer x y", "X-Tenant:  a "]) == {
        "Authorization": "Bearer x y", "X-Tenant": "a"}


def test_parse_retry_after():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert T.parse_retry_after("7", now) == 7.0
    assert T.parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert T.parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0.0
    assert T.parse_retry_after("soon", now) is None and T.parse_retry_after(None, now) is None


def test_backoff_is_exponential_jittered_and_capped():
    assert T.backoff_delay(1, 1.0, 60, rand=lambda: 1.0) == 1.0
    assert T.backoff_delay(3, 1.0, 60, rand=lambda: 1.0) == 4.0
    assert T.backoff_delay(3, 1.0, 60, rand=lambda: 0.0) == 2.0
    assert T.backoff_delay(20, 1.0, 60, rand=lambda: 1.0) == 60
