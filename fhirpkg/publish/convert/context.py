"""What every step of the R5 -> R4B/R4 export shares: the target versions, the records of a
conversion (:class:`Loss`, :class:`Conversion`), and the batch and per-resource context through
which references between the package's resources are resolved and losses are recorded.

Kept apart from the per-type mappings so that each of them can import it without a circle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

R4B = "4.3.0"
R4 = "4.0.1"

#: What an export needs besides the target's core package (extensions used on converted content).
EXTENSIONS_PACKAGE = ("hl7.fhir.uv.extensions.r4", "5.3.0-ballot-tc1")


@dataclass(frozen=True)
class Loss:
    """One thing that could not be carried over."""

    resource: str  # "MedicationKnowledge/mk-cisplatin"
    path: str  # R5 element path, e.g. "MedicationKnowledge.identifier"
    reason: str  # why, in plain words


@dataclass(frozen=True)
class Carried:
    """One R5 element the target has no element for, carried in a cross-version extension."""

    resource: str  # "ResearchStudy/rs-x" (the R5 resource)
    path: str  # R5 element path, e.g. "ResearchStudy.version"
    extension: str  # the extension's URL


@dataclass
class Unit:
    """What converting one resource of a batch gave: its part of a :class:`Conversion`."""

    key: str  # "Type/id" of the R5 resource
    outcome: str = "converted"  # or "basic" (written as R4 Basic), "dropped" (not exported)
    resource: dict | None = None
    losses: list[Loss] = field(default_factory=list)
    carried: list[Carried] = field(default_factory=list)
    values: tuple[int, int, int] | None = None  # element values carried, as extensions, lost (fidelity)


@dataclass
class Conversion:
    """Converted resources and what the conversion could not keep."""

    resources: list[dict] = field(default_factory=list)  # same order as input where kept
    losses: list[Loss] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # "Type/id" of resources with no counterpart
    carried: list[Carried] = field(default_factory=list)  # R5 elements in cross-version extensions (R4)
    as_basic: list[str] = field(default_factory=list)  # "Type/id" of R5 resources exported as R4 Basic

    units: dict[str, Unit] = field(default_factory=dict)  # "Type/id" -> what converting it gave

    def add(self, unit: Unit) -> None:
        self.units[unit.key] = unit
        if unit.resource is not None:
            self.resources.append(unit.resource)
        if unit.outcome == "basic":
            self.as_basic.append(unit.key)
        elif unit.outcome == "dropped":
            self.dropped.append(unit.key)
        self.losses.extend(unit.losses)
        self.carried.extend(unit.carried)


EXT = "http://hl7.org/fhir/StructureDefinition/"

#: R5 resource types that R4B does not have (hl7.fhir.r5.core vs hl7.fhir.r4b.core).
R5_ONLY_TYPES = frozenset(
    "ActorDefinition ArtifactAssessment BiologicallyDerivedProductDispense ConditionDefinition DeviceAssociation "
    "DeviceDispense DeviceUsage EncounterHistory FormularyItem GenomicStudy ImagingSelection InventoryItem "
    "InventoryReport NutritionIntake Permission RequestOrchestration Requirements SubstanceNucleicAcid "
    "SubstancePolymer SubstanceProtein SubstanceReferenceInformation SubstanceSourceMaterial TestPlan "
    "Transport".split())

#: R4B resource types that R4 does not have (R4B introduced them; xver-paths-4.0.json lacks them).
NOT_IN_R4 = frozenset(
    "AdministrableProductDefinition Citation ClinicalUseDefinition EvidenceReport Ingredient "
    "ManufacturedItemDefinition MedicinalProductDefinition NutritionProduct PackagedProductDefinition "
    "RegulatedAuthorization SubscriptionStatus SubscriptionTopic SubstanceDefinition".split())


#: Where HL7's cross-version extensions for R5 elements live (convert.xver builds them, already converted).
XVER = "http://hl7.org/fhir/5.0/StructureDefinition/"

#: R5 types R4 lacks that the R4 export writes as Basic in the cross-version shape (convert.xver).
BASIC_TYPES = ("Citation", "ClinicalUseDefinition")


def exists_in(rt: str, target: str) -> bool:
    return rt not in R5_ONLY_TYPES and (target == R4B or rt not in NOT_IN_R4)


def resource_key(res: dict) -> str:
    return f"{res.get('resourceType')}/{res.get('id')}"


def ext_value(res: dict, name: str):
    for e in res.get("extension") or ():
        if isinstance(e, dict) and e.get("url") == EXT + name:
            return next((v for k, v in e.items() if k.startswith("value")), None)
    return None


def canonical_url(res: dict) -> str | None:
    """The canonical URL of a resource: ``url``, or the artifact-url extension of non-canonical types."""
    url = res.get("url")
    return url if isinstance(url, str) else ext_value(res, "artifact-url")


@dataclass
class Batch:
    """All resources converted together: references between them are resolved here."""

    target: str
    by_key: dict[str, dict]
    by_url: dict[str, dict]
    convert: Callable[[dict, "Context"], dict]  # one resource, whole (what contained resources go through)

    @classmethod
    def of(cls, resources: Iterable[dict], target: str, convert: Callable[[dict, "Context"], dict]) -> "Batch":
        by_key, by_url = {}, {}
        for r in resources:
            if isinstance(r, dict):
                by_key[resource_key(r)] = r
                url = canonical_url(r)
                if isinstance(url, str):
                    by_url[url] = r
        return cls(target, by_key, by_url, convert)

    #: When a set: every lookup is noted in it ("c:url", "r:Type/id"), for the build cache.
    reads: set | None = None

    def canonical(self, ref: str) -> dict | None:
        if not isinstance(ref, str):
            return None
        if self.reads is not None:
            self.reads.add(f"c:{ref.split('|')[0]}")
        return self.by_url.get(ref.split("|")[0])

    def reference(self, ref: str) -> dict | None:
        if not isinstance(ref, str):
            return None
        if self.reads is not None:
            self.reads.add(f"r:{ref}")
        return self.by_key.get(ref)

    def looked_up(self, read: str) -> dict | None:
        """What a noted read finds now (itself not noted)."""
        tag, _, key = read.partition(":")
        return (self.by_url if tag == "c" else self.by_key).get(key)

    def kept(self, res: dict) -> bool:
        return exists_in(res.get("resourceType", ""), self.target)


@dataclass
class Context:
    """One resource being converted: its target version, its batch and the losses found so far."""

    batch: Batch
    key: str
    losses: list[Loss]
    seen: set = field(default_factory=set)  # losses already recorded in this batch: no O(n) scan
    carried: list[Carried] = field(default_factory=list)

    @property
    def target(self) -> str:
        return self.batch.target

    @property
    def version_name(self) -> str:
        return "R4B" if self.target == R4B else "R4"

    def lose(self, path: str, reason: str) -> None:
        loss = (self.key, path, reason)
        if loss not in self.seen:
            self.seen.add(loss)
            self.losses.append(Loss(*loss))

    def carry(self, path: str, extension: str) -> None:
        record = Carried(self.key, path, extension)
        if record not in self.seen:
            self.seen.add(record)
            self.carried.append(record)


def url_as_identifier(res: dict, url: str) -> None:
    """Keep a canonical URL the target cannot hold as an identifier whose system says "this is a URI"."""
    ids = list(res.get("identifier") or [])
    if not any(i.get("value") == url for i in ids if isinstance(i, dict)):
        res["identifier"] = ids + [{"system": "urn:ietf:rfc:3986", "value": url}]
