"""Cross-version export: FHIR R5 resources in the R4B (4.3.0) and R4 (4.0.1) shapes.

Servers that speak R4B or R4 cannot read R5 content; this module rewrites each resource element
by element, following the StructureDefinitions of hl7.fhir.r5.core#5.0.0 and hl7.fhir.r4b.core#4.3.0.
R4 (4.0.1) definitions are not on the npm registry; for the types handled here R4 equals R4B except
where noted (``_R4_PATCHES``, ``_NOT_IN_R4``), checked against the R4 element list that
hl7.fhir.xver-extensions#0.1.0 ships (``other/xver-paths-4.0.json``).

Nothing R5 says is dropped silently: what has no counterpart is listed as a :class:`Loss`.
Where the FHIR Extensions Pack (hl7.fhir.uv.extensions.r4#5.3.0-ballot-tc1, the pack R4 and R4B
content uses) defines an extension for an R5 element in the target context, the element is carried
in that extension instead (for example ``copyrightLabel`` -> ``artifact-copyrightLabel``,
``MedicationKnowledge.identifier`` -> ``artifact-identifier``).  Exports therefore depend on that
package as well as on the target core package.

Pure functions: no file I/O; inputs are never changed; JSON numbers (``FhirDecimal``) are kept as
they are.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

from fhirpkg.fhir.jsonsource import copy_json

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


@dataclass
class Conversion:
    """Converted resources and what the conversion could not keep."""

    resources: list[dict] = field(default_factory=list)  # same order as input where kept
    losses: list[Loss] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # "Type/id" of resources with no counterpart


def to_r4b(resources: list[dict]) -> Conversion:
    """R5 resources in the FHIR R4B (4.3.0) shape.

    Pass the whole package in one call: references between its resources (a RelatedArtifact naming a
    MedicationKnowledge, a citation naming a Citation) are resolved within the batch.
    """
    return _convert(resources, R4B)


def to_r4(resources: list[dict]) -> Conversion:
    """R5 resources in the FHIR R4 (4.0.1) shape: Citation and ClinicalUseDefinition folded or dropped."""
    return _convert(resources, R4)


# ------------------------------------------------------------------------------------------ batch
_EXT = "http://hl7.org/fhir/StructureDefinition/"

#: R5 resource types that R4B does not have (hl7.fhir.r5.core vs hl7.fhir.r4b.core).
_R5_ONLY_TYPES = frozenset(
    "ActorDefinition ArtifactAssessment BiologicallyDerivedProductDispense ConditionDefinition DeviceAssociation "
    "DeviceDispense DeviceUsage EncounterHistory FormularyItem GenomicStudy ImagingSelection InventoryItem "
    "InventoryReport NutritionIntake Permission RequestOrchestration Requirements SubstanceNucleicAcid "
    "SubstancePolymer SubstanceProtein SubstanceReferenceInformation SubstanceSourceMaterial TestPlan "
    "Transport".split())

#: R4B resource types that R4 does not have (R4B introduced them; xver-paths-4.0.json lacks them).
_NOT_IN_R4 = frozenset(
    "AdministrableProductDefinition Citation ClinicalUseDefinition EvidenceReport Ingredient "
    "ManufacturedItemDefinition MedicinalProductDefinition NutritionProduct PackagedProductDefinition "
    "RegulatedAuthorization SubscriptionStatus SubscriptionTopic SubstanceDefinition".split())


def _exists_in(rt: str, target: str) -> bool:
    return rt not in _R5_ONLY_TYPES and (target == R4B or rt not in _NOT_IN_R4)


def _key(res: dict) -> str:
    return f"{res.get('resourceType')}/{res.get('id')}"


def _ext_value(res: dict, name: str):
    for e in res.get("extension") or ():
        if isinstance(e, dict) and e.get("url") == _EXT + name:
            return next((v for k, v in e.items() if k.startswith("value")), None)
    return None


def _canonical_url(res: dict) -> str | None:
    """The canonical URL of a resource: ``url``, or the artifact-url extension of non-canonical types."""
    url = res.get("url")
    return url if isinstance(url, str) else _ext_value(res, "artifact-url")


@dataclass
class _Batch:
    """All resources converted together: references between them are resolved here."""

    target: str
    by_key: dict[str, dict]
    by_url: dict[str, dict]

    @classmethod
    def of(cls, resources: Iterable[dict], target: str) -> "_Batch":
        by_key, by_url = {}, {}
        for r in resources:
            if isinstance(r, dict):
                by_key[_key(r)] = r
                url = _canonical_url(r)
                if isinstance(url, str):
                    by_url[url] = r
        return cls(target, by_key, by_url)

    def canonical(self, ref: str) -> dict | None:
        return self.by_url.get(ref.split("|")[0]) if isinstance(ref, str) else None

    def reference(self, ref: str) -> dict | None:
        return self.by_key.get(ref) if isinstance(ref, str) else None

    def kept(self, res: dict) -> bool:
        return _exists_in(res.get("resourceType", ""), self.target)


@dataclass
class _Cx:
    """One resource being converted: its target version, its batch and the losses found so far."""

    batch: _Batch
    key: str
    losses: list[Loss]
    seen: set = field(default_factory=set)  # losses already recorded in this batch: no O(n) scan

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



def _convert(resources: list[dict], target: str) -> Conversion:
    batch = _Batch.of(resources, target)
    out = Conversion()
    seen: set = set()
    for res in resources:
        if not isinstance(res, dict):
            continue
        rt = res.get("resourceType", "")
        cx = _Cx(batch, _key(res), out.losses, seen)
        if not _exists_in(rt, target):
            out.dropped.append(cx.key)
            cx.lose(rt, f"{rt} does not exist in {cx.version_name}; the resource is not exported"
                    + (": citing artifacts carry its citation text in relatedArtifact.citation"
                       if rt == "Citation" else "")
                    + (": MedicationKnowledge resources that list it carry a one-line summary"
                       if rt == "ClinicalUseDefinition" else ""))
            continue
        if rt == "ResearchStudy" and _study_state(res.get("progressStatus") or []) is None:
            # R4B/R4 require the study's recruitment state; the package does not know it, and
            # writing one would state a fact nobody verified
            out.dropped.append(cx.key)
            cx.lose("ResearchStudy.progressStatus", f"{cx.version_name} ResearchStudy.status (the study's "
                    "recruitment state) is required, its value set has no 'unknown', and the package records "
                    "no state for this study: the resource is not exported rather than given a guessed state")
            continue
        out.resources.append(_resource(copy_json(res), cx))
    return out


def _resource(res: dict, cx: _Cx) -> dict:
    rt = res.get("resourceType", "")
    special = _CONVERTERS.get(rt)
    res = _metadata(res, rt, cx)
    if special is None:
        return _generic(res, rt, cx)
    res = special(res, cx)
    return _walk_resource(res, rt, cx)


# ------------------------------------------------------------------------- element definitions
# R4B element lists, generated from hl7.fhir.r4b.core#4.3.0 snapshots (tests/publish/test_convert.py checks
# them against the package): "name:Type" with "*" for 0..*, choice types as "name[x]:T1|T2",
# backbone elements and contentReferences as "@Path".  Resource base elements (id, meta,
# implicitRules, language, text, contained, extension, modifierExtension) and element id/extension
# are handled by the walker.
_R4B_ELEMENTS = {
    'Meta': 'versionId:id lastUpdated:instant source:uri profile:canonical* security:Coding* tag:Coding*',
    'Narrative': 'status:code div:xhtml',
    'PlanDefinition': 'url:uri identifier:Identifier* version:string name:string title:string subtitle:string '
    'type:CodeableConcept status:code experimental:boolean subject[x]:CodeableConcept|Reference|canonical '
    'date:dateTime publisher:string contact:ContactDetail* description:markdown useContext:UsageContext* '
    'jurisdiction:CodeableConcept* purpose:markdown usage:string copyright:markdown approvalDate:date '
    'lastReviewDate:date effectivePeriod:Period topic:CodeableConcept* author:ContactDetail* '
    'editor:ContactDetail* reviewer:ContactDetail* endorser:ContactDetail* relatedArtifact:RelatedArtifact* '
    'library:canonical* goal:@PlanDefinition.goal* action:@PlanDefinition.action*',
    'PlanDefinition.goal': 'category:CodeableConcept description:CodeableConcept priority:CodeableConcept '
    'start:CodeableConcept addresses:CodeableConcept* documentation:RelatedArtifact* '
    'target:@PlanDefinition.goal.target*',
    'PlanDefinition.goal.target': 'measure:CodeableConcept detail[x]:Quantity|Range|CodeableConcept due:Duration',
    'PlanDefinition.action': 'prefix:string title:string description:string textEquivalent:string priority:code '
    'code:CodeableConcept* reason:CodeableConcept* documentation:RelatedArtifact* goalId:id* '
    'subject[x]:CodeableConcept|Reference|canonical trigger:TriggerDefinition* '
    'condition:@PlanDefinition.action.condition* input:DataRequirement* output:DataRequirement* '
    'relatedAction:@PlanDefinition.action.relatedAction* timing[x]:dateTime|Age|Period|Duration|Range|Timing '
    'participant:@PlanDefinition.action.participant* type:CodeableConcept groupingBehavior:code '
    'selectionBehavior:code requiredBehavior:code precheckBehavior:code cardinalityBehavior:code '
    'definition[x]:canonical|uri transform:canonical dynamicValue:@PlanDefinition.action.dynamicValue* '
    'action:@PlanDefinition.action*',
    'PlanDefinition.action.condition': 'kind:code expression:Expression',
    'PlanDefinition.action.relatedAction': 'actionId:id relationship:code offset[x]:Duration|Range',
    'PlanDefinition.action.participant': 'type:code role:CodeableConcept',
    'PlanDefinition.action.dynamicValue': 'path:string expression:Expression',
    'ActivityDefinition': 'url:uri identifier:Identifier* version:string name:string title:string '
    'subtitle:string status:code experimental:boolean subject[x]:CodeableConcept|Reference|canonical '
    'date:dateTime publisher:string contact:ContactDetail* description:markdown useContext:UsageContext* '
    'jurisdiction:CodeableConcept* purpose:markdown usage:string copyright:markdown approvalDate:date '
    'lastReviewDate:date effectivePeriod:Period topic:CodeableConcept* author:ContactDetail* '
    'editor:ContactDetail* reviewer:ContactDetail* endorser:ContactDetail* relatedArtifact:RelatedArtifact* '
    'library:canonical* kind:code profile:canonical code:CodeableConcept intent:code priority:code '
    'doNotPerform:boolean timing[x]:Timing|dateTime|Age|Period|Range|Duration location:Reference '
    'participant:@ActivityDefinition.participant* product[x]:Reference|CodeableConcept quantity:Quantity '
    'dosage:Dosage* bodySite:CodeableConcept* specimenRequirement:Reference* '
    'observationRequirement:Reference* observationResultRequirement:Reference* transform:canonical '
    'dynamicValue:@ActivityDefinition.dynamicValue*',
    'ActivityDefinition.participant': 'type:code role:CodeableConcept',
    'ActivityDefinition.dynamicValue': 'path:string expression:Expression',
    'MedicationKnowledge': 'code:CodeableConcept status:code manufacturer:Reference doseForm:CodeableConcept '
    'amount:Quantity synonym:string* relatedMedicationKnowledge:@MedicationKnowledge.relatedMedicationKnowledge* '
    'associatedMedication:Reference* productType:CodeableConcept* '
    'monograph:@MedicationKnowledge.monograph* ingredient:@MedicationKnowledge.ingredient* '
    'preparationInstruction:markdown intendedRoute:CodeableConcept* cost:@MedicationKnowledge.cost* '
    'monitoringProgram:@MedicationKnowledge.monitoringProgram* '
    'administrationGuidelines:@MedicationKnowledge.administrationGuidelines* '
    'medicineClassification:@MedicationKnowledge.medicineClassification* '
    'packaging:@MedicationKnowledge.packaging drugCharacteristic:@MedicationKnowledge.drugCharacteristic* '
    'contraindication:Reference* regulatory:@MedicationKnowledge.regulatory* '
    'kinetics:@MedicationKnowledge.kinetics*',
    'MedicationKnowledge.relatedMedicationKnowledge': 'type:CodeableConcept reference:Reference*',
    'MedicationKnowledge.monograph': 'type:CodeableConcept source:Reference',
    'MedicationKnowledge.ingredient': 'item[x]:CodeableConcept|Reference isActive:boolean strength:Ratio',
    'MedicationKnowledge.cost': 'type:CodeableConcept source:string cost:Money',
    'MedicationKnowledge.monitoringProgram': 'type:CodeableConcept name:string',
    'MedicationKnowledge.administrationGuidelines': 'dosage:@MedicationKnowledge.administrationGuidelines.dosage* '
    'indication[x]:CodeableConcept|Reference '
    'patientCharacteristics:@MedicationKnowledge.administrationGuidelines.patientCharacteristics*',
    'MedicationKnowledge.administrationGuidelines.dosage': 'type:CodeableConcept dosage:Dosage*',
    'MedicationKnowledge.administrationGuidelines.patientCharacteristics': 'characteristic[x]:CodeableConcept|Quantity '
    'value:string*',
    'MedicationKnowledge.medicineClassification': 'type:CodeableConcept classification:CodeableConcept*',
    'MedicationKnowledge.packaging': 'type:CodeableConcept quantity:Quantity',
    'MedicationKnowledge.drugCharacteristic': 'type:CodeableConcept '
    'value[x]:CodeableConcept|string|Quantity|base64Binary',
    'MedicationKnowledge.regulatory': 'regulatoryAuthority:Reference '
    'substitution:@MedicationKnowledge.regulatory.substitution* schedule:@MedicationKnowledge.regulatory.schedule* '
    'maxDispense:@MedicationKnowledge.regulatory.maxDispense',
    'MedicationKnowledge.regulatory.substitution': 'type:CodeableConcept allowed:boolean',
    'MedicationKnowledge.regulatory.schedule': 'schedule:CodeableConcept',
    'MedicationKnowledge.regulatory.maxDispense': 'quantity:Quantity period:Duration',
    'MedicationKnowledge.kinetics': 'areaUnderCurve:Quantity* lethalDose50:Quantity* halfLifePeriod:Duration',
    'ClinicalUseDefinition': 'identifier:Identifier* type:code category:CodeableConcept* subject:Reference* '
    'status:CodeableConcept contraindication:@ClinicalUseDefinition.contraindication '
    'indication:@ClinicalUseDefinition.indication interaction:@ClinicalUseDefinition.interaction '
    'population:Reference* undesirableEffect:@ClinicalUseDefinition.undesirableEffect '
    'warning:@ClinicalUseDefinition.warning',
    'ClinicalUseDefinition.contraindication': 'diseaseSymptomProcedure:CodeableReference '
    'diseaseStatus:CodeableReference comorbidity:CodeableReference* indication:Reference* '
    'otherTherapy:@ClinicalUseDefinition.contraindication.otherTherapy*',
    'ClinicalUseDefinition.contraindication.otherTherapy': 'relationshipType:CodeableConcept '
    'therapy:CodeableReference',
    'ClinicalUseDefinition.indication': 'diseaseSymptomProcedure:CodeableReference diseaseStatus:CodeableReference '
    'comorbidity:CodeableReference* intendedEffect:CodeableReference duration[x]:Range|string '
    'undesirableEffect:Reference* otherTherapy:@ClinicalUseDefinition.contraindication.otherTherapy*',
    'ClinicalUseDefinition.interaction': 'interactant:@ClinicalUseDefinition.interaction.interactant* '
    'type:CodeableConcept effect:CodeableReference incidence:CodeableConcept management:CodeableConcept*',
    'ClinicalUseDefinition.interaction.interactant': 'item[x]:Reference|CodeableConcept',
    'ClinicalUseDefinition.undesirableEffect': 'symptomConditionEffect:CodeableReference '
    'classification:CodeableConcept frequencyOfOccurrence:CodeableConcept',
    'ClinicalUseDefinition.warning': 'description:markdown code:CodeableConcept',
    'Citation': 'url:uri identifier:Identifier* version:string name:string title:string status:code '
    'experimental:boolean date:dateTime publisher:string contact:ContactDetail* description:markdown '
    'useContext:UsageContext* jurisdiction:CodeableConcept* purpose:markdown copyright:markdown '
    'approvalDate:date lastReviewDate:date effectivePeriod:Period author:ContactDetail* editor:ContactDetail* '
    'reviewer:ContactDetail* endorser:ContactDetail* summary:@Citation.summary* '
    'classification:@Citation.classification* note:Annotation* currentState:CodeableConcept* '
    'statusDate:@Citation.statusDate* relatesTo:@Citation.relatesTo* citedArtifact:@Citation.citedArtifact',
    'Citation.summary': 'style:CodeableConcept text:markdown',
    'Citation.classification': 'type:CodeableConcept classifier:CodeableConcept*',
    'Citation.statusDate': 'activity:CodeableConcept actual:boolean period:Period',
    'Citation.relatesTo': 'relationshipType:CodeableConcept targetClassifier:CodeableConcept* '
    'target[x]:uri|Identifier|Reference|Attachment',
    'Citation.citedArtifact': 'identifier:Identifier* relatedIdentifier:Identifier* dateAccessed:dateTime '
    'version:@Citation.citedArtifact.version currentState:CodeableConcept* '
    'statusDate:@Citation.citedArtifact.statusDate* title:@Citation.citedArtifact.title* '
    'abstract:@Citation.citedArtifact.abstract* part:@Citation.citedArtifact.part '
    'relatesTo:@Citation.citedArtifact.relatesTo* publicationForm:@Citation.citedArtifact.publicationForm* '
    'webLocation:@Citation.citedArtifact.webLocation* classification:@Citation.citedArtifact.classification* '
    'contributorship:@Citation.citedArtifact.contributorship note:Annotation*',
    'Citation.citedArtifact.version': 'value:string baseCitation:Reference',
    'Citation.citedArtifact.statusDate': 'activity:CodeableConcept actual:boolean period:Period',
    'Citation.citedArtifact.title': 'type:CodeableConcept* language:CodeableConcept text:markdown',
    'Citation.citedArtifact.abstract': 'type:CodeableConcept language:CodeableConcept text:markdown '
    'copyright:markdown',
    'Citation.citedArtifact.part': 'type:CodeableConcept value:string baseCitation:Reference',
    'Citation.citedArtifact.relatesTo': 'relationshipType:CodeableConcept targetClassifier:CodeableConcept* '
    'target[x]:uri|Identifier|Reference|Attachment',
    'Citation.citedArtifact.publicationForm': 'publishedIn:@Citation.citedArtifact.publicationForm.publishedIn '
    'periodicRelease:@Citation.citedArtifact.publicationForm.periodicRelease articleDate:dateTime '
    'lastRevisionDate:dateTime language:CodeableConcept* accessionNumber:string pageString:string '
    'firstPage:string lastPage:string pageCount:string copyright:markdown',
    'Citation.citedArtifact.publicationForm.publishedIn': 'type:CodeableConcept identifier:Identifier* '
    'title:string publisher:Reference publisherLocation:string',
    'Citation.citedArtifact.publicationForm.periodicRelease': 'citedMedium:CodeableConcept volume:string '
    'issue:string dateOfPublication:@Citation.citedArtifact.publicationForm.periodicRelease.dateOfPublication',
    'Citation.citedArtifact.publicationForm.periodicRelease.dateOfPublication': 'date:date year:string '
    'month:string day:string season:string text:string',
    'Citation.citedArtifact.webLocation': 'type:CodeableConcept url:uri',
    'Citation.citedArtifact.classification': 'type:CodeableConcept classifier:CodeableConcept* '
    'whoClassified:@Citation.citedArtifact.classification.whoClassified',
    'Citation.citedArtifact.classification.whoClassified': 'person:Reference organization:Reference '
    'publisher:Reference classifierCopyright:string freeToShare:boolean',
    'Citation.citedArtifact.contributorship': 'complete:boolean '
    'entry:@Citation.citedArtifact.contributorship.entry* summary:@Citation.citedArtifact.contributorship.summary*',
    'Citation.citedArtifact.contributorship.entry': 'name:HumanName initials:string collectiveName:string '
    'identifier:Identifier* affiliationInfo:@Citation.citedArtifact.contributorship.entry.affiliationInfo* '
    'address:Address* telecom:ContactPoint* contributionType:CodeableConcept* role:CodeableConcept '
    'contributionInstance:@Citation.citedArtifact.contributorship.entry.contributionInstance* '
    'correspondingContact:boolean listOrder:positiveInt',
    'Citation.citedArtifact.contributorship.entry.affiliationInfo': 'affiliation:string role:string '
    'identifier:Identifier*',
    'Citation.citedArtifact.contributorship.entry.contributionInstance': 'type:CodeableConcept time:dateTime',
    'Citation.citedArtifact.contributorship.summary': 'type:CodeableConcept style:CodeableConcept '
    'source:CodeableConcept value:markdown',
    'ResearchStudy': 'identifier:Identifier* title:string protocol:Reference* partOf:Reference* status:code '
    'primaryPurposeType:CodeableConcept phase:CodeableConcept category:CodeableConcept* focus:CodeableConcept* '
    'condition:CodeableConcept* contact:ContactDetail* relatedArtifact:RelatedArtifact* keyword:CodeableConcept* '
    'location:CodeableConcept* description:markdown enrollment:Reference* period:Period sponsor:Reference '
    'principalInvestigator:Reference site:Reference* reasonStopped:CodeableConcept note:Annotation* '
    'arm:@ResearchStudy.arm* objective:@ResearchStudy.objective*',
    'ResearchStudy.arm': 'name:string type:CodeableConcept description:string',
    'ResearchStudy.objective': 'name:string type:CodeableConcept',
    'Library': 'url:uri identifier:Identifier* version:string name:string title:string subtitle:string '
    'status:code experimental:boolean type:CodeableConcept subject[x]:CodeableConcept|Reference date:dateTime '
    'publisher:string contact:ContactDetail* description:markdown useContext:UsageContext* '
    'jurisdiction:CodeableConcept* purpose:markdown usage:string copyright:markdown approvalDate:date '
    'lastReviewDate:date effectivePeriod:Period topic:CodeableConcept* author:ContactDetail* '
    'editor:ContactDetail* reviewer:ContactDetail* endorser:ContactDetail* relatedArtifact:RelatedArtifact* '
    'parameter:ParameterDefinition* dataRequirement:DataRequirement* content:Attachment*',
    'CodeSystem': 'url:uri identifier:Identifier* version:string name:string title:string status:code '
    'experimental:boolean date:dateTime publisher:string contact:ContactDetail* description:markdown '
    'useContext:UsageContext* jurisdiction:CodeableConcept* purpose:markdown copyright:markdown '
    'caseSensitive:boolean valueSet:canonical hierarchyMeaning:code compositional:boolean versionNeeded:boolean '
    'content:code supplements:canonical count:unsignedInt filter:@CodeSystem.filter* '
    'property:@CodeSystem.property* concept:@CodeSystem.concept*',
    'CodeSystem.filter': 'code:code description:string operator:code* value:string',
    'CodeSystem.property': 'code:code uri:uri description:string type:code',
    'CodeSystem.concept': 'code:code display:string definition:string designation:@CodeSystem.concept.designation* '
    'property:@CodeSystem.concept.property* concept:@CodeSystem.concept*',
    'CodeSystem.concept.designation': 'language:code use:Coding value:string',
    'CodeSystem.concept.property': 'code:code value[x]:code|Coding|string|integer|boolean|dateTime|decimal',
    'ValueSet': 'url:uri identifier:Identifier* version:string name:string title:string status:code '
    'experimental:boolean date:dateTime publisher:string contact:ContactDetail* description:markdown '
    'useContext:UsageContext* jurisdiction:CodeableConcept* immutable:boolean purpose:markdown '
    'copyright:markdown compose:@ValueSet.compose expansion:@ValueSet.expansion',
    'ValueSet.compose': 'lockedDate:date inactive:boolean include:@ValueSet.compose.include* '
    'exclude:@ValueSet.compose.include*',
    'ValueSet.compose.include': 'system:uri version:string concept:@ValueSet.compose.include.concept* '
    'filter:@ValueSet.compose.include.filter* valueSet:canonical*',
    'ValueSet.compose.include.concept': 'code:code display:string '
    'designation:@ValueSet.compose.include.concept.designation*',
    'ValueSet.compose.include.concept.designation': 'language:code use:Coding value:string',
    'ValueSet.compose.include.filter': 'property:code op:code value:string',
    'ValueSet.expansion': 'identifier:uri timestamp:dateTime total:integer offset:integer '
    'parameter:@ValueSet.expansion.parameter* contains:@ValueSet.expansion.contains*',
    'ValueSet.expansion.parameter': 'name:string value[x]:string|boolean|integer|decimal|uri|code|dateTime',
    'ValueSet.expansion.contains': 'system:uri abstract:boolean inactive:boolean version:string code:code '
    'display:string designation:@ValueSet.compose.include.concept.designation* '
    'contains:@ValueSet.expansion.contains*',
    'ImplementationGuide': 'url:uri version:string name:string title:string status:code experimental:boolean '
    'date:dateTime publisher:string contact:ContactDetail* description:markdown useContext:UsageContext* '
    'jurisdiction:CodeableConcept* copyright:markdown packageId:id license:code fhirVersion:code* '
    'dependsOn:@ImplementationGuide.dependsOn* global:@ImplementationGuide.global* '
    'definition:@ImplementationGuide.definition manifest:@ImplementationGuide.manifest',
    'ImplementationGuide.dependsOn': 'uri:canonical packageId:id version:string',
    'ImplementationGuide.global': 'type:code profile:canonical',
    'ImplementationGuide.definition': 'grouping:@ImplementationGuide.definition.grouping* '
    'resource:@ImplementationGuide.definition.resource* page:@ImplementationGuide.definition.page '
    'parameter:@ImplementationGuide.definition.parameter* template:@ImplementationGuide.definition.template*',
    'ImplementationGuide.definition.grouping': 'name:string description:string',
    'ImplementationGuide.definition.resource': 'reference:Reference fhirVersion:code* name:string '
    'description:string example[x]:boolean|canonical groupingId:id',
    'ImplementationGuide.definition.page': 'name[x]:url|Reference title:string generation:code '
    'page:@ImplementationGuide.definition.page*',
    'ImplementationGuide.definition.parameter': 'code:code value:string',
    'ImplementationGuide.definition.template': 'code:code source:string scope:string',
    'ImplementationGuide.manifest': 'rendering:url resource:@ImplementationGuide.manifest.resource* '
    'page:@ImplementationGuide.manifest.page* image:string* other:string*',
    'ImplementationGuide.manifest.resource': 'reference:Reference example[x]:boolean|canonical relativePath:url',
    'ImplementationGuide.manifest.page': 'name:string title:string anchor:string*',
    'Identifier': 'use:code type:CodeableConcept system:uri value:string period:Period assigner:Reference',
    'CodeableConcept': 'coding:Coding* text:string',
    'Coding': 'system:uri version:string code:code display:string userSelected:boolean',
    'Period': 'start:dateTime end:dateTime',
    'Reference': 'reference:string type:uri identifier:Identifier display:string',
    'ContactDetail': 'name:string telecom:ContactPoint*',
    'ContactPoint': 'system:code value:string use:code rank:positiveInt period:Period',
    'UsageContext': 'code:Coding value[x]:CodeableConcept|Quantity|Range|Reference',
    'Quantity': 'value:decimal comparator:code unit:string system:uri code:code',
    'Range': 'low:Quantity high:Quantity',
    'RelatedArtifact': 'type:code label:string display:string citation:markdown url:url document:Attachment '
    'resource:canonical',
    'Attachment': 'contentType:code language:code data:base64Binary url:url size:unsignedInt hash:base64Binary '
    'title:string creation:dateTime',
    'TriggerDefinition': 'type:code name:string timing[x]:Timing|Reference|date|dateTime data:DataRequirement* '
    'condition:Expression',
    'Timing': 'event:dateTime* repeat:@Timing.repeat code:CodeableConcept',
    'Timing.repeat': 'bounds[x]:Duration|Range|Period count:positiveInt countMax:positiveInt duration:decimal '
    'durationMax:decimal durationUnit:code frequency:positiveInt frequencyMax:positiveInt period:decimal '
    'periodMax:decimal periodUnit:code dayOfWeek:code* timeOfDay:time* when:code* offset:unsignedInt',
    'Duration': 'value:decimal comparator:code unit:string system:uri code:code',
    'DataRequirement': 'type:code profile:canonical* subject[x]:CodeableConcept|Reference mustSupport:string* '
    'codeFilter:@DataRequirement.codeFilter* dateFilter:@DataRequirement.dateFilter* limit:positiveInt '
    'sort:@DataRequirement.sort*',
    'DataRequirement.codeFilter': 'path:string searchParam:string valueSet:canonical code:Coding*',
    'DataRequirement.dateFilter': 'path:string searchParam:string value[x]:dateTime|Period|Duration',
    'DataRequirement.sort': 'path:string direction:code',
    'Expression': 'description:string name:id language:code expression:string reference:uri',
    'Age': 'value:decimal comparator:code unit:string system:uri code:code',
    'Dosage': 'sequence:integer text:string additionalInstruction:CodeableConcept* patientInstruction:string '
    'timing:Timing asNeeded[x]:boolean|CodeableConcept site:CodeableConcept route:CodeableConcept '
    'method:CodeableConcept doseAndRate:@Dosage.doseAndRate* maxDosePerPeriod:Ratio '
    'maxDosePerAdministration:Quantity maxDosePerLifetime:Quantity',
    'Dosage.doseAndRate': 'type:CodeableConcept dose[x]:Range|Quantity rate[x]:Ratio|Range|Quantity',
    'Ratio': 'numerator:Quantity denominator:Quantity',
    'Money': 'value:decimal currency:code',
    'CodeableReference': 'concept:CodeableConcept reference:Reference',
    'HumanName': 'use:code text:string family:string given:string* prefix:string* suffix:string* period:Period',
    'Address': 'use:code type:code text:string line:string* city:string district:string state:string '
    'postalCode:string country:string period:Period',
    'Annotation': 'author[x]:Reference|string time:dateTime text:markdown',
    'ParameterDefinition': 'name:code use:code min:integer max:string documentation:string type:code '
    'profile:canonical',
}

#: Where R4 (4.0.1) differs from R4B for the types above (xver-paths-4.0.json): element -> R4 types.
_R4_PATCHES = {
    ("PlanDefinition", "subject[x]"): "CodeableConcept|Reference",
    ("PlanDefinition.action", "subject[x]"): "CodeableConcept|Reference",
    ("ActivityDefinition", "subject[x]"): "CodeableConcept|Reference",
}


@dataclass(frozen=True)
class _Child:
    name: str  # "subject[x]" or "title"
    types: tuple[str, ...]  # "CodeableConcept", "string", "@PlanDefinition.action"
    many: bool


def _parse_elements(spec: dict[str, str], patches: dict) -> dict[str, dict[str, _Child]]:
    table: dict[str, dict[str, _Child]] = {}
    for path, text in spec.items():
        children: dict[str, _Child] = {}
        for token in text.split():
            name, _, types = token.partition(":")
            many = types.endswith("*")
            types = patches.get((path, name), types.rstrip("*"))
            children[name] = _Child(name, tuple(types.split("|")), many)
        table[path] = children
    return table


_ELEMENTS = {R4B: _parse_elements(_R4B_ELEMENTS, {}), R4: _parse_elements(_R4B_ELEMENTS, _R4_PATCHES)}

_RESOURCE_BASE = ("resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension",
                  "modifierExtension")
_ELEMENT_BASE = ("id", "extension", "modifierExtension")


def _resolve(children: dict[str, _Child], key: str) -> tuple[_Child, str] | None:
    """The element a JSON property names, and its type (``subjectCanonical`` -> subject[x], canonical)."""
    child = children.get(key)
    if child is not None and not child.name.endswith("[x]"):
        return child, child.types[0]
    for c in children.values():
        if c.name.endswith("[x]") and key.startswith(c.name[:-3]):
            suffix = key[len(c.name) - 3:]
            for t in c.types:
                if suffix == t[0].upper() + t[1:]:
                    return c, t
    return None


def _order(obj: dict, children: dict[str, _Child], base: tuple[str, ...]) -> dict:
    """Properties in the target StructureDefinition's element order (``_x`` right after ``x``)."""
    rank = {k: i for i, k in enumerate(base)}
    names = list(children)

    def pos(key: str) -> tuple:
        plain = key[1:] if key.startswith("_") else key
        if plain in rank:
            return (rank[plain], key.startswith("_"))
        hit = _resolve(children, plain)
        index = names.index(hit[0].name) if hit else len(names)
        return (len(base) + index, key.startswith("_"))

    return {k: obj[k] for k in sorted(obj, key=pos)}


