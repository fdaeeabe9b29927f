package org.fhirpkg.interop.hapi;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.FhirVersionEnum;
import ca.uhn.fhir.jpa.api.dao.DaoRegistry;
import ca.uhn.fhir.rest.server.RestfulServer;
import org.opencds.cqf.fhir.cql.engine.retrieve.RetrieveSettings;
import org.opencds.cqf.fhir.cql.engine.terminology.TerminologySettings;
import org.opencds.cqf.fhir.cr.CrSettings;
import org.opencds.cqf.fhir.cr.hapi.common.IPlanDefinitionProcessorFactory;
import org.opencds.cqf.fhir.cr.hapi.r4.plandefinition.PlanDefinitionApplyProvider;
import org.opencds.cqf.fhir.cr.hapi.repository.ClinicalIntelligenceHapiFhirRepository;
import org.opencds.cqf.fhir.cr.plandefinition.PlanDefinitionProcessor;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * HAPI's clinical reasoning, {@code PlanDefinition/$apply}, on the R4 server
 * ({@code --fhirpkg.hapi.fhir-version=R4 --fhirpkg.hapi.cr=true}).
 *
 * <p>The operation is cqf-fhir-cr-hapi's own R4 {@link PlanDefinitionApplyProvider}; each request gets a
 * {@link PlanDefinitionProcessor} on a {@link ClinicalIntelligenceHapiFhirRepository}, i.e. it reads the
 * PlanDefinitions, Libraries, ValueSets and the patient's records from this server's JPA storage.  One
 * {@link CrSettings} for the server's life, so compiled libraries are cached across requests as in a
 * production server.  R4 only: cqf-fhir-cr-hapi 4.4.0 has
 * $apply providers for R4 and DSTU3, none for R5.
 */
@Configuration
@ConditionalOnProperty(name = "fhirpkg.hapi.cr", havingValue = "true")
public class ClinicalReasoningConfig {

  private static final Logger LOG = LoggerFactory.getLogger(ClinicalReasoningConfig.class);

  /**
   * {@code --fhirpkg.hapi.cr.settings}: {@code server-search} (the default): retrieves are this server's
   * searches (patient compartment and code filters as search parameters, the engine's AUTO mode), while
   * value sets are expanded from their compose (ours enumerate their codes) and membership is tested on that
   * expansion.  {@code in-memory}: the settings of our standalone run (searches by type only, every filter in
   * memory).  {@code defaults}: the engine's own defaults, terminology asked of this server too; with HAPI
   * 8.8.0 + cqf-fhir-cr-hapi 4.4.0 the value-set membership tests then fail with HAPI-0287 (see
   * docs/logic.md, "On a HAPI R4 server").
   */
  @Bean
  public CrSettings crSettings(@Value("${fhirpkg.hapi.cr.settings:server-search}") String mode) {
    CrSettings s = CrSettings.getDefault();
    if ("in-memory".equals(mode) || "server-search".equals(mode)) {
      s.getEvaluationSettings().getTerminologySettings()
          .setValuesetExpansionMode(TerminologySettings.VALUESET_EXPANSION_MODE.PERFORM_NAIVE_EXPANSION)
          .setValuesetMembershipMode(TerminologySettings.VALUESET_MEMBERSHIP_MODE.USE_EXPANSION)
          .setCodeLookupMode(TerminologySettings.CODE_LOOKUP_MODE.USE_CODESYSTEM_URL);
    }
    if ("in-memory".equals(mode)) {
      s.getEvaluationSettings().getRetrieveSettings()
          .setSearchParameterMode(RetrieveSettings.SEARCH_FILTER_MODE.FILTER_IN_MEMORY)
          .setTerminologyParameterMode(RetrieveSettings.TERMINOLOGY_FILTER_MODE.FILTER_IN_MEMORY);
    } else if (!"defaults".equals(mode) && !"server-search".equals(mode)) {
      throw new IllegalArgumentException(
          "fhirpkg.hapi.cr.settings must be 'in-memory', 'server-search' or 'defaults', not " + mode);
    }
    LOG.info("fhirpkg: clinical reasoning engine settings: {}", mode);
    return s;
  }

  /** The RestfulServer is looked up per request (it is built after this factory: no bean cycle). */
  @Bean
  public IPlanDefinitionProcessorFactory planDefinitionProcessorFactory(DaoRegistry daoRegistry,
      ObjectProvider<RestfulServer> restfulServer, CrSettings crSettings) {
    return requestDetails -> new PlanDefinitionProcessor(
        new ClinicalIntelligenceHapiFhirRepository(daoRegistry, requestDetails, restfulServer.getObject()),
        crSettings);
  }

  /** Registered on the RestfulServer by {@link FhirServerConfig#restfulServer}. */
  @Bean
  public PlanDefinitionApplyProvider planDefinitionApplyProvider(FhirContext fhirContext,
      IPlanDefinitionProcessorFactory factory) {
    if (fhirContext.getVersion().getVersion() != FhirVersionEnum.R4) {
      throw new IllegalStateException("fhirpkg.hapi.cr=true needs --fhirpkg.hapi.fhir-version=R4: "
          + "cqf-fhir-cr-hapi has no PlanDefinition/$apply provider for " + fhirContext.getVersion().getVersion());
    }
    LOG.info("fhirpkg: clinical reasoning on: PlanDefinition/$apply (cqf-fhir-cr-hapi, R4)");
    return new PlanDefinitionApplyProvider(factory);
  }
}
