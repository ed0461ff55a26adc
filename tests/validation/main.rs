//! The validation corpus: every manifest in `invalid/` carries one mistake and is refused with
//! the message its `# expect:` header names; every pair in `immutable/` changes a field AWS
//! cannot change and is refused; every pair in `mutable/` is a legitimate update and passes;
//! every example in `examples/` passes. The checks are those the API server applies, run
//! against the generated CRDs in `crds/`.

mod admission;

use std::path::{Path, PathBuf};

use admission::Admission;
use kube::core::cel;
use lmi_operator::api::{CapacityProvider, SimilarityFunction};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn admission() -> Admission {
    Admission::from_crd_dir(&root().join("crds"))
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read manifest");
    serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
}

/// The `# expect: <path>: <message>` header of a corpus file.
struct Expectation {
    path: String,
    message: String,
}

fn expectation(path: &Path) -> Expectation {
    let text = std::fs::read_to_string(path).expect("read manifest");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{}: no `# expect:` header", path.display()));
    let (field, message) = line
        .split_once(": ")
        .unwrap_or_else(|| panic!("{}: header must be `path: message`", path.display()));
    Expectation {
        path: field.to_owned(),
        message: message.to_owned(),
    }
}

/// Checks that `errors` are all about the expected field and one carries the expected message;
/// returns a description of the mismatch otherwise.
fn mismatch(file: &Path, expect: &Expectation, errors: &[String]) -> Option<String> {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.unwrap_or_default();
    if errors.is_empty() {
        return Some(format!("{name}: accepted, expected `{}`", expect.message));
    }
    let off_target: Vec<&String> = errors
        .iter()
        .filter(|e| !e.starts_with(&expect.path))
        .collect();
    if !off_target.is_empty() {
        return Some(format!(
            "{name}: errors outside {} (a corpus file must hold one mistake): {off_target:?}",
            expect.path
        ));
    }
    if !errors.iter().any(|e| e.contains(&expect.message)) {
        return Some(format!(
            "{name}: no error says `{}`; got {errors:?}",
            expect.message
        ));
    }
    None
}

