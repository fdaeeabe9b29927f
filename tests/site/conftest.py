"""Fixtures for the site tests: one build in a temporary folder, a local HTTP server, the browser.

The build goes to a temporary folder (never ``build/``, which others write too) with
``force=True``, so the site is tested even while the content still has validation errors.
The browser is Debian's Chromium driven by playwright-core from ``tests/site/node_modules``
(``tests/site/setup.sh`` installs both).  Without them the browser tests skip with the reason,
or fail when ``FHIRPKG_REQUIRE_INTEROP=1`` (as in CI), so CI can never pass by skipping.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path(os.environ.get("FHIRPKG_CHROMIUM", "/usr/bin/chromium"))


def browser_missing() -> str:
    """Why the browser tests cannot run here ('' when they can)."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (run tests/site/setup.sh)"
    if shutil.which("node") is None:
        return "node not found"
    if not (HERE / "node_modules" / "playwright-core" / "package.json").is_file():
        return "playwright-core not installed in tests/site/node_modules (run tests/site/setup.sh)"
    return ""


@pytest.fixture(scope="session")
def require_browser():
    why = browser_missing()
    if why:
        if os.environ.get("FHIRPKG_REQUIRE_INTEROP") == "1":
            pytest.fail(f"browser tests required (FHIRPKG_REQUIRE_INTEROP=1) but {why}")
        pytest.skip(f"browser tests skipped: {why}")


@pytest.fixture(scope="session")
def site_build(tmp_path_factory):
    """(BuildResult, folder) of a full build written to a temporary folder."""
    from fhirpkg.publish import build as b

    result = b.build(ROOT / "definitions", force=True)
    out = tmp_path_factory.mktemp("site-build") / "build"
    b.write(result, out)
    return result, out


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="session")
def site_server(site_build):
    """Base URL of a local HTTP server over the build folder (site/ plus the downloads beside it)."""
    _, out = site_build
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def regimen_page(result) -> str:
    """The page of the first-line regimen: pathway -> first action's recommendation -> its order set."""
    resources = [json.loads(v) for k, v in result.files.items() if k.endswith(".transaction.json")][0]
    by_url = {e["resource"].get("url"): e["resource"] for e in resources["entry"]}
    protocol = next(e["resource"] for e in resources["entry"] if e["resource"]["resourceType"] == "PlanDefinition"
                    and any(c.get("code") == "clinical-protocol" for c in e["resource"]["type"]["coding"]))
    target = by_url[protocol["action"][0]["definitionCanonical"]]
    for _ in range(3):
        if any(c.get("code") == "order-set" for c in target.get("type", {}).get("coding", [])):
            break
        target = by_url[next(a["definitionCanonical"] for a in target["action"] if a.get("definitionCanonical"))]
    return f"PlanDefinition-{target['id']}.html"


@pytest.fixture(scope="session")
def browser_report(require_browser, site_build, site_server):
    """The JSON report of check_site.js over the whole site (run once per session)."""
    result, out = site_build
    config = {
        "base": site_server + "site/", "start": "index.html",
        "fileUrl": (out / "site" / "index.html").as_uri(), "artifacts": str(ARTIFACTS),
        "screenshots": [{"page": "index.html", "name": "site-home.png", "viewport": True},
                        {"page": regimen_page(result), "name": "site-regimen.png"}],
    }
    proc = subprocess.run(["node", str(HERE / "check_site.js"), json.dumps(config)], cwd=HERE,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"check_site.js failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout)
