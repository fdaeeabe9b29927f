package org.fhirpkg.interop;

import java.io.BufferedReader;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

import org.hl7.fhir.r5.elementmodel.Manager.FhirFormat;
import org.hl7.fhir.r5.extensions.ExtensionDefinitions;
import org.hl7.fhir.r5.extensions.ExtensionUtilities;
import org.hl7.fhir.r5.formats.IParser.OutputStyle;
import org.hl7.fhir.r5.formats.JsonParser;
import org.hl7.fhir.r5.model.Bundle;
import org.hl7.fhir.r5.model.CodeType;
import org.hl7.fhir.r5.model.OperationOutcome;
import org.hl7.fhir.r5.terminologies.utilities.TerminologyCache;
import org.hl7.fhir.r5.utils.validation.constants.BestPracticeWarningLevel;
import org.hl7.fhir.r5.utils.validation.constants.ReferenceValidationPolicy;
import org.hl7.fhir.utilities.ByteProvider;
import org.hl7.fhir.utilities.FhirPublication;
import org.hl7.fhir.utilities.TimeTracker;
import org.hl7.fhir.utilities.VersionUtilities;
import org.hl7.fhir.utilities.http.ManagedWebAccess;
import org.hl7.fhir.utilities.settings.FhirSettings;
import org.hl7.fhir.validation.Content;
import org.hl7.fhir.validation.IgLoader;
import org.hl7.fhir.validation.ValidationEngine;
import org.hl7.fhir.validation.instance.advisor.BasePolicyAdvisorForFullValidation;
import org.hl7.fhir.validation.service.StandAloneValidatorFetcher;
import org.hl7.fhir.validation.service.model.InstanceValidatorParameters;
import org.hl7.fhir.validation.service.utils.ValidationLevel;

/**
 * fhirpkg's command-line front end on the HL7 FHIR validator library
 * (ca.uhn.hapi.fhir:org.hl7.fhir.validation).
 *
 * <p>The official {@code validator_cli.jar} is not on Maven Central (the artifact
 * {@code org.hl7.fhir.validation.cli} stops at 4.0.3 there), so this small main class sets up the
 * library's {@link ValidationEngine} much as the official CLI does and validates every source with
 * it in ONE JVM. Option names follow the official CLI where they exist.
 *
 * <p>Differences from the official CLI, on purpose:
 * <ul>
 *   <li>{@code -tx} defaults to {@code n/a} (no terminology server): this is for offline CI.</li>
 *   <li>The terminology and extension packages loaded are {@code hl7.terminology.r5#7.0.1} and
 *       {@code hl7.fhir.uv.extensions.r5#5.3.0-ballot-tc1} (the versions the npm registry serves);
 *       the library's own defaults (6.2.0 / 5.2.0) are not to be had offline.</li>
 *   <li>The output is always a Bundle (type collection) of OperationOutcomes, one per source, each
 *       carrying the {@code operationoutcome-file} extension, even for a single source.</li>
 *   <li>A source that makes the validator throw gets an OperationOutcome with one {@code fatal}
 *       issue (code {@code exception}, message id {@code FHIRPKG_HARNESS}); the others still run.</li>
 *   <li>{@code -sources FILE} reads more sources from a file, one path per line.</li>
 *   <li>{@code -no-preload}: do not load the sources' conformance resources into the context before
 *       validating (the official CLI always does, so that sources can depend on each other).</li>
 *   <li>{@code -stdin}: load once, then serve requests read from standard input, one per line:
 *       {@code VALIDATE <sources-file> <output-file>} answers {@code @@DONE <errors> <output-file>}
 *       (or {@code @@FAIL <message>}) on standard output; {@code QUIT} ends. {@code @@READY} is
 *       printed once the engine is loaded. Each request is validated on a fresh copy of the loaded
 *       engine (unless {@code -no-preload}), so requests do not see each other's resources.</li>
 * </ul>
 *
 * <p>Exit codes (batch mode): 0 = no source has errors, 1 = at least one error/fatal issue,
 * 2 = usage error or engine start-up failure (no output written).
 */
