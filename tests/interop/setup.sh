#!/usr/bin/env bash
# Build the Java side of the interop suite on a fresh machine (Maven Central must be reachable the
# first time; afterwards everything comes from ~/.m2).  Called by `make interop-setup`.
#   1. the HL7 validator front end  -> tests/interop/hl7-validator/target/validator_cli.jar (+ lib/)
#   2. the HAPI FHIR JPA R5 server   -> tests/interop/hapi-server/target/hapi-server.jar
#   3. the validator's private package cache (copied from the shared FHIR package cache)
# Missing java/mvn is not an error here: the interop tests then skip, or fail under
# FHIRPKG_REQUIRE_INTEROP=1 with the reason.
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(cd ../.. && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"

if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  echo "interop setup: java and/or mvn not found; skipping the Java build" >&2
  exit 0
fi

start=$(date +%s)
(cd hl7-validator && mvn -q -B -DskipTests package)
echo "interop setup: built hl7-validator/target/validator_cli.jar ($(( $(date +%s) - start )) s)"
start=$(date +%s)
(cd hapi-server && mvn -q -B -DskipTests package)
echo "interop setup: built hapi-server/target/hapi-server.jar ($(( $(date +%s) - start )) s)"

# private validator cache (needs the shared cache filled: make packages)
(cd "$ROOT" && "$PY" -c "import sys; sys.path.insert(0, 'tests'); from interop import hl7; print('interop setup: validator home', hl7.prepare_home())")
