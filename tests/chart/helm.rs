//! Running `helm` and reading what it renders.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart() -> PathBuf {
    root().join("charts/lmi-operator")
}

fn helm() -> PathBuf {
    let helm = root().join(".tools/bin/helm");
    assert!(
        helm.is_file(),
        "{} is missing: run scripts/fetch-tools (scripts/test does)",
        helm.display()
    );
    helm
}

/// Output of a helm run.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs helm with `args` (the chart path is added by the callers that need it).
pub fn run(args: &[&str]) -> Run {
    let out = Command::new(helm())
        .args(args)
        // Keep helm away from the user's repositories, caches and plugins.
        .env("HELM_CONFIG_HOME", root().join("target/helm/config"))
        .env("HELM_CACHE_HOME", root().join("target/helm/cache"))
        .env("HELM_DATA_HOME", root().join("target/helm/data"))
        .output()
        .expect("run helm");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The values every render needs on top of the chart defaults: the required cluster name.
pub const REQUIRED: &[&str] = &["--set", "clusterName=test"];

/// `helm template` of the chart into namespace `lmi-system`, with extra arguments.
pub fn template(extra: &[&str]) -> Run {
    let chart = chart();
    let mut args = vec![
        "template",
        "lmi",
        chart.to_str().expect("utf-8 path"),
        "--namespace",
        "lmi-system",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// The full values file (every optional feature on).
pub fn full_values() -> String {
    chart()
        .join("ci/full-values.yaml")
        .to_str()
        .expect("utf-8 path")
        .to_owned()
}

/// Renders and parses into objects; panics with helm's message if it fails.
pub fn render(extra: &[&str]) -> Vec<Value> {
    let run = template(extra);
    assert!(run.ok, "helm template {extra:?} failed:\n{}", run.stderr);
    parse(&run.stdout)
}

/// Multi-document YAML into objects (empty documents dropped).
pub fn parse(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .expect("rendered YAML parses")
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// The one object of `kind` (and `name` if given).
pub fn find<'a>(objects: &'a [Value], kind: &str, name: Option<&str>) -> &'a Value {
    let matches: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == kind && name.is_none_or(|n| o["metadata"]["name"] == n))
        .collect();
    assert_eq!(matches.len(), 1, "expected one {kind} {name:?}");
    matches[0]
}

pub fn kinds(objects: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    kinds.sort();
    kinds
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
