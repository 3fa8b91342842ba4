//! larder's command line as clap types: every subcommand, its flags and their help. What
//! each command does is in `main.rs` (and `larder-core`).

use std::ffi::OsString;

use clap::{CommandFactory, Parser, Subcommand};

/// A build cache for Rust.
#[derive(Parser)]
#[command(name = "larder", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run cargo with larder as its rustc wrapper and report hits and misses.
    Cargo {
        /// Arguments passed to cargo.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Say why units of the last build missed: the inputs that differ from the nearest
    /// stored entry, searched in the local store and every remote.
    Explain {
        /// The last build (the default; the only build kept for this).
        #[arg(long)]
        last: bool,
        /// Explain these crates or packages (any outcome) instead of every miss.
        #[arg(value_name = "CRATE")]
        units: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the report of the last build (also of builds run through a plain
    /// `RUSTC_WRAPPER`).
    Report {
        /// The last build (the default).
        #[arg(long)]
        last: bool,
        /// Text, JSON, or Markdown for a CI step summary (`$GITHUB_STEP_SUMMARY`).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Write entries of the local store to a directory or tarball (`.tar`, `.tar.zst`)
    /// that a CI cache step can save: what the last build used, or everything.
    Export {
        /// The entries the last build restored or stored.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        last_build: bool,
        /// Every entry.
        #[arg(long)]
        all: bool,
        /// The directory or archive to write.
        out: std::path::PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Merge an export (directory or tarball) into the local store, verifying every blob.
    Import {
        /// The directory or archive to read.
        from: std::path::PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what the local store holds, largest first (bytes of outputs and entries).
    Du {
        /// Group entries by crate, toolchain, profile, kind (lib, bin, build-script-run,
        /// c-object...) or time since last use.
        #[arg(long, value_enum, default_value_t = By::Crate)]
        by: By,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove selected entries from the local store (and blobs only they use); the next
    /// build compiles those units again.
    Prune {
        /// Entries of this crate (or build script's package), `NAME@VERSION` for one
        /// version.
        #[arg(long = "crate", value_name = "NAME[@VERSION]")]
        krate: Option<String>,
        /// Entries built by a toolchain whose name contains this (`1.94.0`, `nightly`).
        #[arg(long, value_name = "VERSION")]
        toolchain: Option<String>,
        /// Entries stored this long ago or longer (`72h`, `30days`).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
        /// Entries not used for this long (`72h`, `30days`).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        unused_for: Option<std::time::Duration>,
        /// Prune this remote instead of the local store (a shared directory, S3 or
        /// WebDAV: backends that can list and delete entries).
        #[arg(long, value_name = "URL")]
        remote: Option<String>,
        /// Say what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enforce size and age limits on the local store now, oldest entries first.
    Gc {
        /// Keep at most this many bytes (`500M`, `10GiB`); default: the configured
        /// `max_size`.
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
        /// Remove entries not used for this long (`72h`, `30days`).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        max_age: Option<std::time::Duration>,
        /// Say what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Empty the local store.
    Clear,
    /// Check the setup (configuration, toolchain, wrapper, store, remotes); exit 1 if
    /// something is wrong.
    Doctor {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compile the units the last build restored again, locally and without the cache,
    /// and compare their outputs with what was restored; quarantine an entry that
    /// differs. Exit 1 if one differs.
    Verify {
        /// The last build (the default; the only build it can verify).
        #[arg(long)]
        last: bool,
        /// Verify a sample of this many percent of the hits (the same entries on every
        /// machine).
        #[arg(long, value_name = "PERCENT", value_parser = percent)]
        sample: Option<f64>,
        /// Only this crate's units (a crate or package name).
        #[arg(long = "crate", value_name = "NAME")]
        krate: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every entry of the local store: blobs hashed, action records parsed and
    /// their signatures checked, blobs and records present, manifests sound, temporary
    /// leftovers; exit 1 if something is broken (and not repaired).
    Fsck {
        /// Remove what is broken (and stale temporary files).
        #[arg(long)]
        repair: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the configuration in effect, each setting with where it came from.
    Config {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make every cargo build use larder: write `build.rustc-wrapper` (and the C
    /// compiler shims) into cargo's user configuration, showing the change first.
    Init {
        /// Only say whether the configuration is set up and what would change; exit 1
        /// if it is not.
        #[arg(long, conflicts_with = "undo")]
        check: bool,
        /// Put the configuration back as it was before `larder init`, byte for byte.
        #[arg(long)]
        undo: bool,
    },
    /// Docker: a Dockerfile that builds the project through larder.
    Docker {
        #[command(subcommand)]
        command: DockerCommand,
    },
    /// Manage the keys that sign action records.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Print a shell completion script (`larder completions bash > ...`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Show cache statistics across builds.
    Stats {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Reset the statistics.
        #[arg(long)]
        zero: bool,
    },
}

/// `larder key ...`.
#[derive(Subcommand)]
pub(crate) enum KeyCommand {
    /// Make a signing key: the secret key goes to FILE (mode 0600, never overwritten),
    /// the public key is printed as one line, `NAME:<base64>`, for readers to trust.
    Generate {
        /// The key's name, with a rotation suffix (`team-ci-1`).
        #[arg(long)]
        name: String,
        /// Where the secret key goes.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
}

/// `larder docker ...`.
#[derive(Subcommand)]
pub(crate) enum DockerCommand {
    /// Write a Dockerfile (and .dockerignore) for the project in the current directory:
    /// BuildKit cache mounts for cargo's registry and larder's store, the remote tiers
    /// from the secret `larder_remote`, a slim runtime stage with a non-root user.
    Init {
        /// The binary to ship (default: the project's only one).
        #[arg(long)]
        bin: Option<String>,
        /// The package that has it.
        #[arg(long)]
        package: Option<String>,
        /// The cargo profile.
        #[arg(long, default_value = "release")]
        profile: String,
        /// The builder image (with cargo).
        #[arg(long, value_name = "IMAGE")]
        base: Option<String>,
        /// The runtime image.
        #[arg(long, value_name = "IMAGE")]
        runtime: Option<String>,
        /// Build as this user (cache mounts owned by it), not root.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Copy this larder into the build context (`.larder/larder`; default: this one).
        #[arg(long, value_name = "PATH", conflicts_with = "larder_git")]
        larder_binary: Option<std::path::PathBuf>,
        /// Build larder in a cached stage with `cargo install --git URL` instead.
        #[arg(long, value_name = "URL")]
        larder_git: Option<String>,
        /// Replace an existing Dockerfile.
        #[arg(long)]
        force: bool,
        /// Write nothing: say what the existing Dockerfile lacks; exit 1 if anything.
        #[arg(long)]
        check: bool,
    },
}

/// How `larder report` prints.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
    Markdown,
}

/// How `larder du` groups entries.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum By {
    Crate,
    Toolchain,
    Profile,
    Kind,
    Age,
}

/// Words that are larder's own though clap does not list them as subcommands: help and
/// version flags, and the internal calls of the shim and of store jobs.
const OTHER_WORDS: &[&str] = &[
    "--help",
    "-h",
    "--version",
    "-V",
    "build-script-run",
    "store-job",
];

/// Whether `word` is one of larder's commands (then it is never run as a compiler).
pub(crate) fn is_command(word: &std::ffi::OsStr) -> bool {
    let Some(w) = word.to_str() else {
        return false;
    };
    OTHER_WORDS.contains(&w) || w == "help" || Cli::command().find_subcommand(w).is_some()
}

/// A percentage from 0 to 100.
fn percent(text: &str) -> Result<f64, String> {
    match text.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("{text:?} is not a percentage from 0 to 100")),
    }
}
