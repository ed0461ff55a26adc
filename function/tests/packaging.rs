//! The zips `scripts/build-handler` writes (dist/handler/): each holds an executable, static
//! `bootstrap` ELF for its architecture, which is what `provided.al2023` runs.
//!
//! CI builds the zips first and sets `LMI_REQUIRE_HANDLER_ZIPS=1`, so missing zips fail there;
//! a plain `cargo test` without them says so and checks nothing.

use std::io::Read;
use std::path::PathBuf;

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const PT_INTERP: u32 = 3;

fn dist() -> PathBuf {
    std::env::var_os("LMI_HANDLER_DIST").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/handler"),
        PathBuf::from,
    )
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Checks an ELF image: 64-bit little-endian executable for `machine`, no program interpreter
/// (statically linked).
fn check_elf(elf: &[u8], machine: u16, name: &str) {
    assert!(elf.len() > 64, "{name}: too short for an ELF file");
    assert_eq!(&elf[..4], b"\x7fELF", "{name}: not an ELF file");
    assert_eq!(elf[4], 2, "{name}: not a 64-bit ELF");
    assert_eq!(elf[5], 1, "{name}: not little-endian");
    let e_type = u16_at(elf, 16);
    assert!(
        e_type == 2 || e_type == 3,
        "{name}: ELF type {e_type} is not an executable"
    );
    assert_eq!(
        u16_at(elf, 18),
        machine,
        "{name}: wrong architecture (e_machine)"
    );
    let (phoff, phentsize, phnum) = (
        u64_at(elf, 32) as usize,
        usize::from(u16_at(elf, 54)),
        usize::from(u16_at(elf, 56)),
    );
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        assert!(
            at + 4 <= elf.len(),
            "{name}: program header {i} out of bounds"
        );
        assert_ne!(
            u32_at(elf, at),
            PT_INTERP,
            "{name}: dynamically linked (has an interpreter); provided.al2023 needs a static binary"
        );
    }
}

#[test]
fn handler_zips_hold_an_executable_bootstrap_for_their_architecture() {
    let dir = dist();
    let required = std::env::var_os("LMI_REQUIRE_HANDLER_ZIPS").is_some();
    for (arch, machine) in [("x86_64", EM_X86_64), ("arm64", EM_AARCH64)] {
        let path = dir.join(format!("bootstrap-{arch}.zip"));
        if !path.exists() {
            assert!(
                !required,
                "{} is missing: run scripts/build-handler",
                path.display()
            );
            eprintln!(
                "{} not built: run scripts/build-handler to check it",
                path.display()
            );
            continue;
        }
        let file = std::fs::File::open(&path).expect("open zip");
        let mut zip = zip::ZipArchive::new(file).expect("a zip archive");
        let mut entry = zip
            .by_name("bootstrap")
            .expect("the zip holds `bootstrap` at its root");
        let mode = entry.unix_mode().expect("unix permissions recorded");
        assert_eq!(
            mode & 0o111,
            0o111,
            "bootstrap in {arch} zip is not executable ({mode:o})"
        );
        let mut elf = Vec::new();
        entry.read_to_end(&mut elf).expect("read bootstrap");
        check_elf(&elf, machine, &format!("bootstrap-{arch}"));
    }
}

#[test]
fn the_elf_check_tells_architectures_apart() {
    // The test binary itself is an x86_64 or aarch64 ELF: the check must accept it for its own
    // architecture and refuse it for the other.
    let me = std::fs::read(std::env::current_exe().expect("exe")).expect("read self");
    let (mine, other) = if cfg!(target_arch = "aarch64") {
        (EM_AARCH64, EM_X86_64)
    } else {
        (EM_X86_64, EM_AARCH64)
    };
    assert_eq!(u16_at(&me, 18), mine);
    let wrong = std::panic::catch_unwind(|| check_elf(&me, other, "self"));
    assert!(wrong.is_err(), "the wrong architecture was accepted");
}
