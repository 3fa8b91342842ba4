//! `larder init`: makes every cargo build use larder, through cargo's user configuration
//! (`$CARGO_HOME/config.toml`): `build.rustc-wrapper` names larder, and for C caching
//! `[env]` points `HOST_CC`/`HOST_CXX` at larder's compiler shims (when the environment
//! sets no `CC`/`CXX` of its own).
//!
//! The change is planned first ([`plan`]), shown as the lines it removes and adds
//! ([`Plan::diff`]), then written ([`apply`]) with `toml_edit`, which keeps the rest of
//! the file as it is, comments included. Before the first change the file's bytes (or
//! its absence) are saved beside it, `config.toml.larder-backup`, and [`undo`] puts
//! them back byte for byte.

use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, Table, value};

use crate::config::Config;

/// What `larder init` would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Cargo's user configuration file.
    pub path: PathBuf,
    /// Its content now (`None`: there is none).
    pub before: Option<String>,
    /// Its content after the change.
    pub after: String,
    /// Another wrapper the file named (`sccache`), which larder replaces.
    pub replaced_wrapper: Option<String>,
}

impl Plan {
    /// Whether the file already says what larder needs.
    pub fn is_done(&self) -> bool {
        self.before.as_deref() == Some(self.after.as_str())
    }

    /// The lines the change removes (`- `) and adds (`+ `).
    pub fn diff(&self) -> String {
        let before: Vec<&str> = self.before.as_deref().unwrap_or("").lines().collect();
        let after: Vec<&str> = self.after.lines().collect();
        let mut out = String::new();
        let shown = |l: &&&str| !l.trim().is_empty();
        for l in before.iter().filter(shown).filter(|l| !after.contains(l)) {
            out += &format!("- {l}\n");
        }
        for l in after.iter().filter(shown).filter(|l| !before.contains(l)) {
            out += &format!("+ {l}\n");
        }
        out
    }
}

/// An error of `larder init`, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// No `CARGO_HOME` and no `HOME`.
    #[error("cannot find cargo's home: set CARGO_HOME or HOME")]
    NoCargoHome,
    /// The file cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML, or `build`/`env` is not a table.
    #[error("{}: {message}; fix it by hand, larder changed nothing", path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `--undo` without a backup.
    #[error("nothing to undo: no {} (larder init has not changed this file)", backup.display())]
    NoBackup {
        /// The backup looked for.
        backup: PathBuf,
    },
}

/// Cargo's user configuration file: `$CARGO_HOME/config.toml`, or the older
/// `$CARGO_HOME/config` if only that exists.
///
/// # Errors
/// [`InitError::NoCargoHome`].
pub fn config_path() -> Result<PathBuf, InitError> {
    let home = crate::roots::cargo_home().ok_or(InitError::NoCargoHome)?;
    let legacy = home.join("config");
    let path = home.join("config.toml");
    Ok(if !path.exists() && legacy.is_file() {
        legacy
    } else {
        path
    })
}

/// Where the file's bytes before `larder init` are kept.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".larder-backup");
    PathBuf::from(p)
}

/// What the backup holds when there was no file: `undo` removes the file.
const ABSENT: &[u8] = b"# larder init: there was no file\n";

/// Plans the change for larder at `exe` and the C shims `env` (name, value).
///
/// # Errors
/// [`InitError`] if the file cannot be read or is not valid TOML.
pub fn plan_with(path: &Path, exe: &Path, env: &[(&str, String)]) -> Result<Plan, InitError> {
    let before = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(InitError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let toml_error = |message: String| InitError::Toml {
        path: path.to_path_buf(),
        message,
    };
    let mut doc: DocumentMut = before
        .as_deref()
        .unwrap_or("")
        .parse()
        .map_err(|e: toml_edit::TomlError| toml_error(e.to_string()))?;
    let exe = exe.display().to_string();
    let build =
        table(&mut doc, "build").ok_or_else(|| toml_error("`build` is not a table".into()))?;
    let replaced_wrapper = build
        .get("rustc-wrapper")
        .and_then(Item::as_str)
        .filter(|w| *w != exe)
        .map(str::to_string);
    if build.get("rustc-wrapper").and_then(Item::as_str) != Some(exe.as_str()) {
        build["rustc-wrapper"] = value(exe);
    }
    if !env.is_empty() {
        let t = table(&mut doc, "env").ok_or_else(|| toml_error("`env` is not a table".into()))?;
        for (k, v) in env {
            if t.get(k).and_then(Item::as_str) != Some(v.as_str()) {
                t[*k] = value(v.clone());
            }
        }
    }
    Ok(Plan {
        path: path.to_path_buf(),
        after: doc.to_string(),
        before,
        replaced_wrapper,
    })
}

/// The table `name` of `doc`, created if absent; `None` if it is something else.
fn table<'a>(doc: &'a mut DocumentMut, name: &str) -> Option<&'a mut Table> {
    if !doc.contains_key(name) {
        doc[name] = Item::Table(Table::new());
    }
    doc[name].as_table_mut()
}

