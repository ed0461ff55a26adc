//! The handler builds bundled with the operator: `bootstrap-x86_64.zip` and
//! `bootstrap-arm64.zip` in `--handler-dir`. Each is read and hashed once and kept until its
//! file changes (size or modification time), so a reconcile knows the code hash Lambda will
//! report before making any call.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::desired::code_sha256;
use crate::api::capacity_provider::Architecture;

/// A zip starts with a local file header (or, when empty, an end-of-central-directory record).
const ZIP_MAGIC: [&[u8]; 2] = [b"PK\x03\x04", b"PK\x05\x06"];

/// One handler build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The zip.
    pub zip: Arc<Vec<u8>>,
    /// Base64 SHA-256 of the zip, as Lambda reports `CodeSha256`.
    pub sha256: String,
}

#[derive(Clone)]
struct Cached {
    modified: Option<SystemTime>,
    len: u64,
    bundle: Bundle,
}

/// The bundled handler builds, cached by file identity.
pub struct HandlerBundles {
    dir: PathBuf,
    /// One slot per architecture (see [`slot`]).
    cache: Mutex<[Option<Cached>; 2]>,
}

/// A bundled build cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("handler build {path}: {problem}")]
pub struct BundleError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

impl HandlerBundles {
    /// Builds found in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            cache: Mutex::new([None, None]),
        }
    }

    /// File name of the build for `arch`.
    pub fn file_name(arch: Architecture) -> &'static str {
        match arch {
            Architecture::X86_64 => "bootstrap-x86_64.zip",
            Architecture::Arm64 => "bootstrap-arm64.zip",
        }
    }

    /// Path of the build for `arch`.
    pub fn path(&self, arch: Architecture) -> PathBuf {
        self.dir.join(Self::file_name(arch))
    }

    /// The build for `arch`, read again only when its file changed.
    pub fn get(&self, arch: Architecture) -> Result<Bundle, BundleError> {
        let path = self.path(arch);
        let fail = |problem: String| BundleError {
            path: path.clone(),
            problem,
        };
        let meta = std::fs::metadata(&path).map_err(|e| {
            fail(format!(
                "{e}; the operator image ships the builds in --handler-dir, or set spec.code.s3"
            ))
        })?;
        let modified = meta.modified().ok();
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = &cache[slot(arch)]
                && c.modified == modified
                && c.len == meta.len()
                && modified.is_some()
            {
                return Ok(c.bundle.clone());
            }
        }
        let bundle = read(&path).map_err(fail)?;
        self.cache.lock().unwrap_or_else(|p| p.into_inner())[slot(arch)] = Some(Cached {
            modified,
            len: bundle.zip.len() as u64,
            bundle: bundle.clone(),
        });
        Ok(bundle)
    }
}

fn slot(arch: Architecture) -> usize {
    match arch {
        Architecture::X86_64 => 0,
        Architecture::Arm64 => 1,
    }
}

fn read(path: &Path) -> Result<Bundle, String> {
    let zip = std::fs::read(path).map_err(|e| e.to_string())?;
    if !ZIP_MAGIC.iter().any(|m| zip.starts_with(m)) {
        return Err("not a zip file".into());
    }
    Ok(Bundle {
        sha256: code_sha256(&zip),
        zip: Arc::new(zip),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("lmi-bundles-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir");
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn each_architecture_has_its_build_and_its_hash() {
        let dir = TempDir::new("arch");
        std::fs::write(dir.0.join("bootstrap-arm64.zip"), b"PK\x03\x04arm").expect("write");
        std::fs::write(dir.0.join("bootstrap-x86_64.zip"), b"PK\x03\x04x86").expect("write");
        let bundles = HandlerBundles::new(&dir.0);
        let arm = bundles.get(Architecture::Arm64).expect("arm64");
        let x86 = bundles.get(Architecture::X86_64).expect("x86_64");
        assert_eq!(arm.zip.as_slice(), b"PK\x03\x04arm");
        assert_eq!(arm.sha256, code_sha256(b"PK\x03\x04arm"));
        assert_ne!(arm.sha256, x86.sha256);
    }

    #[test]
    fn a_changed_file_is_read_again() {
        let dir = TempDir::new("changed");
        let path = dir.0.join("bootstrap-arm64.zip");
        std::fs::write(&path, b"PK\x03\x04one").expect("write");
        let bundles = HandlerBundles::new(&dir.0);
        let first = bundles.get(Architecture::Arm64).expect("first");
        assert_eq!(bundles.get(Architecture::Arm64).expect("cached"), first);
        std::fs::write(&path, b"PK\x03\x04second build").expect("write");
        let second = bundles.get(Architecture::Arm64).expect("second");
        assert_eq!(second.zip.as_slice(), b"PK\x03\x04second build");
        assert_ne!(second.sha256, first.sha256);
    }

    #[test]
    fn a_missing_or_broken_build_is_a_clear_error() {
        let dir = TempDir::new("missing");
        let bundles = HandlerBundles::new(&dir.0);
        let e = bundles.get(Architecture::X86_64).unwrap_err();
        assert!(e.to_string().contains("bootstrap-x86_64.zip"), "{e}");
        assert!(e.to_string().contains("--handler-dir"), "{e}");
        std::fs::write(dir.0.join("bootstrap-x86_64.zip"), b"#!/bin/sh").expect("write");
        let e = bundles.get(Architecture::X86_64).unwrap_err();
        assert!(e.to_string().contains("not a zip file"), "{e}");
    }
}