public final class Hl7Validate {

  private static final String USAGE = String.join("\n",
      "Usage: java -jar validator_cli.jar [options] SOURCE...",
      "  -version V            FHIR version (default 5.0.0)",
      "  -tx URL|n/a           terminology server (default n/a: none)",
      "  -txCache DIR          terminology cache folder",
      "  -tho-version V        hl7.terminology.r5 version to load (default 7.0.1; 'none' to skip)",
      "  -extensions-version V hl7.fhir.uv.extensions.r5 version (default 5.3.0-ballot-tc1; 'none')",
      "  -ig ID#VER|DIR|TGZ    load an IG/package (repeatable)",
      "  -profile URL          validate against this profile too (repeatable)",
      "  -output FILE.json     write a Bundle of OperationOutcomes (default: stdout)",
      "  -fhir-settings FILE   fhir-settings.json (prohibitNetworkAccess, ignoreDefaultPackageServers, ...)",
      "  -no-http-access       prohibit every http(s) access",
      "  -level hints|warnings|errors",
      "  -best-practice ignore|hint|warning|error",
      "  -check-references     follow references",
      "  -allow-example-urls true|false",
      "  -show-times           per-source timing in the log",
      "  -no-preload           do not pre-load the sources' conformance resources",
      "  -sources FILE         read more sources from FILE, one path per line",
      "  -stdin                server mode: read VALIDATE <sources-file> <output-file> lines",
      "  -help");

  /** The real standard output; System.out is pointed at stderr so library chatter stays off it. */
  private static PrintStream proto;

  private Hl7Validate() {
  }

  public static void main(String[] args) {
    proto = new PrintStream(new FileOutputStream(java.io.FileDescriptor.out), true, StandardCharsets.UTF_8);
    System.setOut(System.err);
    int rc;
    try {
      rc = run(args);
    } catch (UsageException e) {
      if (e.getMessage().equals("help")) {
        proto.println(USAGE);
        rc = 0;
      } else {
        System.err.println("hl7-validate: " + e.getMessage());
        System.err.println(USAGE);
        rc = 2;
      }
    } catch (Throwable t) {
      System.err.println("hl7-validate: engine failure: " + t);
      t.printStackTrace(System.err);
      rc = 2;
    }
    proto.flush();
    System.exit(rc);
  }

  static final class UsageException extends Exception {
    UsageException(String m) {
      super(m);
    }
  }

  /** Everything the command line says. */
  static final class Options {
    String version = "5.0.0";
    String tx = "n/a";
    String txCache;
    String output;
    String settings;
    boolean noHttp;
    boolean checkReferences;
    boolean showTimes;
    boolean preload = true;
    boolean stdin;
    Boolean allowExampleUrls;
    String level;
    String bestPractice;
    String thoVersion = "7.0.1";
    String extVersion = "5.3.0-ballot-tc1";
    final List<String> igs = new ArrayList<>();
    final List<String> profiles = new ArrayList<>();
    final List<String> sources = new ArrayList<>();
  }

  private static String need(String[] args, int i) throws UsageException {
    if (i >= args.length) {
      throw new UsageException("option " + args[i - 1] + " needs a value");
    }
    return args[i];
  }

