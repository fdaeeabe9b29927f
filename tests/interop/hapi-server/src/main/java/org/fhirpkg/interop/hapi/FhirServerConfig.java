package org.fhirpkg.interop.hapi;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.api.IDaoRegistry;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.config.util.ResourceCountCacheUtil;
import ca.uhn.fhir.jpa.dao.FulltextSearchSvcImpl;
import ca.uhn.fhir.jpa.dao.IFulltextSearchSvc;
import ca.uhn.fhir.jpa.dao.search.HSearchSortHelperImpl;
import ca.uhn.fhir.jpa.dao.search.IHSearchSortHelper;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.config.SubscriptionSettings;
import ca.uhn.fhir.jpa.packages.loader.PackageLoaderSvc;
import ca.uhn.fhir.jpa.provider.DaoRegistryResourceSupportedSvc;
import ca.uhn.fhir.jpa.provider.IJpaSystemProvider;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.jpa.search.IStaleSearchDeletingSvc;
import ca.uhn.fhir.jpa.search.StaleSearchDeletingSvcImpl;
import ca.uhn.fhir.jpa.util.ResourceCountCache;
import ca.uhn.fhir.rest.api.EncodingEnum;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.api.IResourceSupportedSvc;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import jakarta.persistence.EntityManagerFactory;
import java.util.HashMap;
import java.util.Map;
import javax.sql.DataSource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import ca.uhn.fhir.rest.server.interceptor.RequestValidatingInterceptor;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;
import org.opencds.cqf.fhir.cr.hapi.r4.plandefinition.PlanDefinitionApplyProvider;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.boot.ApplicationRunner;
import org.springframework.boot.web.servlet.ServletRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;
import org.springframework.context.annotation.Primary;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;
import org.springframework.transaction.annotation.EnableTransactionManagement;

/**
 * The JPA server wiring: HAPI's JPA configuration for the FHIR version ({@link FhirVersionConfig}:
 * JpaR5Config, or JpaR4Config with {@code --fhirpkg.hapi.fhir-version=R4}) plus the beans the JPA
 * server expects its host application to provide (the same set hapi-fhir-jpaserver-starter's
 * StarterJpaConfig provides).
 */
@Configuration
@EnableTransactionManagement
@Import({FhirVersionConfig.R5.class, FhirVersionConfig.R4.class, ThreadPoolFactoryConfig.class,
    JpaBatch2Config.class, Batch2JobsConfig.class, SubscriptionChannelConfig.class, ClinicalReasoningConfig.class})
public class FhirServerConfig {

  private static final Logger LOG = LoggerFactory.getLogger(FhirServerConfig.class);

  @Bean
  public JpaStorageSettings jpaStorageSettings(
      @Value("${fhirpkg.hapi.allow-external-references:true}") boolean allowExternalReferences,
      @Value("${fhirpkg.hapi.enforce-referential-integrity-on-write:true}") boolean refIntegrityOnWrite,
      @Value("${fhirpkg.hapi.validate-resource-status-for-package-upload:true}") boolean validateStatus,
      @Value("${fhirpkg.hapi.auto-create-placeholder-reference-targets:false}") boolean placeholders) {
    JpaStorageSettings s = new JpaStorageSettings();
    // client-assigned ids must contain a letter (PUT Type/abc-1 creates; PUT Type/123 is refused)
    s.setResourceClientIdStrategy(JpaStorageSettings.ClientIdStrategyEnum.ALPHANUMERIC);
    // canonical/absolute references (http://...) are stored instead of refused
    s.setAllowExternalReferences(allowExternalReferences);
    s.setEnforceReferentialIntegrityOnWrite(refIntegrityOnWrite);
    s.setAutoCreatePlaceholderReferenceTargets(placeholders);
    // HAPI's default (true) silently skips package resources whose status is not 'active'
    s.setValidateResourceStatusForPackageUpload(validateStatus);
    s.setDeleteEnabled(true);
    s.setAllowMultipleDelete(true);
    s.setExpungeEnabled(true);
    s.setReuseCachedSearchResultsForMillis(null); // tests search right after writing: no stale cache
    LOG.info("fhirpkg HAPI settings: allowExternalReferences={} enforceReferentialIntegrityOnWrite={} "
        + "validateResourceStatusForPackageUpload={}", allowExternalReferences, refIntegrityOnWrite, validateStatus);
    return s;
  }

  @Bean
  public PartitionSettings partitionSettings() {
    return new PartitionSettings();
  }

  @Bean
  public SubscriptionSettings subscriptionSettings() {
    return new SubscriptionSettings();
  }

  @Bean
  public IFulltextSearchSvc fullTextSearchSvc() {
    return new FulltextSearchSvcImpl();
  }

  @Bean
  public IHSearchSortHelper hSearchSortHelper(ISearchParamRegistry searchParamRegistry) {
    return new HSearchSortHelperImpl(searchParamRegistry);
  }

  @Bean
  public IStaleSearchDeletingSvc staleSearchDeletingSvc() {
    return new StaleSearchDeletingSvcImpl();
  }

  @Bean
  public DatabaseBackedPagingProvider databaseBackedPagingProvider() {
    DatabaseBackedPagingProvider p = new DatabaseBackedPagingProvider();
    p.setDefaultPageSize(50);
    p.setMaximumPageSize(500);
    return p;
  }

