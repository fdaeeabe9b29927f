"""The code systems and value sets terminology checks name, and the words of an answer
(valid, invalid, not-checked, unknown-value-set)."""
from __future__ import annotations


# --- well-known code systems ---------------------------------------------------------

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
BCP47 = "urn:ietf:bcp:47"
BCP13 = "urn:ietf:bcp:13"
ISO4217 = "urn:iso:std:iso:4217"
ISO3166 = "urn:iso:std:iso:3166"
ISO3166_2 = "urn:iso:std:iso:3166:-2"
URI_SYSTEM = "urn:ietf:rfc:3986"
M49 = "http://unstats.un.org/unsd/methods/m49/m49.htm"
COLOR_RGB = "http://hl7.org/fhir/color-rgb"
IANA_TZ = "https://www.iana.org/time-zones"
MIMETYPES_VS = "http://hl7.org/fhir/ValueSet/mimetypes"

#: Code systems only a terminology server knows (the HL7 validator's server-side list,
#: ValueSetUtilities.isServerSide and ValueSetValidator.SERVER_SIDE_LIST), with their names.
SERVER_SIDE = {
    SNOMED: "SNOMED CT",
    LOINC: "LOINC",
    RXNORM: "RxNorm",
    "http://hl7.org/fhir/sid/cvx": "CVX",
    "http://hl7.org/fhir/sid/ndc": "NDC",
    "http://www.ama-assn.org/go/cpt": "CPT",
    "http://hl7.org/fhir/ndfrt": "NDF-RT",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10",
    "http://hl7.org/fhir/sid/icd-9-cm": "ICD-9-CM",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://fdasis.nlm.nih.gov": "FDA UNII",
    M49: "UN M.49",
    "http://varnomen.hgvs.org": "HGVS",
    "https://www.usps.com/": "USPS",
    "http://www.whocc.no/atc": "ATC",
    "http://www.genenames.org": "HGNC",
    "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl": "NCI Thesaurus",
    "http://ncimeta.nci.nih.gov": "NCI Metathesaurus",
    "http://dicom.nema.org/resources/ontology/DCM": "DICOM",
    "urn:iso:std:iso:11073:10101": "ISO/IEEE 11073-10101",
    ISO4217: "ISO 4217",
    ISO3166: "ISO 3166",
    ISO3166_2: "ISO 3166-2",
    BCP47: "BCP-47",
    BCP13: "BCP-13",
    UCUM: "UCUM",
}

#: Systems for which the HL7 validator, run without a terminology server, warns
#: "Unable to validate code ... running without terminology services"
#: (InstanceValidator.NO_TX_SYSTEM_EXEMPT).
NO_TX_EXEMPT = frozenset({LOINC, UCUM, "http://hl7.org/fhir/sid/icd-9-cm", SNOMED, RXNORM})

#: hl7.org/fhir/sid code systems the HL7 validator accepts without a definition (SIDUtilities).
KNOWN_SID_SYSTEMS = frozenset({
    "http://hl7.org/fhir/sid/ndc", "http://hl7.org/fhir/sid/icpc-2", "http://hl7.org/fhir/sid/icpc-1",
    "http://hl7.org/fhir/sid/icpc-1-nl", "http://hl7.org/fhir/sid/icd-9", "http://hl7.org/fhir/sid/icd-10",
    "http://hl7.org/fhir/sid/cvx", "http://hl7.org/fhir/sid/srt", "http://hl7.org/fhir/sid/icd-10-vn",
    "http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10-am", "http://hl7.org/fhir/sid/icd-9-cm",
    "http://hl7.org/fhir/sid/icf-nl", "http://hl7.org/fhir/sid/ca-hc-npn", "http://hl7.org/fhir/sid/ca-hc-din",
    "http://hl7.org/fhir/sid/dsm5", "http://hl7.org/fhir/sid/ex-icd-10-procedures",
})

#: The language(s) displays are checked in, as the HL7 validator words it.
DISPLAY_LANGUAGES = "en-US"

#: Where Debian/Ubuntu/Fedora/Homebrew install the iso-codes data (ISO 639, 3166, 4217, 15924).
ISO_CODES_DIRS = ("/usr/share/iso-codes/json", "/usr/local/share/iso-codes/json",
                  "/opt/homebrew/share/iso-codes/json")


VALID, INVALID, NOT_CHECKED, UNKNOWN_VALUE_SET = "valid", "invalid", "not-checked", "unknown-value-set"
#: Answers kept per process before the memo starts again (a few MB at most).
ANSWER_MEMO_SIZE = 100_000