  static Options parse(String[] args) throws UsageException, IOException {
    Options o = new Options();
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      switch (a) {
        case "-version" -> o.version = need(args, ++i);
        case "-tx" -> o.tx = need(args, ++i);
        case "-txCache" -> o.txCache = need(args, ++i);
        case "-tho-version" -> o.thoVersion = need(args, ++i);
        case "-extensions-version" -> o.extVersion = need(args, ++i);
        case "-ig", "-defn" -> o.igs.add(need(args, ++i));
        case "-profile" -> o.profiles.add(need(args, ++i));
        case "-output" -> o.output = need(args, ++i);
        case "-fhir-settings" -> o.settings = need(args, ++i);
        case "-no-http-access" -> o.noHttp = true;
        case "-level" -> o.level = need(args, ++i);
        case "-best-practice" -> o.bestPractice = need(args, ++i);
        case "-check-references" -> o.checkReferences = true;
        case "-allow-example-urls" -> o.allowExampleUrls = Boolean.valueOf(need(args, ++i));
        case "-show-times" -> o.showTimes = true;
        case "-no-preload" -> o.preload = false;
        case "-stdin" -> o.stdin = true;
        case "-sources" -> o.sources.addAll(readList(need(args, ++i)));
        case "-help", "-h", "-?" -> throw new UsageException("help");
        default -> {
          if (a.startsWith("-") && !new File(a).exists()) {
            throw new UsageException("unknown option " + a);
          }
          o.sources.add(a);
        }
      }
    }
    if (o.sources.isEmpty() && !o.stdin) {
      throw new UsageException("no source to validate");
    }
    return o;
  }

  private static List<String> readList(String file) throws IOException {
    List<String> res = new ArrayList<>();
    for (String line : Files.readAllLines(Path.of(file), StandardCharsets.UTF_8)) {
      if (!line.isBlank()) {
        res.add(line.strip());
      }
    }
    return res;
  }

  static int run(String[] args) throws Exception {
    Options o = parse(args);

    // Network policy first: nothing below may open a socket when it is prohibited.
    if (o.settings != null) {
      if (!new File(o.settings).isFile()) {
        throw new UsageException("cannot find fhir-settings file " + o.settings);
      }
      FhirSettings.setExplicitFilePath(o.settings);
    }
    ManagedWebAccess.loadFromFHIRSettings();
    if (o.noHttp) {
      ManagedWebAccess.setAccessPolicy(ManagedWebAccess.WebAccessPolicy.PROHIBITED);
    }

    long t0 = System.nanoTime();
    String sv = VersionUtilities.getCurrentPackageVersion(o.version);
    InstanceValidatorParameters ip = new InstanceValidatorParameters();
    ip.setShowMessageIds(true);
    for (String p : o.profiles) {
      ip.addProfile(p);
    }
    if (o.level != null) {
      ip.setLevel(ValidationLevel.fromCode(o.level));
    }
    if (o.bestPractice != null) {
      ip.setBestPracticeLevel(switch (o.bestPractice.toLowerCase(Locale.ROOT)) {
        case "ignore" -> BestPracticeWarningLevel.Ignore;
        case "hint" -> BestPracticeWarningLevel.Hint;
        case "error" -> BestPracticeWarningLevel.Error;
        case "warning" -> BestPracticeWarningLevel.Warning;
        default -> throw new UsageException("bad -best-practice " + o.bestPractice);
      });
    }
    if (o.allowExampleUrls != null) {
      ip.setAllowExampleUrls(o.allowExampleUrls);
    }

    String definitions = VersionUtilities.packageForVersion(sv) + "#" + VersionUtilities.getCurrentVersion(sv);
    ValidationEngine engine = buildEngine(o, definitions, sv, ip, new TimeTracker());
    long loadedMs = (System.nanoTime() - t0) / 1_000_000;
    System.err.println("hl7-validate: engine loaded in " + loadedMs + " ms");

    if (!o.stdin) {
      return validateBatch(engine, o.sources, o.output, o.preload, ip, loadedMs) > 0 ? 1 : 0;
    }
    proto.println("@@READY " + loadedMs);
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      line = line.strip();
      if (line.isEmpty()) {
        continue;
      }
      if (line.equals("QUIT")) {
        break;
      }
      String[] parts = line.split("\t");
      if (parts.length != 3 || !parts[0].equals("VALIDATE")) {
        proto.println("@@FAIL bad request (want VALIDATE<TAB>sources-file<TAB>output-file): " + line);
        continue;
      }
      try {
        long tc = System.nanoTime();
        ValidationEngine e = o.preload ? new ValidationEngine(engine) : engine;
        System.err.println("  request: engine copy " + (System.nanoTime() - tc) / 1_000_000 + " ms");
        int errors = validateBatch(e, readList(parts[1]), parts[2], o.preload, ip, loadedMs);
        proto.println("@@DONE " + errors + "\t" + parts[2]);
      } catch (Throwable t) {
        t.printStackTrace(System.err);
        proto.println("@@FAIL " + t.toString().replace('\n', ' '));
      }
    }
    return 0;
  }

  /** Validates the sources and writes the Bundle; returns the number of error/fatal issues. */
  static int validateBatch(ValidationEngine engine, List<String> sources, String output, boolean preload,
      InstanceValidatorParameters ip, long loadedMs) throws IOException {
    long t1 = System.nanoTime();
    List<byte[]> contents = new ArrayList<>();
    IgLoader loader = preload ? new IgLoader(engine.getPcm(), engine.getContext(), engine.getVersion()) : null;
    for (String src : sources) {
      byte[] bytes = null;
      try {
        bytes = Files.readAllBytes(Path.of(src));
      } catch (IOException e) {
        // reported per file below
      }
      contents.add(bytes);
      if (loader != null && bytes != null && formatOf(src) != null) {
        try {
          Content c = new Content();
          c.setFocus(ByteProvider.forBytes(bytes));
          c.setCntType(formatOf(src));
          loader.load(c);
        } catch (Throwable t) {
          // like the official CLI: a source that cannot be pre-loaded is still validated below
          System.err.println("  pre-load of " + src + " failed (it is still validated): " + t);
        }
      }
    }

    Bundle results = new Bundle();
    results.setType(Bundle.BundleType.COLLECTION);
    int errors = 0;
    int withErrors = 0;
    for (int i = 0; i < sources.size(); i++) {
      String src = sources.get(i);
      OperationOutcome oo;
      FhirFormat fmt = formatOf(src);
      if (contents.get(i) == null) {
        oo = fatal("cannot read file " + src, "not-found");
      } else if (fmt == null) {
        oo = fatal("unsupported file type (want .json or .xml): " + src, "not-supported");
      } else {
        long tv = System.nanoTime();
        try {
          oo = engine.validate(src, ByteProvider.forBytes(contents.get(i)), fmt, ip, null);
        } catch (Throwable t) {
          oo = fatal("validator exception: " + t, "exception");
        }
        System.err.printf(Locale.ROOT, "  validated %s in %d ms (%d issues)%n", src,
            (System.nanoTime() - tv) / 1_000_000, oo.getIssue().size());
      }
      oo.setText(null); // the rendered narrative is large and of no use to the harness
      ExtensionUtilities.addStringExtension(oo, ExtensionDefinitions.EXT_OO_FILE, src);
      int e = 0;
      for (OperationOutcome.OperationOutcomeIssueComponent iss : oo.getIssue()) {
        if (iss.getSeverity() == OperationOutcome.IssueSeverity.ERROR
            || iss.getSeverity() == OperationOutcome.IssueSeverity.FATAL) {
          e++;
        }
      }
      errors += e;
      withErrors += e > 0 ? 1 : 0;
      results.addEntry().setResource(oo);
    }
    long validatedMs = (System.nanoTime() - t1) / 1_000_000;

    JsonParser json = new JsonParser();
    json.setOutputStyle(OutputStyle.NORMAL);
    if (output != null) {
      File out = new File(output);
      File tmp = new File(out.getAbsolutePath() + ".part");
      try (OutputStream os = new FileOutputStream(tmp)) {
        json.compose(os, results);
      }
      Files.move(tmp.toPath(), out.toPath(), StandardCopyOption.REPLACE_EXISTING);
    } else {
      json.compose(proto, results);
      proto.println();
    }
    Runtime rt = Runtime.getRuntime();
    System.err.printf(Locale.ROOT,
        "hl7-validate: summary: sources=%d with_errors=%d errors=%d load_ms=%d validate_ms=%d heap_used_mb=%d%n",
        sources.size(), withErrors, errors, loadedMs, validatedMs,
        (rt.totalMemory() - rt.freeMemory()) / (1024 * 1024));
    return errors;
  }

  /**
   * Builds the engine as the official CLI's ValidationService does (core package, terminology and
   * extension packages, -ig packages, stand-alone fetcher and full-validation policy advisor,
   * snapshots), except that the terminology and extension package versions are ours to choose.
   */
  private static ValidationEngine buildEngine(Options o, String definitions, String sv,
      InstanceValidatorParameters ip, TimeTracker tt) throws Exception {
    System.err.println("  Loading FHIR " + sv + " from " + definitions);
    ValidationEngine engine = new ValidationEngine.ValidationEngineBuilder()
        .withDefaultInstanceValidatorParameters(new InstanceValidatorParameters(ip))
        .withVersion(sv)
        .withTimeTracker(tt)
        .withUserAgent("fhirpkg-interop/1.0")
        .withThoVersion("none".equals(o.thoVersion) ? null : o.thoVersion)
        .withExtensionsVersion("none".equals(o.extVersion) ? null : o.extVersion)
        .fromSource(definitions);
    String txMsg = engine.setTerminologyServer("n/a".equals(o.tx) ? null : o.tx, null,
        FhirPublication.fromCode(sv), false);
    System.err.println("  Terminology server: " + txMsg);
    IgLoader igLoader = new IgLoader(engine.getPcm(), engine.getContext(), engine.getVersion(), false);
    for (String ig : o.igs) {
      igLoader.loadIg(engine.getIgs(), engine.getBinaries(), ig, false);
    }
    System.err.println("  Packages: " + engine.getContext().loadedPackageSummary());
    if (o.txCache != null) {
      engine.getContext().initTxCache(new TerminologyCache(new Object(), o.txCache));
    }
    engine.setShowTimes(o.showTimes);
    engine.setLocale(Locale.ENGLISH);
    engine.setLanguage("en");
    StandAloneValidatorFetcher fetcher = new StandAloneValidatorFetcher(engine.getPcm(), engine.getContext(), engine);
    engine.setFetcher(fetcher);
    engine.getContext().setLocator(fetcher);
    engine.setPolicyAdvisor(fetcher);
    fetcher.setReferencePolicy(o.checkReferences ? ReferenceValidationPolicy.CHECK_VALID : ReferenceValidationPolicy.IGNORE);
    engine.getPolicyAdvisor().setPolicyAdvisor(new BasePolicyAdvisorForFullValidation(
        engine.getPolicyAdvisor().getReferencePolicy(), engine.getCheckReferencesTo()));
    engine.prepare();
    return engine;
  }

  private static FhirFormat formatOf(String src) {
    String s = src.toLowerCase(Locale.ROOT);
    if (s.endsWith(".json")) {
      return FhirFormat.JSON;
    }
    if (s.endsWith(".xml")) {
      return FhirFormat.XML;
    }
    return null;
  }

  private static OperationOutcome fatal(String msg, String code) {
    OperationOutcome oo = new OperationOutcome();
    OperationOutcome.OperationOutcomeIssueComponent iss = oo.addIssue();
    iss.setSeverity(OperationOutcome.IssueSeverity.FATAL);
    iss.setCode(OperationOutcome.IssueType.fromCode(code));
    iss.getDetails().setText(msg);
    iss.addExtension(ExtensionDefinitions.EXT_ISSUE_MSG_ID, new CodeType("FHIRPKG_HARNESS"));
    return oo;
  }
}