# -------------------------------------------------------------------------------- extensions
#: Contexts of the extensions the content uses or the conversion adds, in the target versions:
#: R4B core (timing-daysOfCycle, data-absent-reason) and hl7.fhir.uv.extensions.r4#5.3.0-ballot-tc1
#: (the others), limited to the types this module converts; structuredefinition-normative-version (R4B core)
#: because R5 core terminology carries it on CodeSystem and ValueSet.  An extension not listed is kept unchecked.
_EXTENSION_CONTEXTS = {
    "cqf-knowledgeCapability": "DomainResource",
    "cqf-knowledgeRepresentationLevel": "DomainResource",
    "timing-daysOfCycle": "PlanDefinition.action RequestGroup.action",
    "cqf-resourceType": "canonical",
    "artifact-isOwned": "ActivityDefinition.library DomainResource.extension Measure.library PlanDefinition.library "
                        "RelatedArtifact",
    "data-absent-reason": "Element",
    "structuredefinition-normative-version": "StructureDefinition",
    "artifact-url": "MedicationKnowledge",
    "artifact-version": "MedicationKnowledge",
    "artifact-identifier": "ImplementationGuide MedicationKnowledge",
    "artifact-status": "MedicationKnowledge",
    "artifact-experimental": "MedicationKnowledge",
    "artifact-title": "MedicationKnowledge",
    "artifact-description": "MedicationKnowledge",
    "artifact-usage": "CodeSystem ImplementationGuide MedicationKnowledge Questionnaire ValueSet",
    "artifact-date": "MedicationKnowledge",
    "artifact-publisher": "MedicationKnowledge",
    "artifact-relatedArtifact": "CodeSystem ImplementationGuide MedicationKnowledge Questionnaire ValueSet",
    "artifact-versionAlgorithm": "ActivityDefinition CodeSystem ImplementationGuide Library Measure "
                                 "MedicationKnowledge PlanDefinition Questionnaire ValueSet",
    "artifact-copyrightLabel": "ActivityDefinition CodeSystem ImplementationGuide Library Measure "
                               "MedicationKnowledge PlanDefinition Questionnaire ValueSet",
    "artifact-approvalDate": "CodeSystem ImplementationGuide MedicationKnowledge ValueSet",
    "artifact-lastReviewDate": "CodeSystem ImplementationGuide MedicationKnowledge ValueSet",
    "artifact-effectivePeriod": "CodeSystem ImplementationGuide MedicationKnowledge ValueSet",
    "artifact-topic": "CodeSystem ImplementationGuide MedicationKnowledge Questionnaire ValueSet",
    "artifact-author": "CodeSystem ImplementationGuide MedicationKnowledge Questionnaire ValueSet",
    "artifact-editor": "CodeSystem ImplementationGuide MedicationKnowledge Questionnaire ValueSet",
    "artifact-reviewer": "CodeSystem ImplementationGuide MedicationKnowledge Questionnaire ValueSet",
    "artifact-endorser": "CodeSystem ImplementationGuide MedicationKnowledge Questionnaire ValueSet",
    "artifact-name": "MedicationKnowledge",
    "artifact-purpose": "ImplementationGuide MedicationKnowledge",
    "artifact-copyright": "MedicationKnowledge",
    "artifact-jurisdiction": "Resource",
    "artifact-useContext": "MedicationKnowledge",
    "artifact-contact": "MedicationKnowledge",
}
_CONTEXTS = {_EXT + k: frozenset(v.split()) for k, v in _EXTENSION_CONTEXTS.items()}

