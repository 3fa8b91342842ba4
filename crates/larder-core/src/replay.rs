//! How to compile a restored unit again, for `larder verify` ([`crate::verify`]): a hit
//! of a rustc unit records its command line, working directory and the variables that
//! can change its output ([`Replay`], in the report), and [`scratch_args`] moves every
//! output location of that command line into a scratch directory.

use std::path::Path;

use larder_digest::Digest;
use larder_key::Roots;
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// How to compile a restored unit again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    /// The compiler (rustc) as the wrapper was given it.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its working directory.
    pub cwd: String,
    /// The variables that can change its output, as they were.
    pub env: Vec<(String, String)>,
    /// Where it ran: the digest of its root directories (`larder_key::Roots::digest`),
    /// compared with the record's `origin`.
    #[serde(default)]
    pub origin: Option<Digest>,
}

/// Whether variable `name` is kept in a [`Replay`].
fn kept(name: &str, extra: &[String]) -> bool {
    let secret = ["TOKEN", "SECRET", "PASSWORD"]
        .iter()
        .any(|s| name.contains(s));
    let wrapper = matches!(name, "RUSTC_WRAPPER" | "RUSTC_WORKSPACE_WRAPPER");
    !secret
        && !wrapper
        && (name.starts_with("CARGO")
            || name.starts_with("RUSTC_")
            || name == "OUT_DIR"
            || extra.iter().any(|e| e == name))
}

impl Replay {
    /// The replay of `program args` run now, in this process's directory and
    /// environment, with the invocation's `roots`; `None` if an argument or the
    /// directory is not UTF-8.
    pub fn capture(
        program: &Path,
        args: &[std::ffi::OsString],
        config: &Config,
        roots: &Roots,
    ) -> Option<Replay> {
        let args = args
            .iter()
            .map(|a| a.to_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()?;
        let cwd = std::env::current_dir().ok()?.to_str()?.to_string();
        let env = crate::config::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| kept(k, &config.extra_env))
            .collect();
        Some(Replay {
            program: program.to_str()?.to_string(),
            args,
            cwd,
            env,
            origin: Some(roots.digest()),
        })
    }
}

/// The arguments of `args` with every output location moved into `out`: `--out-dir`,
/// `-o`, the paths of `--emit`, and the incremental directory.
pub fn scratch_args(args: &[String], out: &Path) -> Vec<String> {
    let inside = |p: &str| {
        let name = Path::new(p).file_name().map_or_else(
            || std::ffi::OsString::from("out"),
            std::ffi::OsStr::to_os_string,
        );
        out.join(name).to_string_lossy().into_owned()
    };
    let out_s = out.to_string_lossy().into_owned();
    let incremental = out.join("incremental").to_string_lossy().into_owned();
    let emit = |list: &str| {
        list.split(',')
            .map(|e| match e.split_once('=') {
                Some((kind, path)) => format!("{kind}={}", inside(path)),
                None => e.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut res = Vec::with_capacity(args.len());
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out-dir" => {
                res.push(a.clone());
                it.next();
                res.push(out_s.clone());
            }
            "-o" => {
                res.push(a.clone());
                if let Some(p) = it.next() {
                    res.push(inside(p));
                }
            }
            "--emit" => {
                res.push(a.clone());
                if let Some(v) = it.next() {
                    res.push(emit(v));
                }
            }
            "-C" | "--codegen" if it.peek().is_some_and(|v| v.starts_with("incremental=")) => {
                res.push(a.clone());
                it.next();
                res.push(format!("incremental={incremental}"));
            }
            _ if a.starts_with("--out-dir=") => res.push(format!("--out-dir={out_s}")),
            _ if a.starts_with("--emit=") => res.push(format!("--emit={}", emit(&a[7..]))),
            _ if a.starts_with("-Cincremental=") => {
                res.push(format!("-Cincremental={incremental}"));
            }
            _ => res.push(a.clone()),
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_move_into_the_scratch_directory() {
        let args: Vec<String> = [
            "--crate-name",
            "a",
            "--emit=dep-info,metadata,link",
            "--out-dir",
            "/t/debug/deps",
            "-C",
            "incremental=/t/debug/incremental",
            "-L",
            "dependency=/t/debug/deps",
            "--extern",
            "b=/t/debug/deps/libb-1.rmeta",
            "-o",
            "/t/x/liba.rlib",
            "--emit",
            "link=/t/y/a.bin",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let got = scratch_args(&args, Path::new("/s"));
        assert_eq!(
            got,
            [
                "--crate-name",
                "a",
                "--emit=dep-info,metadata,link",
                "--out-dir",
                "/s",
                "-C",
                "incremental=/s/incremental",
                "-L",
                "dependency=/t/debug/deps",
                "--extern",
                "b=/t/debug/deps/libb-1.rmeta",
                "-o",
                "/s/liba.rlib",
                "--emit",
                "link=/s/a.bin",
            ]
        );
    }
}