#[test]
fn examples_pass_every_check_and_parse_as_api_types() {
    let admission = admission();
    let mut checked = 0;
    for file in yaml_files("examples") {
        for doc in documents(&file) {
            match doc["kind"].as_str() {
                Some("CapacityProvider") => {
                    serde_json::from_value::<CapacityProvider>(doc.clone())
                        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                }
                Some("SimilarityFunction") => {
                    serde_json::from_value::<SimilarityFunction>(doc.clone())
                        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                }
                _ => continue,
            }
            let errors = admission.create(&doc);
            assert!(errors.is_empty(), "{}: {errors:?}", file.display());
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "expected at least 4 example resources, checked {checked}"
    );
}

#[test]
fn invalid_corpus_is_refused_with_the_expected_message() {
    let admission = admission();
    let files = yaml_files("tests/validation/invalid");
    assert!(
        files.len() >= 30,
        "the corpus has {} files, want ≥ 30",
        files.len()
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let expect = expectation(file);
            let docs = documents(file);
            assert_eq!(docs.len(), 1, "{}: one document", file.display());
            mismatch(file, &expect, &admission.create(&docs[0]))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn immutable_field_changes_are_refused() {
    let admission = admission();
    let files = yaml_files("tests/validation/immutable");
    assert!(files.len() >= 8, "want ≥ 8 immutable update pairs");
    let failures: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let expect = expectation(file);
            let docs = documents(file);
            assert_eq!(docs.len(), 2, "{}: old and new", file.display());
            // Both sides are valid on their own: only the transition is refused.
            for doc in &docs {
                let errors = admission.create(doc);
                assert!(errors.is_empty(), "{}: {errors:?}", file.display());
            }
            mismatch(file, &expect, &admission.update(&docs[0], &docs[1]))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn mutable_field_changes_are_accepted() {
    let admission = admission();
    let files = yaml_files("tests/validation/mutable");
    assert!(files.len() >= 4, "want ≥ 4 mutable update pairs");
    for file in files {
        let docs = documents(&file);
        assert_eq!(docs.len(), 2, "{}: old and new", file.display());
        assert_ne!(
            docs[0],
            docs[1],
            "{}: the pair must change something",
            file.display()
        );
        let errors = admission.update(&docs[0], &docs[1]);
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
    }
}

/// Every CEL rule must compile, use only variables a CRD rule may use, and stay within the
/// API server's cost budget (an over-budget rule makes the API server refuse the whole CRD).
#[test]
fn every_cel_rule_compiles_and_fits_the_cost_budget() {
    let admission = admission();
    for kind in ["CapacityProvider", "SimilarityFunction"] {
        let schema = admission.schema(kind);
        let compiled = cel::compile_schema(schema);
        let errors: Vec<String> = compiled
            .compilation_errors()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{kind}: {errors:?}");
        let mut rules = Vec::new();
        collect_rules(schema, &mut rules);
        assert!(
            rules.len() >= 10,
            "{kind}: found only {} rules",
            rules.len()
        );
        for rule in rules {
            let warnings = cel::analyze_rule(&rule, &compiled, cel::ScopeContext::CrdValidation);
            let serious: Vec<_> = warnings
                .iter()
                .filter(|w| match w.kind {
                    cel::WarningKind::CostExceeded => true,
                    // kube-cel's scope check does not know macro-bound variables (`k` in
                    // `self.all(k, ...)`); anything else out of scope is a real mistake.
                    cel::WarningKind::WrongScope => !binds_macro_variable(&rule, &w.message),
                    _ => false,
                })
                .collect();
            assert!(serious.is_empty(), "{kind}: `{rule}`: {serious:?}");
        }
    }
}

/// Whether the variable a scope warning names (`variable 'k' is not ...`) is bound by a CEL
/// macro in the rule (`.all(k,`, `.exists(k,`, `.map(k,`, `.filter(k,`, `.exists_one(k,`).
fn binds_macro_variable(rule: &str, message: &str) -> bool {
    let Some(var) = message.split('\'').nth(1) else {
        return false;
    };
    ["all", "exists", "exists_one", "map", "filter"]
        .iter()
        .any(|m| rule.contains(&format!(".{m}({var},")))
}

fn collect_rules(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(rules)) = map.get("x-kubernetes-validations") {
                out.extend(
                    rules
                        .iter()
                        .filter_map(|r| r["rule"].as_str().map(str::to_owned)),
                );
            }
            map.values().for_each(|v| collect_rules(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_rules(v, out)),
        _ => {}
    }
}

/// The operator reads specs through serde defaults; the API server stores schema defaults.
/// They must agree, or the operator would act on values the user never sees.
#[test]
fn serde_defaults_equal_schema_defaults() {
    let admission = admission();
    let minimal = |file: &str| documents(&root().join("tests/validation/mutable").join(file));
    let cp = &minimal("cp-tags.yaml")[0];
    let defaulted = cel::apply_defaults(admission.schema("CapacityProvider"), cp);
    assert_ne!(&defaulted, cp, "the schema has defaults to apply");
    let by_serde: CapacityProvider = serde_json::from_value(cp.clone()).expect("parse");
    let by_schema: CapacityProvider = serde_json::from_value(defaulted).expect("parse");
    assert_eq!(by_serde, by_schema);

    let sf = &minimal("fn-memory.yaml")[0];
    let defaulted = cel::apply_defaults(admission.schema("SimilarityFunction"), sf);
    assert_ne!(&defaulted, sf, "the schema has defaults to apply");
    let by_serde: SimilarityFunction = serde_json::from_value(sf.clone()).expect("parse");
    let by_schema: SimilarityFunction = serde_json::from_value(defaulted).expect("parse");
    assert_eq!(by_serde, by_schema);
}