#: Extension value types the target lacks (Extension.value[x] of R5 vs R4B; R4B added the last two to R4).
_MISSING_VALUE_TYPES = {
    R4B: frozenset({"Integer64", "Availability", "ExtendedContactDetail", "MonetaryComponent",
                    "VirtualServiceDetail"}),
    R4: frozenset({"Integer64", "Availability", "ExtendedContactDetail", "MonetaryComponent",
                   "VirtualServiceDetail", "CodeableReference", "RatioRange"}),
}


def _extension_allowed(url: str, host: frozenset) -> bool:
    contexts = _CONTEXTS.get(url)
    return contexts is None or bool(contexts & host)


def _extension(ext, host: frozenset, path: str, cx: _Cx):
    """One extension, converted; None when the target has no place for it."""
    if not isinstance(ext, dict):
        return ext
    url = ext.get("url", "")
    if not _extension_allowed(url, host):
        name = url.rsplit("/", 1)[-1]
        cx.lose(f"{path}.extension('{name}')",
                f"extension {name} is not defined for this element in {cx.version_name} "
                f"(contexts: {', '.join(sorted(_CONTEXTS[url]))})")
        return None
    out = {}
    for k, v in ext.items():
        if k.startswith("value") and k[5:6].isupper():
            t = k[5:]
            if t in _MISSING_VALUE_TYPES[cx.target]:
                cx.lose(f"{path}.extension('{url.rsplit('/', 1)[-1]}').value[x]",
                        f"{cx.version_name} extensions cannot hold a {t} value")
                return None
            if t in _ELEMENTS[cx.target]:
                v = _datatype(v, t, f"{path}.extension.value", cx)
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


