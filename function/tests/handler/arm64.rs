//! The arm64 package (Graviton instances) under the same emulator, its `bootstrap` run through
//! qemu's user-mode emulator (Debian's `qemu-user-static`): init, one exact query, one bad input.
//!
//! The zip comes from `scripts/build-handler` (`$LMI_HANDLER_DIST`, else `dist/handler/`). CI
//! builds it and sets `LMI_REQUIRE_HANDLER_ZIPS=1`, so a missing zip or qemu fails there; a plain
//! `cargo test` without them says so and checks nothing.

use std::path::PathBuf;

use lmi_test_support::lambda::Arch;
use serde_json::json;

use crate::fixture::{self, DIM, Function, Outcome, base_env, brute_force};

fn arm64_package() -> Option<PathBuf> {
    let dist = std::env::var_os("LMI_HANDLER_DIST").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/handler"),
        PathBuf::from,
    );
    let zip = dist.join("bootstrap-arm64.zip");
    let qemu = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|dir| dir.join("qemu-aarch64-static").is_file());
    let required = std::env::var_os("LMI_REQUIRE_HANDLER_ZIPS").is_some();
    match (zip.is_file(), qemu) {
        (true, true) => Some(zip),
        (false, _) if required => panic!("{} is missing: run scripts/build-handler", zip.display()),
        (_, false) if required => {
            panic!("qemu-aarch64-static is missing: scripts/fetch-tools installs qemu-user-static")
        }
        _ => {
            eprintln!(
                "skipped: needs {} and qemu-aarch64-static (scripts/build-handler, scripts/fetch-tools)",
                zip.display()
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_arm64_package_answers_under_qemu() {
    let Some(zip) = arm64_package() else { return };
    let products = fixture::products(41, 300, DIM);
    let path = fixture::catalog_file(&products, DIM);
    let env = base_env(&path.to_string_lossy(), "http://127.0.0.1:9");
    let f = Function::until_loaded(Function::start_package(&zip, Arch::Arm64, env).await).await;
    // It really is the aarch64 build that answers: its scan kernels are NEON's.
    let lines = f
        .json_lines_until(std::time::Duration::from_secs(60), |l| {
            l["message"] == "ready"
        })
        .await;
    let ready = lines
        .iter()
        .find(|l| l["message"] == "ready")
        .unwrap_or_else(|| panic!("no 'ready' line: {lines:#?}"));
    assert_eq!(ready["f32"], "Neon", "{ready}");

    let p = &products[17];
    let r = f
        .invoke(&json!({"productId": p.id, "topK": 5}))
        .await
        .response();
    fixture::assert_results(
        &r,
        &brute_force(&products, &p.vector, 5, &[], None, &[p.id.as_str()]),
    );

    match f.invoke(&json!({"vector": [1.0, 2.0]})).await {
        Outcome::Error { header, body } => {
            assert_eq!(header, "InvalidRequest", "{body}");
            assert!(
                body["errorMessage"]
                    .as_str()
                    .is_some_and(|m| m.contains("vector")),
                "{body}"
            );
        }
        other => panic!("expected a function error, got {other:?}"),
    }
}
