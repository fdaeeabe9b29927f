"""Bundle rules the HL7 validator's BundleValidator checks beyond the StructureDefinition.

Entry identities (every Bundle):

* a fullUrl must be an absolute URL (BUNDLE_ENTRY_URL_ABSOLUTE, error); one that looks like a
  RESTful server URL (``[base/]Type/id[/_history/v]``, Type a resource type) needs a resource
  with an id (BUNDLE_ENTRY_URL_MATCHES_NO_ID) and must end with ``/Type/id`` of that resource
  (BUNDLE_ENTRY_URL_MATCHES_TYPE_ID), both errors;
* except in transactions and batches (and their responses), every entry must have a fullUrl
  (BUNDLE_BUNDLE_ENTRY_FULLURL_REQUIRED, error).

Search result Bundles (type searchset):

The resource types a search asked for come from the self link: the last path segment of its URL
when that is a resource type (``base/Patient?name=x``), else the ``_type`` parameter
(``base?_type=Observation,DocumentReference``).

* no self link: a warning (BUNDLE_SEARCH_NOSELF); a self link whose types cannot be read:
  information (BUNDLE_SEARCH_SELF_NOT_UNDERSTOOD);
* every entry must have a resource (BUNDLE_SEARCH_ENTRY_NO_RESOURCE, error);
* entries with a search mode (any entry has one): each entry without a mode is warned about
  (BUNDLE_SEARCH_NO_MODE); a ``match`` or ``include`` resource must have an id
  (BUNDLE_SEARCH_ENTRY_NO_RESOURCE_ID, error); a ``match`` resource must be of a type the search
  asked for (BUNDLE_SEARCH_ENTRY_WRONG_RESOURCE_TYPE_MODE, error); an ``outcome`` resource must
  be an OperationOutcome (BUNDLE_SEARCH_ENTRY_WRONG_RESOURCE_TYPE_OUTCOME, error);
* no entry with a mode: resources other than OperationOutcome should have ids (a warning), a
  resource of a type the search did not ask for is warned about
  (BUNDLE_SEARCH_ENTRY_WRONG_RESOURCE_TYPE_NO_MODE), one whose type cannot be judged noted
  (BUNDLE_SEARCH_ENTRY_TYPE_NOT_SURE), and entries of several types or of unexpected types get
  one warning that they should have search modes (BUNDLE_SEARCH_NO_MODE; information when all
  is consistent).

The texts are the HL7 validator's (Messages.properties, docs/data/hl7-message-ids.json); its
recorded outcomes in the official test cases bundle-id-3 and bundle-id-4 give the same.
"""
from __future__ import annotations

import re
from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.model import Node
from fhirpkg.validation.references import ABSOLUTE_URI

FULL_URL_OPTIONAL = ("transaction", "transaction-response", "batch", "batch-response")
NO_SELF = "SearchSet Bundles should have a self link that specifies what the search was"
NO_MODE = "SearchSet bundles should have search modes on the entries"
NO_ID = "Search results must have ids"
NO_RESOURCE = "SearchSet Bundle Entries must have resources"


def search_types(url, resource_types) -> list[str]:
    """The resource types a search URL asks for (empty: not understood)."""
    if not isinstance(url, str):
        return []
    path, _, query = url.partition("?")
    last = path.split("/")[-1]
    if last in resource_types:
        return [last]
    types = []
    for param in query.split("&") if query else ():
        if param.startswith("_type="):
            types.extend(param[len("_type="):].split(","))
    return types


def _listed(types: list[str]) -> str:
    return "[" + ", ".join(types) + "]"  # as Java prints a List


def check(node: Node, defs, resolver=None) -> Iterator[Issue]:
    bundle = node.value
    if node.location != node.frame.location or not isinstance(bundle, dict):
        return
    resource_types = set(defs.resource_types)
    yield from entry_urls(bundle, resource_types, node.expression, node.location)
    if bundle.get("type") == "searchset":
        yield from search_set(bundle, resource_types, node.expression, node.location)


#: A fullUrl that looks like a RESTful server URL (the HL7 validator's urlRegex), when the group is
#: a resource type: ``[http(s)://base/]Type/id[/_history/version]``.
RESTFUL_URL = re.compile(r"^(?:https?://(?:[A-Za-z0-9.:%$_\-]*/)*)?([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}"
                         r"(?:/_history/[A-Za-z0-9\-.]{1,64})?$")