def _extensions(value, host: frozenset, path: str, cx: _Cx) -> list:
    return [e for e in (_extension(x, host, path, cx) for x in (value or [])) if e is not None]


# ------------------------------------------------------------------------------------ walker
def _walk_resource(res: dict, rt: str, cx: _Cx) -> dict:
    children = _ELEMENTS[cx.target][rt]
    host = frozenset({rt, "DomainResource", "Resource"})
    out = {}
    for k, v in res.items():
        if k in ("resourceType", "id", "implicitRules", "language", "text"):
            out[k] = v
        elif k == "meta":
            out[k] = _meta(v, rt, cx)
        elif k == "contained":
            out[k] = [_resource(c, cx) for c in v if isinstance(c, dict) and cx.batch.kept(c)]
            for c in v:
                if isinstance(c, dict) and not cx.batch.kept(c):
                    cx.lose(f"{rt}.contained", f"contained {c.get('resourceType')} does not exist in "
                            f"{cx.version_name}")
        elif k in ("extension", "modifierExtension"):
            exts = _extensions(v, host, rt, cx)
            if exts:
                out[k] = exts
        else:
            _member(out, k, v, children, rt, cx)
    return _order(out, children, _RESOURCE_BASE)


def _walk(obj: dict, table_key: str, path: str, cx: _Cx, host: frozenset) -> dict | None:
    """One complex value (backbone element or data type) in the target shape."""
    children = _ELEMENTS[cx.target][table_key]
    out = {}
    for k, v in obj.items():
        if k == "id":
            out[k] = v
        elif k in ("extension", "modifierExtension"):
            exts = _extensions(v, host, path, cx)
            if exts:
                out[k] = exts
        else:
            _member(out, k, v, children, path, cx)
    if not any(k != "id" for k in out):
        return None
    return _order(out, children, _ELEMENT_BASE)


def _member(out: dict, key: str, value, children: dict[str, _Child], path: str, cx: _Cx) -> None:
    primitive_ext = key.startswith("_")
    name = key[1:] if primitive_ext else key
    hit = _resolve(children, name)
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
    if typ.startswith("@") or typ in _ELEMENTS[cx.target]:
        items = value if isinstance(value, list) else [value]
        done = [x for x in (_complex(i, typ, path_in, cx) for i in items) if x is not None]
        if not done:
            return
        value = done if isinstance(value, list) else done[0]
    out[key] = value


def _primitive_ext(value, host: frozenset, path: str, cx: _Cx):
    if not isinstance(value, dict):
        return value
    out = dict(value)
    if "extension" in out:
        out["extension"] = _extensions(out["extension"], host, path, cx)
        if not out["extension"]:
            del out["extension"]
    return out or None


def _cardinality(value, child: _Child, path: str, cx: _Cx):
    if child.many and not isinstance(value, list):
        return [value]
    if not child.many and isinstance(value, list):
        if len(value) > 1:
            cx.lose(path, f"{cx.version_name} allows one value here; the first is kept")
        return value[0] if value else None
    return value


def _complex(value, typ: str, path: str, cx: _Cx):
    if not isinstance(value, dict):
        return value
    if typ.startswith("@"):
        key = typ[1:]
        return _walk(value, key, path, cx, frozenset({key, path, "Element", "BackboneElement"}))
    return _datatype(value, typ, path, cx)


def _datatype(value, typ: str, path: str, cx: _Cx):
    if not isinstance(value, dict):
        return value
    fix = _DATATYPE_FIXES.get(typ)
    if fix is not None:
        value = fix(value, path, cx)
        if value is None:
            return None
    return _walk(value, typ, path, cx, frozenset({typ, path, "Element"}))


def _meta(meta, rt: str, cx: _Cx):
    if not isinstance(meta, dict):
        return meta
    meta = dict(meta)
    profiles = meta.get("profile")
    if isinstance(profiles, list):
        kept = []
        for p in profiles:
            name = p.split("|")[0].rsplit("/", 1)[-1] if isinstance(p, str) else ""
            if isinstance(p, str) and p.startswith(_EXT) and name not in _TARGET_CORE_PROFILES[cx.target]:
                cx.lose(f"{rt}.meta.profile", f"core profile {name} does not exist in {cx.version_name}")
            else:
                kept.append(p)
        meta["profile"] = kept
        if not kept:
            del meta["profile"]
    return _walk(meta, "Meta", f"{rt}.meta", cx, frozenset({"Meta", f"{rt}.meta", "Element"}))


#: Core resource profiles in hl7.fhir.r4b.core#4.3.0: R5's shareableplandefinition is not among them.
_R4B_CORE_PROFILES = frozenset(
    "actualgroup bmi bodyheight bodytemp bodyweight bp catalog cdshooksguidanceresponse cdshooksrequestgroup "
    "cdshooksserviceplandefinition cholesterol clinicaldocument computableplandefinition cqf-questionnaire "
    "cqllibrary devicemetricobservation diagnosticreport-genetics example-composition example-section-library "
    "familymemberhistory-genetic groupdefinition hdlcholesterol headcircum heartrate hlaresult ldlcholesterol "
    "lipidprofile observation-genetics oxygensat provenance-relevant-history resprate servicerequest-genetics "
    "shareableactivitydefinition shareablecodesystem shareablelibrary shareablemeasure shareablevalueset "
    "triglyceride vitalsigns vitalspanel".split())
#: R4 (4.0.1) had shareableplandefinition (R4B dropped it); the rest of R4's list is taken as R4B's.
_TARGET_CORE_PROFILES = {R4B: _R4B_CORE_PROFILES, R4: _R4B_CORE_PROFILES | {"shareableplandefinition"}}


# --------------------------------------------------------------------------- data type fixes
#: Code systems R5 publishes under http://hl7.org/fhir/ whose R4B home is terminology.hl7.org
#: (same codes; found by comparing the two core packages).
_MOVED_SYSTEMS = frozenset(
    "CodeSystem/medication-admin-status CodeSystem/medicationdispense-status "
    "CodeSystem/medicationdispense-status-reason CodeSystem/medicationknowledge-status action-code "
    "action-reason-code artifact-contribution-instance-type artifact-contribution-type certainty-rating "
    "certainty-type citation-artifact-classifier citation-classification-type citation-status-type "
    "citation-summary-style cited-artifact-abstract-type cited-artifact-classification-type "
    "cited-artifact-part-type cited-artifact-status-type cited-medium contributor-role contributor-summary-source "
    "contributor-summary-style contributor-summary-type evidence-classifier-code evidence-report-section "
    "evidence-report-type focus-characteristic-code measure-group-example measure-stratifier-example "
    "measure-supplemental-data-example measurereport-stratifier-value-example message-transport published-in-type "
    "research-study-objective-type research-study-phase research-study-prim-purp-type "
    "research-study-reason-stopped restful-security-service statistic-model-code title-type".split())

#: R5 artifact-url-classifier -> R4B article-url-type (http://terminology.hl7.org/CodeSystem/article-url-type).
_URL_CLASSIFIER = {
    "abstract": "abstract", "full-text": "full-text", "supplement": "supplement", "webpage": "webpage",
    "file-directory": "supplementary-file-directory", "compressed-file": "compressed-file",
    "doi-based": "doi-based", "pdf": "pdf", "json": "json", "xml": "xml", "not-specified": "not-specified",
}


def _coding(c: dict, path: str, cx: _Cx) -> dict:
    system = c.get("system")
    if isinstance(system, str) and system.startswith("http://hl7.org/fhir/"):
        tail = system[len("http://hl7.org/fhir/"):]
        if tail in _MOVED_SYSTEMS:
            c = dict(c, system="http://terminology.hl7.org/CodeSystem/" + tail.rsplit("/", 1)[-1])
    return c


_R4B_RELATED_ARTIFACT_TYPES = frozenset(
    "documentation justification citation predecessor successor derived-from depends-on composed-of".split())


def _related_artifact(ra: dict, path: str, cx: _Cx) -> dict | None:
    """R5 RelatedArtifact -> R4B/R4: classifier, resourceReference, publicationStatus/Date have no place."""
    ra = dict(ra)
    rtype = ra.get("type")
    if rtype not in _R4B_RELATED_ARTIFACT_TYPES:
        cx.lose(f"{path}", f"relatedArtifact type '{rtype}' does not exist in {cx.version_name} "
                f"(related-artifact-type has {', '.join(sorted(_R4B_RELATED_ARTIFACT_TYPES))}); entry dropped"
                + (f": {ra.get('display')}" if ra.get("display") else ""))
        return None
    for name in ("classifier", "publicationStatus", "publicationDate"):
        if name in ra:
            del ra[name]
            cx.lose(f"{path}.{name}", f"RelatedArtifact.{name} is new in R5")
    target = cx.batch.canonical(ra.get("resource"))
    if target is not None and not cx.batch.kept(target):
        return _fold_dropped(ra, target, path, cx)
    if target is not None and _canonical_in_target(target, cx) is None:
        cx.lose(f"{path}.resource", f"{_key(target)} has no canonical URL in {cx.version_name}; the canonical "
                "is kept but does not resolve there")
    ref = ra.pop("resourceReference", None)
    if isinstance(ref, dict):
        ra = _reference_to_canonical(ra, ref, path, cx)
        if ra is None:
            return None
    document = ra.get("document")
    if isinstance(document, dict) and isinstance(document.get("url"), str) and "url" not in ra:
        ra["url"] = document["url"]
        if set(document) <= {"url"}:
            del ra["document"]
    return ra


