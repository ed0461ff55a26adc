//! The examples as the sandbox applies them: the placeholder ids of `examples/` (which stand
//! for the user's own VPC) replaced by the ids of the sandbox network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// What the sandbox reads from the examples before creating its fixtures.
#[derive(Debug, Default)]
pub struct Examples {
    /// `(file name, text)`, in file-name order (`00-namespaces.yaml` first).
    pub files: Vec<(String, String)>,
    /// IAM role ARNs the manifests name, deduplicated.
    pub role_arns: Vec<String>,
    /// `(catalog URI, dimensions)` of every SimilarityFunction.
    pub catalogs: Vec<(String, u32)>,
    /// `(namespace, name)` of every SimilarityFunction.
    pub functions: Vec<(String, String)>,
    /// Names of every CapacityProvider.
    pub providers: Vec<String>,
}

/// The stem every placeholder id of the examples shares (`subnet-0a1b2c3d4e5f60001`, ...).
const PLACEHOLDER_STEM: &str = "0a1b2c3d4e5f6";

/// Reads `dir/*.yaml`.
pub fn read(dir: &Path) -> anyhow::Result<Examples> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read the examples in {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("{} holds no .yaml manifests", dir.display());
    }
    let mut examples = Examples::default();
    for path in paths {
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .with_context(|| format!("{} is not valid YAML", path.display()))?;
        for doc in &docs {
            collect(doc, &mut examples);
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        examples.files.push((name, text));
    }
    examples.role_arns.sort();
    examples.role_arns.dedup();
    Ok(examples)
}

fn collect(doc: &Value, examples: &mut Examples) {
    let kind = doc["kind"].as_str().unwrap_or_default();
    let name = doc["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &doc["spec"];
    for key in ["operatorRoleArn", "roleArn"] {
        if let Some(arn) = spec[key].as_str() {
            examples.role_arns.push(arn.to_owned());
        }
    }
    match kind {
        "CapacityProvider" => examples.providers.push(name.to_owned()),
        "SimilarityFunction" => {
            let namespace = doc["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned();
            examples.functions.push((namespace, name.to_owned()));
            if let (Some(uri), Some(dimensions)) = (
                spec["catalog"]["uri"].as_str(),
                spec["catalog"]["dimensions"].as_u64(),
            ) && !examples.catalogs.iter().any(|(u, _)| u == uri)
            {
                examples.catalogs.push((
                    uri.to_owned(),
                    u32::try_from(dimensions).unwrap_or(u32::MAX),
                ));
            }
        }
        _ => {}
    }
}

/// The mapping from the examples' placeholder ids to the sandbox network: `vpc-…0001`, the
/// private subnets `subnet-…0001`.. in zone order, and `sg-…0001`.
pub fn placeholders(vpc: &str, private_subnets: &[&str], group: &str) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    ids.insert(format!("vpc-{PLACEHOLDER_STEM}0001"), vpc.to_owned());
    ids.insert(format!("sg-{PLACEHOLDER_STEM}0001"), group.to_owned());
    for (index, subnet) in private_subnets.iter().enumerate() {
        ids.insert(
            format!("subnet-{PLACEHOLDER_STEM}{:04}", index + 1),
            (*subnet).to_owned(),
        );
    }
    ids
}

/// Replaces the placeholder ids in `text`; refuses ids the sandbox does not provide.
pub fn render(file: &str, text: &str, ids: &BTreeMap<String, String>) -> anyhow::Result<String> {
    let mut out = text.to_owned();
    for (placeholder, id) in ids {
        out = out.replace(placeholder, id);
    }
    if let Some(at) = out.find(PLACEHOLDER_STEM) {
        let start = out[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .map_or(0, |i| i + 1);
        let end = out[at..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .map_or(out.len(), |i| at + i);
        bail!(
            "{file} uses {}, which the sandbox network does not provide (it maps {})",
            &out[start..end],
            ids.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(out)
}

/// Writes the rendered examples into `dir` (emptied first).
pub fn write_rendered(
    examples: &Examples,
    ids: &BTreeMap<String, String>,
    dir: &Path,
) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("empty {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    for (name, text) in &examples.files {
        let rendered = render(name, text, ids)?;
        std::fs::write(dir.join(name), rendered)
            .with_context(|| format!("write {}", dir.join(name).display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> BTreeMap<String, String> {
        placeholders("vpc-123", &["subnet-a", "subnet-b", "subnet-c"], "sg-9")
    }

    #[test]
    fn placeholder_ids_become_sandbox_ids() {
        let text = "subnetIds:\n  - subnet-0a1b2c3d4e5f60002\nvpcId: vpc-0a1b2c3d4e5f60001\n\
                    securityGroupIds: [sg-0a1b2c3d4e5f60001]\n";
        let out = render("x.yaml", text, &ids()).expect("renders");
        assert_eq!(
            out,
            "subnetIds:\n  - subnet-b\nvpcId: vpc-123\nsecurityGroupIds: [sg-9]\n"
        );
    }

    #[test]
    fn an_unknown_placeholder_is_named() {
        let err = render("p.yaml", "ids: [subnet-0a1b2c3d4e5f60009]\n", &ids())
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("p.yaml uses subnet-0a1b2c3d4e5f60009"),
            "{err}"
        );
    }

    #[test]
    fn the_repository_examples_are_understood_and_fully_rendered() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let examples = read(&dir).expect("examples parse");
        assert!(!examples.providers.is_empty(), "no providers in examples/");
        assert!(!examples.functions.is_empty(), "no functions in examples/");
        assert!(
            examples
                .catalogs
                .iter()
                .all(|(uri, dims)| uri.starts_with("s3://") && *dims > 0),
            "{:?}",
            examples.catalogs
        );
        for (name, text) in &examples.files {
            let out = render(name, text, &ids()).expect("every placeholder is mapped");
            assert!(!out.contains(PLACEHOLDER_STEM));
        }
    }
}