  @Bean
  public IResourceSupportedSvc resourceSupportedSvc(IDaoRegistry daoRegistry) {
    return new DaoRegistryResourceSupportedSvc(daoRegistry);
  }

  @Bean(name = "myResourceCountsCache")
  public ResourceCountCache resourceCountsCache(IFhirSystemDao<?, ?> systemDao) {
    return ResourceCountCacheUtil.newResourceCountCache(systemDao);
  }

  @Primary
  @Bean
  public LocalContainerEntityManagerFactoryBean entityManagerFactory(
      ConfigurableListableBeanFactory beanFactory, DataSource dataSource, FhirContext fhirContext,
      JpaStorageSettings storageSettings) {
    LocalContainerEntityManagerFactoryBean emf =
        HapiEntityManagerFactoryUtil.newEntityManagerFactory(beanFactory, fhirContext, storageSettings);
    Map<String, Object> props = new HashMap<>();
    props.put("hibernate.dialect", "ca.uhn.fhir.jpa.model.dialect.HapiFhirH2Dialect");
    props.put("hibernate.hbm2ddl.auto", "update");
    props.put("hibernate.archive.scanner", "org.hibernate.boot.archive.scan.internal.DisabledScanner");
    props.put("hibernate.implicit_naming_strategy",
        "org.springframework.boot.orm.jpa.hibernate.SpringImplicitNamingStrategy");
    props.put("hibernate.physical_naming_strategy",
        "org.hibernate.boot.model.naming.CamelCaseToUnderscoresNamingStrategy");
    props.put("hibernate.format_sql", "false");
    props.put("hibernate.show_sql", "false");
    props.put("hibernate.jdbc.batch_size", "20");
    props.put("hibernate.cache.use_query_cache", "false");
    props.put("hibernate.cache.use_second_level_cache", "false");
    props.put("hibernate.cache.use_structured_entries", "false");
    props.put("hibernate.cache.use_minimal_puts", "false");
    props.put("hibernate.search.enabled", "false");
    emf.setPersistenceUnitName("HAPI_PU");
    emf.setJpaPropertyMap(props);
    emf.setDataSource(dataSource);
    return emf;
  }

  @Primary
  @Bean
  public JpaTransactionManager transactionManager(EntityManagerFactory entityManagerFactory) {
    JpaTransactionManager tm = new JpaTransactionManager();
    tm.setEntityManagerFactory(entityManagerFactory);
    return tm;
  }

  /** The FHIR REST API: one provider per resource type, plus the system provider (transactions). */
  /**
   * Request validation ({@code --fhirpkg.hapi.request-validation=true}): every create, update and
   * transaction is validated by HAPI's FhirInstanceValidator on the server's validation support
   * chain (core definitions plus what the server stores); an error rejects the request (HTTP 412).
   */
  @Bean
  @ConditionalOnProperty(name = "fhirpkg.hapi.request-validation", havingValue = "true")
  public RequestValidatingInterceptor requestValidatingInterceptor(IValidationSupport validationSupport) {
    RequestValidatingInterceptor interceptor = new RequestValidatingInterceptor();
    interceptor.addValidatorModule(new FhirInstanceValidator(validationSupport));
    interceptor.setFailOnSeverity(ResultSeverityEnum.ERROR);
    LOG.info("fhirpkg: request validation on (requests with errors are rejected)");
    return interceptor;
  }

  @Bean
  public RestfulServer restfulServer(IFhirSystemDao<?, ?> systemDao, ResourceProviderFactory resourceProviderFactory,
      IJpaSystemProvider jpaSystemProvider, JpaStorageSettings storageSettings,
      ISearchParamRegistry searchParamRegistry, IValidationSupport validationSupport,
      DatabaseBackedPagingProvider pagingProvider, ObjectProvider<RequestValidatingInterceptor> validation,
      ObjectProvider<PlanDefinitionApplyProvider> apply) {
    RestfulServer server = new RestfulServer(systemDao.getContext());
    validation.ifAvailable(server::registerInterceptor);
    server.registerProviders(resourceProviderFactory.createProviders());
    server.registerProvider(jpaSystemProvider);
    apply.ifAvailable(server::registerProvider); // --fhirpkg.hapi.cr=true (ClinicalReasoningConfig)
    server.setServerConformanceProvider(new JpaCapabilityStatementProvider(
        server, systemDao, storageSettings, searchParamRegistry, validationSupport));
    server.setPagingProvider(pagingProvider);
    server.setDefaultResponseEncoding(EncodingEnum.JSON);
    server.setDefaultPrettyPrint(false);
    return server;
  }

  @Bean
  public ServletRegistrationBean<RestfulServer> fhirServlet(RestfulServer restfulServer) {
    ServletRegistrationBean<RestfulServer> reg = new ServletRegistrationBean<>(restfulServer, "/fhir/*");
    reg.setName("fhir");
    reg.setLoadOnStartup(1);
    return reg;
  }

  /** No package server: packages.fhir.org is unreachable, so HAPI must never try it. */
  @Bean
  public ApplicationRunner offlinePackageServers(PackageLoaderSvc packageLoaderSvc) {
    return args -> {
      packageLoaderSvc.getPackageServers().clear();
      LOG.info("fhirpkg: package servers cleared; packages are installed only from uploaded bytes");
    };
  }
}
