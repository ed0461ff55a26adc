//! The project's CRDs (`crds/`) and validation corpus (`tests/validation/`) against the server:
//! every invalid manifest is refused with an error on the expected field (and, for CEL rules, the
//! rule's own message); every immutable change is refused; every legitimate update passes.

use std::path::{Path, PathBuf};

use lmi_test_apiserver::TestApiServer;
use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A server with the project's CRDs from `crds/`.
pub async fn lmi_server() -> TestApiServer {
    let s = TestApiServer::start().await.unwrap();
    let n = s.load_crds(&repo_root().join("crds")).unwrap();
    assert_eq!(
        n, 2,
        "crds/ holds the CapacityProvider and SimilarityFunction CRDs"
    );
    s
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

fn docs(p: &Path) -> Vec<Value> {
    serde_saphyr::from_multiple(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn expectation(p: &Path) -> (String, String) {
    let text = std::fs::read_to_string(p).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("# expect: "))
        .unwrap();
    let (path, msg) = line.split_once(": ").unwrap();
    (path.into(), msg.into())
}

/// Phrases the corpus uses for OpenAPI checks (worded by a JSON-schema library; the API server
/// words them its own way, so only the field is compared for these).
fn is_schema_phrase(msg: &str) -> bool {
    [
        "does not match",
        "is not one of",
        "greater than the maximum",
        "less than the minimum",
        "has more than",
        "has less than",
        "is a required property",
        "is not of type",
        "unknown field",
        "is longer than",
    ]
    .iter()
    .any(|p| msg.contains(p))
}

fn url(obj: &Value, name_in_url: bool) -> String {
    let kind = obj["kind"].as_str().unwrap();
    let name = obj["metadata"]["name"].as_str().unwrap();
    let base = match kind {
        "CapacityProvider" => "/apis/lmi.dev/v1alpha1/capacityproviders".to_string(),
        "SimilarityFunction" => format!(
            "/apis/lmi.dev/v1alpha1/namespaces/{}/similarityfunctions",
            obj["metadata"]["namespace"].as_str().unwrap_or("default")
        ),
        other => panic!("unexpected kind {other}"),
    };
    if name_in_url {
        format!("{base}/{name}")
    } else {
        base
    }
}

async fn send(
    s: &TestApiServer,
    method: &str,
    uri: &str,
    body: &Value,
) -> Result<Value, kube::core::Status> {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("{uri}?fieldValidation=Strict"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .unwrap();
    match s.client().request::<Value>(req).await {
        Ok(v) => Ok(v),
        Err(kube::Error::Api(st)) => Err(*st),
        Err(e) => panic!("{uri}: {e}"),
    }
}

/// Every line of a refusal: the message and each cause as `field: message`.
fn lines(st: &kube::core::Status) -> Vec<String> {
    let mut v = vec![st.message.clone()];
    if let Some(d) = &st.details {
        v.extend(
            d.causes
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message)),
        );
    }
    v
}

fn check_refusal(file: &Path, st: &kube::core::Status, problems: &mut Vec<String>) {
    let (path, msg) = expectation(file);
    let name = file.file_name().unwrap().to_string_lossy();
    let ls = lines(st);
    let on_field = ls.iter().any(|l| {
        l.starts_with(&path) || l.contains(&format!("\"{path}")) || l.contains(&format!(": {path}"))
    });
    if !(st.code == 422 || st.code == 400) || !on_field {
        problems.push(format!(
            "{name}: refused with {} but not on {path}: {ls:?}",
            st.code
        ));
    } else if !is_schema_phrase(&msg) && !ls.iter().any(|l| l.contains(&msg)) {
        problems.push(format!("{name}: message {msg:?} missing from {ls:?}"));
    }
}

async fn prepare_namespaces(s: &TestApiServer) {
    for ns in ["similarity-prod", "similarity-dev", "team"] {
        let body =
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        send(s, "POST", "/api/v1/namespaces", &body).await.unwrap();
    }
}

#[tokio::test]
async fn every_invalid_manifest_is_refused_on_its_field() {
    let s = lmi_server().await;
    prepare_namespaces(&s).await;
    let mut problems = Vec::new();
    let all = files("tests/validation/invalid");
    assert!(all.len() > 20);
    for f in &all {
        let obj = docs(f).remove(0);
        match send(&s, "POST", &url(&obj, false), &obj).await {
            Ok(_) => problems.push(format!("{}: accepted", f.display())),
            Err(st) => check_refusal(f, &st, &mut problems),
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} corpus files:\n{}",
        problems.len(),
        all.len(),
        problems.join("\n")
    );
}

#[tokio::test]
async fn immutable_changes_are_refused_and_mutable_ones_pass() {
    let s = lmi_server().await;
    prepare_namespaces(&s).await;
    let mut problems = Vec::new();
    for (dir, refused) in [
        ("tests/validation/immutable", true),
        ("tests/validation/mutable", false),
    ] {
        for f in files(dir) {
            let d = docs(&f);
            let (old, mut new) = (d[0].clone(), d[1].clone());
            let created = match send(&s, "POST", &url(&old, false), &old).await {
                Ok(c) => c,
                Err(st) => {
                    problems.push(format!(
                        "{}: old version refused: {}",
                        f.display(),
                        st.message
                    ));
                    continue;
                }
            };
            new["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"].clone();
            match (send(&s, "PUT", &url(&new, true), &new).await, refused) {
                (Ok(_), true) => {
                    problems.push(format!("{}: immutable change accepted", f.display()))
                }
                (Err(st), true) => check_refusal(&f, &st, &mut problems),
                (Err(st), false) => problems.push(format!(
                    "{}: legitimate update refused: {}",
                    f.display(),
                    st.message
                )),
                (Ok(_), false) => {}
            }
            send(&s, "DELETE", &url(&old, true), &serde_json::json!({}))
                .await
                .unwrap();
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
