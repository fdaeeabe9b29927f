// Translates a CQL file to ELM JSON with the official translator (cql-to-elm-jvm 4.4.0, FHIR 4.0.1
// model info and FHIRHelpers from quick 4.4.0, locators on), for the evaluator's test fixture:
//   L=tests/interop/cqf-apply/target/lib; CP=$(ls $L/*.jar | tr '\n' ':')
//   javac -d /tmp/t -cp "$CP" Translate.java && java -cp "$CP:/tmp/t" Translate ContractSample.cql \
//     | grep -v '^[0-9][0-9]:' > ContractSample.json     (drop the translator's log lines)
import org.cqframework.cql.cql2elm.*;
import org.cqframework.cql.cql2elm.quick.FhirLibrarySourceProvider;
public class Translate {
  public static void main(String[] a) throws Exception {
    ModelManager mm = new ModelManager();
    CqlCompilerOptions o = CqlCompilerOptions.defaultOptions().withOptions(CqlCompilerOptions.Options.EnableLocators);
    LibraryManager lm = new LibraryManager(mm, o);
    lm.getLibrarySourceLoader().registerProvider(new FhirLibrarySourceProvider());
    CqlTranslator t = CqlTranslator.fromFile(a[0], lm);
    for (var e : t.getErrors()) System.err.println("ERROR " + e.getMessage() + " " + e.getLocator());
    System.out.println(t.toJson());
  }
}
