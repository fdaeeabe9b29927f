# Two entry points for a fresh machine (see README):
#   make package   set up, then validate definitions/ and build build/
#   make test      set up everything (Python, FHIR packages, Java harness, browser), then run every test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup packages package test test-fast interop-setup translator browser-setup spark-setup clean

$(STAMP): pyproject.toml
	@echo "setting up $(VENV)/: pip install -e '.[test]'"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e '.[test]'
	@touch $@

setup: $(STAMP)
	@# byte-compile once: these machines set PYTHONDONTWRITEBYTECODE, and cold starts matter
	@$(BIN)/python -m compileall -q fhirpkg
	@$(BIN)/python -c "import fhirpkg.validation.fhirpath" >/dev/null 2>&1 || true

packages: setup
	$(BIN)/fhirpkg packages install --defaults hl7.fhir.r5.examples@5.0.0 hl7.fhir.r4b.core@4.3.0 hl7.fhir.r4.core@4.0.1 \
		hl7.terminology.r4@7.0.1 hl7.fhir.uv.extensions.r4@5.3.0-ballot-tc1

package: packages
	$(BIN)/fhirpkg validate definitions
	$(BIN)/fhirpkg build

interop-setup:
	@if [ -x tests/interop/setup.sh ]; then tests/interop/setup.sh; fi

# the CQL-to-ELM translator front end (fhirpkg cql); make package needs it only when the CQL changed
translator: setup
	$(BIN)/python -c "from fhirpkg.logic import translate; print(translate.jar_path())"

browser-setup:
	@if [ -x tests/site/setup.sh ]; then tests/site/setup.sh; fi

# pyspark for the --spark tests (the spark extra; about 450 MB, so only the test command installs it)
spark-setup: setup
	@$(BIN)/python -c "import pyspark" 2>/dev/null || $(BIN)/pip install -q -e '.[test,spark]'

test: packages interop-setup browser-setup spark-setup
	FHIRPKG_REQUIRE_INTEROP=1 $(BIN)/pytest -q -ra --durations=15
	$(BIN)/fhirpkg build --check

test-fast: packages
	$(BIN)/pytest -q -ra -m "not slow and not interop and not browser and not spark"

clean:
	rm -rf $(VENV) .pytest_cache
