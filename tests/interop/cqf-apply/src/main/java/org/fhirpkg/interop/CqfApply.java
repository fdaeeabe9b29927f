package org.fhirpkg.interop;

import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.parser.IParser;
import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.Attachment;
import org.hl7.fhir.r4.model.Bundle;
import org.hl7.fhir.r4.model.CanonicalType;
import org.hl7.fhir.r4.model.CarePlan;
import org.hl7.fhir.r4.model.Library;
import org.hl7.fhir.r4.model.OperationOutcome;
import org.hl7.fhir.r4.model.PlanDefinition;
import org.hl7.fhir.r4.model.PlanDefinition.PlanDefinitionActionComponent;
import org.hl7.fhir.r4.model.RequestGroup;
import org.hl7.fhir.r4.model.RequestGroup.RequestGroupActionComponent;
import org.hl7.fhir.r4.model.Resource;
import org.cqframework.cql.cql2elm.CompilerOptions;
import org.cqframework.cql.cql2elm.CqlCompilerOptions;
import org.cqframework.cql.cql2elm.LibraryBuilder;
import org.opencds.cqf.fhir.cql.engine.retrieve.RetrieveSettings;
import org.opencds.cqf.fhir.cql.engine.terminology.TerminologySettings;
import org.opencds.cqf.fhir.cr.CrSettings;
import org.opencds.cqf.fhir.cr.plandefinition.PlanDefinitionProcessor;
import org.opencds.cqf.fhir.utility.monad.Eithers;
import org.opencds.cqf.fhir.utility.repository.InMemoryFhirRepository;
import org.slf4j.LoggerFactory;

/**
 * fhirpkg's command-line front end on the reference implementation of PlanDefinition/$apply,
 * {@code org.opencds.cqf.fhir:cqf-fhir-cr} (FHIR R4).
 *
 * <p>Input: one R4 Bundle with the content (PlanDefinitions, ActivityDefinitions, Libraries with CQL and
 * ELM, ValueSets) and a runs file, a JSON array of
 * {@code {"name": .., "data": "<R4 Bundle of the patient's records>", "subject": "Patient/x",
 * "plans": ["<PlanDefinition canonical>", ..]}}.  Every (run, plan) is applied on its OWN
 * {@link InMemoryFhirRepository} (a deep copy of the content plus that patient's records) with its own
 * {@link CrSettings} (so the engine's library, model-resolution and value-set caches start empty): no run
 * can see another's data or state.  To show it, with {@code -repeat N} the runs are applied N times,
 * alternately in forward and reverse order, and the output says whether every pass gave the same actions.
 *
 * <p>Output (JSON, to {@code -output FILE} or stdout): per (run, plan) the CarePlan, the included actions as
 * {@code "<PlanDefinition id>#<action id>"} (nested PlanDefinitions followed), the ActivityDefinition ids of
 * the created requests, the engine's own error messages (its OperationOutcomes and WARN/ERROR log lines)
 * and the time of each measured pass.
 *
 * <p>Options: {@code -content FILE} (required), {@code -runs FILE} (required), {@code -output FILE},
 * {@code -warmup N} untimed passes first, {@code -repeat N} measured passes (default 1),
 * {@code -elm-only} removes the text/cql attachments of every Library so that the engine must run the
 * shipped ELM, and sets the engine's compiler options to the ELM's own (without it the engine translates
 * the CQL again whenever the Library has it, see {@link #settings}); {@code -share-caches} gives every run
 * the same engine settings, so compiled libraries and value-set expansions are cached across runs as in a
 * long-running server (for benchmarks only: runs are then no longer independent).
 * Exit codes: 0 = ran (errors of single runs are in the output), 2 = usage or input error.
 */
public final class CqfApply {

  public static final String CQF_FHIR_VERSION = "4.4.0";
  public static final String HAPI_VERSION = "8.8.0";

  private static final ObjectMapper JSON = new ObjectMapper();

  private CqfApply() {
  }

  /** One patient: the records and the PlanDefinitions to apply. */
  record Run(String name, Bundle data, String subject, List<String> plans) {
  }

  /** What one $apply gave, reduced to what the agreement test compares. */
  record Summary(List<String> actions, List<String> activities, List<String> errors) {
  }

  static final class UsageException extends Exception {
    UsageException(String message) {
      super(message);
    }
  }

