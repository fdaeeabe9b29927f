"""What the target versions have: the R4B element table (R4 patched where it differs), the
contexts of the extensions the export writes, and the core profiles.

Data more than code: the walker and the per-type mappings look names up here, and
tests/publish/test_convert.py checks the table against hl7.fhir.r4b.core#4.3.0.
"""
from __future__ import annotations

from dataclasses import dataclass

from fhirpkg.publish.convert.context import EXT, R4, R4B

# ------------------------------------------------------------------------- element definitions
# R4B element lists, generated from hl7.fhir.r4b.core#4.3.0 snapshots (tests/publish/test_convert.py checks
# them against the package): "name:Type" with "*" for 0..*, choice types as "name[x]:T1|T2",
# backbone elements and contentReferences as "@Path".  Resource base elements (id, meta,
# implicitRules, language, text, contained, extension, modifierExtension) and element id/extension
# are handled by the walker.
R4B_ELEMENTS = {
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
R4_PATCHES = {
    ("PlanDefinition", "subject[x]"): "CodeableConcept|Reference",
    ("PlanDefinition.action", "subject[x]"): "CodeableConcept|Reference",
    ("ActivityDefinition", "subject[x]"): "CodeableConcept|Reference",
}


@dataclass(frozen=True)
class Child:
    name: str  # "subject[x]" or "title"
    types: tuple[str, ...]  # "CodeableConcept", "string", "@PlanDefinition.action"
    many: bool


def _parse_elements(spec: dict[str, str], patches: dict) -> dict[str, dict[str, Child]]:
    table: dict[str, dict[str, Child]] = {}
    for path, text in spec.items():
        children: dict[str, Child] = {}
        for token in text.split():
            name, _, types = token.partition(":")
            many = types.endswith("*")
            types = patches.get((path, name), types.rstrip("*"))
            children[name] = Child(name, tuple(types.split("|")), many)
        table[path] = children
    return table


ELEMENTS = {R4B: _parse_elements(R4B_ELEMENTS, {}), R4: _parse_elements(R4B_ELEMENTS, R4_PATCHES)}

RESOURCE_BASE = ("resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension",
                  "modifierExtension")
ELEMENT_BASE = ("id", "extension", "modifierExtension")


def resolve(children: dict[str, Child], key: str) -> tuple[Child, str] | None:
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


def order(obj: dict, children: dict[str, Child], base: tuple[str, ...]) -> dict:
    """Properties in the target StructureDefinition's element order (``_x`` right after ``x``)."""
    rank = {k: i for i, k in enumerate(base)}
    names = list(children)

    def pos(key: str) -> tuple:
        plain = key[1:] if key.startswith("_") else key
        if plain in rank:
            return (rank[plain], key.startswith("_"))
        hit = resolve(children, plain)
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
CONTEXTS = {EXT + k: frozenset(v.split()) for k, v in _EXTENSION_CONTEXTS.items()}

#: Extension value types the target lacks (Extension.value[x] of R5 vs R4B; R4B added the last two to R4).
MISSING_VALUE_TYPES = {
    R4B: frozenset({"Integer64", "Availability", "ExtendedContactDetail", "MonetaryComponent",
                    "VirtualServiceDetail"}),
    R4: frozenset({"Integer64", "Availability", "ExtendedContactDetail", "MonetaryComponent",
                   "VirtualServiceDetail", "CodeableReference", "RatioRange"}),
}


def extension_allowed(url: str, host: frozenset) -> bool:
    contexts = CONTEXTS.get(url)
    return contexts is None or bool(contexts & host)


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
TARGET_CORE_PROFILES = {R4B: _R4B_CORE_PROFILES, R4: _R4B_CORE_PROFILES | {"shareableplandefinition"}}
