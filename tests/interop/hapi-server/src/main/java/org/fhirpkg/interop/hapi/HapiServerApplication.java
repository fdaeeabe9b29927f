package org.fhirpkg.interop.hapi;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.autoconfigure.quartz.QuartzAutoConfiguration;
import org.springframework.boot.autoconfigure.thymeleaf.ThymeleafAutoConfiguration;
import org.springframework.context.annotation.Import;

/**
 * fhirpkg's HAPI FHIR JPA test server for FHIR R5: in-memory H2, REST API at {@code /fhir},
 * package installation at {@code POST /packages/install}.
 *
 * <p>Run: {@code java -jar target/hapi-server.jar --server.port=8080}.
 */
@SpringBootApplication(exclude = {ThymeleafAutoConfiguration.class, QuartzAutoConfiguration.class})
@Import(FhirServerConfig.class)
public class HapiServerApplication {

  public static void main(String[] args) {
    SpringApplication.run(HapiServerApplication.class, args);
  }
}