def _reference_to_canonical(ra: dict, ref: dict, path: str, cx: _Cx) -> dict | None:
    """RelatedArtifact.resourceReference (R5) as a canonical, when the target has one in the export."""
    target = cx.batch.reference(ref.get("reference"))
    if target is not None and not cx.batch.kept(target):
        return _fold_dropped(ra, target, path, cx)
    url = None
    if target is not None and "resource" not in ra:
        url = _canonical_in_target(target, cx)
        if url:
            version = target.get("version") or _ext_value(target, "artifact-version")
            ra["resource"] = f"{url}|{version}" if version and ra.get("type") == "composed-of" else url
    if url is None and "resource" not in ra:
        where = ref.get("reference") or ref.get("display") or "a resource"
        if ra.get("type") in ("composed-of", "depends-on"):
            cx.lose(f"{path}.resourceReference", f"{cx.version_name} RelatedArtifact has no Reference and "
                    f"{where} has no canonical URL there; entry dropped")
            return None
        cx.lose(f"{path}.resourceReference", f"{cx.version_name} RelatedArtifact has no Reference and "
                f"{where} has no canonical URL there; kept as display text")
        ra.setdefault("display", ref.get("display") or where)
    return ra


def _canonical_in_target(res: dict, cx: _Cx) -> str | None:
    """The URL a resource keeps in the export: ``url`` on canonical types, artifact-url where R4B allows it."""
    rt = res.get("resourceType")
    if rt in _ELEMENTS[cx.target] and "url" in _ELEMENTS[cx.target][rt] and isinstance(res.get("url"), str):
        return res["url"]
    url = _ext_value(res, "artifact-url")
    if isinstance(url, str) and _extension_allowed(_EXT + "artifact-url", frozenset({rt})):
        return url
    return None


def _fold_dropped(ra: dict, target: dict, path: str, cx: _Cx) -> dict | None:
    """A RelatedArtifact pointing at a resource the export drops: citation text, or a listed loss."""
    rt = target.get("resourceType")
    ra.pop("resourceReference", None)
    if ra.get("type") in ("composed-of", "depends-on"):
        cx.lose(f"{path}", f"{ra['type']} {_key(target)}: {rt} does not exist in {cx.version_name}; entry dropped")
        return None
    if rt == "Citation":
        ra.pop("resource", None)
        text = format_citation(target)
        if text:
            ra["citation"] = text
        url = citation_url(target)
        if url and "url" not in ra:
            ra["url"] = url
        return ra
    ra.pop("resource", None)
    cx.lose(f"{path}.resource", f"{_key(target)}: {rt} does not exist in {cx.version_name}; kept as display text")
    ra.setdefault("display", _summary(target) or _key(target))
    return ra


def _dosage(d: dict, path: str, cx: _Cx) -> dict:
    """R5 Dosage.asNeeded + asNeededFor -> asNeeded[x]; maxDosePerPeriod 0..* -> 0..1."""
    d = dict(d)
    as_needed = d.pop("asNeeded", None)
    reasons = d.pop("asNeededFor", None) or []
    if reasons:
        d["asNeededCodeableConcept"] = reasons[0]
        if len(reasons) > 1:
            cx.lose(f"{path}.asNeededFor", f"{cx.version_name} Dosage.asNeeded[x] holds one reason; the first is kept")
    elif as_needed is not None:
        d["asNeededBoolean"] = as_needed
    return d


_R5_ONLY_EVENT_TIMING = frozenset({"IMD"})


def _timing(t: dict, path: str, cx: _Cx) -> dict:
    repeat = t.get("repeat")
    if isinstance(repeat, dict) and any(w in _R5_ONLY_EVENT_TIMING for w in repeat.get("when") or ()):
        when = [w for w in repeat["when"] if w not in _R5_ONLY_EVENT_TIMING]
        cx.lose(f"{path}.repeat.when", "event timing IMD (immediate) is new in R5")
        repeat = dict(repeat, when=when) if when else {k: v for k, v in repeat.items() if k != "when"}
        t = dict(t, repeat=repeat)
    return t


def _quantity(q: dict, path: str, cx: _Cx) -> dict:
    if q.get("comparator") == "ad":
        cx.lose(f"{path}.comparator", "comparator 'ad' (sufficient to achieve this total quantity) is new in R5")
        q = {k: v for k, v in q.items() if k != "comparator"}
    return q


def _attachment(a: dict, path: str, cx: _Cx) -> dict:
    a = dict(a)
    for name in ("height", "width", "frames", "duration", "pages"):
        if name in a:
            del a[name]
            cx.lose(f"{path}.{name}", f"Attachment.{name} is new in R5")
    size = a.get("size")
    if isinstance(size, str):
        if size.isdigit() and int(size) < 2**31:
            a["size"] = int(size)  # R5 integer64 is a JSON string; R4B unsignedInt is a number
        else:
            del a["size"]
            cx.lose(f"{path}.size", f"size {size} does not fit {cx.version_name} unsignedInt")
    return a


def _data_requirement(dr: dict, path: str, cx: _Cx) -> dict:
    if "valueFilter" in dr:
        cx.lose(f"{path}.valueFilter", "DataRequirement.valueFilter is new in R5")
        dr = {k: v for k, v in dr.items() if k != "valueFilter"}
    if dr.get("type") == "RequestOrchestration":
        dr = dict(dr, type="RequestGroup")
    return dr


def _trigger(td: dict, path: str, cx: _Cx) -> dict:
    for name in ("code", "subscriptionTopic"):
        if name in td:
            cx.lose(f"{path}.{name}", f"TriggerDefinition.{name} is new in R5")
    return {k: v for k, v in td.items() if k not in ("code", "subscriptionTopic")}


def _expression(e: dict, path: str, cx: _Cx) -> dict:
    if "language" not in e:
        cx.lose(f"{path}.language", f"{cx.version_name} Expression.language is required; R5 gave none")
    return e


_DATATYPE_FIXES: dict[str, Callable] = {
    "Coding": _coding, "RelatedArtifact": _related_artifact, "Dosage": _dosage, "Timing": _timing,
    "Quantity": _quantity, "Age": _quantity, "Duration": _quantity, "Attachment": _attachment,
    "DataRequirement": _data_requirement, "TriggerDefinition": _trigger, "Expression": _expression,
}


# ---------------------------------------------------------------------- canonical metadata
#: R5 metadata elements with an Extensions Pack counterpart: element -> (extension, value type).
_METADATA_EXTENSIONS = {
    "versionAlgorithmString": ("artifact-versionAlgorithm", "String"),
    "versionAlgorithmCoding": ("artifact-versionAlgorithm", "Coding"),
    "copyrightLabel": ("artifact-copyrightLabel", "String"),
}
#: Elements R5 added to CodeSystem, ValueSet (and ImplementationGuide lacks in R4B) with their extensions.
_ARTIFACT_EXTENSIONS = {
    "approvalDate": ("artifact-approvalDate", "Date"),
    "lastReviewDate": ("artifact-lastReviewDate", "Date"),
    "effectivePeriod": ("artifact-effectivePeriod", "Period"),
    "topic": ("artifact-topic", "CodeableConcept"),
    "author": ("artifact-author", "ContactDetail"),
    "editor": ("artifact-editor", "ContactDetail"),
    "reviewer": ("artifact-reviewer", "ContactDetail"),
    "endorser": ("artifact-endorser", "ContactDetail"),
    "relatedArtifact": ("artifact-relatedArtifact", "RelatedArtifact"),
}


def _metadata(res: dict, rt: str, cx: _Cx) -> dict:
    """R5-only metadata elements as Extensions Pack extensions where the target allows them, else a loss."""
    moves = dict(_METADATA_EXTENSIONS)
    children = _ELEMENTS[cx.target].get(rt)
    if rt in ("CodeSystem", "ValueSet", "ImplementationGuide"):
        moves.update(_ARTIFACT_EXTENSIONS)
    if rt == "ImplementationGuide":
        moves["identifier"] = ("artifact-identifier", "Identifier")
    added = []
    for element, (ext, vtype) in moves.items():
        if element not in res or (children and _resolve(children, element)):
            continue
        value = res.pop(element)
        res.pop("_" + element, None)
        r5_name = "versionAlgorithm[x]" if element.startswith("versionAlgorithm") else element
        if _extension_allowed(_EXT + ext, frozenset({rt})) and rt in _ELEMENTS[cx.target]:
            for v in value if isinstance(value, list) else [value]:
                added.append({"url": _EXT + ext, "value" + vtype: v})
        else:
            cx.lose(f"{rt}.{r5_name}", f"{rt}.{r5_name} is new in R5 and {ext} is not defined for {rt} "
                    f"in {cx.version_name}")
    if added:
        res["extension"] = list(res.get("extension") or []) + added
    return res


# ------------------------------------------------------------------------- per-type mappings
def _id_ok(value) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", value) is not None


#: R5 action-participant-type -> R4B (patient | practitioner | related-person | device).
_PARTICIPANT_TYPES = {"patient": "patient", "practitioner": "practitioner", "relatedperson": "related-person",
                      "device": "device"}


def _participants(parts: list, path: str, cx: _Cx) -> list:
    out = []
    for p in parts or []:
        p = dict(p)
        for name in ("actorId", "typeCanonical", "typeReference", "function"):
            if name in p:
                del p[name]
                cx.lose(f"{path}.participant.{name}", f"participant.{name} is new in R5")
        ptype = p.get("type")
        if ptype not in _PARTICIPANT_TYPES:
            cx.lose(f"{path}.participant.type", f"participant type '{ptype}' has no {cx.version_name} code "
                    f"(patient | practitioner | related-person | device) and the type is required there; "
                    f"participant dropped")
            continue
        p["type"] = _PARTICIPANT_TYPES[ptype]
        out.append(p)
    return out


def _plan_definition(pd: dict, cx: _Cx) -> dict:
    for name in ("actor", "asNeededBoolean", "asNeededCodeableConcept"):
        if name in pd:
            del pd[name]
            cx.lose(f"PlanDefinition.{'asNeeded[x]' if name.startswith('asNeeded') else name}",
                    f"PlanDefinition.{name} is new in R5")
    _subject_canonical(pd, "PlanDefinition", cx)
    for goal in pd.get("goal") or []:
        for target in goal.get("target") or []:
            for k in [k for k in target if k.startswith("detail")]:
                if k not in ("detailQuantity", "detailRange", "detailCodeableConcept"):
                    del target[k]
                    cx.lose("PlanDefinition.goal.target.detail[x]",
                            f"{k} is new in R5 ({cx.version_name} allows Quantity, Range, CodeableConcept)")
    if "action" in pd:
        pd["action"] = [_pd_action(a, "PlanDefinition.action", cx) for a in pd["action"]]
    return pd


