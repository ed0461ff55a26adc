//! Kubeconfig files pointing kubectl and kube at the server (plain HTTP, no credentials).

use std::path::Path;

/// The kubeconfig text for `server` (e.g. `http://127.0.0.1:8080`).
pub fn render(server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: lmi-test
  cluster:
    server: {server}
contexts:
- name: lmi-test
  context:
    cluster: lmi-test
    user: lmi-test
    namespace: default
current-context: lmi-test
users:
- name: lmi-test
  user: {{}}
"
    )
}

/// Writes the kubeconfig atomically (a reader never sees half a file).
pub fn write(path: &Path, server: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, render(server))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn kube_parses_the_kubeconfig() {
        let text = super::render("http://127.0.0.1:1234");
        let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("lmi-test"));
        assert_eq!(
            kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("http://127.0.0.1:1234")
        );
    }
}
