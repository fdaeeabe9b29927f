"""The generic walk: every converted resource is checked against the target's element table.

An element the target lacks is removed and listed; 0..1 versus 0..* is fixed; properties are put in
the target's element order; data types and extensions are converted wherever they occur.  The
per-type mappings run first; this is the safety net behind them.
"""
from __future__ import annotations

from fhirpkg.publish.convert.context import EXT, XVER, Context
from fhirpkg.publish.convert.datatypes import DATATYPE_FIXES
from fhirpkg.publish.convert.elements import (CONTEXTS, ELEMENT_BASE, ELEMENTS, MISSING_VALUE_TYPES,
                                              RESOURCE_BASE, TARGET_CORE_PROFILES, Child, extension_allowed,
                                              order, resolve)

def _extension(ext, host: frozenset, path: str, cx: Context):
    """One extension, converted; None when the target has no place for it."""
    if not isinstance(ext, dict):
        return ext
    url = ext.get("url", "")
    if url.startswith(XVER):  # built by convert.xver from R5 content, already in the R4 shape
        return ext
    if not extension_allowed(url, host):
        name = url.rsplit("/", 1)[-1]
        cx.lose(f"{path}.extension('{name}')",
                f"extension {name} is not defined for this element in {cx.version_name} "
                f"(contexts: {', '.join(sorted(CONTEXTS[url]))})")
        return None
    out = {}
    for k, v in ext.items():
        if k.startswith("value") and k[5:6].isupper():
            t = k[5:]
            if t in MISSING_VALUE_TYPES[cx.target]:
                cx.lose(f"{path}.extension('{url.rsplit('/', 1)[-1]}').value[x]",
                        f"{cx.version_name} extensions cannot hold a {t} value")
                return None
            if t in ELEMENTS[cx.target]:
                v = datatype(v, t, f"{path}.extension.value", cx)
                if v is None:
                    return None
            out[k] = v
        elif k == "extension":
            subs = [s for s in (_extension(e, frozenset({"Extension", "Element", "DomainResource.extension"}),
                                           path, cx) for e in v) if s is not None]
            if subs:
                out[k] = subs
        else:
            out[k] = v
    return out


def extensions(value, host: frozenset, path: str, cx: Context) -> list:
    return [e for e in (_extension(x, host, path, cx) for x in (value or [])) if e is not None]


# ------------------------------------------------------------------------------------ walker
def walk_resource(res: dict, rt: str, cx: Context) -> dict:
    children = ELEMENTS[cx.target][rt]
    host = frozenset({rt, "DomainResource", "Resource"})
    out = {}
    for k, v in res.items():
        if k in ("resourceType", "id", "implicitRules", "language", "text"):
            out[k] = v
        elif k == "meta":
            out[k] = convert_meta(v, rt, cx)
        elif k == "contained":
            out[k] = [cx.batch.convert(c, cx) for c in v if isinstance(c, dict) and cx.batch.kept(c)]
            for c in v:
                if isinstance(c, dict) and not cx.batch.kept(c):
                    cx.lose(f"{rt}.contained", f"contained {c.get('resourceType')} does not exist in "
                            f"{cx.version_name}")
        elif k in ("extension", "modifierExtension"):
            exts = extensions(v, host, rt, cx)
            if exts:
                out[k] = exts
        else:
            _member(out, k, v, children, rt, cx)
    return order(out, children, RESOURCE_BASE)


def _walk(obj: dict, table_key: str, path: str, cx: Context, host: frozenset) -> dict | None:
    """One complex value (backbone element or data type) in the target shape."""
    children = ELEMENTS[cx.target][table_key]
    out = {}
    for k, v in obj.items():
        if k == "id":
            out[k] = v
        elif k in ("extension", "modifierExtension"):
            exts = extensions(v, host, path, cx)
            if exts:
                out[k] = exts
        else:
            _member(out, k, v, children, path, cx)
    if not any(k != "id" for k in out):
        return None
    return order(out, children, ELEMENT_BASE)


def _member(out: dict, key: str, value, children: dict[str, Child], path: str, cx: Context) -> None:
    primitive_ext = key.startswith("_")
    name = key[1:] if primitive_ext else key
    hit = resolve(children, name)
    if hit is None:
        cx.lose(f"{path}.{name}", f"{cx.version_name} has no element {path.split('.')[-1]}.{name}")
        return
    child, typ = hit
    path_in = f"{path}.{child.name}"  # R5 names: "timing[x]", not "timingTiming"
    if primitive_ext:
        host = frozenset({typ, path_in, "Element"})
        if isinstance(value, list):
            value = [None if x is None else _primitive_ext(x, host, path_in, cx) for x in value]
        else:
            value = _primitive_ext(value, host, path_in, cx)
        if value:
            out[key] = value
        return
    value = _cardinality(value, child, path_in, cx)
    if typ.startswith("@") or typ in ELEMENTS[cx.target]:
        items = value if isinstance(value, list) else [value]
        done = [x for x in (_complex(i, typ, path_in, cx) for i in items) if x is not None]
        if not done:
            return
        value = done if isinstance(value, list) else done[0]
    out[key] = value


def _primitive_ext(value, host: frozenset, path: str, cx: Context):
    if not isinstance(value, dict):
        return value
    out = dict(value)
    if "extension" in out:
        out["extension"] = extensions(out["extension"], host, path, cx)
        if not out["extension"]:
            del out["extension"]
    return out or None


def _cardinality(value, child: Child, path: str, cx: Context):
    if child.many and not isinstance(value, list):
        return [value]
    if not child.many and isinstance(value, list):
        if len(value) > 1:
            cx.lose(path, f"{cx.version_name} allows one value here; the first is kept")
        return value[0] if value else None
    return value


def _complex(value, typ: str, path: str, cx: Context):
    if not isinstance(value, dict):
        return value
    if typ.startswith("@"):
        key = typ[1:]
        return _walk(value, key, path, cx, frozenset({key, path, "Element", "BackboneElement"}))
    return datatype(value, typ, path, cx)


def datatype(value, typ: str, path: str, cx: Context):
    if not isinstance(value, dict):
        return value
    fix = DATATYPE_FIXES.get(typ)
    if fix is not None:
        value = fix(value, path, cx)
        if value is None:
            return None
    return _walk(value, typ, path, cx, frozenset({typ, path, "Element"}))


def convert_meta(meta, rt: str, cx: Context):
    if not isinstance(meta, dict):
        return meta
    meta = dict(meta)
    profiles = meta.get("profile")
    if isinstance(profiles, list):
        kept = []
        for p in profiles:
            name = p.split("|")[0].rsplit("/", 1)[-1] if isinstance(p, str) else ""
            if isinstance(p, str) and p.startswith(EXT) and name not in TARGET_CORE_PROFILES[cx.target]:
                cx.lose(f"{rt}.meta.profile", f"core profile {name} does not exist in {cx.version_name}")
            else:
                kept.append(p)
        meta["profile"] = kept
        if not kept:
            del meta["profile"]
    return _walk(meta, "Meta", f"{rt}.meta", cx, frozenset({"Meta", f"{rt}.meta", "Element"}))
