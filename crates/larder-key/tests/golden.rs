//! Golden keys: the keys of fixed invocations, pinned.
//!
//! A refactor of parsing, normalization or hashing must not change a key by accident:
//! entries stored by one larder would silently stop matching (lost hits), or, worse, two
//! definitions would share keys. If a test here fails because the definition of the key
//! changed on purpose, bump [`larder_key::key::KEY_VERSION`] and pin the new values.

use std::path::PathBuf;

use larder_digest::Digest;
use larder_key::key::{KeyInputs, ManifestEntry, normalized_args};
use larder_key::{Invocation, Roots};

/// A library compile as cargo 1.9x starts it, in checkout `checkout`.
fn library(checkout: &str) -> (Invocation, Roots) {
    let target = format!("{checkout}/target");
    let args = [
        "--crate-name",
        "demo",
        "--edition=2021",
        "src/lib.rs",
        "--error-format=json",
        "--json=diagnostic-rendered-ansi,artifacts,future-incompat",
        "--crate-type",
        "lib",
        "--emit=dep-info,metadata,link",
        "-C",
        "embed-bitcode=no",
        "-C",
        "debuginfo=2",
        "--cfg",
        "feature=\"default\"",
        "-C",
        "metadata=5d3e0f2c9a1b7e64",
        "-C",
        "extra-filename=-5d3e0f2c9a1b7e64",
        "--out-dir",
        &format!("{target}/debug/deps"),
        "-C",
        &format!("incremental={target}/debug/incremental"),
        "-L",
        &format!("dependency={target}/debug/deps"),
        "--extern",
        &format!("dep={target}/debug/deps/libdep-0a1b2c3d4e5f6071.rmeta"),
    ]
    .map(str::to_string)
    .to_vec();
    let inv = Invocation::parse(PathBuf::from("rustc"), args, PathBuf::from(checkout))
        .expect("a cacheable invocation");
    let roots = Roots::new([
        ("cwd", PathBuf::from(checkout)),
        ("target", PathBuf::from(target)),
        ("cargo-home", PathBuf::from("/home/u/.cargo")),
    ]);
    (inv, roots)
}

fn inputs(inv: &Invocation, roots: &Roots) -> KeyInputs {
    KeyInputs {
        compiler: Some(Digest::of(b"rustc 1.95.0 (fixture)")),
        args: normalized_args(inv, roots),
        env: vec![
            (
                "CARGO_MANIFEST_DIR".into(),
                roots.normalize_text(roots.get("cwd").unwrap()),
            ),
            ("CARGO_PKG_NAME".into(), "demo".into()),
            ("CARGO_PKG_VERSION".into(), "0.1.0".into()),
        ],
        libraries: inv
            .externs
            .iter()
            .map(|e| {
                let path = e.path.as_ref().unwrap();
                (
                    format!("extern:{}={}", e.name, roots.normalize_path(path)),
                    Digest::of(b"libdep.rmeta"),
                )
            })
            .collect(),
        linker: None,
        files: vec![],
    }
}

const LIBRARY_INVOCATION_KEY: &str =
    "756a2476f2348cad924f9fcfe6b480500cab8f1b6b319dc577187543af312242";
const LIBRARY_RESULT_KEY: &str = "35c724c449162b69d615466b5dc248301d57b05ce890e8c37caf2bf60f4033f6";

#[test]
fn a_library_compile_has_its_pinned_keys_in_every_checkout() {
    for checkout in ["/home/u/src/demo", "/builds/ci/demo-2"] {
        let (inv, roots) = library(checkout);
        let key = inputs(&inv, &roots).invocation_key();
        assert_eq!(
            key.to_hex(),
            LIBRARY_INVOCATION_KEY,
            "invocation key in {checkout}"
        );
        let entry = ManifestEntry::new(
            &key,
            vec![
                ("src/lib.rs".into(), Digest::of(b"pub fn demo() {}\n")),
                (
                    "@@larder:target@@/debug/build/demo-1/out/gen.rs".into(),
                    Digest::of(b"// generated\n"),
                ),
            ],
            vec![
                (
                    "OUT_DIR".into(),
                    Some("@@larder:target@@/debug/build/demo-1/out".into()),
                ),
                ("DEMO_FLAVOR".into(), None),
            ],
            vec!["src/lib/mod.rs".into()],
        );
        assert_eq!(
            entry.key.to_hex(),
            LIBRARY_RESULT_KEY,
            "result key in {checkout}"
        );
    }
}

const BINARY_INVOCATION_KEY: &str =
    "c84ee793e350f301ab3e61b59a7b2e87e0b1a73ec7258aa7feee7438e271f1c0";

#[test]
fn a_linked_binary_has_its_pinned_key() {
    let (inv, roots) = library("/home/u/src/demo");
    let mut k = inputs(&inv, &roots);
    k.args = normalized_args(&inv, &roots)
        .into_iter()
        .map(|a| if a == "lib" { "bin".to_string() } else { a })
        .collect();
    k.libraries
        .push(("rlib:dep".into(), Digest::of(b"libdep.rlib")));
    k.linker = Some(Digest::of(b"cc and the ld it runs"));
    k.files.push((
        "arg-file:@@larder:cwd@@/link.x".into(),
        Digest::of(b"SECTIONS {}"),
    ));
    assert_eq!(k.invocation_key().to_hex(), BINARY_INVOCATION_KEY);
}
