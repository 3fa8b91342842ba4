//! Configuration: environment variables and a TOML file, every key in one place.
//!
//! Precedence: an environment variable wins over the file, the file over the default.
//! A value that does not parse is an error naming the variable or key; it never falls
//! back to a default silently.
//!
//! | variable | file key | meaning | default |
//! |---|---|---|---|
//! | `LARDER_CONFIG` | | path of the TOML file | `$XDG_CONFIG_HOME/larder/config.toml`, else `~/.config/larder/config.toml` (used if it exists) |
//! | `LARDER_DIR` | `dir` | store directory | `$XDG_CACHE_HOME/larder`, else `~/.cache/larder` |
//! | `LARDER_MAX_SIZE` | `max_size` | size bound of the local store: bytes, or a number with `K`/`M`/`G`/`T` (powers of 1024; `KB`, `MB`.. are powers of 1000, `KiB`, `MiB`.. powers of 1024); `0` is no bound | `10GiB` |
//! | `LARDER_MAX_AGE` | `max_age` | entries not used for this long are removed when the store is trimmed (`30days`, `72h`; `humantime` durations) | none |
//! | `LARDER_DEBUG` | `debug` | keep the key inputs of every invocation, hits and unstored misses too, for `larder explain` (misses that store keep theirs always) | `false` |
//! | `LARDER_DISABLE` | `disable` | `1`/`true`/`yes`/`on` passes every invocation straight to rustc | `false` |
//! | `LARDER_EXTRA_ENV` | `extra_env` | environment variables to add to every key (comma-separated; a list in the file), for proc macros that read them | none |
//! | `LARDER_EXTRA_FILES` | `extra_files` | files whose content goes into every key (comma-separated; a list in the file), for proc macros that read them; relative paths are relative to rustc's working directory | none |
//! | `LARDER_BACKGROUND_STORE` | `background_store` | compress and write results in a background process, off cargo's critical path (`0`/`false`: in the wrapper) | `true` |
//! | `LARDER_C_DEPEND` | `c_depend` | key a C or C++ compile by the dependency file the compiler writes while it compiles, not by its preprocessed text before it ([`crate::cc::depend`]; `0`/`false`: preprocessor mode) | `true` |
//! | `LARDER_BUILD_SCRIPT_CACHE` | `build_script_cache` | cache build-script runs (`0`/`false` turns it off) | `true` |
//! | `LARDER_COMPRESSION_LEVEL` | `compression_level` | zstd level for stored blobs, 1 to 19; 0 stores them uncompressed, restored by reflink where the filesystem can | `0` |
//! | `LARDER_REMOTE` | `remote` | remote tiers read and written after the local store, in order: URLs (`memcached://`, `redis://`, `rediss://`, `s3://`, `http(s)://`, `webdav(s)://`, `grpc(s)://`, `file://`), comma-separated (a list in the file) | none |
//! | `LARDER_REMOTE_READ_ONLY` | `remote_read_only` | remote tiers only read, after the others (a public cache) | none |
//! | `LARDER_REMOTE_WRITE` | `remote_write` | when the remote tiers are written: `always`, `never`, or `protected` (only in a CI run of a protected ref; see [`ci`]); unset: always, except in a CI run for a pull request | unset |
//! | `LARDER_SIGNING_KEY` | `signing_key` | secret key file (`larder key generate`) that signs every action record this build stores; its public key is trusted too | none |
//! | `LARDER_TRUSTED_KEYS` | `trusted_keys` | public keys (`NAME:<base64>`) whose signatures a tier that requires them accepts (comma-separated; a list in the file) | none |
//! | `LARDER_REQUIRE_SIGNATURES` | `require_signatures` | tiers whose action records are used only with a trusted signature: `1`/`true` (every tier, the local store too), `0`/`false` (none), or a list of `local`, `remotes`, `read-only` and remote URLs | `read-only` (the read-only remotes) |
//! | `LARDER_VERIFY` | `verify` | after each `larder cargo` build, compile this percentage of its hits again locally and compare ([`crate::verify`]); an entry that differs is quarantined and the command exits 1 | none |
//! | `LARDER_INCREMENTAL` | `incremental` | whether rustc compiles with cargo's `-C incremental`: `auto` (dropped in a CI run, whose incremental state is thrown away), `on` (as cargo asks) or `off` (never); see [`incremental`] | `auto` |
//! | `LARDER_PREFETCH` | `prefetch` | before cargo starts, fetch from the remotes in parallel what the last build of the same command used ([`crate::prefetch`]) | `true` |
//! | `LARDER_SEED` | `seed` | before cargo starts, plant in an empty target directory the registry and git units the last build of the same command left, so that cargo finds them fresh, from the local store or else a remote, and publish this build's to the writable remotes ([`crate::seed`]) | `true` |
//! | `LARDER_REMOTE_TIMEOUT` | `remote_timeout` | deadline of one remote call, in seconds (transfers get one more second per 4 MiB) | `5` |
//! | `LARDER_TRACE` | | file to which `larder cargo` writes a timeline of the build, every process in its phases ([`crate::trace`]; Chrome trace event format) | none |
//! | `LARDER_REPORT` | | file to which each wrapper invocation appends one JSON line (set by `larder cargo`) | none |
//! | `LARDER_LOG` | | a `tracing` filter for debug logs on stderr (`debug`, `larder_core=trace`) | none |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::signing::{KeyError, PublicKey, SecretKey};
use values::{
    REQUIRE_EXPECTED, SECS_EXPECTED, SIZE_EXPECTED, invalid, parse_bool, parse_incremental,
    parse_level, parse_percent, parse_secs, parse_write, require_signatures, split_list,
    split_urls,
};
pub use values::{parse_age, parse_size};