def _pd_action(a: dict, path: str, cx: _Cx) -> dict:
    a = dict(a)
    link = a.pop("linkId", None)
    if link is not None:
        if "id" not in a and _id_ok(link):
            a["id"] = link  # R4B relatedAction.actionId points at the action's element id
        elif a.get("id") != link:
            cx.lose(f"{path}.linkId", f"action.linkId is new in R5 ('{link}' differs from the action id)")
    if isinstance(a.get("code"), dict):
        a["code"] = [a["code"]]  # 0..1 in R5, 0..* in R4B
    for name in ("input", "output"):
        if name in a:
            reqs = []
            for item in a.pop(name):
                if not isinstance(item, dict):
                    continue
                for extra in ("title", "relatedData"):
                    if extra in item:
                        cx.lose(f"{path}.{name}.{extra}", f"action.{name}.{extra} is new in R5 "
                                f"({cx.version_name} {name} is a plain DataRequirement)")
                if "requirement" in item:
                    reqs.append(item["requirement"])
                else:
                    cx.lose(f"{path}.{name}", f"action.{name} without a requirement has no {cx.version_name} form")
            if reqs:
                a[name] = reqs
    if "relatedAction" in a:
        rel = []
        for r in a["relatedAction"]:
            r = dict(r)
            if "targetId" in r:
                r["actionId"] = r.pop("targetId")
            if "endRelationship" in r:
                del r["endRelationship"]
                cx.lose(f"{path}.relatedAction.endRelationship", "relatedAction.endRelationship is new in R5")
            rel.append(r)
        a["relatedAction"] = rel
    if "location" in a:
        del a["location"]
        cx.lose(f"{path}.location", "action.location is new in R5")
    if "participant" in a:
        a["participant"] = _participants(a["participant"], path, cx)
        if not a["participant"]:
            del a["participant"]
    _subject_canonical(a, path, cx)
    if "action" in a:
        a["action"] = [_pd_action(x, path + ".action", cx) for x in a["action"]]
    return a


def _subject_canonical(obj: dict, path: str, cx: _Cx) -> None:
    if cx.target == R4 and "subjectCanonical" in obj:
        del obj["subjectCanonical"]
        cx.lose(f"{path}.subject[x]", "R4 subject[x] has no canonical choice (R4B added it)")


#: R5 request-resource-types that R4B lacks: the R4B name where one exists.
_KIND_R4B = {"RequestOrchestration": "RequestGroup"}


def _activity_definition(ad: dict, cx: _Cx) -> dict:
    for name in ("asNeededBoolean", "asNeededCodeableConcept"):
        if name in ad:
            del ad[name]
            cx.lose("ActivityDefinition.asNeeded[x]", "ActivityDefinition.asNeeded[x] is new in R5")
    kind = ad.get("kind")
    if kind in _KIND_R4B:
        ad["kind"] = _KIND_R4B[kind]
    elif kind in ("CoverageEligibilityRequest", "Transport"):
        del ad["kind"]
        cx.lose("ActivityDefinition.kind", f"kind '{kind}' is not a {cx.version_name} request resource type")
    loc = ad.get("location")
    if isinstance(loc, dict):
        if "concept" in loc:
            cx.lose("ActivityDefinition.location.concept", f"{cx.version_name} location is a Reference only")
        if "reference" in loc:
            ad["location"] = loc["reference"]
        else:
            del ad["location"]
    if "participant" in ad:
        ad["participant"] = _participants(ad["participant"], "ActivityDefinition", cx)
        if not ad["participant"]:
            del ad["participant"]
    for name in ("specimenRequirement", "observationRequirement", "observationResultRequirement"):
        if name in ad:  # canonical in R5, Reference in R4B: an absolute reference to the same URL
            ad[name] = [{"reference": c} if isinstance(c, str) else c for c in ad[name]]
    product = ad.get("productReference")
    if isinstance(product, dict):
        rtype = str(product.get("reference", "")).split("/")[0]
        allowed = {"Medication", "Substance"} | ({"Ingredient"} if cx.target == R4B else set())
        if rtype == "SubstanceDefinition" or (cx.target == R4 and rtype == "Ingredient"):
            del ad["productReference"]
            cx.lose("ActivityDefinition.product[x]", f"product may reference {', '.join(sorted(allowed))} "
                    f"in {cx.version_name}, not {rtype}")
    _subject_canonical(ad, "ActivityDefinition", cx)
    return ad


#: v3 RoleClassIngredientEntity codes (R5 ingredient.type) that say the ingredient is active or not.
_ACTIVE_INGREDIENT = {"ACTI": True, "ACTIB": True, "ACTIM": True, "ACTIR": True, "IACT": False}


def _medication_knowledge(mk: dict, cx: _Cx) -> dict:
    """R5 MedicationKnowledge -> R4B/R4: definitional.* back to the top level, indicationGuideline ->
    administrationGuidelines, name -> synonym, identifier -> artifact-identifier."""
    ids = mk.pop("identifier", None)
    if ids:
        mk["extension"] = list(mk.get("extension") or []) + [
            {"url": _EXT + "artifact-identifier", "valueIdentifier": i} for i in ids]
    if "name" in mk:
        mk["synonym"] = list(mk.get("synonym") or []) + mk.pop("name")
        if "_name" in mk:
            mk["_synonym"] = mk.pop("_name")
    for name, why in (("author", "R4B manufacturer is the maker of the product, not the author of the knowledge"),
                      ("intendedJurisdiction", "MedicationKnowledge.intendedJurisdiction is new in R5"),
                      ("storageGuideline", "MedicationKnowledge.storageGuideline is new in R5"),
                      ("packaging", "R5 packaging (cost, packagedProduct) does not match R4B packaging "
                                    "(type, quantity)")):
        if name in mk:
            del mk[name]
            cx.lose(f"MedicationKnowledge.{name}", why)
    definitional = mk.pop("definitional", None)
    if isinstance(definitional, dict):
        _definitional(mk, definitional, cx)
    if "indicationGuideline" in mk:
        mk["administrationGuidelines"] = _administration_guidelines(mk.pop("indicationGuideline"), cx)
        if not mk["administrationGuidelines"]:
            del mk["administrationGuidelines"]
    issues = mk.pop("clinicalUseIssue", None)
    if issues:
        _clinical_use_issues(mk, issues, cx)
    for c in mk.get("medicineClassification") or []:
        for k in [k for k in c if k.startswith("source")]:
            del c[k]
            cx.lose("MedicationKnowledge.medicineClassification.source[x]",
                    "medicineClassification.source[x] is new in R5")
    for cost in mk.get("cost") or []:
        if "effectiveDate" in cost:
            del cost["effectiveDate"]
            cx.lose("MedicationKnowledge.cost.effectiveDate", "cost.effectiveDate is new in R5")
        if "costMoney" in cost:
            cost["cost"] = cost.pop("costMoney")
        elif "costCodeableConcept" in cost:
            del cost["costCodeableConcept"]
            cx.lose("MedicationKnowledge.cost.cost[x]", f"{cx.version_name} cost is Money only")
    for reg in mk.get("regulatory") or []:
        if "schedule" in reg:
            reg["schedule"] = [{"schedule": s} for s in reg["schedule"]]
    return mk


def _definitional(mk: dict, d: dict, cx: _Cx) -> None:
    for name in ("doseForm", "intendedRoute", "drugCharacteristic"):
        if name in d:
            mk[name] = d[name]
    if "definition" in d:
        cx.lose("MedicationKnowledge.definitional.definition", "definitional.definition is new in R5")
    for c in mk.get("drugCharacteristic") or []:
        if "valueAttachment" in c:
            del c["valueAttachment"]
            cx.lose("MedicationKnowledge.definitional.drugCharacteristic.value[x]",
                    f"{cx.version_name} drugCharacteristic cannot hold an Attachment")
    ingredients = []
    for ing in d.get("ingredient") or []:
        out = {k: v for k, v in ing.items() if k in ("id", "extension", "modifierExtension")}
        item = ing.get("item") or {}
        if "concept" in item:
            out["itemCodeableConcept"] = item["concept"]
            if "reference" in item:
                cx.lose("MedicationKnowledge.definitional.ingredient.item",
                        "item[x] holds a concept or a reference in R4B; the concept is kept")
        elif "reference" in item:
            out["itemReference"] = item["reference"]
        codes = [c.get("code") for c in ((ing.get("type") or {}).get("coding") or [])]
        active = next((_ACTIVE_INGREDIENT[c] for c in codes if c in _ACTIVE_INGREDIENT), None)
        if active is not None:
            out["isActive"] = active
        elif "type" in ing:
            cx.lose("MedicationKnowledge.definitional.ingredient.type",
                    "ingredient type other than active/inactive has no R4B element (isActive)")
        if "strengthRatio" in ing:
            out["strength"] = ing["strengthRatio"]
        elif any(k.startswith("strength") for k in ing):
            cx.lose("MedicationKnowledge.definitional.ingredient.strength[x]", "R4B strength is a Ratio only")
        if "itemCodeableConcept" in out or "itemReference" in out:
            ingredients.append(out)
    if ingredients:
        mk["ingredient"] = ingredients


def _administration_guidelines(guidelines: list, cx: _Cx) -> list:
    path = "MedicationKnowledge.indicationGuideline"
    out = []
    for g in guidelines:
        indications = g.get("indication") or []
        concepts = [i["concept"] for i in indications if isinstance(i, dict) and "concept" in i]
        if any(isinstance(i, dict) and "reference" in i for i in indications):
            cx.lose(f"{path}.indication", "R4B administrationGuidelines.indication[x] cannot reference a "
                    "ClinicalUseDefinition")
        if len(concepts) > 1:
            cx.lose(f"{path}.indication", "R4B has one indication per administrationGuidelines; the first is kept")
        for dg in g.get("dosingGuideline") or [{}]:
            entry = {}
            if concepts:
                entry["indicationCodeableConcept"] = concepts[0]
            if dg.get("dosage"):
                entry["dosage"] = dg["dosage"]
            for name in ("treatmentIntent", "administrationTreatment"):
                if name in dg:
                    cx.lose(f"{path}.dosingGuideline.{name}", f"dosingGuideline.{name} is new in R5"
                            + (f": '{_text(dg[name])}'" if _text(dg[name]) else ""))
            chars = [_patient_characteristic(pc, cx) for pc in dg.get("patientCharacteristic") or []]
            if chars:
                entry["patientCharacteristics"] = chars
            if entry:
                out.append(entry)
    return out


def _patient_characteristic(pc: dict, cx: _Cx) -> dict:
    out = {"characteristicCodeableConcept": pc.get("type")}
    value = next(((k, v) for k, v in pc.items() if k.startswith("value")), None)
    if value is not None:
        k, v = value
        text = _text(v) if k == "valueCodeableConcept" else _quantity_text(v) if k == "valueQuantity" else \
            _range_text(v)
        if text:
            out["value"] = [text]
        cx.lose("MedicationKnowledge.indicationGuideline.dosingGuideline.patientCharacteristic.value[x]",
                f"R4B patientCharacteristics.value is text: {k} carried as '{text}'")
    return out


def _clinical_use_issues(mk: dict, issues: list, cx: _Cx) -> None:
    """MedicationKnowledge.clinicalUseIssue has no R4B/R4 element: one-line summaries in artifact-relatedArtifact."""
    added = []
    for ref in issues:
        target = cx.batch.reference(ref.get("reference")) if isinstance(ref, dict) else None
        summary = _summary(target) if target else None
        display = summary or (ref.get("display") if isinstance(ref, dict) else None)
        if display:
            added.append({"url": _EXT + "artifact-relatedArtifact",
                          "valueRelatedArtifact": {"type": "documentation", "display": display}})
    cx.lose("MedicationKnowledge.clinicalUseIssue",
            f"{cx.version_name} MedicationKnowledge cannot reference ClinicalUseDefinition (contraindication is "
            f"Reference(DetectedIssue)); each issue is summarized as artifact-relatedArtifact display text"
            + ("; the ClinicalUseDefinition resources are exported and name their subjects" if cx.target == R4B
               else ""))
    if added:
        mk["extension"] = list(mk.get("extension") or []) + added


