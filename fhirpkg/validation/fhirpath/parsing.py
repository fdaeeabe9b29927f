"""FHIRPath text to fhirpathpy's AST: the ANTLR parser with errors raised, not swallowed, and a
parse-tree cache on disk so a cold process does not parse the same invariants again."""
from __future__ import annotations

import atexit
import os
import tempfile
from pathlib import Path

import orjson
from antlr4 import CommonTokenStream, InputStream, ParseTreeWalker
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy.parser.ASTPathListener import ASTPathListener
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from fhirpkg.fsutil import cache_root
from fhirpkg.validation.fhirpath.common import FHIRPATHPY_VERSION, FhirPathSyntaxError

#: The fhirpathpy release whose internals this module was written against.

# --------------------------------------------------------------------------- parsing


class _RaisingErrorListener(ErrorListener):
    """fhirpathpy installs a no-op listener, so parser errors pass silently; ours raises."""

    def syntaxError(self, recognizer, offendingSymbol, line, column, msg, e):  # noqa: N802 (ANTLR API)
        raise FhirPathSyntaxError(f"syntax error at column {column + 1}: {msg}")


_LISTENER = _RaisingErrorListener()


def parse(expression: str) -> dict:
    """Parse with fhirpathpy's grammar, strictly: the whole text must be one expression."""
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(_LISTENER)
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(_LISTENER)
    tree = parser.entireExpression()  # expression EOF: trailing garbage is an error
    listener = ASTPathListener()
    ParseTreeWalker().walk(listener, tree)
    entire = listener.parentStack[0]["children"][0]
    if entire.get("type") != "EntireExpression" or len(entire.get("children", ())) != 1:
        raise FhirPathSyntaxError("syntax error: not a single expression")
    return entire["children"][0]


# --------------------------------------------------------------------------- parse-tree cache

_ASTS: dict[str, dict] = {}
_AST_STATE = {"loaded": False, "dirty": False}
AST_CACHE_ENV = "FHIRPKG_FHIRPATH_CACHE"  # a file path, or "0" to keep parse trees in memory only


def ast_cache_path() -> Path | None:
    """Where parse trees are kept between runs, next to the compiled definitions."""
    env = os.environ.get(AST_CACHE_ENV)
    if env is None:
        return cache_root() / f"fhirpath-ast-{FHIRPATHPY_VERSION}.json"
    if env in ("0", "false", ""):
        return None
    return Path(env).expanduser()


def parse_cached(expression: str) -> dict:
    """``parse``, remembered in memory and across runs (syntax errors are not cached)."""
    found = _ASTS.get(expression)
    if found is None:
        if not _AST_STATE["loaded"]:
            _load_asts()
            found = _ASTS.get(expression)
    if found is None:
        found = _ASTS[expression] = parse(expression)
        if not _AST_STATE["dirty"]:
            _AST_STATE["dirty"] = True
            atexit.register(save_ast_cache)
    return found


def _load_asts() -> None:
    _AST_STATE["loaded"] = True
    path = ast_cache_path()
    if path is None or not path.is_file():
        return
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return  # a damaged cache is ignored and rewritten
    if isinstance(data, dict) and data.get("fhirpathpy") == FHIRPATHPY_VERSION and isinstance(data.get("asts"), dict):
        for expression, ast in data["asts"].items():
            if isinstance(expression, str) and isinstance(ast, dict):
                _ASTS.setdefault(expression, ast)


def save_ast_cache() -> None:
    """Write the parse trees seen so far (atomically); called at exit when there are new ones."""
    path = ast_cache_path()
    if path is None or not _AST_STATE["dirty"]:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".fhirpath-ast-", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps({"fhirpathpy": FHIRPATHPY_VERSION, "asts": _ASTS}))
        os.replace(tmp, path)
        _AST_STATE["dirty"] = False
    except OSError:
        pass  # a cache we cannot write only costs time