pub mod ci;
pub mod env;
pub mod incremental;
pub mod show;
mod values;
pub use env::ENV_VARS;

/// The default zstd level for local blobs: 0, uncompressed. On ripgrep release (7 paired
/// runs) a warm build elsewhere took 0.79x the wall of level 1 (a hit hashes and copies
/// a blob instead of decompressing, hashing and writing it), and a cold build saves the
/// compression (3.5-5.7% CPU), for a store 3.3x larger. Remotes compress on their own.
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 0;

/// The default size bound: 10 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;

/// larder's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Store directory.
    pub dir: PathBuf,
    /// Size bound of the local store, in bytes (`u64::MAX`: none).
    pub max_size: u64,
    /// Entries unused for longer are removed when the store is trimmed.
    pub max_age: Option<std::time::Duration>,
    /// Keep the key inputs of every invocation (`LARDER_DEBUG`).
    pub debug: bool,
    /// Pass everything through.
    pub disable: bool,
    /// Extra environment variables in every key.
    pub extra_env: Vec<String>,
    /// Extra files in every key.
    pub extra_files: Vec<PathBuf>,
    /// zstd level for blobs.
    pub compression_level: i32,
    /// Cache build-script runs.
    pub build_script_cache: bool,
    /// Store results in a background process.
    pub background_store: bool,
    /// Key C and C++ compiles by their dependency file (`LARDER_C_DEPEND`).
    pub c_depend: bool,
    /// Fetch the last build's entries from the remotes before cargo starts.
    pub prefetch: bool,
    /// Plant the last build's registry and git units in the target directory before
    /// cargo starts (`LARDER_SEED`).
    pub seed: bool,
    /// Whether rustc keeps cargo's `-C incremental`, and why.
    pub incremental: incremental::Incremental,
    /// Per-build report file.
    pub report: Option<PathBuf>,
    /// Remote tiers, in lookup order: the writable ones, then the read-only ones (as
    /// configured: [`Config::remote_write`] may keep this build from writing any).
    pub remotes: Vec<larder_remote::RemoteSpec>,
    /// Whether this build writes the remote tiers, and why.
    pub remote_write: ci::RemoteWrite,
    /// The key that signs what this build stores.
    pub signing_key: Option<SecretKey>,
    /// Public keys whose signatures are trusted (the signing key's own is added by
    /// [`Config::trust`]).
    pub trusted_keys: Vec<PublicKey>,
    /// The percentage of each `larder cargo` build's hits verified by rebuild.
    pub verify: Option<f64>,
    /// Whether the local store's action records need a trusted signature (each
    /// remote's need is its `require_signatures`).
    pub require_local_signatures: bool,
    /// The configuration file read, if any.
    pub file: Option<PathBuf>,
    /// The keys that file sets.
    pub file_keys: Vec<String>,
}