def _summary(res: dict | None) -> str | None:
    """One line saying what a ClinicalUseDefinition (or other resource) states."""
    if not res:
        return None
    rt = res.get("resourceType")
    if rt == "ClinicalUseDefinition":
        kind = str(res.get("type", "")).replace("-", " ").capitalize()
        parts = []
        effect = (res.get("undesirableEffect") or {}).get("symptomConditionEffect") or {}
        parts.append(_text(effect.get("concept")) if isinstance(effect, dict) else None)
        parts.append((res.get("warning") or {}).get("description"))
        for section in ("indication", "contraindication"):
            dsp = (res.get(section) or {}).get("diseaseSymptomProcedure") or {}
            parts.append(_text(dsp.get("concept")) if isinstance(dsp, dict) else None)
        freq = _text((res.get("undesirableEffect") or {}).get("frequencyOfOccurrence"))
        body = "; ".join(p for p in parts if p)
        if freq:
            body += f" (frequency: {freq})"
        return f"{kind}: {body}" if body else kind or None
    return res.get("title") or _ext_value(res, "artifact-title") or res.get("name")


def _text(cc) -> str | None:
    if not isinstance(cc, dict):
        return None
    if cc.get("text"):
        return cc["text"]
    for c in cc.get("coding") or []:
        if c.get("display") or c.get("code"):
            return c.get("display") or c.get("code")
    return None


def _quantity_text(q) -> str:
    if not isinstance(q, dict):
        return ""
    return " ".join(str(x) for x in (q.get("comparator"), q.get("value"), q.get("unit") or q.get("code"))
                    if x is not None)


def _range_text(r) -> str:
    if not isinstance(r, dict):
        return ""
    return f"{_quantity_text(r.get('low')) or '?'} to {_quantity_text(r.get('high')) or '?'}"


def _url_as_identifier(res: dict, url: str) -> None:
    """Keep a canonical URL the target cannot hold as an identifier whose system says "this is a URI"."""
    ids = list(res.get("identifier") or [])
    if not any(i.get("value") == url for i in ids if isinstance(i, dict)):
        res["identifier"] = ids + [{"system": "urn:ietf:rfc:3986", "value": url}]


def _clinical_use_definition(cud: dict, cx: _Cx) -> dict:
    """R5 ClinicalUseDefinition -> R4B: otherTherapy.treatment -> therapy; artifact-url kept as an identifier."""
    url = _ext_value(cud, "artifact-url")
    if isinstance(url, str) and not _extension_allowed(_EXT + "artifact-url",
                                                       frozenset({"ClinicalUseDefinition"})):
        _url_as_identifier(cud, url)
    for section in ("contraindication", "indication"):
        s = cud.get(section)
        if isinstance(s, dict):
            if "applicability" in s:
                del s["applicability"]
                cx.lose(f"ClinicalUseDefinition.{section}.applicability", f"{section}.applicability is new in R5")
            for t in s.get("otherTherapy") or []:
                if "treatment" in t:
                    t["therapy"] = t.pop("treatment")
    if "library" in cud:
        del cud["library"]
        cx.lose("ClinicalUseDefinition.library", "ClinicalUseDefinition.library is new in R5")
    subjects = []
    for s in cud.get("subject") or []:
        rtype = str(s.get("reference", "")).split("/")[0] if isinstance(s, dict) else ""
        if rtype in ("NutritionProduct", "BiologicallyDerivedProduct"):
            cx.lose("ClinicalUseDefinition.subject", f"R4B subject cannot reference {rtype}")
        else:
            subjects.append(s)
    if "subject" in cud:
        cud["subject"] = subjects
    return cud


#: R5 ResearchStudy.progressStatus.state (research-study-status) -> R4B ResearchStudy.status.
_STUDY_STATUS = {
    "active": "active", "administratively-completed": "administratively-completed", "approved": "approved",
    "closed-to-accrual": "closed-to-accrual",
    "closed-to-accrual-and-intervention": "closed-to-accrual-and-intervention", "completed": "completed",
    "disapproved": "disapproved", "in-review": "in-review",
    "temporarily-closed-to-accrual": "temporarily-closed-to-accrual",
    "temporarily-closed-to-accrual-and-intervention": "temporarily-closed-to-accrual-and-intervention",
    "withdrawn": "withdrawn", "recruiting": "active", "enrolling-by-invitation": "active",
    "not-yet-recruiting": "approved", "active-but-not-recruiting": "closed-to-accrual",
    "terminated": "administratively-completed",
}
#: R5 research-study-party-role codes that name R4B's sponsor / principalInvestigator.
_SPONSOR_ROLES = {"sponsor", "lead-sponsor", "sponsor-investigator"}
_PI_ROLES = {"primary-investigator", "sponsor-investigator"}


def _research_study(rs: dict, cx: _Cx) -> dict:
    """R5 ResearchStudy -> R4B/R4: study state from progressStatus, associatedParty -> sponsor/PI, etc."""
    p = "ResearchStudy"
    if isinstance(rs.get("url"), str):
        _url_as_identifier(rs, rs["url"])
    for name in ("url", "version", "name", "label", "date"):
        if name in rs:
            del rs[name]
            rs.pop("_" + name, None)
            cx.lose(f"{p}.{name}", f"ResearchStudy.{name} is new in R5 ({cx.version_name} ResearchStudy is not a "
                    "canonical resource and no extension carries it there)"
                    + ("; the URL is kept as an identifier (urn:ietf:rfc:3986), but canonical references to it "
                       "do not resolve" if name == "url" else ""))
    pub_status = rs.pop("status", None)
    rs.pop("_status", None)
    states = rs.pop("progressStatus", None) or []
    state = _study_state(states)
    rs["status"] = state  # studies without a known state are not exported (see _convert)
    if pub_status is not None:
        cx.lose(f"{p}.status", f"publication status '{pub_status}' has no {cx.version_name} element "
                "(there status is the study's state)")
    if states and state and len(states) > 1:
        cx.lose(f"{p}.progressStatus", "only the current state is kept; the progress history has no R4B element")
    summary = rs.pop("descriptionSummary", None)
    if summary:
        desc = rs.get("description") or ""
        if summary.strip() not in desc:
            rs["description"] = f"{summary}\n\n{desc}" if desc else summary
    focus = []
    for f in rs.get("focus") or []:
        if "concept" in f:
            focus.append(f["concept"])
        if "reference" in f:
            cx.lose(f"{p}.focus", f"{cx.version_name} focus is a CodeableConcept; the reference "
                    f"{f['reference'].get('reference') or f['reference'].get('display')} is dropped")
    if "focus" in rs:
        rs["focus"] = focus
        if not focus:
            del rs["focus"]
    if "region" in rs:
        rs["location"] = rs.pop("region")
    for name in ("classifier", "studyDesign"):
        if name in rs:
            rs["category"] = list(rs.get("category") or []) + rs.pop(name)
    if "whyStopped" in rs:
        rs["reasonStopped"] = rs.pop("whyStopped")
    _associated_parties(rs, rs.pop("associatedParty", None) or [], cx)
    recruitment = rs.pop("recruitment", None)
    if isinstance(recruitment, dict):
        elig = recruitment.get("eligibility")
        if isinstance(elig, dict) and str(elig.get("reference", "")).startswith("Group/"):
            rs["enrollment"] = [elig]
        elif elig:
            cx.lose(f"{p}.recruitment.eligibility", "R4B enrollment references a Group only")
        for name in ("targetNumber", "actualNumber", "actualGroup"):
            if name in recruitment:
                cx.lose(f"{p}.recruitment.{name}", f"recruitment.{name} is new in R5")
    arms = []
    for g in rs.pop("comparisonGroup", None) or []:
        arm = {k: g[k] for k in ("id", "extension", "modifierExtension", "name", "type", "description") if k in g}
        for name in ("linkId", "intendedExposure", "observedGroup"):
            if name in g:
                cx.lose(f"{p}.comparisonGroup.{name}", f"comparisonGroup.{name} is new in R5")
        if "name" in arm:
            arms.append(arm)
    if arms:
        rs["arm"] = arms
    for o in rs.get("objective") or []:
        if "description" in o:
            del o["description"]
            cx.lose(f"{p}.objective.description", "objective.description is new in R5")
    sites = []
    for s in rs.get("site") or []:
        rtype = (s.get("type") or str(s.get("reference", "")).split("/")[0]) if isinstance(s, dict) else ""
        if rtype in ("ResearchStudy", "Organization"):
            cx.lose(f"{p}.site", f"{cx.version_name} site references a Location only, not {rtype}")
        else:
            sites.append(s)
    if "site" in rs:
        rs["site"] = sites
        if not sites:
            del rs["site"]
    for name in ("outcomeMeasure", "result"):
        if name in rs:
            del rs[name]
            cx.lose(f"{p}.{name}", f"ResearchStudy.{name} is new in R5")
    return rs


def _study_state(states: list) -> str | None:
    """The R4B status from R5 progressStatus: the last actual state that maps."""
    for s in reversed([s for s in states if isinstance(s, dict) and s.get("actual", True) is not False]):
        for c in (s.get("state") or {}).get("coding") or []:
            if c.get("code") in _STUDY_STATUS:
                return _STUDY_STATUS[c["code"]]
    return None


def _associated_parties(rs: dict, parties: list, cx: _Cx) -> None:
    for party in parties:
        roles = {c.get("code") for c in ((party.get("role") or {}).get("coding") or [])}
        ref = party.get("party")
        rtype = str((ref or {}).get("reference", "")).split("/")[0] if isinstance(ref, dict) else ""
        if roles & _SPONSOR_ROLES and rtype in ("Organization", "") and ref and "sponsor" not in rs:
            rs["sponsor"] = ref
        elif roles & _PI_ROLES and rtype in ("Practitioner", "PractitionerRole", "") and ref \
                and "principalInvestigator" not in rs:
            rs["principalInvestigator"] = ref
        else:
            cx.lose("ResearchStudy.associatedParty", f"associated party "
                    f"'{party.get('name') or (ref or {}).get('display') or ', '.join(sorted(r for r in roles if r))}' "
                    f"has no {cx.version_name} element (only one sponsor Organization and one principal "
                    f"investigator are)")


def _citation(c: dict, cx: _Cx) -> dict:
    """R5 Citation -> R4B: publicationForm volume/issue/date into periodicRelease, webLocation.classifier -> type."""
    p = "Citation.citedArtifact"
    if "relatedArtifact" in c:
        del c["relatedArtifact"]
        cx.lose("Citation.relatedArtifact", "Citation.relatedArtifact is new in R5")
    art = c.get("citedArtifact")
    if not isinstance(art, dict):
        return c
    if "relatesTo" in art:
        art["relatesTo"] = [r for r in (_relates_to(x, cx) for x in art["relatesTo"]) if r]
        if not art["relatesTo"]:
            del art["relatesTo"]
    for form in art.get("publicationForm") or []:
        release = {k: form.pop(k) for k in ("citedMedium", "volume", "issue") if k in form}
        date = {}
        if "publicationDateText" in form:
            date["text"] = form.pop("publicationDateText")
            if re.fullmatch(r"\d{4}", date["text"]):
                date["year"] = date["text"]
        if "publicationDateSeason" in form:
            date["season"] = form.pop("publicationDateSeason")
        if date:
            release["dateOfPublication"] = date
        if release:
            form["periodicRelease"] = release
    for loc in art.get("webLocation") or []:
        classifiers = loc.pop("classifier", None) or []
        for cc in classifiers[:1]:
            codes = [x for x in cc.get("coding") or []
                     if x.get("system") == "http://hl7.org/fhir/artifact-url-classifier"]
            mapped = [dict(x, system="http://terminology.hl7.org/CodeSystem/article-url-type",
                           code=_URL_CLASSIFIER[x.get("code")]) for x in codes if x.get("code") in _URL_CLASSIFIER]
            others = [x for x in cc.get("coding") or [] if x not in codes]
            if mapped or others or cc.get("text"):
                loc["type"] = {k: v for k, v in (("coding", mapped + others), ("text", cc.get("text"))) if v}
            if len(mapped) < len(codes):
                cx.lose(f"{p}.webLocation.classifier", "artifact-url-classifier code without an R4B "
                        "article-url-type counterpart")
        if len(classifiers) > 1:
            cx.lose(f"{p}.webLocation.classifier", "R4B webLocation.type holds one classifier; the first is kept")
    for cl in art.get("classification") or []:
        if "artifactAssessment" in cl:
            del cl["artifactAssessment"]
            cx.lose(f"{p}.classification.artifactAssessment", "classification.artifactAssessment is new in R5")
    contributorship = art.get("contributorship")
    if isinstance(contributorship, dict) and contributorship.get("entry"):
        contributorship["entry"] = [_contributor(e, cx) for e in contributorship["entry"]]
    return c


