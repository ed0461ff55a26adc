//! The validation corpus against the real kube-apiserver with the generated CRDs (`crds/`):
//! every manifest in `invalid/` carries one mistake and is refused on the field its
//! `# expect: <field>[: <rule message>]` header names (and, for a CEL rule, with the rule's own
//! message — the schema's checks are worded by the API server, so only their field is compared);
//! every pair in `immutable/` changes a field AWS cannot change and is refused; every pair in
//! `mutable/` is a legitimate update and passes; every example in `examples/` passes; and the
//! API server fills in the same defaults the operator assumes.
//!
//! Each test starts its own control plane; the objects are named after their corpus file.

use std::path::{Path, PathBuf};

use kube::Client;
use lmi_operator::api::{CapacityProvider, SimilarityFunction};
use lmi_test_support::kube::{ControlPlane, ControlPlaneOptions};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
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

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The `# expect: <field>[: <message>]` header of a corpus file.
struct Expectation {
    field: String,
    message: Option<String>,
}

fn expectation(path: &Path) -> Expectation {
    let text = std::fs::read_to_string(path).expect("read manifest");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{}: no `# expect:` header", path.display()));
    match line.split_once(": ") {
        Some((field, message)) => Expectation {
            field: field.to_owned(),
            message: Some(message.to_owned()),
        },
        None => Expectation {
            field: line.to_owned(),
            message: None,
        },
    }
}

/// A control plane with `crds/` installed, its admin client, and the examples' namespaces.
struct Server {
    plane: ControlPlane,
    client: Client,
}

impl Server {
    async fn start() -> Server {
        let plane = ControlPlane::start(ControlPlaneOptions::default())
            .await
            .expect("start the control plane");
        plane
            .install_crds(&root().join("crds"))
            .await
            .expect("the API server accepts crds/ as they are");
        let client = plane.admin_client().await.expect("admin client");
        let server = Server { plane, client };
        for ns in ["similarity-prod", "similarity-dev", "team"] {
            let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            server
                .send("POST", "/api/v1/namespaces", &body, false)
                .await
                .expect("create a namespace");
        }
        server
    }

    /// Sends `body` with strict field validation (what kubectl sends), optionally as a dry run.
    async fn send(
        &self,
        method: &str,
        uri: &str,
        body: &Value,
        dry_run: bool,
    ) -> Result<Value, Box<kube::core::Status>> {
        let dry = if dry_run { "&dryRun=All" } else { "" };
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{uri}?fieldValidation=Strict{dry}"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("JSON"))
            .expect("request");
        match self.client.request::<Value>(request).await {
            Ok(v) => Ok(v),
            Err(kube::Error::Api(status)) => Err(status),
            Err(e) => panic!(
                "{uri}: {e} (API server log in {})",
                self.plane.dir().display()
            ),
        }
    }

    async fn create(
        &self,
        object: &Value,
        dry_run: bool,
    ) -> Result<Value, Box<kube::core::Status>> {
        self.send("POST", &url(object, false), object, dry_run)
            .await
    }
}

/// The collection URL of `object` (or its own URL with `named`).
fn url(object: &Value, named: bool) -> String {
    let plural = match object["kind"].as_str() {
        Some("CapacityProvider") => "capacityproviders",
        Some("SimilarityFunction") => "similarityfunctions",
        Some("Namespace") => return "/api/v1/namespaces".into(),
        other => panic!("unexpected kind {other:?}"),
    };
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .map(|ns| format!("/namespaces/{ns}"))
        .unwrap_or_default();
    let name = if named {
        format!(
            "/{}",
            object["metadata"]["name"].as_str().unwrap_or_default()
        )
    } else {
        String::new()
    };
    format!("/apis/lmi.dev/v1alpha1{namespace}/{plural}{name}")
}

/// Every line of a refusal: its message and each cause as `field: message`.
fn lines(status: &kube::core::Status) -> Vec<String> {
    let mut all = vec![status.message.clone()];
    if let Some(details) = &status.details {
        all.extend(
            details
                .causes
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message)),
        );
    }
    all
}

/// Why a refusal does not match the file's expectation, if it does not: it must be a 422
/// (invalid) or 400 (strict decoding: an unknown field) naming the field, and carry the CEL
/// rule's message when the header gives one.
fn mismatch(file: &Path, status: &kube::core::Status) -> Option<String> {
    let expect = expectation(file);
    let name = stem(file);
    let all = lines(status);
    let on_field = all.iter().any(|l| {
        l.starts_with(&expect.field)
            || l.contains(&format!("\"{}", expect.field))
            || l.contains(&format!(": {}", expect.field))
    });
    if !(status.code == 422 || status.code == 400) || !on_field {
        return Some(format!(
            "{name}: refused with {} but not on {}: {all:?}",
            status.code, expect.field
        ));
    }
    match &expect.message {
        Some(message) if !all.iter().any(|l| l.contains(message)) => {
            Some(format!("{name}: no error says {message:?}: {all:?}"))
        }
        _ => None,
    }
}

