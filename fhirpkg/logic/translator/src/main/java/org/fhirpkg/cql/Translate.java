// fhirpkg's front end on the official CQL-to-ELM translator (cql-to-elm-jvm; FHIR model info and
// FHIRHelpers from quick).  Usage:  java -jar cql_translator.jar CQL_DIR OUT_DIR NAME[@VERSION]...
// For each library (looked up in CQL_DIR, then in the translator's FHIR distribution) it writes
// OUT_DIR/NAME.cql (the source it translated), OUT_DIR/NAME.json (the ELM) and OUT_DIR/NAME.types.tsv
// (each definition's name and result type).  Errors go to stderr
// as "NAME:LINE:COL: message"; the exit code is 1 when any library has errors.
package org.fhirpkg.cql;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import kotlinx.io.Source;
import kotlinx.io.Utf8Kt;
import kotlinx.io.files.PathsJvmKt;
import org.cqframework.cql.cql2elm.*;
import org.cqframework.cql.cql2elm.quick.FhirLibrarySourceProvider;
import org.cqframework.cql.cql2elm.tracking.Trackable;
import org.hl7.elm.r1.VersionedIdentifier;

public final class Translate {
  /** cqframework's defaults, which the CPG IGs and the IG publisher use: EnableAnnotations,
   *  EnableLocators, DisableListDemotion, DisableListPromotion, signature level Overloads. */
  static CqlCompilerOptions options() {
    return CqlCompilerOptions.defaultOptions();
  }

  public static void main(String[] args) throws Exception {
    if (args.length < 3) {
      System.err.println("usage: cql_translator CQL_DIR OUT_DIR NAME[@VERSION]...");
      System.exit(2);
    }
    Path out = Path.of(args[1]);
    Files.createDirectories(out);
    LibraryManager lm = new LibraryManager(new ModelManager(), options());
    lm.getLibrarySourceLoader().registerProvider(new DefaultLibrarySourceProvider(PathsJvmKt.Path(args[0])));
    lm.getLibrarySourceLoader().registerProvider(new FhirLibrarySourceProvider());
    boolean failed = false;
    for (int i = 2; i < args.length; i++) {
      String[] nv = args[i].split("@", 2);
      VersionedIdentifier id = new VersionedIdentifier().withId(nv[0]).withVersion(nv.length > 1 ? nv[1] : null);
      Source src = lm.getLibrarySourceLoader().getLibrarySource(id);
      if (src == null) {
        System.err.println(nv[0] + ":0:0: library not found in " + args[0] + " nor in the translator's distribution");
        failed = true;
        continue;
      }
      String text = Utf8Kt.readString(src);
      CqlTranslator t = CqlTranslator.fromText(text, lm);
      if (!t.getErrors().isEmpty()) {
        for (CqlCompilerException e : t.getErrors()) {
          var loc = e.getLocator();
          String lib = loc != null && loc.getLibrary() != null ? loc.getLibrary().getId() : nv[0];
          System.err.println(lib + ":" + (loc == null ? 0 : loc.getStartLine()) + ":"
              + (loc == null ? 0 : loc.getStartChar()) + ": " + e.getMessage());
        }
        failed = true;
        continue;
      }
      Files.writeString(out.resolve(nv[0] + ".cql"), text, StandardCharsets.UTF_8);
      Files.writeString(out.resolve(nv[0] + ".json"), t.toJson(), StandardCharsets.UTF_8);
      // the result type of each definition (the ELM carries it only with EnableResultTypes)
      StringBuilder types = new StringBuilder();
      for (var def : t.toELM().getStatements().getDef()) {
        var type = Trackable.INSTANCE.getResultType(def);
        types.append(def.getName()).append('\t').append(type == null ? "" : type.toString()).append('\n');
      }
      Files.writeString(out.resolve(nv[0] + ".types.tsv"), types.toString(), StandardCharsets.UTF_8);
    }
    System.exit(failed ? 1 : 0);
  }
}
