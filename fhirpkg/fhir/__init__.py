"""Reading FHIR: JSON and XML with source positions, the package cache, definitions and snapshots."""
