"""build/site/ in a real browser: pages load cleanly, links resolve, the pathway diagram is whole.

One crawl (check_site.js, headless Chromium) feeds every test here; expectations come from
the built resources themselves (the transaction Bundle), not from the site generator.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser


def _bundle(result) -> dict:
    return next(json.loads(v) for k, v in result.files.items() if k.endswith(".transaction.json"))


def _protocol_options(result) -> list[str]:
    """Ids of the leaf actions with a definition in the clinical-protocol PlanDefinition."""
    protocol = next(e["resource"] for e in _bundle(result)["entry"]
                    if e["resource"]["resourceType"] == "PlanDefinition"
                    and any(c.get("code") == "clinical-protocol" for c in e["resource"]["type"]["coding"]))

    def leaves(actions):
        for a in actions:
            if a.get("action"):
                yield from leaves(a["action"])
            elif a.get("definitionCanonical"):
                yield a["id"]

    return list(leaves(protocol["action"]))


def test_every_page_is_reachable_and_loads_without_errors(browser_report, site_build):
    _, out = site_build
    generated = sorted(p.name for p in (out / "site").glob("*.html"))
    crawled = sorted(p["path"] for p in browser_report["pages"])
    assert crawled == generated, "pages not reachable by links from the home page (or not generated)"
    assert browser_report["consoleErrors"] == []


def test_internal_links_and_anchors_resolve(browser_report):
    assert browser_report["brokenLinks"] == []
    assert browser_report["brokenAnchors"] == []
    downloads = browser_report["downloads"]
    assert any(k.endswith(".transaction.json") for k in downloads), downloads
    assert "/package.tgz" in downloads and "/SHA256SUMS" in downloads


def test_self_contained_nothing_loaded_from_elsewhere(browser_report, site_build):
    assert browser_report["externalLoads"] == []
    for page in (site_build[1] / "site").glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text and "@import" not in text and "url(http" not in text, page.name


def test_diagram_has_one_node_per_option(browser_report, site_build):
    expected = _protocol_options(site_build[0])
    (diagram,) = browser_report["svgs"]["index.html"]
    assert sorted(diagram["options"]) == sorted(expected), "one node per option, no more, no less"
    assert len(set(diagram["options"])) == len(diagram["options"])
    assert diagram["nodes"] == diagram["declared"] == len(expected)
    assert all(diagram["links"]), "every option links to its page"
    assert diagram["labelled"] == 2, "title and desc give the diagram a text alternative"
    assert diagram["overflow"] == [], "node text must fit its box"
    assert diagram["width"] > 600 and diagram["height"] > 200


def test_keyboard_reaches_every_diagram_node(browser_report, site_build):
    kb = browser_report["keyboard"]
    assert kb["skipLinkFirst"]
    assert kb["allVisible"]
    assert sorted(kb["diagramNodesReached"]) == sorted(_protocol_options(site_build[0]))
    assert kb["enterOpened"].endswith(".html")


def test_accessibility_basics(browser_report):
    assert browser_report["headings"] == [], "one h1 per page and no skipped heading levels"
    assert browser_report["missingLang"] == []
    assert browser_report["duplicateIds"] == []
    assert browser_report["contrastChecked"] > 1000
    assert browser_report["contrast"] == [], "WCAG AA contrast"


def test_printable(browser_report):
    assert browser_report["print"]["navHidden"]
    assert browser_report["print"]["diagramShown"]
    assert browser_report["print"]["pdfBytes"] > 10_000


def test_works_from_file_urls(browser_report):
    f = browser_report["file"]
    assert f["errors"] == 0
    assert f["stylesheet"] not in ("", "rgba(0, 0, 0, 0)"), "style.css applied from file://"
    assert f["nodes"] > 0 and f["opened"]


def test_screenshots_are_written(browser_report):
    shots = {Path(s["file"]).name: s for s in browser_report["screenshots"]}
    assert {"site-home.png", "site-regimen.png"} <= set(shots)
    assert all(s["bytes"] > 20_000 and Path(s["file"]).is_file() for s in shots.values())