/// A configuration error, naming the culprit.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable or key has a value that does not parse.
    #[error("invalid value {value:?} for {name}: {expected}")]
    Invalid {
        /// The variable (`LARDER_MAX_SIZE`) or file key (`max_size in /path/config.toml`).
        name: String,
        /// The value found.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// The file cannot be read or is not valid TOML for larder.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A key (signing or trusted) cannot be read.
    #[error("{name}: {source}")]
    Key {
        /// The variable or file key that names it.
        name: String,
        /// What is wrong.
        source: KeyError,
    },
    /// No home directory to put the store in.
    #[error("cannot find a store directory: set LARDER_DIR (no HOME or XDG_CACHE_HOME)")]
    NoDir,
    /// A path variable is relative where nothing says relative to what: each compile runs
    /// in its own package's directory.
    #[error(
        "{name}={value} is a relative path; set an absolute one (each compile runs in its own package's directory; `larder cargo` resolves it against the directory it is run in)"
    )]
    Relative {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
}

/// The variables that name paths: absolute in a wrapper, resolved against the current
/// directory by the commands a user runs ([`Config::load_here`]).
pub const PATH_VARS: [&str; 5] = [
    "LARDER_DIR",
    "LARDER_CONFIG",
    "LARDER_REPORT",
    "LARDER_SIGNING_KEY",
    crate::trace::VAR,
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    dir: Option<PathBuf>,
    max_size: Option<toml::Value>,
    max_age: Option<String>,
    debug: Option<bool>,
    disable: Option<bool>,
    extra_env: Option<Vec<String>>,
    extra_files: Option<Vec<PathBuf>>,
    compression_level: Option<i64>,
    build_script_cache: Option<bool>,
    background_store: Option<bool>,
    c_depend: Option<bool>,
    prefetch: Option<bool>,
    seed: Option<bool>,
    incremental: Option<toml::Value>,
    remote: Option<OneOrMany>,
    remote_read_only: Option<OneOrMany>,
    remote_timeout: Option<toml::Value>,
    remote_write: Option<String>,
    signing_key: Option<PathBuf>,
    trusted_keys: Option<OneOrMany>,
    require_signatures: Option<toml::Value>,
    verify: Option<toml::Value>,
}

/// A list in the file that may also be written as one string (`remote = "redis://h"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => split_urls(&s),
            OneOrMany::Many(v) => v,
        }
    }
}

/// The [`PATH_VARS`] set in the process environment, a relative one resolved against the
/// current directory: what `larder cargo` passes on to the compiles it runs.
pub fn resolved_path_vars() -> Vec<(&'static str, String)> {
    let cwd = std::env::current_dir().ok();
    PATH_VARS
        .iter()
        .filter_map(|&name| {
            let v = env::var(name).filter(|v| !v.is_empty())?;
            let v = match &cwd {
                Some(cwd) if Path::new(&v).is_relative() => {
                    cwd.join(&v).to_string_lossy().into_owned()
                }
                _ => v,
            };
            Some((name, v))
        })
        .collect()
}

/// The process environment, as UTF-8 pairs.
fn process_env() -> BTreeMap<String, String> {
    env::vars_os()
        .filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            let v = match v.into_string() {
                Ok(v) => v,
                // Refused by `from_env`, by name, rather than ignored.
                Err(v) if k.starts_with("LARDER_") => {
                    format!("{NOT_UTF8}{}", v.to_string_lossy())
                }
                Err(_) => return None,
            };
            Some((k, v))
        })
        .collect()
}

/// Marks a `LARDER_*` value that is not UTF-8 in [`process_env`]'s map.
const NOT_UTF8: &str = "\0not-utf-8:";

impl Config {
    /// Loads the configuration from the process environment and the config file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable, key or file at fault.
    pub fn load() -> Result<Config, ConfigError> {
        Config::from_env(&process_env())
    }

