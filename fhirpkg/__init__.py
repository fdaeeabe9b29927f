"""fhirpkg: validate, bundle and ship FHIR R5 knowledge content, offline."""
__version__ = "0.1.0"