/// Plans the change for this larder and configuration: the wrapper, and the C shims
/// `larder cargo` would set (only `HOST_CC`/`HOST_CXX`: a `CC` of the user's stays in
/// the user's hands).
///
/// # Errors
/// [`InitError`].
pub fn plan(config: &Config, exe: &Path) -> Result<Plan, InitError> {
    let env: Vec<(&str, String)> = crate::runner::c_compiler_shims(config, exe)
        .into_iter()
        .filter(|(k, _)| k.starts_with("HOST_"))
        .map(|(k, v)| (k, v.to_string_lossy().into_owned()))
        .collect();
    plan_with(&config_path()?, exe, &env)
}

/// Writes the planned file, saving the old bytes first if no backup exists yet.
///
/// # Errors
/// [`InitError::Io`].
pub fn apply(plan: &Plan) -> Result<(), InitError> {
    let io = |source| InitError::Io {
        path: plan.path.clone(),
        source,
    };
    let backup = backup_path(&plan.path);
    if !backup.exists() {
        let old = plan.before.as_ref().map_or(ABSENT, |b| b.as_bytes());
        if let Some(dir) = plan.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::write(&backup, old).map_err(io)?;
    }
    crate::fsio::write_atomic(&plan.path, plan.after.as_bytes(), false).map_err(io)
}

/// Puts back the file as it was before `larder init` (removing it if there was none)
/// and removes the backup. Returns the file.
///
/// # Errors
/// [`InitError::NoBackup`] or [`InitError::Io`].
pub fn undo(path: &Path) -> Result<PathBuf, InitError> {
    let backup = backup_path(path);
    let io = |source| InitError::Io {
        path: path.to_path_buf(),
        source,
    };
    let old = match std::fs::read(&backup) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(InitError::NoBackup { backup });
        }
        Err(source) => return Err(io(source)),
    };
    if old == ABSENT {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
    } else {
        crate::fsio::write_atomic(path, &old, false).map_err(io)?;
    }
    std::fs::remove_file(&backup).map_err(io)?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_keeps_the_file_and_undo_restores_it_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let original = "# my settings\n[build]\njobs = 4 # two cores\nrustc-wrapper = \"sccache\"\n\n[net]\ngit-fetch-with-cli = true\n";
        std::fs::write(&path, original).unwrap();
        let exe = Path::new("/opt/larder");
        let env = [("HOST_CC", "/s/v1/bin/x/cc".to_string())];
        let plan = plan_with(&path, exe, &env).unwrap();
        assert_eq!(plan.replaced_wrapper.as_deref(), Some("sccache"));
        assert!(
            plan.diff().contains("- rustc-wrapper = \"sccache\""),
            "{}",
            plan.diff()
        );
        assert!(
            plan.diff().contains("+ rustc-wrapper = \"/opt/larder\""),
            "{}",
            plan.diff()
        );
        apply(&plan).unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        assert!(after.contains("jobs = 4 # two cores"), "{after}");
        assert!(after.contains("HOST_CC = \"/s/v1/bin/x/cc\""), "{after}");
        // Again: nothing to do, and the backup still holds the first bytes.
        let again = plan_with(&path, exe, &env).unwrap();
        assert!(again.is_done(), "{}", again.diff());
        apply(&again).unwrap();
        undo(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
        assert!(matches!(undo(&path), Err(InitError::NoBackup { .. })));
    }

    #[test]
    fn undo_removes_a_file_init_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("home").join("config.toml");
        let plan = plan_with(&path, Path::new("/opt/larder"), &[]).unwrap();
        assert_eq!(plan.before, None);
        apply(&plan).unwrap();
        assert!(path.is_file());
        undo(&path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn a_broken_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "build = 3\n").unwrap();
        let e = plan_with(&path, Path::new("/opt/larder"), &[]).unwrap_err();
        assert!(e.to_string().contains("`build` is not a table"), "{e}");
    }
}
