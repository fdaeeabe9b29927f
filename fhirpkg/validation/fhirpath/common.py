"""What every part of the FHIRPath engine shares: its errors and the spec's well-known constants."""
from __future__ import annotations




#: The fhirpathpy release whose internals this module was written against.

FHIRPATHPY_VERSION = "2.2.4"

UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
XHTML_CONTENT_FUNCTION = "htmlChecks2"  # the HL7 validator's name for the txt-2 check

Focus = list  # a FHIRPath collection: ResourceNode, FP_* values or Python literals


class FhirPathError(Exception):
    """An expression that cannot be compiled or evaluated; the message says why."""


class FhirPathSyntaxError(FhirPathError):
    """The expression is not valid FHIRPath."""


class NotEvaluable(FhirPathError):
    """Evaluation needs something we do not have (a callback, a terminology answer, time)."""


class EvaluationTimeout(NotEvaluable):
    """The per-evaluation time budget ran out."""