    /// [`Config::load`] for a command a user runs (`larder cargo`, `larder stats`): a
    /// relative path in [`PATH_VARS`] is resolved against the current directory (and
    /// `larder cargo` passes the absolute path on to the compiles it runs).
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable, key or file at fault.
    pub fn load_here() -> Result<Config, ConfigError> {
        Config::from_env(&Config::env_here())
    }

    /// The environment [`Config::load_here`] reads: the process's, with relative path
    /// variables resolved against the current directory.
    pub fn env_here() -> BTreeMap<String, String> {
        let mut env = process_env();
        env.extend(
            resolved_path_vars()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v)),
        );
        env
    }

    /// Loads the configuration from the given environment (and the file it points to).
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable, key or file at fault.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        if let Some((name, value)) = env.iter().find(|(_, v)| v.starts_with(NOT_UTF8)) {
            return Err(invalid(name, &value[NOT_UTF8.len()..], "UTF-8 text"));
        }
        for name in PATH_VARS {
            if let Some(value) = get(name)
                && Path::new(&value).is_relative()
            {
                return Err(ConfigError::Relative { name, value });
            }
        }
        let home = get("HOME").map(PathBuf::from);
        let config_path = match get("LARDER_CONFIG") {
            Some(p) => Some(PathBuf::from(p)),
            None => get("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".config")))
                .map(|d| d.join("larder").join("config.toml"))
                .filter(|p| p.is_file()),
        };
        let (file, file_keys) = match &config_path {
            Some(p) => read_file_config(p)?,
            None => (FileConfig::default(), Vec::new()),
        };
        let file_key = |k: &str| match &config_path {
            Some(p) => format!("{k} in {}", p.display()),
            None => k.to_string(),
        };

        // A relative path in the file is relative to the file's directory.
        let from_file_dir = |d: PathBuf| match config_path.as_deref().and_then(Path::parent) {
            Some(base) => base.join(d),
            None => d,
        };
        let file_dir = file.dir.map(from_file_dir);
        let dir = match get("LARDER_DIR").map(PathBuf::from).or(file_dir) {
            Some(d) => d,
            None => get("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".cache")))
                .ok_or(ConfigError::NoDir)?
                .join("larder"),
        };
        let max_size = match (get("LARDER_MAX_SIZE"), file.max_size) {
            (Some(v), _) => parse_size("LARDER_MAX_SIZE", &v)?,
            (None, Some(toml::Value::Integer(0))) => u64::MAX,
            (None, Some(toml::Value::Integer(n))) if n > 0 => n as u64,
            (None, Some(toml::Value::String(s))) => parse_size(&file_key("max_size"), &s)?,
            (None, Some(other)) => {
                return Err(invalid(
                    &file_key("max_size"),
                    &other.to_string(),
                    SIZE_EXPECTED,
                ));
            }
            (None, None) => DEFAULT_MAX_SIZE,
        };
        let max_age = match get("LARDER_MAX_AGE") {
            Some(v) => Some(parse_age("LARDER_MAX_AGE", &v)?),
            None => file
                .max_age
                .map(|v| parse_age(&file_key("max_age"), &v))
                .transpose()?,
        };
        let debug = match get("LARDER_DEBUG") {
            Some(v) => parse_bool("LARDER_DEBUG", &v)?,
            None => file.debug.unwrap_or(false),
        };
        let disable = match get("LARDER_DISABLE") {
            Some(v) => parse_bool("LARDER_DISABLE", &v)?,
            None => file.disable.unwrap_or(false),
        };
        let extra_env = match get("LARDER_EXTRA_ENV") {
            Some(v) => split_list(&v),
            None => file.extra_env.unwrap_or_default(),
        };
        for name in &extra_env {
            if name.is_empty() || name.contains('=') {
                return Err(invalid(
                    "LARDER_EXTRA_ENV",
                    name,
                    "variable names, comma-separated",
                ));
            }
        }
        let extra_files = match get("LARDER_EXTRA_FILES") {
            Some(v) => split_list(&v).into_iter().map(PathBuf::from).collect(),
            None => file.extra_files.unwrap_or_default(),
        };
        let compression_level = match (get("LARDER_COMPRESSION_LEVEL"), file.compression_level) {
            (Some(v), _) => parse_level("LARDER_COMPRESSION_LEVEL", &v)?,
            (None, Some(n)) => parse_level(&file_key("compression_level"), &n.to_string())?,
            (None, None) => DEFAULT_COMPRESSION_LEVEL,
        };
        let build_script_cache = match get("LARDER_BUILD_SCRIPT_CACHE") {
            Some(v) => parse_bool("LARDER_BUILD_SCRIPT_CACHE", &v)?,
            None => file.build_script_cache.unwrap_or(true),
        };
        let background_store = match get("LARDER_BACKGROUND_STORE") {
            Some(v) => parse_bool("LARDER_BACKGROUND_STORE", &v)?,
            None => file.background_store.unwrap_or(true),
        };
        let c_depend = match get("LARDER_C_DEPEND") {
            Some(v) => parse_bool("LARDER_C_DEPEND", &v)?,
            None => file.c_depend.unwrap_or(true),
        };
        let prefetch = match get("LARDER_PREFETCH") {
            Some(v) => parse_bool("LARDER_PREFETCH", &v)?,
            None => file.prefetch.unwrap_or(true),
        };
        let seed = match get("LARDER_SEED") {
            Some(v) => parse_bool("LARDER_SEED", &v)?,
            None => file.seed.unwrap_or(true),
        };
        let incremental = match (get("LARDER_INCREMENTAL"), file.incremental) {
            (Some(v), _) => parse_incremental("LARDER_INCREMENTAL", &v)?,
            (None, Some(v)) => parse_incremental(
                &file_key("incremental"),
                v.as_str().map_or(v.to_string(), str::to_string).as_str(),
            )?,
            (None, None) => incremental::IncrementalPolicy::Auto,
        }
        .decide(env);
        let timeout = match (get("LARDER_REMOTE_TIMEOUT"), file.remote_timeout) {
            (Some(v), _) => parse_secs("LARDER_REMOTE_TIMEOUT", &v)?,
            (None, Some(toml::Value::Integer(n))) => {
                parse_secs(&file_key("remote_timeout"), &n.to_string())?
            }
            (None, Some(toml::Value::Float(f))) => {
                parse_secs(&file_key("remote_timeout"), &f.to_string())?
            }
            (None, Some(other)) => {
                return Err(invalid(
                    &file_key("remote_timeout"),
                    &other.to_string(),
                    SECS_EXPECTED,
                ));
            }
            (None, None) => larder_remote::DEFAULT_TIMEOUT,
        };
        let mut remotes = Vec::new();
        for (var, key, from_file, read_only) in [
            ("LARDER_REMOTE", "remote", file.remote, false),
            (
                "LARDER_REMOTE_READ_ONLY",
                "remote_read_only",
                file.remote_read_only,
                true,
            ),
        ] {
            let (name, urls) = match get(var) {
                Some(v) => (var.to_string(), split_urls(&v)),
                None => (
                    file_key(key),
                    from_file.map(OneOrMany::into_vec).unwrap_or_default(),
                ),
            };
            for url in urls {
                let spec =
                    larder_remote::RemoteSpec::parse(&url, read_only, timeout).map_err(|e| {
                        ConfigError::Invalid {
                            name: name.clone(),
                            value: e.url.clone(),
                            expected: e.message.clone(),
                        }
                    })?;
                remotes.push(spec);
            }
        }
        let remote_write = match get("LARDER_REMOTE_WRITE") {
            Some(v) => parse_write("LARDER_REMOTE_WRITE", &v)?,
            None => file
                .remote_write
                .map(|v| parse_write(&file_key("remote_write"), &v))
                .transpose()?
                .unwrap_or(ci::WritePolicy::Default),
        }
        .decide(ci::detect(env).as_ref());
        let signing_key = match get("LARDER_SIGNING_KEY") {
            Some(v) => Some(("LARDER_SIGNING_KEY".to_string(), PathBuf::from(v))),
            None => file
                .signing_key
                .map(|p| (file_key("signing_key"), from_file_dir(p))),
        }
        .map(|(name, path)| {
            SecretKey::read(&path, &path.display().to_string())
                .map_err(|source| ConfigError::Key { name, source })
        })
        .transpose()?;
        let (name, keys) = match get("LARDER_TRUSTED_KEYS") {
            Some(v) => ("LARDER_TRUSTED_KEYS".to_string(), split_urls(&v)),
            None => (
                file_key("trusted_keys"),
                file.trusted_keys
                    .map(OneOrMany::into_vec)
                    .unwrap_or_default(),
            ),
        };
        let trusted_keys = keys
            .iter()
            .map(|k| {
                PublicKey::parse(k, k).map_err(|source| ConfigError::Key {
                    name: name.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let require = match get("LARDER_REQUIRE_SIGNATURES") {
            Some(v) => Some(("LARDER_REQUIRE_SIGNATURES".to_string(), split_urls(&v))),
            None => match file.require_signatures {
                None => None,
                Some(toml::Value::Boolean(b)) => {
                    Some((file_key("require_signatures"), vec![b.to_string()]))
                }
                Some(toml::Value::String(s)) => {
                    Some((file_key("require_signatures"), split_urls(&s)))
                }
                Some(toml::Value::Array(a)) => Some((
                    file_key("require_signatures"),
                    a.iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                        .collect(),
                )),
                Some(other) => {
                    return Err(invalid(
                        &file_key("require_signatures"),
                        &other.to_string(),
                        REQUIRE_EXPECTED,
                    ));
                }
            },
        };
        let require_local_signatures = match require {
            Some((name, tiers)) => require_signatures(&name, &tiers, &mut remotes, timeout)?,
            None => false,
        };
        let verify = match (get("LARDER_VERIFY"), file.verify) {
            (Some(v), _) => Some(parse_percent("LARDER_VERIFY", &v)?),
            (None, Some(v)) => Some(parse_percent(
                &file_key("verify"),
                v.as_str()
                    .map_or_else(|| v.to_string(), str::to_string)
                    .as_str(),
            )?),
            (None, None) => None,
        }
        .filter(|p| *p > 0.0);
        Ok(Config {
            remotes,
            remote_write,
            verify,
            signing_key,
            trusted_keys,
            require_local_signatures,
            background_store,
            c_depend,
            prefetch,
            seed,
            incremental,
            build_script_cache,
            dir,
            max_size,
            max_age,
            debug,
            disable,
            extra_env,
            extra_files,
            compression_level,
            report: get("LARDER_REPORT").map(PathBuf::from),
            file: config_path,
            file_keys,
        })
    }
}

impl Config {
    /// The paths of the store directory.
    pub fn layout(&self) -> larder_store::Layout {
        larder_store::Layout::new(&self.dir)
    }

    /// Opens the local store with these settings (directory, size bound, compression).
    ///
    /// # Errors
    /// [`larder_store::StoreError`] if the store directory cannot be created.
    pub fn open_store(&self) -> Result<larder_store::DiskStore, larder_store::StoreError> {
        Ok(larder_store::DiskStore::open(&self.dir, self.max_size)?
            .with_compression_level(self.compression_level)
            .with_max_age(self.max_age))
    }
}

impl Config {
    /// The keys a reader trusts: the trusted keys and the signing key's own.
    pub fn trust(&self) -> crate::trust::Trust {
        let mut keys = self.trusted_keys.clone();
        keys.extend(self.signing_key.as_ref().map(SecretKey::public));
        crate::trust::Trust::new(keys)
    }

    /// Whether any tier requires signed action records.
    pub fn requires_signatures(&self) -> bool {
        self.require_local_signatures || self.remotes.iter().any(|r| r.require_signatures)
    }

    /// The remote tiers as this build uses them: all read-only if the write policy keeps
    /// it from writing.
    pub fn remote_tiers(&self) -> Vec<larder_remote::RemoteSpec> {
        let mut specs = self.remotes.clone();
        if !self.remote_write.writes {
            for s in &mut specs {
                s.read_only = true;
            }
        }
        specs
    }
}

/// The file's settings and the keys it sets.
fn read_file_config(path: &Path) -> Result<(FileConfig, Vec<String>), ConfigError> {
    let error = |message: String| ConfigError::File {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| error(e.to_string()))?;
    let file = FileConfig::deserialize(toml::Value::Table(table.clone()))
        .map_err(|e| error(e.to_string()))?;
    Ok((file, table.keys().cloned().collect()))
}

#[cfg(test)]
mod tests;
