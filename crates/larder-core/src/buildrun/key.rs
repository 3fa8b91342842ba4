//! The key of a build-script run: what the table in [`super`] lists, hashed as tagged
//! fields after [`RUN_KEY_VERSION`]. [`super::BuildScriptRun`] gathers the inputs; this
//! file only hashes them, so the key of fixed inputs can be pinned (the golden test).

use larder_digest::{Digest, KeyHasher};
use larder_key::inputs::{Input, arg_inputs, kind};

/// The version of the run key's definition.
pub const RUN_KEY_VERSION: &str = "larder-build-script-run-v1";

/// Everything a run's key is made of, already normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunKeyInputs {
    /// The content digest of the script's real binary.
    pub script: Digest,
    /// Whether the package is a registry or git checkout under `CARGO_HOME`, whose files
    /// never change in place (entries then list variables alone when the script declares
    /// only variables), or an editable path or vendored package.
    pub immutable_package: bool,
    /// The identity of `RUSTC`, if it could be found.
    pub compiler: Option<Digest>,
    /// `("CC" | "CXX", identity)` of the C compilers a `cc`-crate script would run.
    pub c_compilers: Vec<(String, Digest)>,
    /// The script's arguments, normalized.
    pub args: Vec<String>,
    /// `(name, normalized value)` of the keyed variables, sorted.
    pub env: Vec<(String, String)>,
    /// `(normalized path, content digest)` of target-directory paths named by
    /// `DEP_<links>_<key>` values.
    pub dep_paths: Vec<(String, Digest)>,
}

impl RunKeyInputs {
    /// The inputs as named values (`larder explain`); `toolchain` names the compiler for
    /// people.
    pub fn inputs(&self, toolchain: &str) -> Vec<Input> {
        let mut out = vec![
            Input::digest(kind::SCRIPT, "binary", &self.script),
            Input::new(
                kind::PACKAGE,
                "sources",
                if self.immutable_package {
                    "immutable"
                } else {
                    "editable"
                },
            ),
        ];
        if let Some(c) = &self.compiler {
            out.push(Input::toolchain(toolchain, c));
        }
        for (var, d) in &self.c_compilers {
            out.push(Input::digest(kind::C_COMPILER, var.clone(), d));
        }
        out.extend(arg_inputs(&self.args));
        for (k, v) in &self.env {
            out.push(Input::new(kind::ENV, k.clone(), v.clone()));
        }
        for (p, d) in &self.dep_paths {
            out.push(Input::digest(
                kind::DEP_PATH,
                larder_key::inputs::without_metadata_hash(p),
                d,
            ));
        }
        out
    }

    /// The run key: the invocation key of the run's manifest.
    pub fn key(&self) -> Digest {
        let mut h = KeyHasher::new();
        h.field("version", RUN_KEY_VERSION)
            .digest_field("script", &self.script);
        // An entry of the immutable kind must never answer for a path or vendored copy
        // of the same package (same package id), whose files may be edited.
        h.field(
            "package-sources",
            if self.immutable_package {
                "immutable"
            } else {
                "editable"
            },
        );
        if let Some(c) = &self.compiler {
            h.digest_field("compiler", c);
        }
        for (var, d) in &self.c_compilers {
            h.field("c-compiler", var)
                .digest_field("c-compiler-digest", d);
        }
        for a in &self.args {
            h.field("arg", a);
        }
        for (k, v) in &self.env {
            h.field("env-name", k).field("env-value", v);
        }
        for (p, d) in &self.dep_paths {
            h.field("dep-path", p).digest_field("dep-digest", d);
        }
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> RunKeyInputs {
        RunKeyInputs {
            script: Digest::of(b"build script binary"),
            immutable_package: true,
            compiler: Some(Digest::of(b"rustc 1.95.0 (fixture)")),
            c_compilers: vec![
                ("CC".into(), Digest::of(b"gcc 12")),
                ("CXX".into(), Digest::of(b"g++ 12")),
            ],
            args: vec![],
            env: vec![
                ("CARGO_CFG_TARGET_OS".into(), "linux".into()),
                ("CARGO_FEATURE_DEFAULT".into(), "1".into()),
                ("OPT_LEVEL".into(), "0".into()),
                (
                    "OUT_DIR".into(),
                    "@@larder:target@@/debug/build/demo-1/out".into(),
                ),
                ("TARGET".into(), "x86_64-unknown-linux-gnu".into()),
            ],
            dep_paths: vec![(
                "@@larder:target@@/debug/build/dep-2/out/include".into(),
                Digest::of(b"headers"),
            )],
        }
    }

    /// Golden key: a refactor must not change the key of fixed inputs by accident. If the
    /// definition changes on purpose, bump [`RUN_KEY_VERSION`] and pin the new value.
    #[test]
    fn a_fixed_run_has_its_pinned_key() {
        assert_eq!(
            fixture().key().to_hex(),
            "b45b9be31e936493271b1f4e15a3822a887481830ca6c470ac47d9e85616625d"
        );
    }

    #[test]
    fn every_field_changes_the_key() {
        let base = fixture();
        let mut variants = Vec::new();
        let mut v = base.clone();
        v.script = Digest::of(b"another script");
        variants.push(v);
        let mut v = base.clone();
        v.immutable_package = false;
        variants.push(v);
        let mut v = base.clone();
        v.compiler = None;
        variants.push(v);
        let mut v = base.clone();
        v.c_compilers[0].1 = Digest::of(b"gcc 13");
        variants.push(v);
        let mut v = base.clone();
        v.args.push("--flag".into());
        variants.push(v);
        let mut v = base.clone();
        v.env[2].1 = "3".into();
        variants.push(v);
        let mut v = base.clone();
        v.dep_paths[0].1 = Digest::of(b"other headers");
        variants.push(v);
        for v in variants {
            assert_ne!(v.key(), base.key(), "{v:?}");
            let d = larder_key::inputs::diff(&base.inputs("rustc"), &v.inputs("rustc"));
            assert_eq!(d.len(), 1, "{v:?}: {d:?}");
        }
    }
}
