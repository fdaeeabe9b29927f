"""fhirpkg: validate, bundle and ship FHIR R5 knowledge content, offline.

``fhirpkg.validate``, ``fhirpkg.validate_resource``, ``fhirpkg.validate_project`` and ``fhirpkg.apply`` are
``fhirpkg.api``'s, and ``fhirpkg.load`` (resources as read, or as fhir.resources models) is
``fhirpkg.loader``'s, imported on first use so that ``import fhirpkg`` stays cheap for the CLI.
"""
__version__ = "0.1.0"

_API = ("validate", "validate_resource", "validate_project", "load_definitions", "apply")
_LOADER = ("load", "Package", "Resource", "to_model")


def __getattr__(name: str):
    if name in _API:
        from fhirpkg import api
        return getattr(api, name)
    if name in _LOADER:
        from fhirpkg import loader
        return getattr(loader, name)
    if name == "Issue":
        from fhirpkg.issues import Issue
        return Issue
    raise AttributeError(f"module 'fhirpkg' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API) + list(_LOADER) + ["Issue"])
