"""The rule table (fhirpkg/validation/rules.py) lists every rule id the layers report, and
docs/rule-coverage.md is what scripts/rule_coverage.py renders from it."""
from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from fhirpkg.validation.rules import RULES, hl7_index, is_known

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "tests" / "conformance" / "fhir-test-cases" / "validator"
#: call name -> position of the rule id among the positional arguments
RULE_ARG = {"Issue": 3, "error": 2, "warning": 2, "info": 2, "_fatal": 0, "XhtmlProblem": 1}
#: the modules whose ``_issue`` helper takes the rule id at this position
ISSUE_HELPER = {"layer.py": 3, "package_rules.py": 4, "structure.py": 3}


def _script():
    spec = importlib.util.spec_from_file_location("rule_coverage", ROOT / "scripts" / "rule_coverage.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["rule_coverage"] = mod
    spec.loader.exec_module(mod)
    return mod


def literal_rule_ids() -> dict[str, str]:
    """Rule ids written as string literals where an Issue is made, found in the source text."""
    found = {}
    for path in sorted((ROOT / "fhirpkg").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            pos = ISSUE_HELPER.get(path.name) if name == "_issue" else RULE_ARG.get(name)
            if pos is not None and len(node.args) > pos:
                arg = node.args[pos]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found[arg.value] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return found


def test_every_literal_rule_id_is_in_the_table():
    found = literal_rule_ids()
    assert len(found) > 80  # the scan finds the layers' calls (not an empty pass)
    missing = {rule: where for rule, where in found.items() if rule not in RULES}
    assert not missing, f"rule ids missing from fhirpkg/validation/rules.py: {missing}"


def test_every_rule_id_reported_on_the_suite_is_known(defs):
    """Run every layer on the HL7 test-suite instances: each reported rule is in the table (or an invariant key)."""
    from fhirpkg.fhir.inputs import Source, read_source
    from fhirpkg.validation import Validator

    manifest = json.loads((SUITE / "manifest.json").read_text(encoding="utf-8"))
    validator = Validator(defs)
    seen = set()
    for case in manifest["test-cases"]:
        path = SUITE / case["file"]
        if path.suffix != ".json" or not path.is_file():
            continue
        for doc in read_source(Source(str(path), path)):
            seen.update(i.rule for i in validator.validate_document(doc))
    assert len(seen) > 30
    assert not [r for r in seen if not is_known(r)]


def test_table_rows_are_complete():
    layers = {"json", "structure", "terminology", "invariants", "references", "narrative", "rules", "package", "any"}
    for rid, rule in RULES.items():
        assert rule.layer in layers, rid
        assert rule.severity in ("fatal", "error", "warning", "information"), rid
        assert rule.description, rid


def test_hl7_ids_in_the_table_exist_in_the_extracted_data():
    ids = json.loads((ROOT / "docs" / "data" / "hl7-message-ids.json").read_text(encoding="utf-8"))["ids"]
    assert len(ids) > 1000
    assert not [m for m in hl7_index() if m not in ids]


def test_text_matcher_finds_the_id_of_a_rendered_message():
    mod = _script()
    ids = {"DUPLICATE_JSON_PROPERTY_KEY": {"text": "The JSON property '{0}' is a duplicate and will be ignored"},
           "Unrecognised_property_": {"text": "Unrecognized property '{0}'"}}
    m = mod.TextMatcher(ids)
    assert m.match("The JSON property 'active' is a duplicate and will be ignored") == "DUPLICATE_JSON_PROPERTY_KEY"
    assert m.match("ERROR: Patient.x: Unrecognized property 'x'") == "Unrecognised_property_"
    assert m.match("Something else entirely") is None


def test_properties_parsing_unquotes_and_merges_plurals():
    mod = _script()
    text = "# comment\nA_one = It''s {0} item\nA_other = {0} items\nB = plain\n"
    assert mod.parse_properties(text) == {"A": "It's {0} item", "B": "plain"}
    assert mod.parse_properties(text, "other") == {"A": "{0} items", "B": "plain"}


def test_committed_rule_coverage_doc_is_current():
    mod = _script()
    committed = (ROOT / "docs" / "rule-coverage.md").read_text(encoding="utf-8")
    assert committed == mod.render(), "run: python scripts/rule_coverage.py render"


def test_hl7_paths_are_normalised_to_fhirpkg_style():
    mod = _script()
    assert mod.hl7_path("ResearchStudy.contained[0]/*EvidenceVariable/x*/.useContext[0].value.ofType(CodeableConcept)"
                        ".coding[0]") == "ResearchStudy.contained[0].useContext[0].valueCodeableConcept.coding[0]"
    assert mod.hl7_path(None) == ""


def test_issue_matching_by_path_and_severity():
    """match_issues pairs the HL7 validator's errors and warnings with ours by (path, severity);
    a parse error on a choice element, which HL7 names `value[x]`, pairs with our `valueInteger`
    under the same parent, and nowhere else."""
    from fhirpkg.issues import Issue, Severity
    mod = _script()
    ours = [Issue(Severity.ERROR, "structure", "m", "json-type", "CodeSystem.extension[2].valueInteger"),
            Issue(Severity.WARNING, "invalid", "m", "dom-6", "CodeSystem"),
            Issue(Severity.INFORMATION, "informational", "m", "extension-unknown", "CodeSystem")]
    hl7 = [{"severity": "error", "expression": "CodeSystem.extension[2].value[x]", "message_id": None},
           {"severity": "fatal", "expression": "CodeSystem.extension[3].value[x]", "message_id": "X"},
           {"severity": "information", "expression": "CodeSystem", "message_id": "Y"}]
    counts, hl7_only, ours_only = mod.match_issues(hl7, ours, {})
    assert counts == {"same path and severity": 1, "HL7 only": 1, "fhirpkg only": 1}
    assert hl7_only == {"X": 1} and ours_only == {"dom-6": 1}
