"""The FHIRPath engine: compiles expressions once (shared between engines), evaluates them over
FHIR JSON with the host's callbacks, and checks at import that fhirpathpy is the version it wraps."""
from __future__ import annotations

import time
from typing import Callable

import fhirpathpy
from fhirpathpy.engine.invocations import invocation_registry as FP_REGISTRY
from fhirpathpy.engine.nodes import FP_Quantity, FP_TimeBase, ResourceNode, TypeInfo

from fhirpkg.validation.fhirpath.common import (
    EvaluationTimeout,
    FHIRPATHPY_VERSION,
    FhirPathError,
    FhirPathSyntaxError,
    NotEvaluable,
    UCUM,
)
from fhirpkg.validation.fhirpath.parsing import ast_cache_path, parse, parse_cached, save_ast_cache
from fhirpkg.validation.fhirpath.model import (
    FP_MODELS,
    JsonNode,
    PRIMITIVE_TYPES,
    TypeModel,
    as_resource_node,
    children,
    choice_type,
    count_children,
    has_value,
    listed,
    member,
    type_model,
    unwrap,
)
from fhirpkg.validation.fhirpath.compiler import Compiled, Compiler
from fhirpkg.validation.fhirpath.existence import Decider, Test, early_decision, existence_test
from fhirpkg.validation.fhirpath.functions import ADDED_FUNCTIONS, DEFAULT_REGISTRY, REPLACED_FUNCTIONS
from fhirpkg.validation.fhirpath.boundaries import date_boundary, decimal_boundary, time_boundary
from fhirpkg.validation.fhirpath.quantities import ucum_dimension, ucum_values

#: The fhirpathpy release whose internals this module was written against.





SHARED_COMPILED: dict[str, "Compiled"] = {}
#: Existence tests and early decisions (``existence.py``) by expression; None where an
#: expression has another shape.
SHARED_EXISTENCE: dict[str, Test | None] = {}
SHARED_EARLY: dict[str, Decider | None] = {}


class FhirPathEngine:
    """Compiles and evaluates FHIRPath over FHIR R5 JSON.

    Callbacks (all optional; absent means the function makes the expression not
    evaluable, never silently true):

    * ``resolve(reference, context) -> dict | None`` for references that are not
      ``#contained``; ``context`` is what the caller passed to ``evaluate``;
    * ``member_of(value, valueset_url) -> bool | None`` (None: cannot tell offline);
    * ``conforms_to(resource, profile_url) -> bool | None``;
    * ``slice_matches(value, profile_url, slice_name) -> bool | None`` for slice() (None: no such slice);
    * ``html_checks(div) -> bool`` for txt-1.
    """

    def __init__(self, *, resolve=None, member_of=None, conforms_to=None, html_checks=None,
                 time_budget: float = 2.0, trace: Callable[[str, list], None] | None = None,
                 slice_matches=None, model: str = "r5"):
        self.resolve = resolve
        self.member_of = member_of
        self.conforms_to = conforms_to
        self.slice_matches = slice_matches
        self.html_checks = html_checks
        self.time_budget = time_budget
        self.trace = trace
        #: fhirpathpy's type model: "r5", or "r4" (also used for R4B, which fhirpathpy lacks).
        self.model_name = model if model in FP_MODELS else "r5"
        self.model = type_model(self.model_name)
        self.registry = DEFAULT_REGISTRY  # copy it before adding functions of your own
        self._compiled: dict[str, Compiled] = {}
        #: Free for layers built on the engine to cache per-engine plans in.
        self.memo: dict = {}
        # fhirpathpy's is/as/ofType read the model from this class attribute.
        TypeInfo.model = FP_MODELS[self.model_name]

    def compile(self, expression: str) -> Compiled:
        """Compile once per expression; raises FhirPathError (syntax, unknown function, arity).

        Compiled forms are shared by every engine with the default function table,
        and parse trees are kept on disk (``ast_cache_path``): ANTLR parsing costs
        1-7 ms an expression, compiling a parse tree a tenth of that.
        """
        found = self._compiled.get(expression)
        if found is None:
            shared = self.registry is DEFAULT_REGISTRY
            found = SHARED_COMPILED.get(expression) if shared else None
            if found is None:
                compiler = Compiler(self.registry)
                try:
                    fn = compiler.compile(parse_cached(expression))
                except FhirPathError:
                    raise
                except Exception as e:  # ANTLR recognition errors surface in several shapes
                    raise FhirPathSyntaxError(f"syntax error: {e or type(e).__name__}") from e
                found = Compiled(expression, fn, frozenset(compiler.functions))
                if shared:
                    SHARED_COMPILED[expression] = found
            self._compiled[expression] = found
        return found

    def existence(self, expression: str) -> Callable[[object, str, dict | None], bool] | None:
        """A plain-Python form of a boolean combination of ``path.exists()``/``path.empty()``
        (``existence.py``): ``test(node_value, type_path, shadow) -> bool``, which gives what
        ``evaluate`` would, or None for other expressions (and for engines with functions of
        their own, whose ``exists`` might not be the standard one)."""
        return self._plain_form(SHARED_EXISTENCE, existence_test, expression)

    def early_decision(self, expression: str) -> Callable[[object, str, dict | None], bool | None] | None:
        """For an expression that begins with presence tests (``existence.py``):
        ``decide(node_value, type_path, shadow)`` gives True or False where they settle the result
        as ``evaluate`` would, or None where ``evaluate`` must run. None for other expressions."""
        return self._plain_form(SHARED_EARLY, early_decision, expression)

    def _plain_form(self, cache: dict, make: Callable, expression: str):
        if self.registry is not DEFAULT_REGISTRY:
            return None
        if expression not in cache:
            try:
                cache[expression] = make(parse_cached(expression))
            except Exception:  # noqa: BLE001 - a syntax error is compile()'s to report
                cache[expression] = None
        form = cache[expression]
        if form is None:
            return None
        model = self.model

        def run(node_value, type_path: str, shadow: dict | None = None):
            return form(model, [JsonNode(node_value, model.type_of(type_path), shadow)])

        return run

    def evaluate(self, compiled: Compiled | str, node_value, *, type_path: str, resource: dict,
                 root_resource: dict | None = None, context=None, shadow: dict | None = None,
                 variables: dict | None = None) -> list:
        """Evaluate on one node; returns the result collection as plain values.

        ``type_path`` is the node's type ("Period") or backbone element path
        ("PlanDefinition.action"); ``resource``/``root_resource`` are %resource and
        %rootResource; ``shadow`` is a primitive's ``_x`` object; ``context`` is
        handed to the resolve callback (e.g. the ResourceFrame).
        """
        return [unwrap(x) for x in self.evaluate_nodes(
            compiled, node_value, type_path=type_path, resource=resource, root_resource=root_resource,
            context=context, shadow=shadow, variables=variables)]

    def evaluate_nodes(self, compiled: Compiled | str, node_value, *, type_path: str, resource: dict,
                       root_resource: dict | None = None, context=None, shadow: dict | None = None,
                       variables: dict | None = None) -> list:
        """As ``evaluate``, but items stay ResourceNodes (type and shadow kept)."""
        if isinstance(compiled, str):
            compiled = self.compile(compiled)
        node = JsonNode(node_value, self.model.type_of(type_path), shadow)
        focus = [node]
        resource_node = root_node = None
        if resource is not None:
            resource_node = node if resource is node_value else as_resource_node(resource)
        if root_resource is None or root_resource is resource:
            root_node = resource_node
        else:
            root_node = node if root_resource is node_value else as_resource_node(root_resource)
        env = {"context": focus, "resource": listed(resource_node), "rootResource": listed(root_node),
               "ucum": UCUM}
        if variables:
            env.update(variables)
        ctx = {
            "$this": focus,
            "vars": env,
            "model": FP_MODELS[self.model_name],  # fhirpathpy's is/as read the raw model dict from here
            "types": self.model,
            "engine": self,
            "host": context if context is not None else resource,
            "deadline": time.perf_counter() + self.time_budget,
        }
        TypeInfo.model = ctx["model"]  # engines of two FHIR versions may share a process
        try:
            return compiled.fn(ctx, focus)
        except FhirPathError:
            raise
        except RecursionError as e:
            raise FhirPathError("engine error: expression too deeply nested") from e
        except Exception as e:
            raise FhirPathError(f"engine error: {type(e).__name__}: {e}") from e



