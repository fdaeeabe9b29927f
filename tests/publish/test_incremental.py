"""The incremental build (fhirpkg.publish.cache): the same bytes as a clean build, less work."""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from fhirpkg.publish import build as b
from fhirpkg.publish.cache import BuildCache

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def project(tmp_path) -> Path:
    copy = tmp_path / "p" / "definitions"
    shutil.copytree(ROOT / "definitions", copy)
    return copy


def build(project: Path, defs, cache_dir: Path | None):
    cache = BuildCache.for_project(project, folder=cache_dir) if cache_dir is not None else None
    result = b.build(project, defs=defs, cache=cache, jobs=1)
    return result, cache


def differing(a, c) -> list[str]:
    names = sorted(set(a.files) | set(c.files))
    return [n for n in names if a.files.get(n) != c.files.get(n)]


def edit(path: Path, change) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def test_a_cached_build_gives_the_bytes_of_a_clean_one(project, defs, tmp_path):
    clean, _ = build(project, defs, None)
    first, cache = build(project, defs, tmp_path / "cache")
    assert not cache.reused and cache.done["validate"] == len(list(project.rglob("*.json"))) - 1
    again, cache = build(project, defs, tmp_path / "cache")
    assert not differing(clean, first) and not differing(clean, again)
    assert not cache.done, cache.summary()  # nothing redone: every piece of work came from the cache
    assert cache.reused["validate"] == cache.reused["layout"] > 100


def test_after_one_edit_only_that_resource_and_its_readers_are_redone(project, defs, tmp_path):
    build(project, defs, tmp_path / "cache")
    target = project / "PlanDefinition" / "info-androgen-deprivation.json"
    edit(target, lambda r: r.update(title=r["title"] + " (edited)"))
    incremental, cache = build(project, defs, tmp_path / "cache")
    clean, _ = build(project, defs, None)
    assert not differing(clean, incremental)
    assert b"(edited)" in incremental.files["package.tgz"] or any(b"(edited)" in v for v in incremental.files.values())
    assert cache.done["layout"] == 1
    total = cache.done["validate"] + cache.reused["validate"]
    assert 1 <= cache.done["validate"] < 10 and cache.reused["validate"] > total - 10, cache.summary()


def test_a_conversion_that_copied_another_resource_is_redone_when_that_resource_changes(project, defs, tmp_path):
    """R4 has no Citation: citing artifacts carry its citation text, so a cached conversion of a
    citing artifact must not survive an edit of the Citation (what a conversion reads is checked)."""
    build(project, defs, tmp_path / "cache")
    citation = next(p for p in sorted((project / "Citation").glob("*.json"))
                    if json.loads(p.read_text()).get("citedArtifact", {}).get("title"))
    old_key = f"Citation/{json.loads(citation.read_text())['id']}"

    def retitle(r):
        r["citedArtifact"]["title"][0]["text"] = "An edited title for the incremental build test"
    edit(citation, retitle)
    incremental, cache = build(project, defs, tmp_path / "cache")
    clean, _ = build(project, defs, None)
    assert not differing(clean, incremental)
    # more conversions than the Citation's own were redone: its readers
    assert cache.done["convert 4.0.1"] > 1, (old_key, cache.summary())


def test_a_damaged_or_foreign_cache_is_ignored(project, defs, tmp_path):
    clean, _ = build(project, defs, None)
    _, cache = build(project, defs, tmp_path / "cache")
    cache.path.write_bytes(b"not a pickle")
    damaged, cache = build(project, defs, tmp_path / "cache")
    assert not differing(clean, damaged) and not cache.reused
    with open(cache.path, "wb") as f:
        pickle.dump({"format": -1, "context": "", "entries": {}}, f)
    foreign, cache = build(project, defs, tmp_path / "cache")
    assert not differing(clean, foreign) and not cache.reused


def test_new_code_or_definitions_drop_every_entry(project, defs, tmp_path):
    _, cache = build(project, defs, tmp_path / "cache")
    stored = BuildCache.for_project(project, folder=tmp_path / "cache")
    assert stored.context == cache.context
    other = defs.derive()
    other.cache_key = "other packages"
    from fhirpkg.content import project as proj
    stored.bind(other, proj.load(project))
    key = proj.load(project).resources[0].digest
    assert BuildCache.for_project(project, folder=tmp_path / "cache").get("layout", key) is not None
    assert stored.get("layout", key) is None


def test_cli_build_uses_the_cache_and_no_cache_turns_it_off(project, tmp_path, monkeypatch):
    from click.testing import CliRunner
    from fhirpkg.cli import main
    monkeypatch.setenv("FHIRPKG_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    args = ["build", "--project", str(project), "--out", str(tmp_path / "out")]
    first = runner.invoke(main, args)
    second = runner.invoke(main, args)
    third = runner.invoke(main, args + ["--no-cache"])
    assert first.exit_code == second.exit_code == third.exit_code == 0, first.output + second.output
    assert "cache: reused" in second.output and "validate 0/" not in second.output
    assert "cache: reused" not in third.output


def test_a_value_that_cannot_be_stored_is_left_out_not_fatal(tmp_path):
    cache = BuildCache.for_project(tmp_path / "p", folder=tmp_path / "cache")
    cache.context = "context"
    cache.put("layout", "good", {"resourceType": "Patient"})
    cache.put("layout", "bad", lambda: None)  # functions do not pickle
    cache.save()
    again = BuildCache.for_project(tmp_path / "p", folder=tmp_path / "cache")
    assert again.context == "context"
    assert again.get("layout", "good") == {"resourceType": "Patient"} and again.get("layout", "bad") is None