def entry_urls(bundle: dict, resource_types: set, expr: str, loc: tuple) -> Iterator[Issue]:
    optional = bundle.get("type") in FULL_URL_OPTIONAL
    for i, entry in enumerate(bundle.get("entry") or ()):
        if not isinstance(entry, dict):
            continue
        eexpr, eloc = f"{expr}.entry[{i}]", loc + ("entry", i)
        full_url = entry.get("fullUrl")
        res = entry.get("resource") if isinstance(entry.get("resource"), dict) else None
        rtype = res.get("resourceType") if res is not None else None
        rid = res.get("id") if res is not None else None
        if isinstance(full_url, str) and full_url:
            if not ABSOLUTE_URI.match(full_url):
                yield Issue(Severity.ERROR, "invalid", f"The fullUrl must be an absolute URL (not '{full_url}')",
                            "bundle-entry-url", eexpr, location=eloc)
            elif isinstance(rtype, str) and (m := RESTFUL_URL.match(full_url)) and m.group(1) in resource_types:
                if rid is None:
                    yield Issue(Severity.ERROR, "invalid", f"The fullUrl '{full_url}' looks like a RESTful server "
                                "URL, but the resource has no id", "bundle-entry-url", eexpr, location=eloc)
                elif not full_url.endswith(f"/{rtype}/{rid}"):
                    yield Issue(Severity.ERROR, "invalid", f"The fullUrl '{full_url}' looks like a RESTful server "
                                f"URL, so it must end with the correct type and id (/{rtype}/{rid})",
                                "bundle-entry-url", eexpr, location=eloc)
        if not optional and full_url is None:
            yield Issue(Severity.ERROR, "invalid", "Except for transactions and batches, each entry in a Bundle must "
                        "have a fullUrl which is the identity of the resource in the entry", "bundle-entry-url",
                        eexpr, location=eloc)


def search_set(bundle: dict, resource_types: set, expr: str, loc: tuple) -> Iterator[Issue]:
    links = [link for link in bundle.get("link") or () if isinstance(link, dict)]
    self_link = next((link for link in links if link.get("relation") == "self"), None)
    types: list[str] = []
    if self_link is None:
        yield Issue(Severity.WARNING, "invalid", NO_SELF, "bundle-search", expr, location=loc)
    else:
        types = search_types(self_link.get("url"), resource_types)
        if not types:
            yield Issue(Severity.INFORMATION, "invalid", "No types could be determined from the search string, so "
                        "the types can't be checked", "bundle-search", expr, location=loc)
    entries = [(i, e) for i, e in enumerate(bundle.get("entry") or ()) if isinstance(e, dict)]
    for i, entry in entries:
        if not isinstance(entry.get("resource"), dict):
            yield Issue(Severity.ERROR, "invalid", NO_RESOURCE, "bundle-search", f"{expr}.entry[{i}]",
                        location=loc + ("entry", i))
    modes = [_mode(e) for _, e in entries]
    if entries and all(m is None for m in modes):
        yield from _without_modes(entries, types, self_link is not None, expr, loc)
        return
    for (i, entry), mode in zip(entries, modes):
        eexpr, eloc = f"{expr}.entry[{i}]", loc + ("entry", i)
        if mode is None:
            yield Issue(Severity.WARNING, "invalid", NO_MODE, "bundle-search", eexpr, location=eloc)
        res = entry.get("resource")
        if not isinstance(res, dict) or mode is None:
            continue
        rt, has_id = res.get("resourceType"), res.get("id") is not None
        rexpr, rloc = f"{eexpr}.resource", eloc + ("resource",)
        if mode in ("match", "include") and not has_id:
            yield Issue(Severity.ERROR, "invalid", NO_ID, "bundle-search", rexpr, location=rloc)
        if mode == "match" and types and rt not in types:
            yield Issue(Severity.ERROR, "invalid", "This is not a matching resource type for the specified search "
                        f"({rt} expecting {_listed(types)})", "bundle-search", rexpr, location=rloc)
        elif mode not in ("match", "include") and rt != "OperationOutcome":
            yield Issue(Severity.ERROR, "invalid", f"This is not an OperationOutcome ({rt})", "bundle-search",
                        rexpr, location=rloc)


def _mode(entry: dict):
    search = entry.get("search")
    return search.get("mode") if isinstance(search, dict) else None


def _without_modes(entries, types: list[str], has_self: bool, expr: str, loc: tuple) -> Iterator[Issue]:
    problem, first_type = False, None
    for i, entry in entries:
        res = entry.get("resource")
        if not isinstance(res, dict):
            continue
        rt, has_id = res.get("resourceType"), res.get("id") is not None
        rexpr, rloc = f"{expr}.entry[{i}].resource", loc + ("entry", i, "resource")
        if not types:
            problem = True
            if has_self:
                yield Issue(Severity.INFORMATION, "invalid", "Unable to determine if this resource is a valid "
                            "resource type for this search", "bundle-search", rexpr, location=rloc)
            if rt != "OperationOutcome" and not has_id:
                yield Issue(Severity.WARNING, "invalid", NO_ID, "bundle-search", rexpr, location=rloc)
        elif rt in types:
            if rt != "OperationOutcome":
                if not has_id:
                    yield Issue(Severity.WARNING, "invalid", NO_ID, "bundle-search", rexpr, location=rloc)
                problem = problem or (first_type is not None and rt != first_type)
                first_type = first_type or rt
        else:
            problem = True
            yield Issue(Severity.WARNING, "invalid", "This is not a matching resource type for the specified search "
                        f"(is a search mode needed?) ({rt} expecting {_listed(types)})", "bundle-search",
                        f"{expr}.entry[{i}]", location=loc + ("entry", i))
    yield Issue(Severity.WARNING if problem else Severity.INFORMATION, "invalid", NO_MODE, "bundle-search",
                expr, location=loc)
