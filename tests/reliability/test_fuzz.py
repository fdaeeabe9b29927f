"""Bounded fuzzing over bytes (hypothesis as the engine), the corpus it starts from, and the crashers.

The byte-level run takes the seed corpus (``corpus/seeds``: valid resources from definitions/ and
the R5 examples) plus every small catalogue input, applies 1-8 mutations per input (bit flips,
insertions of troublesome tokens, deletions, duplications, truncation, splicing), and feeds the
result to the reader and every validation layer, as JSON and as NDJSON.  Runs are derandomized,
with a fixed number of examples (FHIRPKG_FUZZ_SCALE multiplies it), a per-input deadline and an
address-space cap.  ``crashers/`` keeps every input that ever broke something, replayed through
the CLI: fixed ones must pass, open ones (bugs outside tests/reliability) are strict xfails.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import fuzzing as F
from reliability_support import cli, examples
from fhirpkg.fhir.jsonsource import read_documents

CATALOGUE = Path(__file__).resolve().parent / "catalogue"
MAX_SEED_BYTES = 64 * 1024


def corpus_files() -> list[Path]:
    files = list(F.SEEDS)
    for path in sorted(CATALOGUE.rglob("*")):
        if path.is_file() and path.name != "expect.json" and not path.is_symlink() \
                and path.stat().st_size <= MAX_SEED_BYTES:
            files.append(path)
    return files


CORPUS = corpus_files()


@pytest.fixture(scope="module")
def validator(defs):
    from fhirpkg.validation import Validator
    return Validator(defs)


@settings(settings.get_profile("reliability"), max_examples=examples(800), deadline=5000)
@given(st.data())
def test_fuzz_bytes_through_reader_and_validator(validator, data):
    COUNTS = F.COUNTS
    seeds = [p.read_bytes() for p in CORPUS]
    blob = data.draw(F.mutated_bytes(seeds))
    ndjson = data.draw(st.booleans())
    COUNTS["fuzz: mutated bytes"] += 1
    with F.memory_cap(1024), F.tolerating_known_bugs():
        for doc in read_documents(blob, "fuzz.ndjson" if ndjson else "fuzz.json", ndjson=ndjson):
            F.check_issues(validator.validate_document(doc), doc)


@pytest.mark.parametrize("path", CORPUS, ids=[str(p.relative_to(p.parent.parent.parent)) for p in CORPUS])
def test_corpus_replays_cleanly(validator, path):
    """Every corpus input, unmutated, as JSON and as NDJSON."""
    F.COUNTS["corpus: replayed inputs"] += 1
    data = path.read_bytes()
    with F.tolerating_known_bugs():
        for ndjson in (False, True):
            for doc in read_documents(data, path.name, ndjson=ndjson):
                F.check_issues(validator.validate_document(doc), doc)


CRASHERS = sorted(F.CRASHERS.glob("*.json"))


def _write(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value if isinstance(value, str) else json.dumps(value, indent=2), encoding="utf-8")


@pytest.mark.parametrize("crasher", CRASHERS, ids=[p.stem for p in CRASHERS])
def test_crasher_stays_fixed(crasher, tmp_path, monkeypatch, shared_definitions, request):
    """Each input that once crashed, through the real CLI: no exit 3, no traceback, no engine error."""
    c = json.loads(crasher.read_text(encoding="utf-8"))
    if c["status"] == "open":
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"open bug in {c['owner']}: {c['before']}"))
    F.COUNTS["crashers: replayed"] += 1
    monkeypatch.delenv("FHIRPKG_OFFLINE", raising=False)
    args = []
    if c.get("offline"):
        args.append("--offline")
    if c["command"] == "validate":
        path = tmp_path / "input.json"
        _write(path, c["input_text"] if "input_text" in c else c["input"])
        args += ["validate", str(path)]
    else:
        root = tmp_path / "proj"
        for rel, value in c["files"].items():
            _write(root / rel, value)
        args += ["validate", str(root)] if c["command"] == "validate-project" else \
            ["build", "--project", str(root), "--out", str(tmp_path / "out")]
    run = cli(args)
    out = run.output
    assert run.exit_code != 3 and "Traceback" not in out and "internal error" not in out, out[-2000:]
    if c.get("forbid"):
        assert c["forbid"] not in out, out[-2000:]
    if "expect_exit" in c:
        assert run.exit_code == c["expect_exit"], out[-2000:]
    if c.get("expect_rule"):
        assert f"[{c['expect_rule']}]" in out, out[-2000:]
