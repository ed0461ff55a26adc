//! Kubeconfig files pointing kubectl and kube at the server (plain HTTP; no credentials, or a
//! bearer token the server issued).

use std::path::Path;

/// The kubeconfig text for `server` (e.g. `http://127.0.0.1:8080`), with `token` if given.
pub fn render(server: &str, token: Option<&str>) -> String {
    let user = match token {
        // A token is hex: nothing in it needs YAML quoting, but quote it anyway.
        Some(token) => format!("{{token: {}}}", crate::status::go_quote(token)),
        None => "{}".to_string(),
    };
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
  user: {user}
"
    )
}

/// Writes the kubeconfig atomically (a reader never sees half a file).
pub fn write(path: &Path, server: &str) -> std::io::Result<()> {
    write_with_token(path, server, None)
}

/// Writes the kubeconfig atomically, with `token` as the user's credential if given.
pub fn write_with_token(path: &Path, server: &str, token: Option<&str>) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, render(server, token))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn kube_parses_the_kubeconfig() {
        let text = super::render("http://127.0.0.1:1234", None);
        let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("lmi-test"));
        assert_eq!(
            kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("http://127.0.0.1:1234")
        );
        let text = super::render("http://127.0.0.1:1234", Some("lmi-test-abc"));
        let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        assert!(user.token.is_some());
    }
}
