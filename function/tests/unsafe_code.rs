//! Where the handler crate may hold unsafe code: the SIMD kernels module and nowhere else.
//!
//! The crate denies `unsafe_code` (Cargo.toml) so that `kernels/` can opt in with
//! `#![allow(unsafe_code)]`; every other module forbids it, which no inner `allow` can undo.
//! This test keeps that true as modules are added.

use std::path::{Path, PathBuf};

const FORBID: &str = "#![forbid(unsafe_code)]";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A binary's crate root (`bin/NAME/main.rs`).
fn is_crate_root(rel: &Path) -> bool {
    rel.file_name().is_some_and(|n| n == "main.rs")
}

/// True when `text` has the attribute as an inner attribute line (not in a comment or string).
fn forbids(text: &str) -> bool {
    text.lines().any(|l| l.trim_start().starts_with(FORBID))
}

#[test]
fn unsafe_code_is_forbidden_outside_the_kernels_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 10,
        "found only {files:?} under {}",
        src.display()
    );
    let mut missing = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src/");
        if rel.starts_with("kernels") {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read source");
        let in_binary = rel.starts_with("bin");
        if rel == Path::new("lib.rs") {
            // The library root only declares modules; it cannot forbid (that would reach into
            // `kernels`), so it must not hold unsafe code itself.
            assert!(
                !text.contains("unsafe"),
                "src/lib.rs holds unsafe code; move it into kernels/ or a module that forbids it"
            );
        } else if in_binary && !is_crate_root(rel) && rel.components().count() > 2 {
            // A module of a binary under `bin/NAME/` is covered by that binary's root.
            let root = src
                .join(rel.parent().expect("in bin/NAME/"))
                .join("main.rs");
            assert!(
                forbids(&std::fs::read_to_string(&root).expect("read binary root")),
                "{} is not covered: {} lacks {FORBID}",
                rel.display(),
                root.display()
            );
        } else if !forbids(&text) {
            missing.push(rel.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "these modules lack {FORBID}: {missing:?}"
    );
}

#[test]
fn the_kernels_module_is_the_one_place_that_allows_unsafe_code() {
    let kernels = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/kernels/mod.rs");
    let text = std::fs::read_to_string(kernels).expect("read kernels/mod.rs");
    assert!(
        text.contains("#![allow(unsafe_code)]"),
        "kernels/mod.rs no longer opts in"
    );
    assert!(!forbids(&text));
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("read Cargo.toml");
    assert!(
        manifest.contains("unsafe_code = \"deny\""),
        "the crate-wide lint must stay `deny` (an unsafe block outside kernels/ must not compile)"
    );
}