# --------------------------------------------------------------------------- guard


def check_fhirpathpy() -> None:
    """Fail loudly if fhirpathpy's internals are not the ones this module was written for."""
    problems = []
    if fhirpathpy.__version__ != FHIRPATHPY_VERSION:
        problems.append(f"fhirpathpy {fhirpathpy.__version__} installed, written for {FHIRPATHPY_VERSION}")
    for name in ("where", "select", "all", "iif", "aggregate", "ofType", "is", "isOp", "asOp", "=", "~",
                 "and", "or", "implies", "|", "containsOp", "inOp", "matches", "substring", "isDistinct"):
        if name not in FP_REGISTRY or "fn" not in FP_REGISTRY[name]:
            problems.append(f"invocation_registry lacks {name!r}")
    for op in ("<", "<=", ">", ">=", "and", "or", "implies", "xor", "=", "isOp"):
        if 2 not in FP_REGISTRY.get(op, {}).get("arity", {}):
            problems.append(f"operator {op!r} is not a binary invocation")
    try:
        node = ResourceNode("x", "string", {"id": "a"})
        if (node.data, node.path, node._data) != ("x", "string", {"id": "a"}):
            problems.append("ResourceNode(data, path, _data) changed")
    except TypeError as e:
        problems.append(f"ResourceNode signature changed: {e}")
    for key in ("path2Type", "choiceTypePaths", "pathsDefinedElsewhere", "type2Parent"):
        if key not in FP_MODELS.get("r5", {}):
            problems.append(f"R5 model lacks {key}")
    if not hasattr(FP_TimeBase, "compare") or not hasattr(FP_Quantity, "timeUnitsToUCUM"):
        problems.append("FP_TimeBase/FP_Quantity API changed")
    if problems:
        raise ImportError("fhirpkg.validation.fhirpath: " + "; ".join(problems))


check_fhirpathpy()

__all__ = [
    "FhirPathEngine", "Compiled", "FhirPathError", "FhirPathSyntaxError", "NotEvaluable", "EvaluationTimeout",
    "TypeModel", "parse", "member", "ucum_values", "children", "count_children", "has_value", "decimal_boundary", "choice_type",
    "PRIMITIVE_TYPES",
    "date_boundary", "time_boundary", "ucum_dimension", "ADDED_FUNCTIONS", "REPLACED_FUNCTIONS",
    "parse_cached", "save_ast_cache", "ast_cache_path", "DEFAULT_REGISTRY",
]