/// The object of a corpus file, named after the file (the pairs of one directory live side by
/// side in one API server).
fn named(mut object: Value, file: &Path) -> Value {
    object["metadata"]["name"] = Value::String(stem(file));
    object
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_are_accepted_and_parse_as_api_types() {
    let server = Server::start().await;
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
            if let Err(status) = server.create(&doc, false).await {
                panic!("{}: refused: {:?}", file.display(), lines(&status));
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "expected at least 4 example resources, checked {checked}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_corpus_is_refused_on_its_field() {
    let server = Server::start().await;
    let files = yaml_files("tests/validation/invalid");
    assert!(
        files.len() >= 30,
        "the corpus has {} files, want ≥ 30",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let docs = documents(file);
        assert_eq!(docs.len(), 1, "{}: one document", file.display());
        match server.create(&named(docs[0].clone(), file), true).await {
            Ok(_) => failures.push(format!("{}: accepted", stem(file))),
            Err(status) => failures.extend(mismatch(file, &status)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Creates the old side of each pair for real, then sends the new side as an update; returns
/// the update's outcome per file.
async fn updates(
    server: &Server,
    dir: &str,
) -> Vec<(PathBuf, Result<Value, Box<kube::core::Status>>)> {
    let mut outcomes = Vec::new();
    for file in yaml_files(dir) {
        let docs = documents(&file);
        assert_eq!(docs.len(), 2, "{}: old and new", file.display());
        assert_ne!(
            docs[0],
            docs[1],
            "{}: the pair must change something",
            file.display()
        );
        let old = named(docs[0].clone(), &file);
        let mut new = named(docs[1].clone(), &file);
        // Both sides are valid on their own: only the transition may be refused.
        if let Err(status) = server.create(&new, true).await {
            panic!(
                "{}: the new side alone is refused: {:?}",
                file.display(),
                lines(&status)
            );
        }
        let created = server
            .create(&old, false)
            .await
            .unwrap_or_else(|s| panic!("{}: old side refused: {:?}", file.display(), lines(&s)));
        new["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"].clone();
        let outcome = server.send("PUT", &url(&new, true), &new, false).await;
        outcomes.push((file, outcome));
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutable_field_changes_are_refused() {
    let server = Server::start().await;
    let outcomes = updates(&server, "tests/validation/immutable").await;
    assert!(outcomes.len() >= 8, "want ≥ 8 immutable update pairs");
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|(file, outcome)| match outcome {
            Ok(_) => Some(format!("{}: immutable change accepted", stem(file))),
            Err(status) => mismatch(file, status),
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutable_field_changes_are_accepted() {
    let server = Server::start().await;
    let outcomes = updates(&server, "tests/validation/mutable").await;
    assert!(outcomes.len() >= 4, "want ≥ 4 mutable update pairs");
    for (file, outcome) in outcomes {
        if let Err(status) = outcome {
            panic!(
                "{}: legitimate update refused: {:?}",
                file.display(),
                lines(&status)
            );
        }
    }
}

/// The operator reads specs through serde defaults; the API server stores the schema's
/// defaults. They must agree, or the operator would act on values the user never sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serde_defaults_equal_the_defaults_the_api_server_stores() {
    let server = Server::start().await;
    let minimal = |file: &str| {
        let path = root().join("tests/validation/mutable").join(file);
        named(documents(&path).remove(0), &path)
    };
    let cp = minimal("cp-tags.yaml");
    let stored = server.create(&cp, true).await.expect("accepted");
    assert_ne!(
        stored["spec"], cp["spec"],
        "the schema has defaults to apply"
    );
    let by_serde: CapacityProvider = serde_json::from_value(cp).expect("parse");
    let by_server: CapacityProvider = serde_json::from_value(stored).expect("parse");
    assert_eq!(by_serde.spec, by_server.spec);

    let sf = minimal("fn-memory.yaml");
    let stored = server.create(&sf, true).await.expect("accepted");
    assert_ne!(
        stored["spec"], sf["spec"],
        "the schema has defaults to apply"
    );
    let by_serde: SimilarityFunction = serde_json::from_value(sf).expect("parse");
    let by_server: SimilarityFunction = serde_json::from_value(stored).expect("parse");
    assert_eq!(by_serde.spec, by_server.spec);
}
