package org.fhirpkg.interop.hapi;

import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.packages.IPackageInstallerSvc;
import ca.uhn.fhir.jpa.packages.PackageInstallOutcomeJson;
import ca.uhn.fhir.jpa.packages.PackageInstallationSpec;
import java.io.ByteArrayInputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.hl7.fhir.utilities.npm.NpmPackage;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestParam;
import org.springframework.web.bind.annotation.RestController;

/**
 * {@code POST /packages/install} with an NPM package ({@code package.tgz}) as the request body:
 * installs it through HAPI's real {@link IPackageInstallerSvc}, mode STORE_AND_INSTALL by default,
 * without fetching dependencies (there is no package server). Query parameters: {@code mode}
 * (STORE_ONLY | STORE_AND_INSTALL | INSTALL_ONLY), {@code types} (comma-separated resource types to
 * install), {@code reloadExisting}, {@code validateStatus} (false: also install resources whose status
 * is not 'active'; default: the server's setting, HAPI's default true). Answers JSON:
 * {@code {name, version, installMode, installResourceTypes, validateResourceStatus, messages,
 * resourcesInstalled}} or
 * {@code {error}} with status 400 (not a package) / 500 (installation failed).
 */
@RestController
public class PackageInstallController {

  private static final Logger LOG = LoggerFactory.getLogger(PackageInstallController.class);

  /** HAPI installs only conformance types by default; our content needs these too. */
  static final List<String> DEFAULT_TYPES = List.of(
      "NamingSystem", "CodeSystem", "ValueSet", "StructureDefinition", "ConceptMap", "SearchParameter",
      "Subscription", "PlanDefinition", "ActivityDefinition", "MedicationKnowledge", "ClinicalUseDefinition",
      "Citation", "ResearchStudy", "Library", "Questionnaire", "Measure", "EvidenceVariable", "Evidence");

  private final IPackageInstallerSvc installer;
  private final JpaStorageSettings storageSettings;

  public PackageInstallController(IPackageInstallerSvc installer, JpaStorageSettings storageSettings) {
    this.installer = installer;
    this.storageSettings = storageSettings;
  }

  @PostMapping(path = "/packages/install", produces = MediaType.APPLICATION_JSON_VALUE)
  public ResponseEntity<Map<String, Object>> install(
      @RequestBody byte[] tgz,
      @RequestParam(name = "mode", defaultValue = "STORE_AND_INSTALL") String mode,
      @RequestParam(name = "types", required = false) String types,
      @RequestParam(name = "reloadExisting", defaultValue = "true") boolean reloadExisting,
      @RequestParam(name = "validateStatus", required = false) Boolean validateStatus) {
    Map<String, Object> body = new LinkedHashMap<>();
    NpmPackage npm;
    try {
      npm = NpmPackage.fromPackage(new ByteArrayInputStream(tgz));
    } catch (Exception e) {
      body.put("error", "not an NPM package (package/package.json in a .tgz): " + e.getMessage());
      return ResponseEntity.status(HttpStatus.BAD_REQUEST).body(body);
    }
    List<String> typeList = types == null || types.isBlank()
        ? new ArrayList<>(DEFAULT_TYPES)
        : new ArrayList<>(Arrays.asList(types.split(",")));
    PackageInstallationSpec spec = new PackageInstallationSpec()
        .setName(npm.name())
        .setVersion(npm.version())
        .setInstallMode(PackageInstallationSpec.InstallModeEnum.valueOf(mode))
        .setFetchDependencies(false)
        .setPackageContents(tgz);
    spec.setInstallResourceTypes(typeList);
    spec.setReloadExisting(reloadExisting);
    body.put("name", npm.name());
    body.put("version", npm.version());
    body.put("installMode", mode);
    body.put("installResourceTypes", typeList);
    // validateStatus=false installs non-'active' (e.g. draft) resources too, for this request only
    synchronized (PackageInstallController.class) {
      boolean saved = storageSettings.isValidateResourceStatusForPackageUpload();
      boolean effective = validateStatus == null ? saved : validateStatus;
      body.put("validateResourceStatus", effective);
      storageSettings.setValidateResourceStatusForPackageUpload(effective);
      try {
        return doInstall(spec, npm, body);
      } finally {
        storageSettings.setValidateResourceStatusForPackageUpload(saved);
      }
    }
  }

  private ResponseEntity<Map<String, Object>> doInstall(PackageInstallationSpec spec, NpmPackage npm,
      Map<String, Object> body) {
    try {
      PackageInstallOutcomeJson outcome = installer.install(spec);
      body.put("messages", outcome.getMessage());
      body.put("resourcesInstalled", outcome.getResourcesInstalled());
      LOG.info("fhirpkg: installed {}#{}: {}", npm.name(), npm.version(), outcome.getResourcesInstalled());
      return ResponseEntity.ok(body);
    } catch (Exception e) {
      LOG.error("fhirpkg: installing {}#{} failed", npm.name(), npm.version(), e);
      StringBuilder msg = new StringBuilder(e.toString());
      for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
        msg.append(" / caused by: ").append(c);
      }
      body.put("error", msg.toString());
      return ResponseEntity.status(HttpStatus.INTERNAL_SERVER_ERROR).body(body);
    }
  }
}