  public static void main(String[] args) {
    long jvmStart = ManagementFactory.getRuntimeMXBean().getStartTime();
    PrintStream stdout = new PrintStream(new FileOutputStream(java.io.FileDescriptor.out), true,
        StandardCharsets.UTF_8);
    System.setOut(System.err); // library chatter stays off stdout
    int rc;
    try {
      rc = run(args, stdout, jvmStart);
    } catch (UsageException e) {
      System.err.println("cqf-apply: " + e.getMessage());
      rc = 2;
    } catch (Throwable t) {
      System.err.println("cqf-apply: internal error: " + t);
      t.printStackTrace();
      rc = 3;
    }
    System.exit(rc);
  }

  static int run(String[] args, PrintStream stdout, long jvmStart) throws Exception {
    String content = null;
    String runsFile = null;
    String output = null;
    int warmup = 0;
    int repeat = 1;
    boolean elmOnly = false;
    boolean shareCaches = false;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "-content" -> content = value(args, ++i);
        case "-runs" -> runsFile = value(args, ++i);
        case "-output" -> output = value(args, ++i);
        case "-warmup" -> warmup = count(args, ++i);
        case "-repeat" -> repeat = Math.max(1, count(args, ++i));
        case "-elm-only" -> elmOnly = true;
        case "-share-caches" -> shareCaches = true;
        default -> throw new UsageException("unknown option " + args[i]);
      }
    }
    if (content == null || runsFile == null) {
      throw new UsageException("usage: -content CONTENT.r4.json -runs RUNS.json [-output OUT.json] "
          + "[-warmup N] [-repeat N] [-elm-only] [-share-caches]");
    }
    ListAppender<ILoggingEvent> log = captureLog();
    long t0 = System.nanoTime();
    FhirContext ctx = FhirContext.forR4Cached();
    IParser parser = ctx.newJsonParser();
    Bundle contentBundle = readBundle(parser, content);
    ElmInfo elmInfo = null;
    if (elmOnly) {
      stripCql(contentBundle);
      elmInfo = elmInfo(contentBundle);
    }
    List<Run> runs = readRuns(parser, runsFile);
    final ElmInfo elm = elmInfo;
    CrSettings shared = shareCaches ? settings(elm) : null;
    double loadMs = (System.nanoTime() - t0) / 1e6;
    long loadedAt = System.currentTimeMillis();

    for (int w = 0; w < warmup; w++) {
      for (Run r : runs) {
        for (String plan : r.plans()) {
          applyOnce(ctx, contentBundle, r, plan, log, shared, elm);
        }
      }
    }

    // results[(run, plan)] from the first measured pass; every later pass must give the same summary
    Map<String, ObjectNode> results = new LinkedHashMap<>();
    Map<String, Summary> firstSummary = new LinkedHashMap<>();
    Map<String, List<Double>> millis = new LinkedHashMap<>();
    boolean consistent = true;
    List<String> inconsistencies = new ArrayList<>();
    Double firstApplyMs = null;
    for (int pass = 0; pass < repeat; pass++) {
      List<Run> order = new ArrayList<>(runs);
      if (pass % 2 == 1) {
        Collections.reverse(order);
      }
      for (Run r : order) {
        List<String> plans = new ArrayList<>(r.plans());
        if (pass % 2 == 1) {
          Collections.reverse(plans);
        }
        for (String plan : plans) {
          String key = r.name() + "\u0000" + plan;
          long s = System.nanoTime();
          Object[] out = applyOnce(ctx, contentBundle, r, plan, log, shared, elm);
          double ms = (System.nanoTime() - s) / 1e6;
          if (firstApplyMs == null) {
            firstApplyMs = ms;
          }
          millis.computeIfAbsent(key, k -> new ArrayList<>()).add(ms);
          Summary sum = (Summary) out[1];
          if (!firstSummary.containsKey(key)) {
            firstSummary.put(key, sum);
            ObjectNode node = JSON.createObjectNode();
            node.put("name", r.name());
            node.put("subject", r.subject());
            node.put("plan", plan);
            node.set("actions", JSON.valueToTree(sum.actions()));
            node.set("activities", JSON.valueToTree(sum.activities()));
            node.set("errors", JSON.valueToTree(sum.errors()));
            node.set("carePlan", out[0] == null ? null : JSON.readTree(parser.encodeResourceToString(
                (IBaseResource) out[0])));
            results.put(key, node);
          } else if (!firstSummary.get(key).equals(sum)) {
            consistent = false;
            inconsistencies.add(r.name() + " " + plan + ": pass " + (pass + 1) + " gave " + sum
                + ", pass 1 gave " + firstSummary.get(key));
          }
        }
      }
    }

    ObjectNode doc = JSON.createObjectNode();
    ObjectNode engine = doc.putObject("engine");
    engine.put("name", "org.opencds.cqf.fhir:cqf-fhir-cr");
    engine.put("version", CQF_FHIR_VERSION);
    engine.put("hapi", HAPI_VERSION);
    engine.put("fhirVersion", ctx.getVersion().getVersion().getFhirVersionString());
    engine.put("java", System.getProperty("java.version"));
    engine.put("elmOnly", elmOnly);
    engine.put("sharedCaches", shared != null);
    if (elm != null) {
      ObjectNode e = engine.putObject("elmCompilerOptions");
      e.put("translatorVersion", elm.version());
      e.put("translatorOptions", elm.options());
      e.put("signatureLevel", elm.signatureLevel());
      e.set("mismatches", JSON.valueToTree(elm.mismatches()));
    }
    ObjectNode timing = doc.putObject("timing");
    timing.put("jvmStartToLoadedMs", loadedAt - jvmStart);
    timing.put("loadMs", loadMs);
    timing.put("warmupPasses", warmup);
    timing.put("measuredPasses", repeat);
    if (firstApplyMs != null) {
      timing.put("firstApplyMs", firstApplyMs);
    }
    doc.put("consistent", consistent);
    doc.set("inconsistencies", JSON.valueToTree(inconsistencies));
    ArrayNode arr = doc.putArray("results");
    for (var e : results.entrySet()) {
      e.getValue().set("millis", JSON.valueToTree(millis.get(e.getKey())));
      arr.add(e.getValue());
    }
    String text = JSON.writerWithDefaultPrettyPrinter().writeValueAsString(doc);
    if (output != null) {
      Path out = Path.of(output);
      Path tmp = out.resolveSibling(out.getFileName() + ".tmp");
      Files.writeString(tmp, text + "\n", StandardCharsets.UTF_8);
      Files.move(tmp, out, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
          java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    } else {
      stdout.println(text);
    }
    return 0;
  }

  private static String readProblem(IOException e) {
    return e instanceof java.nio.file.NoSuchFileException || e instanceof java.io.FileNotFoundException
        ? "no such file" : e.getMessage();
  }

  private static int count(String[] args, int i) throws UsageException {
    String v = value(args, i);
    try {
      return Integer.parseInt(v);
    } catch (NumberFormatException e) {
      throw new UsageException(args[i - 1] + " needs a whole number, not '" + v + "'");
    }
  }

  private static String value(String[] args, int i) throws UsageException {
    if (i >= args.length) {
      throw new UsageException(args[i - 1] + " needs a value");
    }
    return args[i];
  }

  private static Bundle readBundle(IParser parser, String file) throws UsageException {
    try {
      IBaseResource res = parser.parseResource(Files.readString(Path.of(file), StandardCharsets.UTF_8));
      if (!(res instanceof Bundle b)) {
        throw new UsageException(file + ": not an R4 Bundle");
      }
      return b;
    } catch (IOException e) {
      throw new UsageException(file + ": " + readProblem(e));
    } catch (ca.uhn.fhir.parser.DataFormatException e) {
      throw new UsageException(file + ": " + e.getMessage());
    }
  }

  private static List<Run> readRuns(IParser parser, String file) throws UsageException {
    JsonNode root;
    try {
      root = JSON.readTree(Path.of(file).toFile());
    } catch (IOException e) {
      throw new UsageException(file + ": " + readProblem(e));
    }
    if (!root.isArray()) {
      throw new UsageException(file + ": expected a JSON array of runs");
    }
    List<Run> runs = new ArrayList<>();
    for (JsonNode n : root) {
      List<String> plans = new ArrayList<>();
      n.path("plans").forEach(p -> plans.add(p.asText()));
      String data = n.path("data").asText(null);
      String subject = n.path("subject").asText(null);
      if (data == null || subject == null || plans.isEmpty()) {
        throw new UsageException(file + ": each run needs data, subject and plans");
      }
      runs.add(new Run(n.path("name").asText(data), readBundle(parser, data), subject, plans));
    }
    return runs;
  }

  /** The translator's annotation (CqlToElmInfo) shared by the Libraries' ELM, and any Library that differs. */
  record ElmInfo(String version, String options, String signatureLevel, List<String> mismatches) {
  }

  static ElmInfo elmInfo(Bundle bundle) throws IOException {
    ElmInfo first = null;
    List<String> mismatches = new ArrayList<>();
    for (var e : bundle.getEntry()) {
      if (!(e.getResource() instanceof Library lib)) {
        continue;
      }
      for (Attachment a : lib.getContent()) {
        if (!"application/elm+json".equals(a.getContentType()) || a.getData() == null) {
          continue;
        }
        JsonNode info = null;
        for (JsonNode ann : JSON.readTree(a.getData()).path("library").path("annotation")) {
          if ("CqlToElmInfo".equals(ann.path("type").asText())) {
            info = ann;
          }
        }
        if (info == null) {
          mismatches.add(lib.getName() + ": no CqlToElmInfo annotation");
          continue;
        }
        ElmInfo here = new ElmInfo(info.path("translatorVersion").asText(null),
            info.path("translatorOptions").asText(""), info.path("signatureLevel").asText(null), List.of());
        if (first == null) {
          first = here;
        } else if (!first.equals(here)) {
          mismatches.add(lib.getName() + ": " + here + " differs from " + first);
        }
      }
    }
    if (first == null) {
      throw new IOException("-elm-only: no Library has application/elm+json content");
    }
    return new ElmInfo(first.version(), first.options(), first.signatureLevel(), mismatches);
  }

  /** Drop every Library's text/cql attachment: the engine can then only use the shipped ELM. */
  private static void stripCql(Bundle bundle) {
    for (var e : bundle.getEntry()) {
      if (e.getResource() instanceof Library lib) {
        List<Attachment> keep = new ArrayList<>();
        for (Attachment a : lib.getContent()) {
          if (!"text/cql".equals(a.getContentType())) {
            keep.add(a);
          }
        }
        lib.setContent(keep);
      }
    }
  }

  /**
   * Engine settings for an in-memory repository with no terminology server: value sets are expanded from
   * their compose (the package's value sets enumerate their codes, so this expansion is exact) and
   * retrieves are filtered by the CQL engine.  The defaults (AUTO) ask the repository for $expand, which
   * InMemoryFhirRepository does not implement ("Invoke is not currently supported").
   */
  static CrSettings settings(ElmInfo elm) {
    CrSettings s = CrSettings.getDefault();
    if (elm != null) {
      // The engine runs a Library's ELM only when its compiler options equal the ELM's own
      // (LibraryManager.checkBinaryCompatibility: signature level, option set, and a compatibility level equal
      // to the translator version); otherwise it translates the CQL again.  -elm-only sets them from the ELM.
      CqlCompilerOptions c = s.getEvaluationSettings().getCqlOptions().getCqlCompilerOptions();
      c.setOptions(CompilerOptions.parseCompilerOptions(elm.options()).toArray(new CqlCompilerOptions.Options[0]));
      if (elm.signatureLevel() != null) {
        c.setSignatureLevel(LibraryBuilder.SignatureLevel.valueOf(elm.signatureLevel()));
      }
      c.setCompatibilityLevel(elm.version());
    }
    s.getEvaluationSettings().getTerminologySettings()
        .setValuesetExpansionMode(TerminologySettings.VALUESET_EXPANSION_MODE.PERFORM_NAIVE_EXPANSION)
        .setValuesetMembershipMode(TerminologySettings.VALUESET_MEMBERSHIP_MODE.USE_EXPANSION)
        .setCodeLookupMode(TerminologySettings.CODE_LOOKUP_MODE.USE_CODESYSTEM_URL);
    s.getEvaluationSettings().getRetrieveSettings()
        .setSearchParameterMode(RetrieveSettings.SEARCH_FILTER_MODE.FILTER_IN_MEMORY)
        .setTerminologyParameterMode(RetrieveSettings.TERMINOLOGY_FILTER_MODE.FILTER_IN_MEMORY);
    return s;
  }

  private static ListAppender<ILoggingEvent> captureLog() {
    Logger root = (Logger) LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
    ListAppender<ILoggingEvent> appender = new ListAppender<>();
    appender.setContext(root.getLoggerContext());
    appender.start();
    root.addAppender(appender);
    return appender;
  }

  /**
   * One $apply on a fresh repository (deep copies of the content + the patient's records) with fresh
   * settings/caches.  Returns {CarePlan or null, Summary}.
   */
  static Object[] applyOnce(FhirContext ctx, Bundle content, Run run, String plan,
                            ListAppender<ILoggingEvent> log, CrSettings shared, ElmInfo elm) {
    log.list.clear();
    Bundle all = new Bundle();
    all.setType(Bundle.BundleType.COLLECTION);
    for (Bundle b : List.of(content, run.data())) {
      for (var e : b.getEntry()) {
        if (e.getResource() != null) {
          all.addEntry().setResource(e.getResource().copy());
        }
      }
    }
    var repository = new InMemoryFhirRepository(ctx, all);
    var processor = new PlanDefinitionProcessor(repository,
        shared != null ? shared : settings(elm));
    List<String> errors = new ArrayList<>();
    CarePlan carePlan = null;
    try {
      IBaseResource result = processor.apply(Eithers.forLeft3(new CanonicalType(plan)), run.subject(),
          null, null, null, null, null, null, null, null);
      carePlan = (CarePlan) result;
    } catch (Exception e) {
      errors.add("apply failed: " + e);
    }
    for (ILoggingEvent ev : new ArrayList<>(log.list)) {
      if (ev.getLevel().isGreaterOrEqual(Level.WARN)) {
        var thrown = ev.getThrowableProxy();
        errors.add(ev.getLevel() + " " + ev.getLoggerName() + ": " + ev.getFormattedMessage()
            + (thrown == null ? "" : " (" + thrown.getClassName() + ": " + thrown.getMessage() + ")"));
      }
    }
    List<String> actions = new ArrayList<>(); // one entry per included action (a list, as fhirpkg apply gives)
    List<String> activities = new ArrayList<>(); // one entry per request created
    if (carePlan != null) {
      for (Resource r : carePlan.getContained()) {
        if (r instanceof OperationOutcome oo) {
          for (var issue : oo.getIssue()) {
            errors.add("OperationOutcome " + oo.getIdPart() + ": " + issue.getDiagnostics());
          }
        }
      }
      Map<String, Resource> contained = new LinkedHashMap<>();
      carePlan.getContained().forEach(r -> contained.put(r.getIdElement().getIdPart().replaceFirst("^#", ""), r));
      PlanDefinition top = findPlan(all, plan);
      RequestGroup topGroup = null;
      for (var activity : carePlan.getActivity()) {
        String ref = activity.getReference().getReference();
        if (ref != null && contained.get(ref.replaceFirst("^#", "")) instanceof RequestGroup rg) {
          topGroup = rg;
        }
      }
      if (top == null || topGroup == null) {
        errors.add("summary: no RequestGroup for " + plan + " in the CarePlan");
      } else {
        walk(all, contained, topGroup.getAction(), top, actions, activities, errors);
      }
    }
    Collections.sort(errors);
    Collections.sort(actions);
    Collections.sort(activities);
    return new Object[] {carePlan, new Summary(List.copyOf(actions), List.copyOf(activities),
        List.copyOf(errors))};
  }

  private static void walk(Bundle all, Map<String, Resource> contained, List<RequestGroupActionComponent> acts,
                           PlanDefinition pd, List<String> actions, List<String> activities,
                           List<String> errors) {
    for (RequestGroupActionComponent a : acts) {
      if (a == null) {
        continue; // the engine leaves a null in the list for a top-level action whose condition failed
      }
      String id = a.getId();
      actions.add(pd.getIdElement().getIdPart() + "#" + id);
      PlanDefinitionActionComponent pda = findAction(pd.getAction(), id);
      if (pda == null) {
        errors.add("summary: action " + id + " is not in PlanDefinition " + pd.getIdElement().getIdPart());
      } else if (pda.hasDefinitionCanonicalType()) {
        String def = pda.getDefinitionCanonicalType().getValue();
        String ref = a.hasResource() ? a.getResource().getReference() : null;
        Resource target = ref == null ? null : contained.get(ref.replaceFirst("^#", ""));
        if (def.contains("/ActivityDefinition/")) {
          if (target == null) {
            errors.add("summary: action " + pd.getIdElement().getIdPart() + "#" + id + " created no request");
          } else {
            activities.add(lastPart(def));
          }
        } else if (def.contains("/PlanDefinition/")) {
          PlanDefinition nested = findPlan(all, def);
          if (target instanceof RequestGroup rg && nested != null) {
            walk(all, contained, rg.getAction(), nested, actions, activities, errors);
          } else {
            errors.add("summary: action " + pd.getIdElement().getIdPart() + "#" + id
                + " has no RequestGroup for " + def);
          }
        }
      }
      walk(all, contained, a.getAction(), pd, actions, activities, errors);
    }
  }

  private static String lastPart(String canonical) {
    String c = canonical.split("\\|")[0];
    return c.substring(c.lastIndexOf('/') + 1);
  }

  private static PlanDefinitionActionComponent findAction(List<PlanDefinitionActionComponent> acts, String id) {
    for (var a : acts) {
      if (id != null && id.equals(a.getId())) {
        return a;
      }
      var sub = findAction(a.getAction(), id);
      if (sub != null) {
        return sub;
      }
    }
    return null;
  }

  private static PlanDefinition findPlan(Bundle all, String canonical) {
    String url = canonical.split("\\|")[0];
    for (var e : all.getEntry()) {
      if (e.getResource() instanceof PlanDefinition pd && url.equals(pd.getUrl())) {
        return pd;
      }
    }
    return null;
  }
}
