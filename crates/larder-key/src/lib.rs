//! The cache key of a rustc invocation.
//!
//! A false hit ships a wrong binary, so this crate decides, for every rustc invocation
//! cargo makes, whether it can be cached ([`NotCacheable`] says why not) and which
//! inputs go into its key. It does no caching itself: `larder-core` drives it and
//! `larder-store` keeps the entries.
//!
//! # The key
//!
//! The key is computed in two steps, like ccache's direct mode. The *invocation key*
//! ([`key::KeyInputs`]) covers everything known before rustc runs. Under it a
//! [`key::Manifest`] lists, for each compile seen, the files it read and the variables it
//! read, with their digests and values; the *result key* ([`key::ManifestEntry`]) hashes
//! the invocation key with that list. A lookup hashes the listed files again: if all
//! match, the result key is known and no rustc process is spawned. Every value is hashed
//! as a tagged, length-prefixed field with SHA-256, after [`key::KEY_VERSION`].
//!
//! | input | how it is hashed | why |
//! |---|---|---|
//! | key version | the string [`key::KEY_VERSION`] | a new definition never matches old entries |
//! | rustc identity | `rustc -vV` output and the content of every file in the sysroot's `lib/rustlib/*/lib` | another compiler or standard library gives other code |
//! | arguments | every argument in order after `@argfile` expansion, with path roots normalized ([`paths::Roots`]) | flags, cfgs, features (`--cfg feature=..`), profile settings (`-C opt-level`, `-C debuginfo`), `--edition`, `--crate-type`, `-C metadata`, `--target`, `--json`/`--error-format` (they shape stderr) |
//! | incremental | presence of `-C incremental`, not its location | incremental compiles partition code differently |
//! | environment | every `CARGO_*` variable except cargo's own configuration ([`env::is_cargo_config`]), `CARGO`, `OUT_DIR`, the variables rustc and the linker read ([`env::TOOL_VARS`]), and user-declared variables; values normalized | cargo sets per-unit variables crates read through `env!` and proc macros read through `std::env` |
//! | source files | content digest of every file in the compile's dep-info: modules, `include!`, `include_str!`, `include_bytes!`, generated files in `OUT_DIR`; paths normalized | these are what rustc read |
//! | variables read | name and normalized value (or "unset") of every `# env-dep` line in dep-info | `env!`/`option_env!` of any variable, not only cargo's |
//! | module shadows | that `a/mod.rs` does not exist for a listed `a.rs`, and the reverse | a new file there changes module resolution |
//! | extern crates | content digest of each `--extern` file (rlib, rmeta, proc-macro `.so`) | a dependency's metadata and code |
//! | linked libraries | for bins, dylibs, cdylibs, staticlibs and proc macros: content digest of every Rust library linked, transitively (found through the link records larder keeps for each library it built), and of every native static library (`lib*.a`) in a `-L` directory inside the workspace or target directory | a dependency two levels down, or its bundled C code, changes the linked output without changing its dependents' metadata |
//! | linker | content digest of the linker executable (`-C linker`, or `cc` on `PATH`) | another linker gives another binary |
//! | files named by arguments | content of `-C profile-use` files, a target spec `.json`, files named in `-C link-arg(s)` | they change codegen or linking |
//! | declared inputs | content of user-declared extra files (`LARDER_EXTRA_FILES`) | proc macros that read files rustc does not see |
//!
//! # Left out on purpose
//!
//! - Absolute locations of the working directory, target directory, `CARGO_HOME` and the
//!   sysroot: normalized to placeholders, so two checkouts share entries. Outputs that
//!   mention paths are rewritten on restore.
//! - Modification times, inode numbers and file names of inputs outside the dep-info:
//!   content decides.
//! - `-C incremental`'s directory, `CARGO_MAKEFLAGS` (the jobserver), cargo's own
//!   configuration variables (`CARGO_TERM_COLOR`, `CARGO_BUILD_JOBS`, ...).
//! - System C libraries and the C runtime found outside the workspace (as ccache and
//!   sccache do): an OS upgrade that changes `libc.a` does not invalidate entries.
//! - Files and variables a proc macro reads without telling rustc: declare them
//!   (`LARDER_EXTRA_ENV`, `LARDER_EXTRA_FILES`), or they are not part of the key.
#![deny(missing_docs)]

pub mod depinfo;
pub mod env;
pub mod invocation;
pub mod key;
pub mod paths;
pub mod reason;

pub use invocation::{CrateType, Emit, Extern, Invocation, SearchKind};
pub use key::{KeyInputs, Manifest, ManifestEntry, Mismatch};
pub use paths::Roots;
pub use reason::NotCacheable;
