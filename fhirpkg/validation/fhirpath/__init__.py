"""FHIRPath for FHIR R5 invariants: fhirpathpy's parser and functions, our evaluator.

fhirpathpy 2.2.4 parses FHIRPath well and implements most functions, but its
tree-walking evaluator gets FHIR JSON wrong in ways that matter for invariants:

* a primitive's ``_x`` shadow becomes a *separate* item (``birthDate.count()``
  is 2 when the date has an extension), and ``children()``/``descendants()``
  drop ``_x``-only primitive arrays, so ele-1 gives false positives;
* a top-level ``$this`` raises ``KeyError`` (sdf-26);
* ``where()`` evaluates its criteria twice, and lambdas leave ``$this`` changed;
* ``and``/``or``/``implies`` do not short-circuit, so ``x.exists() implies
  y.resolve()`` needs ``resolve`` even when ``x`` is absent;
* ``trace()`` prints to stdout, and the parser swallows syntax errors;
* ``hasValue``, ``getValue``, ``memberOf``, ``htmlChecks``, ``lowBoundary``,
  ``highBoundary``, ``comparable``, ``conformsTo`` and ``resolve`` are missing.

So this package keeps fhirpathpy's ANTLR parser, AST, type model, value classes
(``ResourceNode``, ``FP_DateTime``, ``FP_Quantity``, ``TypeInfo``) and most of its
function table, and replaces the evaluator: each expression is compiled once into
Python closures.  A primitive is one ``ResourceNode(value, type, shadow)``.  A few
functions are replaced as well (``REPLACED_FUNCTIONS``): navigation, ``where``
(once per item), ``repeat`` (tree nodes by identity), ``ofType`` (cached type
hierarchy), comparisons (FHIR Quantity elements), and the string functions, which
follow the HL7 validator's leniency about collections.

Nothing in fhirpathpy is patched (we only set ``TypeInfo.model``, as fhirpathpy's
own ``is``/``as`` do); the internals we rely on are checked at import
(``engine.check_fhirpathpy``) so a fhirpathpy upgrade fails loudly, not subtly.

Functions that need the outside world (``resolve``, ``memberOf``,
``conformsTo``, ``htmlChecks``) call back into the host; without a callback, or
when the callback cannot tell, they raise ``NotEvaluable`` instead of guessing.

The package, by stage: ``parsing`` (text to AST, the parse-tree cache), ``model`` (the type
model and navigation over FHIR JSON), ``compiler`` (AST to closures), ``existence`` (presence
tests as plain Python, for the commonest invariants), ``functions`` (the
function table), ``boundaries`` and ``quantities`` (lowBoundary/highBoundary, Quantity
comparison through UCUM), ``engine`` (``FhirPathEngine``), ``common`` (errors, constants).
This module names the public API.
"""
from __future__ import annotations

from fhirpkg.validation.fhirpath.boundaries import date_boundary, decimal_boundary, time_boundary
from fhirpkg.validation.fhirpath.common import (
    FHIRPATHPY_VERSION,
    EvaluationTimeout,
    FhirPathError,
    FhirPathSyntaxError,
    NotEvaluable,
)
from fhirpkg.validation.fhirpath.engine import SHARED_COMPILED, FhirPathEngine, check_fhirpathpy
from fhirpkg.validation.fhirpath.functions import ADDED_FUNCTIONS, REPLACED_FUNCTIONS
from fhirpkg.validation.fhirpath.model import choice_type, count_children, has_value
from fhirpkg.validation.fhirpath.parsing import AST_CACHE_ENV, parse, parse_cached, save_ast_cache
from fhirpkg.validation.fhirpath.quantities import ucum_dimension, ucum_values

__all__ = [
    "ADDED_FUNCTIONS", "AST_CACHE_ENV", "FHIRPATHPY_VERSION", "REPLACED_FUNCTIONS", "SHARED_COMPILED",
    "EvaluationTimeout", "FhirPathEngine", "FhirPathError", "FhirPathSyntaxError", "NotEvaluable",
    "check_fhirpathpy", "choice_type", "count_children", "date_boundary", "decimal_boundary", "has_value",
    "parse", "parse_cached", "save_ast_cache", "time_boundary", "ucum_dimension", "ucum_values",
]
