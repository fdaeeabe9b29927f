#!/usr/bin/env bash
# Build the Java side of the interop suite (called by `make interop-setup`; safe to re-run: a jar
# newer than its sources is not rebuilt).  Needs Maven Central the first time (~490 MB into ~/.m2);
# afterwards it works offline (set FHIRPKG_MAVEN_OFFLINE=1 to pass -o to Maven).
#   1. HL7 validator front end -> tests/interop/hl7-validator/target/validator_cli.jar (+ target/lib/)
#   2. HAPI FHIR JPA server (R5; R4 with --fhirpkg.hapi.fhir-version=R4, PlanDefinition/$apply with
#      --fhirpkg.hapi.cr=true: cqf-fhir-cr-hapi 4.4.0) -> tests/interop/hapi-server/target/hapi-server.jar
#   2b. cqf-fhir-cr $apply front end -> tests/interop/cqf-apply/target/cqf_apply.jar (+ target/lib/)
#   2c. CQL-to-ELM translator front end (fhirpkg cql) -> <fhirpkg cache>/cql-translator-4.4.0/cql_translator.jar
#   3. the validator's private package cache, copied from the shared FHIR package cache
#      (run `make packages` first; missing packages are fetched from npm unless FHIRPKG_OFFLINE=1)
# Without java/mvn this prints why and exits 0: the interop tests then skip, or fail with the reason
# under FHIRPKG_REQUIRE_INTEROP=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-.venv/bin/python}"

if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  echo "interop setup: java and/or mvn not found; the Java interop suite cannot run here" >&2
  exit 0
fi

"$PY" - <<'PYEOF'
import sys, time
sys.path.insert(0, "tests")
from interop import cqf, hapi, hl7
from fhirpkg.logic import translate

for name, build in (("HL7 validator", hl7.jar_path), ("HAPI server", hapi.jar_path),
                    ("cqf-fhir-cr $apply", cqf.jar_path), ("CQL translator", translate.jar_path)):
    t = time.monotonic()
    jar = build()
    print(f"interop setup: {name}: {jar} ({time.monotonic() - t:.0f} s)", flush=True)
t = time.monotonic()
print(f"interop setup: validator home {hl7.prepare_home()} ({time.monotonic() - t:.0f} s)", flush=True)
PYEOF
