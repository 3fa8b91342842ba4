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
//! | input | how it is hashed | why | test that changes it and expects a miss |
//! |---|---|---|---|
//! | key version | the string [`key::KEY_VERSION`] | a new definition never matches old entries | `key::tests::key_version_changes_the_invocation_key` |
//! | rustc identity | `rustc -vV` output, the content of every file in the sysroot's `lib/rustlib/<triple>/lib` for the host and the target compiled for (not other installed targets), and whether the `rust-src` component is installed | another compiler or standard library gives other code; with `rust-src`, rustc writes the library sources' real paths into panic locations and debug info | `larder-core` `identity::tests::another_compiler_or_standard_library_is_another_identity`, `identity::tests::installing_rust_src_is_another_identity`, `identity::tests::only_the_host_and_the_target_libraries_count` |
//! | arguments | every argument in order after `@argfile` expansion, with path roots normalized ([`paths::Roots`]) | flags, cfgs, features (`--cfg feature=..`), profile settings (`-C opt-level`, `-C debuginfo`), `--edition`, `--crate-type`, `-C metadata`, `--target`, `--json`/`--error-format` (they shape stderr) | `cache.rs`: `feature_toggle_misses_and_revert_hits`, `release_profile_misses_and_both_profiles_hit_afterwards`, `rustflags_miss_and_revert_hits` |
//! | incremental | presence of `-C incremental`, not its location | incremental compiles partition code differently | `key_rows.rs`: `incremental_presence_is_in_the_key` |
//! | environment | every `CARGO_*` variable except cargo's own configuration ([`env::is_cargo_config`]), `CARGO`, `OUT_DIR`, the variables rustc and the linker read ([`env::TOOL_VARS`]); values normalized | cargo sets per-unit variables crates read through `env!` and proc macros read through `std::env` | `key_rows.rs`: `cargo_package_variable_is_in_the_key`, `tool_variable_is_in_the_key` |
//! | source files | content digest of every file in the compile's dep-info: modules, `include!`, `include_str!`, `include_bytes!`, generated files in `OUT_DIR`; paths normalized | these are what rustc read | `cache.rs`: `edit_in_app_misses_only_app`, `included_file_change_misses`, `generated_file_change_misses_a` |
//! | variables read | name and value as it is, not normalized (or "unset"), of every `# env-dep` line in dep-info | `env!`/`option_env!` of any variable, not only cargo's; rustc writes the value into the code, so a path read this way (`CARGO_MANIFEST_DIR`, `CARGO_BIN_EXE_<bin>`, `OUT_DIR`, a `cargo:rustc-env` path) ties the unit to its location | `cache.rs`: `env_var_read_by_option_env_misses_and_revert_hits`, `baked_paths_miss_in_another_checkout` |
//! | module shadows | that `a/mod.rs` does not exist for a listed `a.rs`, and the reverse | a new file there changes module resolution | `key_rows.rs`: `module_file_appearing_is_not_a_hit` |
//! | extern crates | content digest of each `--extern` file (rlib, rmeta, proc-macro `.so`) | a dependency's metadata and code | `cache.rs`: `edit_in_a_misses_dependents_and_revert_hits` |
//! | linked libraries | for bins, dylibs, cdylibs, staticlibs and proc macros: content digest of every Rust library linked, transitively (found through the link records larder keeps for each library it built) | a dependency two levels down changes the linked output without changing its dependents' metadata | `key_rows.rs`: `bundled_c_library_two_crates_down_reaches_the_binary` |
//! | native libraries | content digest of every static library named by `-l static=`, wherever it is on the search path, and of every `lib*.a` in a `-L` directory inside the workspace or target directory | bundled into rlibs, linked into outputs | `key_rows.rs`: `bundled_c_library_two_crates_down_reaches_the_binary` |
//! | linker | content digest of the linker executable (`-C linker`, or `cc` on `PATH`) and, for a C driver, of the linker it runs (`-print-prog-name=ld` with the link arguments' `-fuse-ld=`/`-B`) | another linker gives another binary; a linker upgraded behind an unchanged `cc` too | `key_rows.rs`: `linker_content_is_in_the_key`, `linker_behind_the_driver_is_in_the_key`; `larder-core` `identity::tests::the_linker_behind_the_driver_counts` |
//! | host CPU | with `-C target-cpu=native`: the identification and feature flags of this machine's CPU (`/proc/cpuinfo`), not the word `native` | code for one CPU must not reach a machine with another | `larder-core` `host::tests::another_cpu_is_another_native`; `cache.rs`: `native_cpu_builds_hit_on_the_same_machine` |
//! | files named by arguments | content of `-C profile-use` files, a target spec `.json`, files named in `-C link-arg(s)` | they change codegen or linking | `key_rows.rs`: `file_named_in_link_arg_is_in_the_key` |
//! | declared inputs | user-declared variables (`LARDER_EXTRA_ENV`) and the content of user-declared files (`LARDER_EXTRA_FILES`) | proc macros that read what rustc does not see | `key_rows.rs`: `declared_extra_env_and_files_are_inputs` |
//!
//! The keys of fixed invocations are pinned (`tests/golden.rs`; the build-script run and C
//! keys in `larder-core`'s `buildrun::key` and `cc::key` tests): a refactor cannot change a
//! key by accident, and a change on purpose bumps [`key::KEY_VERSION`].
//!
//! # Left out on purpose
//!
//! Each of these is changed by a test that expects hits: checkout path, target
//! directory and `CARGO_HOME` (`cache.rs`: `relocated_checkout_hits_and_tracks_its_own_files`),
//! modification times (`key_rows.rs`: `touched_sources_hit`), cargo's configuration
//! variables (`key_rows.rs`: `cargo_configuration_variables_do_not_matter`).
//!
//! - Absolute locations of the working directory, target directory, `CARGO_HOME` and the
//!   sysroot: normalized to placeholders, so two checkouts share entries. Outputs that
//!   mention paths are rewritten on restore. Not in the values of variables a crate reads
//!   through `env!` (see above).
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
pub mod inputs;
pub mod invocation;
pub mod key;
pub mod paths;
pub mod reason;

pub use inputs::{Input, InputSet};
pub use invocation::{CrateType, Emit, Extern, Invocation, SearchKind, is_build_script_name};
pub use key::{KeyInputs, Manifest, ManifestEntry, Mismatch};
pub use paths::Roots;
pub use reason::{DependencyGap, NotCacheable};