def _relates_to(r: dict, cx: _Cx) -> dict | None:
    p = "Citation.citedArtifact.relatesTo"
    rtype = r.get("type")
    if rtype not in _ARTIFACT_RELATIONSHIP_TYPES:
        cx.lose(p, f"relationship '{rtype}' has no R4B artifact-relationship-type code; entry dropped")
        return None
    out = {k: r[k] for k in ("id", "extension", "modifierExtension") if k in r}
    out["relationshipType"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/artifact-relationship-type",
                                           "code": rtype}]}
    if "classifier" in r:
        out["targetClassifier"] = r["classifier"]
    for src, dst in (("resource", "targetUri"), ("resourceReference", "targetReference"),
                     ("document", "targetAttachment")):
        if src in r and not any(k.startswith("target") and k != "targetClassifier" for k in out):
            out[dst] = r[src]
    if "citation" in r and not any(k.startswith("target") and k != "targetClassifier" for k in out):
        out["targetAttachment"] = {"title": r["citation"]}
    for name in ("label", "display", "citation"):
        if name in r:
            cx.lose(f"{p}.{name}", f"relatesTo.{name} is new in R5")
    return out if any(k.startswith("target") and k != "targetClassifier" for k in out) else None


_ARTIFACT_RELATIONSHIP_TYPES = frozenset(
    "replaces amends appends transforms replaced-with amended-with appended-with transformed-with derived-from "
    "transformed-into composed-of part-of supports supported-with depends-on similar-to cites cited-by retracts "
    "retracted-by comments-on comment-in corrects correction-in".split())


def _contributor(e: dict, cx: _Cx) -> dict:
    p = "Citation.citedArtifact.contributorship.entry"
    e = dict(e)
    who = e.pop("contributor", None)
    if isinstance(who, dict):
        if who.get("display"):
            e["name"] = {"text": who["display"]}
        cx.lose(f"{p}.contributor", "R4B names the contributor inline; the reference is dropped"
                + (" (its display is kept as name.text)" if who.get("display") else ""))
    if "forenameInitials" in e:
        e["initials"] = e.pop("forenameInitials")
    if "rankingOrder" in e:
        e["listOrder"] = e.pop("rankingOrder")
    if "affiliation" in e:
        e["affiliationInfo"] = [{"affiliation": a.get("display")} for a in e.pop("affiliation") if a.get("display")]
        cx.lose(f"{p}.affiliation", "R4B affiliationInfo is text; affiliation references are reduced to their display")
        if not e["affiliationInfo"]:
            del e["affiliationInfo"]
    return e


def _library(lib: dict, cx: _Cx) -> dict:
    """Library differs only in metadata and data types, which the shared steps handle."""
    return lib


def _code_system(cs: dict, cx: _Cx) -> dict:
    for f in cs.get("filter") or []:
        ops = f.get("operator") or []
        kept = [o for o in ops if o not in ("child-of", "descendent-leaf")]
        if len(kept) < len(ops):
            cx.lose("CodeSystem.filter.operator", "filter operators child-of and descendent-leaf are new in R5")
            f["operator"] = kept or ["="]
    return cs


def _value_set(vs: dict, cx: _Cx) -> dict:
    compose = vs.get("compose")
    if isinstance(compose, dict):
        for part in ("include", "exclude"):
            kept = []
            for inc in compose.get(part) or []:
                if any(f.get("op") in ("child-of", "descendent-leaf") for f in inc.get("filter") or []):
                    cx.lose(f"ValueSet.compose.{part}.filter.op", "filter operators child-of and descendent-leaf "
                            f"are new in R5; the whole {part} is dropped rather than changed in meaning")
                else:
                    kept.append(inc)
            if part in compose:
                compose[part] = kept
                if not kept:
                    del compose[part]
    return vs


def _implementation_guide(ig: dict, cx: _Cx) -> dict:
    """R5 ImplementationGuide -> R4B/R4: isExample/profile -> example[x], page.name -> nameUrl; the guide now
    describes the exported package, so fhirVersion is the target's."""
    p = "ImplementationGuide"
    if ig.get("fhirVersion") not in (None, [cx.target]):
        cx.lose(f"{p}.fhirVersion", f"fhirVersion {', '.join(map(str, ig['fhirVersion']))} replaced by {cx.target}")
        ig["fhirVersion"] = [cx.target]
    for dep in ig.get("dependsOn") or []:
        if "reason" in dep:
            del dep["reason"]
            cx.lose(f"{p}.dependsOn.reason", "dependsOn.reason is new in R5")
    definition = ig.get("definition") or {}
    for group in ("definition", "manifest"):
        holder = ig.get(group) or {}
        for r in holder.get("resource") or []:
            example = r.pop("isExample", None)
            profiles = r.pop("profile", None) or []
            if profiles:
                r["exampleCanonical"] = profiles[0]
                if len(profiles) > 1:
                    cx.lose(f"{p}.{group}.resource.profile", "R4B example[x] names one profile")
            elif example is not None:
                r["exampleBoolean"] = example
    if isinstance(definition.get("page"), dict):
        definition["page"] = _ig_page(definition["page"], cx)
    params = []
    for prm in definition.get("parameter") or []:
        code = prm.get("code")
        if isinstance(code, dict):
            prm = dict(prm, code=code.get("code"))
            if code.get("system") not in (None, "http://hl7.org/fhir/guide-parameter-code"):
                cx.lose(f"{p}.definition.parameter.code", f"R4B parameter codes come from guide-parameter-code; "
                        f"{code.get('system')}#{code.get('code')} kept as a bare code")
        params.append(prm)
    if params:
        definition["parameter"] = params
    return ig


def _ig_page(page: dict, cx: _Cx) -> dict:
    page = dict(page)
    for k in [k for k in page if k.startswith("source")]:
        del page[k]
        cx.lose("ImplementationGuide.definition.page.source[x]", "page.source[x] is new in R5")
    if "name" in page:
        page["nameUrl"] = page.pop("name")
    if "page" in page:
        page["page"] = [_ig_page(x, cx) for x in page["page"]]
    return page


_CONVERTERS: dict[str, Callable[[dict, _Cx], dict]] = {
    "PlanDefinition": _plan_definition,
    "ActivityDefinition": _activity_definition,
    "MedicationKnowledge": _medication_knowledge,
    "ClinicalUseDefinition": _clinical_use_definition,
    "Citation": _citation,
    "ResearchStudy": _research_study,
    "Library": _library,
    "CodeSystem": _code_system,
    "ValueSet": _value_set,
    "ImplementationGuide": _implementation_guide,
}


def _generic(res: dict, rt: str, cx: _Cx) -> dict:
    """Types without a mapping here: codings updated, everything else kept as R5 wrote it."""
    cx.lose(rt, f"{rt} is not specifically converted to {cx.version_name}: elements are kept as R5 names them; "
            "validate the result")

    def fix(value):
        if isinstance(value, dict):
            value = {k: fix(v) for k, v in value.items()}
            if isinstance(value.get("system"), str) and "code" in value:
                value = _coding(value, rt, cx)
            return value
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    return fix(res)


# -------------------------------------------------------------------------------- citations
def format_citation(citation: dict) -> str | None:
    """Citation text from a Citation resource: authors, title, journal, year;volume(issue):pages, DOI, PMID.

    Follows the Vancouver style the content's summaries use (six authors, then "et al.").
    """
    art = citation.get("citedArtifact") or {}
    authors = _authors(art)
    title = _cited_title(art) or citation.get("title")
    form = (art.get("publicationForm") or [{}])[0] if art.get("publicationForm") else {}
    journal = (form.get("publishedIn") or {}).get("title")
    release = form.get("periodicRelease") or {}
    year = form.get("publicationDateText") or ((release.get("dateOfPublication") or {}).get("text")) or \
        ((release.get("dateOfPublication") or {}).get("year")) or (str(form.get("articleDate") or "")[:4] or None)
    volume = form.get("volume") or release.get("volume")
    issue = form.get("issue") or release.get("issue")
    pages = form.get("pageString") or "-".join(x for x in (form.get("firstPage"), form.get("lastPage")) if x)
    doi, pmid = _cited_ids(art)
    if not (authors or journal or doi or pmid):
        summaries = citation.get("summary") or []
        if summaries and summaries[0].get("text"):
            return summaries[0]["text"]
    parts = []
    if authors:
        parts.append(_sentence(authors))
    if title:
        parts.append(_sentence(title))
    source = ""
    if journal:
        source = journal.rstrip(".") + "."
    if year or volume or pages:
        detail = str(year or "")
        if volume:
            detail += f";{volume}" + (f"({issue})" if issue else "")
        if pages:
            detail += f":{pages}"
        source = (source + " " if source else "") + detail.lstrip(";") + "."
    if source:
        parts.append(source)
    if doi:
        parts.append(f"doi:{doi}.")
    if pmid:
        parts.append(f"PMID: {pmid}.")
    return " ".join(parts) or citation.get("title")


def citation_url(citation: dict) -> str | None:
    """Where to read the cited work: the DOI-based web location, else https://doi.org/<doi>, else the first."""
    art = citation.get("citedArtifact") or {}
    locations = [w for w in art.get("webLocation") or [] if isinstance(w, dict) and w.get("url")]
    for w in locations:
        codes = {c.get("code") for cc in w.get("classifier") or [] for c in cc.get("coding") or []}
        codes |= {c.get("code") for c in (w.get("type") or {}).get("coding") or []}
        if "doi-based" in codes:
            return w["url"]
    doi, pmid = _cited_ids(art)
    if doi:
        return f"https://doi.org/{doi}"
    if locations:
        return locations[0]["url"]
    if pmid:
        return f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"
    return None


def _authors(art: dict) -> str | None:
    c = art.get("contributorship") or {}
    for s in c.get("summary") or []:
        codes = {x.get("code") for x in (s.get("type") or {}).get("coding") or []}
        if "author-string" in codes or not codes:
            names = [n.strip() for n in s.get("value", "").split(",") if n.strip()]
            if len(names) > 6:
                return ", ".join(names[:6]) + ", et al"
            return s.get("value")
    names = [(e.get("contributor") or {}).get("display") or (e.get("name") or {}).get("text")
             for e in c.get("entry") or []]
    names = [n for n in names if n]
    if names:
        return ", ".join(names[:6]) + (", et al" if len(names) > 6 else "")
    return None


def _cited_title(art: dict) -> str | None:
    titles = art.get("title") or []
    for t in titles:
        codes = {c.get("code") for cc in t.get("type") or [] for c in cc.get("coding") or []}
        if "primary" in codes:
            return t.get("text")
    return titles[0].get("text") if titles else None


def _cited_ids(art: dict) -> tuple[str | None, str | None]:
    doi = pmid = None
    for i in art.get("identifier") or []:
        system, value = str(i.get("system", "")), i.get("value")
        if "doi" in system and not doi:
            doi = value
        elif "pubmed" in system and not pmid:
            pmid = value
    return doi, pmid


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."
