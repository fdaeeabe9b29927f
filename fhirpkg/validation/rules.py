"""Every rule id fhirpkg's validation layers report, in one table (as the HL7 validator keeps its message ids).

``RULES`` maps a rule id to its layer, default severity, a one-line description and the HL7
validator message ids (org.hl7.fhir.utilities ``I18nConstants``) it corresponds to.  Invariants
are reported under their own constraint key (``ele-1``, ``dom-6``, ...) and are not listed one by
one: ``is_known`` accepts them.  ``docs/rule-coverage.md`` is generated from this table by
``scripts/rule_coverage.py``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    layer: str
    severity: str  # the default; some rules vary it with context (noted in the description)
    description: str
    hl7: tuple[str, ...] = ()


def _r(layer: str, severity: str, description: str, *hl7: str) -> Rule:
    return Rule(layer, severity, description, hl7)


RULES: dict[str, Rule] = {
    # ---- input and JSON (jsonsource.py, json_rules.py, inputs.py)
    "input": _r("json", "fatal", "the input cannot be read (missing file, unreadable folder)"),
    "json-empty-file": _r("json", "fatal", "the file is empty"),
    "json-bom": _r("json", "warning", "a UTF-8 byte order mark (tolerated)"),
    "json-encoding": _r("json", "fatal", "UTF-16/32 or invalid UTF-8"),
    "json-binary": _r("json", "fatal", "NUL characters: binary, not JSON"),
    "json-syntax": _r("json", "fatal", "JSON syntax error, with line and column",
                      "Error_parsing_JSON_", "JSON_COMMA_EXTRA", "JSON_COMMA_MISSING", "JSON_COMMENTS_NOT_ALLOWED",
                      "JSON_PROPERTY_NO_QUOTES", "JSON_PROPERTY_VALUE_NO_QUOTES"),
    "json-not-json": _r("json", "fatal", "the content is not JSON at all"),
    "json-not-resource": _r("json", "fatal", "the JSON is not an object (array, string, null ...)"),
    "json-depth": _r("json", "fatal", "nesting deeper than the limit"),
    "json-duplicate-key": _r("json", "error", "a property appears twice in one object", "DUPLICATE_JSON_PROPERTY_KEY"),
    "json-number": _r("json", "error", "NaN/Infinity, out-of-range exponents, lone surrogates"),
    "json-null": _r("json", "error", "a null value", "ELEMENT_CANNOT_BE_NULL"),
    "json-empty-array": _r("json", "error", "an empty array", "ARRAY_CANNOT_BE_EMPTY"),
    "json-empty-object": _r("json", "error", "an empty object", "Object_must_have_some_content"),
    "json-nested-array": _r("json", "error", "an array inside an array", "JSON_PROPERTY_INVALID_ARRAY"),
    # ---- structure (structure.py)
    "resource-type-missing": _r("structure", "fatal", "no resourceType", "Unable_to_find_resourceType_property",
                                "RESOURCETYPE_PROPERTY_WRONG_TYPE"),
    "resource-type-unknown": _r("structure", "fatal", "resourceType names no known resource",
                                "This_does_not_appear_to_be_a_FHIR_resource_unknown_name_",
                                "Contained_resource_does_not_appear_to_be_a_FHIR_resource_unknown_name_"),
    "resource-id": _r("structure", "error", "Resource.id format and presence (contained, Bundle entries)",
                      "Resource_RES_ID_Malformed_Chars", "Resource_RES_ID_Malformed_Length", "Resource_RES_ID_Missing",
                      "Resource_RES_ID_Prohibited"),
    "unknown-element": _r("structure", "error", "a property the definitions do not have", "Unrecognised_property_"),
    "definition-missing": _r("structure", "error", "a type or element whose definition cannot be found"),
    "type-unknown": _r("structure", "error", "a choice suffix or type specifier naming no allowed type",
                       "TYPE_SPECIFIER_ILLEGAL_TYPE", "TYPE_SPECIFIER_ABSTRACT_TYPE"),
    "choice-multiple": _r("structure", "error", "more than one type of a choice element present"),
    "cardinality-min": _r("structure", "error", "fewer repeats than min", "Validation_VAL_Profile_Minimum",
                          "Validation_VAL_Profile_Minimum_SLICE", "Validation_VAL_Profile_Minimum_SLICE_EXT"),
    "cardinality-max": _r("structure", "error", "more repeats than max", "Validation_VAL_Profile_Maximum"),
    "json-array-expected": _r("structure", "error", "a repeating element not given as an array",
                              "This_property_must_be_an_Array_not_", "This_base_property_must_be_an_Array_not_"),
    "json-array-unexpected": _r("structure", "error", "a single element given as an array", "This_property_must_be__not_"),
    "json-object-expected": _r("structure", "error", "a complex element given as a primitive",
                               "This_property_must_be_an_object_not_"),
    "json-primitive-expected": _r("structure", "error", "a primitive given as an object or array",
                                  "This_property_must_be_an_simple_value_not_"),
    "json-type": _r("structure", "error", "a primitive with the wrong JSON type (string/number/boolean)",
                    "Error_parsing_JSON_the_primitive_value_must_be_a_boolean",
                    "Error_parsing_JSON_the_primitive_value_must_be_a_number",
                    "Error_parsing_JSON_the_primitive_value_must_be_a_string", "UNRECOGNISED_PROPERTY_TYPE",
                    "UNRECOGNISED_PROPERTY_TYPE_WRONG"),
    "shadow-not-primitive": _r("structure", "error", "a '_x' property for a non-primitive element"),
    "shadow-length": _r("structure", "error", "a '_x' array whose length differs from 'x'"),
    "format": _r("structure", "error", "a primitive value that breaks its type's format",
                 "Type_Specific_Checks_DT_Primitive_Regex", "Type_Specific_Checks_DT_Primitive_Regex_Type",
                 "Type_Specific_Checks_DT_Base64_Valid", "Type_Specific_Checks_DT_Boolean_Value",
                 "Type_Specific_Checks_DT_Code_WS", "Type_Specific_Checks_DT_DateTime_Regex",
                 "Type_Specific_Checks_DT_DateTime_TZ", "Type_Specific_Checks_DT_DateTime_Valid",
                 "Type_Specific_Checks_DT_Date_Valid", "Type_Specific_Checks_DT_Decimal_Valid",
                 "Type_Specific_Checks_DT_Instant_Valid", "Type_Specific_Checks_DT_Integer_Valid",
                 "Type_Specific_Checks_DT_Integer64_Valid", "Type_Specific_Checks_DT_Time_Valid",
                 "Type_Specific_Checks_DT_ID_Valid", "Type_Specific_Checks_DT_OID_Start", "Type_Specific_Checks_DT_OID_Valid",
                 "Type_Specific_Checks_DT_UUID_Strat", "Type_Specific_Checks_DT_UUID_Valid",
                 "Type_Specific_Checks_DT_URI_OID", "Type_Specific_Checks_DT_URI_UUID", "Type_Specific_Checks_DT_URI_WS"),
    "value-range": _r("structure", "error", "integer range and minValue/maxValue",
                      "Type_Specific_Checks_DT_Integer_GT", "Type_Specific_Checks_DT_Integer_LT",
                      "Type_Specific_Checks_DT_Integer_LT0", "Type_Specific_Checks_DT_Integer_LT1",
                      "Type_Specific_Checks_DT_Decimal_GT", "Type_Specific_Checks_DT_Decimal_LT"),
    "decimal-range": _r("structure", "warning", "a decimal with more than 18 digits or a 5+ digit exponent",
                        "Type_Specific_Checks_DT_Decimal_Range"),
    "string-empty": _r("structure", "error", "an empty string value", "Type_Specific_Checks_DT_Primitive_NotEmpty"),
    "string-whitespace": _r("structure", "warning", "all whitespace, or (string) leading/trailing whitespace",
                            "Type_Specific_Checks_DT_String_WS", "Type_Specific_Checks_DT_String_WS_ALL",
                            "Type_Specific_Checks_DT_Primitive_WS"),
    "string-length": _r("structure", "error", "longer than maxLength or 1 MB", "Type_Specific_Checks_DT_Primitive_Length",
                        "Type_Specific_Checks_DT_String_Length"),
    "string-illegal-chars": _r("structure", "warning", "control characters in a string (illegal in XML)",
                               "UNICODE_XML_BAD_CHARS"),
    "required-code-missing": _r("structure", "error", "a primitive with a required binding that has only extensions "
                                "(a data-absent-reason, say) and no value", "Terminology_TX_Code_ValueSet_MISSING"),
    "string-html": _r("structure", "information", "text that looks like embedded HTML tags (an error with "
                      "--security-checks)", "SECURITY_STRING_CONTENT_WARNING", "SECURITY_STRING_CONTENT_ERROR"),
    "markdown-html": _r("structure", "warning", "raw HTML in markdown, which renderers escape (--html-in-markdown "
                        "sets the level)", "TYPE_SPECIFIC_CHECKS_DT_MARKDOWN_HTML"),
    "canonical-format": _r("structure", "error", "a canonical that is not a URL"),
    "fixed": _r("structure", "error", "a value that differs from the profile's fixed value", "_DT_Fixed_Wrong"),
    "pattern": _r("structure", "error", "a value that does not match the profile's pattern",
                  "PATTERN_CHECK_STRING", "TYPE_CHECKS_PATTERN_CC", "TYPE_CHECKS_PATTERN_CC_US"),
    "slice-unmatched": _r("structure", "information", "an element matching no slice of open slicing",
                          "This_element_does_not_match_any_known_slice_", "Details_for__matching_against_Profile_",
                          "Does_not_match_slice_"),
    "slice-closed": _r("structure", "error", "an element matching no slice of closed slicing",
                       "Validation_VAL_Profile_NotSlice"),
    "slice-multiple": _r("structure", "error", "an element that matches two slices, neither a re-slice of the other",
                         "Validation_VAL_Profile_MatchMultiple"),
    "slice-order": _r("structure", "error", "slices out of order in ordered slicing", "Validation_VAL_Profile_SliceOrder"),
    "profile-unknown": _r("structure", "warning", "meta.profile or --profile that cannot be found",
                          "Validation_VAL_Profile_Unknown"),
    "profile-type": _r("structure", "error", "a profile for another resource type", "Validation_VAL_Profile_WrongType"),
    "extension-url": _r("structure", "error", "Extension.url missing or not absolute",
                        "Extension_EXT_Url_NotFound", "Extension_EXT_URL_Absolute"),
    "extension-unknown": _r("structure", "error", "an extension whose definition is not loaded (warning for allowed "
                            "domains)", "Extension_EXT_Unknown", "Extension_EXT_Unknown_NotHere",
                            "Extension_EXT_SubExtension_Invalid"),
    "extension-definition": _r("structure", "error", "value[x] type or simple/complex shape against the definition",
                               "Extension_EXT_Type", "Extension_EXT_Simple_ABSENT", "Extension_EXT_Simple_WRONG"),
    "extension-context": _r("structure", "error", "an extension used outside its context",
                            "Extension_EXTP_Context_Wrong", "Extension_EXTM_Context_Wrong",
                            "Extension_EXTP_Context_Wrong_VER", "Extension_EXTM_Context_Wrong_VER"),
    "extension-modifier": _r("structure", "error", "modifier extension used as extension or vice versa",
                             "Extension_EXT_Modifier_N", "Extension_EXT_Modifier_Y", "Extension_EXT_Modifier_MismatchN",
                             "Extension_EXT_Modifier_MismatchY"),
    "extension-deprecated": _r("structure", "warning", "an extension whose definition is deprecated",
                               "MSG_DEPENDS_ON_DEPRECATED"),
    "ele-1": _r("structure", "error", "an element with no value and no children (natively checked)"),
    "ext-1": _r("structure", "error", "an extension with both value and extensions (natively checked)"),
    # ---- terminology (terminology.py)
    "binding-required": _r("terminology", "error", "a code not in a required value set",
                           "Terminology_TX_NoValid_1_CC", "Terminology_TX_NoValid_4", "Terminology_TX_NoValid_12",
                           "Terminology_TX_NoValid_16", "Terminology_TX_Code_ValueSet"),
    "binding-extensible": _r("terminology", "warning", "a code not in an extensible value set",
                             "Terminology_TX_NoValid_2_CC", "Terminology_TX_NoValid_5", "Terminology_TX_NoValid_13",
                             "Terminology_TX_NoValid_17", "Terminology_TX_Code_ValueSet_Ext"),
    "binding-preferred": _r("terminology", "information", "a code not in a preferred value set",
                            "Terminology_TX_NoValid_3_CC", "Terminology_TX_NoValid_6", "Terminology_TX_NoValid_14",
                            "Terminology_TX_NoValid_18"),
    "binding-no-source": _r("terminology", "information", "a binding without a value set"),
    "binding-valueset-unknown": _r("terminology", "warning", "the bound value set is not loaded",
                                   "Terminology_TX_ValueSet_NotFound"),
    "binding-valueset-is-codesystem": _r("terminology", "error", "a binding to a CodeSystem url",
                                         "Terminology_TX_ValueSet_NotFound_CS"),
    "coding-no-system": _r("terminology", "warning", "a code without a system", "TERMINOLOGY_TX_SYSTEM_NO_CODE",
                           "Coding_has_no_system__cannot_validate"),
    "code-display": _r("terminology", "error", "a display that is not one of the code's displays",
                       "Display_Name_for__should_be_one_of__instead_of", "Terminology_TX_Display_Wrong"),
    "code-inactive": _r("terminology", "warning", "an inactive code", "INACTIVE_CONCEPT_FOUND",
                        "INACTIVE_CONCEPT_FOUND_ADD"),
    "code-not-active": _r("terminology", "error", "an inactive code where the required value set leaves inactive "
                          "codes out (compose.inactive = false), said on the code", "STATUS_CODE_WARNING_CODE"),
    "code-case": _r("terminology", "information", "a code that matches only case-insensitively", "CODE_CASE_DIFFERENCE"),
    "code-system-invalid": _r("terminology", "error", "a system that is a value set, a code system supplement "
                              "or not a URL", "Terminology_TX_System_Unknown", "Terminology_TX_System_ValueSet",
                              "Terminology_TX_System_ValueSet2", "Terminology_TX_System_Relative",
                              "CODESYSTEM_CS_NO_SUPPLEMENT"),
    "code-invalid": _r("terminology", "error", "a code the code system does not define", "Unknown_Code_in_Version"),
    "code-unknown": _r("terminology", "error", "a code not in a complete code system"),
    "code-unknown-fragment": _r("terminology", "warning", "a code not in a fragment code system",
                                  "UNKNOWN_CODE_IN_FRAGMENT"),
    "code-system-unknown": _r("terminology", "warning", "a code system that is not loaded (information outside a "
                              "CodeableConcept)", "UNKNOWN_CODESYSTEM", "UNKNOWN_CODESYSTEM_VERSION_UNK",
                              "UNKNOWN_CODESYSTEM_VERSION", "UNKNOWN_CODESYSTEM_VERSION_NONE"),
    "terminology-not-checked": _r("terminology", "information", "a code system only a terminology server knows",
                                  "Error_validating_code_running_without_terminology_services"),
    # ---- references (references.py)
    "reference-format": _r("references", "error", "a malformed reference", "Reference_REF_Format1",
                           "Reference_REF_Format2", "REFERENCE_REF_QUERY_INVALID", "REFERENCE_REF_INVALID_REF"),
    "reference-type": _r("references", "error", "a reference naming an unknown resource type"),
    "reference-target-type": _r("references", "error", "a target type the element does not allow (information when "
                                "only an unresolved reference's URL names it, unless --assume-valid-rest-references)",
                                "Reference_REF_BadTargetType", "Reference_REF_BadTargetType2", "Reference_REF_WrongTarget"),
    "reference-contained": _r("references", "error", "a '#id' reference with no such contained resource",
                              "Reference_REF_CantResolve"),
    "reference-bundle": _r("references", "warning", "a reference that does not resolve within its Bundle",
                           "Bundle_BUNDLE_Entry_NotFound", "BUNDLE_BUNDLE_POSSIBLE_MATCH_WRONG_FU",
                           "BUNDLE_BUNDLE_POSSIBLE_MATCH_NO_FU", "REFERENCE_REF_REL_UNSOLVEABLE",
                           "Bundle_BUNDLE_Not_Local"),
    "reference-unresolved": _r("references", "error", "package mode: a reference that does not resolve in the package"),
    "canonical-unresolved": _r("references", "error", "package mode or '#': a canonical that does not resolve",
                               "TYPE_SPECIFIC_CHECKS_DT_URL_INTERNAL", "TYPE_SPECIFIC_CHECKS_DT_CANONICAL_RESOLVE"),
    "canonical-external": _r("references", "information", "package mode: a canonical of an external code system"),
    # ---- narrative (xhtml.py)
    "xhtml-syntax": _r("narrative", "error", "XHTML that does not parse", "Error_parsing_XHTML_"),
    "xhtml-namespace": _r("narrative", "error", "the div is not in the XHTML namespace", "XHTML_XHTML_NS_InValid"),
    "xhtml-root": _r("narrative", "error", "the root is not a div", "XHTML_XHTML_Name_Invalid"),
    "xhtml-element": _r("narrative", "error", "an element the narrative rules do not allow", "XHTML_XHTML_Element_Illegal"),
    "xhtml-element-in-paragraph": _r("narrative", "error", "a block element inside <p>",
                                     "XHTML_XHTML_ELEMENT_ILLEGAL_IN_PARA"),
    "xhtml-attribute": _r("narrative", "error", "an attribute the narrative rules do not allow",
                          "XHTML_XHTML_Attribute_Illegal"),
    "xhtml-event-handler": _r("narrative", "error", "an on* event handler attribute"),
    "xhtml-script-url": _r("narrative", "error", "a javascript: URL"),
    "xhtml-data-url": _r("narrative", "warning", "a data: URL in a link"),
    "xhtml-url": _r("narrative", "error", "a malformed or unsafe URL", "TYPE_SPECIFIC_CHECKS_DT_XHTML_LITERAL_HREF"),
    "xhtml-doctype": _r("narrative", "error", "a DOCTYPE declaration", "XHTML_XHTML_DOCTYPE_ILLEGAL"),
    "xhtml-entity": _r("narrative", "error", "an undefined entity"),
    "xhtml-instruction": _r("narrative", "error", "a processing instruction"),
    "xhtml-duplicate-id": _r("narrative", "warning", "two nodes with the same id", "XHTML_XHTML_DUPLICATE_IDS"),
    "xhtml-mixed-languages": _r("narrative", "warning", "language sections mixed with other content",
                                "XHTML_XHTML_MIXED_LANG"),
    "xhtml-structure": _r("narrative", "error", "structure the narrative rules forbid"),
    "xhtml-xml-space": _r("narrative", "error", "a bad xml:space value"),
    # ---- business rules (business_rules.py)
    "attachment-size": _r("rules", "error", "Attachment.size differs from the data",
                          "TYPE_SPECIFIC_CHECKS_DT_ATT_SIZE_CORRECT"),
    "attachment-hash": _r("rules", "error", "Attachment.hash differs from the data",
                          "TYPE_SPECIFIC_CHECKS_DT_ATT_HASH_MISMATCH"),
    "questionnaire-derivation": _r("rules", "error", "a Questionnaire that extends/complies with another changes what "
                                   "the base fixes (warnings: base or derivation type unknown)",
                                   "QUESTIONNAIRE_Q_ITEM_NOT_DERIVED", "QUESTIONNAIRE_Q_ITEM_DERIVED_NC_TYPE",
                                   "QUESTIONNAIRE_Q_ITEM_DERIVED_NC_REPEATS", "QUESTIONNAIRE_Q_ITEM_DERIVED_NC_REQUIRED",
                                   "QUESTIONNAIRE_Q_ITEM_DERIVED_MAXLENGTH", "QUESTIONNAIRE_Q_ITEM_DERIVED_NC_MAXLENGTH",
                                   "QUESTIONNAIRE_Q_ITEM_DERIVED_ANSWER_OPTIONS",
                                   "QUESTIONNAIRE_Q_ITEM_DERIVED_ANSWER_OPTIONS_NEW",
                                   "QUESTIONNAIRE_Q_ITEM_DERIVED_NC_ANSWER_TYPE", "QUESTIONNAIRE_Q_UNKNOWN_DERIVATION",
                                   "QUESTIONNAIRE_Q_NO_DERIVATION_TYPE", "QUESTIONNAIRE_Q_NO_DERIVATION_TYPE_VALUE",
                                   "QUESTIONNAIRE_Q_DERIVATION_TYPE_IGNORED", "QUESTIONNAIRE_Q_DERIVATION_TYPE_UNKNOWN"),
    "contained-id-duplicate": _r("rules", "error", "two contained resources with the same id",
                                 "RESOURCE_DUPLICATE_CONTAINED_ID"),
    "narrative-language": _r("rules", "warning", "a resource language not stated (or differing) as lang and xml:lang "
                             "on the narrative", "Language_XHTML_Lang_Missing1", "Language_XHTML_Lang_Missing2",
                             "Language_XHTML_Lang_Missing3", "Language_XHTML_Lang_Different1",
                             "Language_XHTML_Lang_Different2"),
    "attachment-content": _r("rules", "warning", "an Attachment with neither data/url nor contentType/language",
                             "TYPE_SPECIFIC_CHECKS_DT_ATT_NO_CONTENT"),
    "identifier-system": _r("rules", "error", "Identifier.system not absolute, or an IETF identifier system used "
                            "wrongly (a warning where only the system URL is the wrong one for a UUID)",
                            "Type_Specific_Checks_DT_Identifier_System", "TYPE_SPECIFIC_CHECKS_DT_IDENTIFIER_IETF_SYSTEM_VALUE",
                            "TYPE_SPECIFIC_CHECKS_DT_IDENTIFIER_IETF_SYSTEM_WRONG_1",
                            "TYPE_SPECIFIC_CHECKS_DT_IDENTIFIER_IETF_SYSTEM_WRONG_2",
                            "TYPE_SPECIFIC_CHECKS_DT_IDENTIFIER_IETF_SYSTEM_WRONG_3"),
    "version-hash": _r("rules", "warning", "a canonical resource's version containing '#'", "VALIDATION_VAL_VERSION_NOHASH"),
    "observation-best-practice": _r("rules", "warning", "an Observation without subject, performer or effective[x] "
                                    "(a best-practice recommendation)", "All_observations_should_have_a_subject",
                                    "All_observations_should_have_a_performer",
                                    "All_observations_should_have_an_effectiveDateTime_or_an_effectivePeriod"),
    "status-consistent": _r("rules", "warning", "status vs the standards-status extension (information when it only "
                            "needs review)", "VALIDATION_VAL_STATUS_INCONSISTENT", "VALIDATION_VAL_STATUS_INCONSISTENT_HINT"),
    "codesystem-concept-text": _r("rules", "warning", "an HL7 code system concept without display or definition",
                                  "CODESYSTEM_CONCEPT_NO_DISPLAY", "CODESYSTEM_CONCEPT_NO_DEFINITION"),
    "codesystem-metadata": _r("rules", "warning", "caseSensitive/hierarchyMeaning not stated (information outside HL7), "
                              "complete but empty", "CODESYSTEM_CS_HL7_MISSING_ELEMENT_SHOULD",
                              "CODESYSTEM_CS_NONHL7_MISSING_ELEMENT", "CODESYSTEM_CS_COMPLETE_AND_EMPTY"),
    "valueset-system-absolute": _r("rules", "error", "ValueSet include/exclude system not absolute",
                                   "VALUESET_INCLUDE_SYSTEM_ABSOLUTE", "VALUESET_INCLUDE_SYSTEM_ABSOLUTE_FRAG"),
    "extension-url-fixed": _r("rules", "error", "an extension definition's differential fixes Extension.url to its url",
                              "SD_EXTENSION_URL_MISMATCH", "SD_EXTENSION_URL_MISSING"),
    "extension-context-element": _r("rules", "error", "an extension definition's element context names no element",
                                    "SD_CONTEXT_SHOULD_ELEMENT_NOT_FOUND"),
    "workgroup-multiple": _r("rules", "error", "more than one workgroup extension", "VALIDATION_HL7_PUBLISHER_MULTIPLE_WGS"),
    # ---- package (package_rules.py, project.py, api.py; content projects only)
    "package-id": _r("package", "error", "a package resource without a valid id"),
    "package-layout": _r("package", "error", "a file not where the layout puts it"),
    "package-canonical": _r("package", "error", "canonical url is not <canonical>/<Type>/<id>"),
    "package-version": _r("package", "error", "a resource version that differs from the package's"),
    "package-identifier": _r("package", "error", "a non-canonical artifact without an identifier"),
    "package-duplicate": _r("package", "error", "two resources with the same type/id or url"),
    "package-cycle": _r("package", "warning", "a cycle of canonical dependencies"),
    "bundle-entry-url": _r("rules", "error", "a Bundle entry fullUrl that is not absolute, a RESTful one that does not "
                           "end with its resource's type and id, or none where the Bundle type needs one",
                           "BUNDLE_ENTRY_URL_ABSOLUTE", "BUNDLE_ENTRY_URL_MATCHES_NO_ID", "BUNDLE_ENTRY_URL_MATCHES_TYPE_ID",
                           "BUNDLE_BUNDLE_ENTRY_FULLURL_REQUIRED"),
    "bundle-search": _r("rules", "error", "a searchset Bundle: self link, search modes, ids of results, result types "
                        "the search asked for, outcome entries that are OperationOutcomes", "BUNDLE_SEARCH_NOSELF",
                        "BUNDLE_SEARCH_NO_MODE", "BUNDLE_SEARCH_ENTRY_NO_RESOURCE_ID",
                        "BUNDLE_SEARCH_ENTRY_WRONG_RESOURCE_TYPE_MODE", "BUNDLE_SEARCH_ENTRY_WRONG_RESOURCE_TYPE_OUTCOME",
                        "BUNDLE_SEARCH_ENTRY_WRONG_RESOURCE_TYPE_NO_MODE", "BUNDLE_SEARCH_ENTRY_NO_RESOURCE",
                        "BUNDLE_SEARCH_SELF_NOT_UNDERSTOOD", "BUNDLE_SEARCH_ENTRY_TYPE_NOT_SURE"),
    "bundle-link-unique": _r("rules", "error", "a Bundle paging or self link relation given more than once",
                             "BUNDLE_LINK_SEARCH_NO_DUPLICATES"),
    "extension-fhir-version": _r("rules", "error", "an extension whose definition (version-specific-use) is limited to "
                                 "other FHIR versions", "EXTENSION_FHIR_VERSION_EARLIEST", "EXTENSION_FHIR_VERSION_LATEST"),
    "valueset-contained-system": _r("rules", "error", "an include system '#id' that names no (or more than one) "
                                    "contained CodeSystem", "VALUESET_INCLUDE_CS_NOT_FOUND", "VALUESET_INCLUDE_CSVER_NOT_FOUND",
                                    "VALUESET_INCLUDE_CS_NOT_CS", "VALUESET_INCLUDE_CS_MULTI_FOUND",
                                    "VALUESET_INCLUDE_CSVER_MULTI_FOUND"),
    "ig-dependency": _r("rules", "error", "an ImplementationGuide.dependsOn uri with an empty or inconsistent '|version', "
                        "or not naming the ImplementationGuide resource", "IG_DEPENDENCY_CAN_VERSION_NONE",
                        "IG_DEPENDENCY_CAN_VERSION_ALONE", "IG_DEPENDENCY_CAN_VERSION_ERROR", "IG_DEPENDENCY_DIRECT"),
    "ig-hl7-metadata": _r("rules", "error", "an HL7 guide (url under http://hl7.org/fhir/) without standards status or "
                          "work group (errors) or maturity (warning) extensions", "IG_HL7_STANDARDS_STATUS_REQUIRED",
                          "IG_HL7_WG_REQUIRED", "IG_HL7_FMM_SHOULD"),
    "ig-dependency-unknown": _r("rules", "warning", "a dependsOn uri naming no ImplementationGuide known to the run",
                                "IG_DEPENDENCY_INVALID_URL"),
    "searchparameter-code": _r("rules", "warning", "a search parameter code with '.', '$' or '|'",
                               "SEARCHPARAMETER_BAD_CHAR"),
    "searchparameter-derivation": _r("rules", "error", "a derivedFrom SearchParameter that is not found (warning), "
                                     "lacks a base or has another type (errors), or another expression (warning)",
                                     "SEARCHPARAMETER_NOTFOUND", "SEARCHPARAMETER_BASE_WRONG",
                                     "SEARCHPARAMETER_TYPE_WRONG", "SEARCHPARAMETER_EXP_WRONG"),
    "searchparameter-expression": _r("rules", "error", "a search expression naming an element its bases do not have "
                                     "(plain paths only)", "ED_SEARCH_EXPRESSION_ERROR"),
    "searchparameter-composite": _r("rules", "error", "a composite search parameter with fewer than two components",
                                    "SEARCHPARAMETER_MISSING_COMPONENTS"),
    "slice-must-support": _r("rules", "warning", "a profile slice not must-support where its slicing element is",
                             "SD_PATH_SLICE_INCONSISTENT_MS"),
    "url-unresolved": _r("rules", "error", "an extension url in an HL7 URL space (hl7.org/fhir, terminology.hl7.org, "
                         "fhir.org/guides) naming no definition", "Type_Specific_Checks_DT_URL_Resolve"),
    "codesystem-property-uri": _r("rules", "warning", "a property uri 'base#code' whose known base code system has "
                                  "neither that property nor that concept", "CODESYSTEM_PROPERTY_URI_INVALID"),
    "codesystem-property-declaration": _r("rules", "error", "a property declaration: a uri not absolute, a uri or "
                                          "code declared twice, a standard property's uri with another code or type, "
                                          "an unknown hl7.org/fhir property uri (warnings and information for a "
                                          "property with a code and no uri)",
                                          "CODESYSTEM_PROPERTY_ABSOLUTE_URI", "CODESYSTEM_PROPERTY_DUPLICATE_URI",
                                          "CODESYSTEM_PROPERTY_DUPLICATE_CODE", "CODESYSTEM_PROPERTY_URI_CODE_MISMATCH",
                                          "CODESYSTEM_PROPERTY_URI_TYPE_MISMATCH", "CODESYSTEM_PROPERTY_BAD_HL7_URI",
                                          "CODESYSTEM_PROPERTY_KNOWN_CODE_SUGGESTIVE",
                                          "CODESYSTEM_PROPERTY_CODE_TYPE_MISMATCH", "CODESYSTEM_PROPERTY_UNKNOWN_CODE"),
    "codesystem-property-value": _r("rules", "error", "a concept property value: no value, or not the declared type "
                                    "(a warning when the property is not declared)", "CODESYSTEM_PROPERTY_UNDEFINED",
                                    "CODESYSTEM_PROPERTY_NO_VALUE", "CODESYSTEM_PROPERTY_WRONG_TYPE"),
    "valueset-filter": _r("rules", "error", "a ValueSet filter against its code system's properties: an unknown "
                          "property (warning), an operation the property does not allow, a value of the wrong type, a "
                          "code the code system lacks (a warning for a declared code property)",
                          "VALUESET_UNKNOWN_FILTER_PROPERTY", "VALUESET_BAD_FILTER_OP", "VALUESET_BAD_FILTER_VALUE_BOOLEAN",
                          "VALUESET_BAD_FILTER_VALUE_CODE", "VALUESET_BAD_FILTER_VALUE_DATETIME",
                          "VALUESET_BAD_FILTER_VALUE_DECIMAL", "VALUESET_BAD_FILTER_VALUE_INTEGER",
                          "VALUESET_BAD_FILTER_VALUE_CODED", "VALUESET_BAD_FILTER_VALUE_CODED_LEGACY",
                          "VALUESET_BAD_FILTER_VALUE_CODED_INVALID", "VALUESET_BAD_FILTER_EXPR_LANG",
                          "VALUESET_BAD_FILTER_EXPR_VALUE", "VALUESET_BAD_FILTER_EXPR_PARAM_NAME",
                          "VALUESET_BAD_FILTER_VALUE_VALID_CODE"),
    "capability-search-param": _r("rules", "error", "a CapabilityStatement search parameter whose definition has "
                                  "another type", "CapabalityStatement_CS_SP_WrongType"),
    "measure-report": _r("rules", "error", "a MeasureReport's groups and scores against its Measure",
                         "MEASURE_MR_GRP_NO_CODE", "MEASURE_MR_GRP_NO_CODE_R5", "MEASURE_MR_GRP_UNK_CODE",
                         "MEASURE_MR_GRP_UNK_LINKID", "MEASURE_MR_GRP_DUPL_CODE", "MEASURE_MR_GRP_MISSING_BY_CODE",
                         "MEASURE_MR_GRP_MISSING_BY_CODE_R5", "MEASURE_MR_GRP_NO_WRONG_CODE",
                         "MEASURE_MR_SCORE_PROHIBITED_RT", "MEASURE_MR_SCORE_PROHIBITED_MS", "MEASURE_MR_SCORE_REQUIRED",
                         "MEASURE_MR_SCORE_VALUE_REQUIRED", "MEASURE_MR_SCORE_UNIT_PROHIBITED",
                         "MEASURE_MR_SCORE_VALUE_INVALID_01", "MEASURE_MR_GRP_STRAT_NO_CODE",
                         "MEASURE_MR_GRP_STRAT_NO_CODE_R5", "MEASURE_MR_GRP_STRAT_UNK_CODE",
                         "MEASURE_MR_GRP_STRAT_UNK_LINKID", "MEASURE_MR_GRP_STRAT_DUPL_CODE",
                         "MEASURE_MR_GRP_STRAT_MISSING_BY_CODE", "MEASURE_MR_GRP_STRAT_MISSING_BY_CODE_R5"),
    "derived-value": _r("rules", "error", "a profile's fixed or pattern value that contradicts the fixed or pattern "
                        "value of its base profile", "SD_ELEMENT_FIXED_WRONG_TYPE", "SD_ELEMENT_PATTERN_NO_FIXED",
                        "SD_ELEMENT_REASON_DERIVED"),
    "codesystem-property-internal": _r("rules", "information", "a code property without value set information: its "
                                       "values are checked as internal codes", "CODESYSTEM_PROPERTY_CODE_DEFAULT_WARNING"),
    "codesystem-property-code": _r("rules", "warning", "a code property value that is not a code of the code system "
                                   "(error for parent/child/partOf/synonym and in supplements)",
                                   "CODESYSTEM_PROPERTY_BAD_INTERNAL_REFERENCE"),
    "codesystem-supplement-content": _r("rules", "error", "a CodeSystem supplement whose content is not 'supplement'",
                                        "CODESYSTEM_CS_HL7_PRESENT_ELEMENT_SUPPL_WRONG"),
    "extension-cross-version": _r("structure", "warning", "a cross-version extension url, not checked"),
    "logic-library-missing": _r("package", "error", "a PlanDefinition with CQL conditions but no library"),
    "logic-library-unresolved": _r("package", "error", "a PlanDefinition.library that is not a Library with ELM in the package"),
    "logic-identifier-unknown": _r("package", "error", "a condition naming an identifier its libraries' ELM does not define"),
    "logic-cql-stale": _r("package", "error", "a Library whose text/cql differs from its .cql source (run fhirpkg cql)"),
    "project-missing": _r("package", "fatal", "no project folder"),
    "project-not-resource": _r("package", "error", "a project file that is not a FHIR resource"),
    "manifest-missing": _r("package", "fatal", "package.json missing"),
    "manifest-invalid": _r("package", "error", "package.json invalid"),
    "not-a-resource": _r("package", "error", "an input that is not a FHIR resource"),
    "fhir-version-skipped": _r("package", "information", "a resource for another FHIR version, skipped"),
    # ---- run-time
    "layer-failed": _r("any", "warning", "a layer could not finish on one element (defence in depth)"),
}

#: HL7 message ids that cannot apply to fhirpkg, with the reason (the script's rules of thumb
#: classify the rest: XML-only, terminology-server-only, signatures).
NOT_APPLICABLE: dict[str, str] = {
    "VALIDATION_HL7_WG_URL": "HL7 publishing policy (the HL7 work group list), not FHIR conformance",
    "VALIDATION_HL7_PUBLISHER_MISMATCH": "HL7 publishing policy (publisher must match the work group)",
    "VALIDATION_HL7_PUBLISHER_MISMATCH2": "HL7 publishing policy (publisher must match the work group)",
    "VALIDATION_HL7_PUBLISHER_MISSING": "HL7 publishing policy (HL7 resources must name HL7 as publisher)",
    "VALIDATION_HL7_WG_NEEDED": "HL7 publishing policy (owning committee extension)",
    "VALIDATION_HL7_WG_UNKNOWN": "HL7 publishing policy (the HL7 work group list)",
    "TYPE_SPECIFIC_CHECKS_DT_URL_EXAMPLE": "example-URL policy: a placeholder policy, not conformance (docs/validation.md)",
    "TYPE_SPECIFIC_CHECKS_DT_ATT_NO_FETCHER": "needs network access to fetch the attachment",
    "TYPE_SPECIFIC_CHECKS_DT_ATT_UNKNOWN_URL_SCHEME": "needs network access to fetch the attachment",
    "TYPE_SPECIFIC_CHECKS_DT_ATT_URL_ERROR": "needs network access to fetch the attachment",
    "VALIDATION_VAL_PROFILE_UNKNOWN_ERROR_NETWORK": "needs network access to fetch the profile",
    "VALIDATION_VAL_PROFILE_UNKNOWN_NOT_POLICY": "the validator's profile-fetching policy",
    "VALIDATION_VAL_PROFILE_UNKNOWN_ERROR": "needs network access to fetch the profile",
    "Resource_resolution_services_not_provided": "the HL7 validator's API set-up",
    "VALIDATION_TIMEOUT_EXCEEDED": "the HL7 validator's time-out setting",
    "UNABLE_TO_INFER_CODESYSTEM": "an artifact of running without a terminology server: the HL7 validator cannot "
                                  "infer the system of a code from a value set it cannot expand (BCP-47 all-languages,"
                                  " BCP-13 mime types) and reports valid codes as errors; fhirpkg says "
                                  "terminology-not-checked",
    "Details_for__matching_against_Profile_": "the HL7 validator's slicing diagnostics (fhirpkg reports slice-unmatched)",
}

_INVARIANT_KEY = re.compile(r"^[a-z][a-z0-9]*-\d+[a-z]?$|^[A-Za-z][\w.-]*-\d+$")


def is_known(rule: str) -> bool:
    """A rule id of the table, or an invariant key (reported under its own key, e.g. ``ele-1``)."""
    return rule in RULES or bool(_INVARIANT_KEY.match(rule))


#: the HL7 ids of a failed invariant: fhirpkg reports those under the constraint's own key
INVARIANT_HL7 = ("INV_FAILED", "INV_FAILED_SOURCE", "CONTAINED_ORPHAN_DOM3")


def hl7_index() -> dict[str, list[str]]:
    """HL7 message id -> the fhirpkg rule ids implementing it."""
    out: dict[str, list[str]] = {mid: ["(invariant key)"] for mid in INVARIANT_HL7}
    for rid, rule in RULES.items():
        for mid in rule.hl7:
            out.setdefault(mid, []).append(rid)
    return out
