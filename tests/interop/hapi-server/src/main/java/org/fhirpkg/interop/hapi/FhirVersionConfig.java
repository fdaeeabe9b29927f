package org.fhirpkg.interop.hapi;

import ca.uhn.fhir.jpa.config.r4.JpaR4Config;
import ca.uhn.fhir.jpa.config.r5.JpaR5Config;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;

/**
 * Which FHIR version the server speaks: R5 (default) or R4 with {@code --fhirpkg.hapi.fhir-version=R4}.
 * One jar, two flavours: only the matching HAPI JPA configuration is imported.
 */
public final class FhirVersionConfig {

  private FhirVersionConfig() {
  }

  /** FHIR R5 (5.0.0): HAPI's JpaR5Config. */
  @Configuration
  @ConditionalOnProperty(name = "fhirpkg.hapi.fhir-version", havingValue = "R5", matchIfMissing = true)
  @Import(JpaR5Config.class)
  public static class R5 {
  }

  /** FHIR R4 (4.0.1): HAPI's JpaR4Config. */
  @Configuration
  @ConditionalOnProperty(name = "fhirpkg.hapi.fhir-version", havingValue = "R4")
  @Import(JpaR4Config.class)
  public static class R4 {
  }
}
