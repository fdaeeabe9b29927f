"""The error classes users see, and one-line descriptions of unexpected errors."""
from __future__ import annotations


class FhirpkgError(Exception):
    """A problem with the input or the setup, said in its own words: never a bug.

    The base of every error fhirpkg raises on purpose, so the CLI catches them all
    with one clause and exits with ``exit_code`` (2: usage or input error) after
    printing the message as it is, in one line.
    """

    exit_code = 2


class PackageError(FhirpkgError):
    """A package could not be resolved, fetched or unpacked; the message says why.

    A setup problem (offline, not on npm, not a package), not a bug.  Defined here, not
    in packages.py, so the CLI can catch it without importing the package machinery.
    """


class InputError(FhirpkgError):
    """Nothing to work on: a folder with nothing to validate, a path that cannot be loaded."""


def describe(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "out of memory (the input is too large to validate in one piece)"
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return f"{exc.strerror or exc}{where}"
    name = type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"internal error: {name}{': ' + text if text else ''} (set FHIRPKG_DEBUG=1 for details; please report it)"


class ApplyError(FhirpkgError):
    """PlanDefinition $apply cannot run on this input (data not a Bundle, subject not in the data,
    PlanDefinition or Library not found, unsupported expression language); the message says why.
    The CLI shows it as one line and exits 2."""


class UnsupportedElm(ApplyError):
    """The ELM uses a node type (or FHIRHelpers function) the evaluator does not implement."""
