//! The `larder` binary: a rustc wrapper when cargo runs it as `RUSTC_WRAPPER`, a C and
//! C++ compiler wrapper when build scripts run it as `CC="larder cc"`, and a
//! command-line tool otherwise. It parses arguments and maps errors to exit codes;
//! everything else lives in `larder-core`.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use std::io::Write;

mod cli;
use cli::{By, Cli, Command, DockerCommand, Format, KeyCommand};

use larder_core::human::bytes as human_bytes;
use larder_core::{catalog, cc, config::Config, runner, rustc, stats};

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    // Masquerade: `larder cargo` points `CC`/`CXX` at symlinks named `cc`/`c++`.
    let invoked_as =
        std::path::Path::new(args.first().map(OsString::as_os_str).unwrap_or_default())
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
    if invoked_as != "larder" && cc::is_compiler_name(&invoked_as) {
        let code = cc::run_masquerade(&invoked_as, args.split_off(1));
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    // Wrapper mode: cargo runs `larder <rustc> <args...>`.
    if args.len() >= 2 && is_tool_word(&args[1]) && !cli::is_command(&args[1]) {
        // C compiler mode: cc-rs runs `larder cc <args...>` (`CC="larder cc"`), and
        // `larder <flags...>` for its probes.
        let first = args[1].to_string_lossy();
        if cc::is_compiler_name(&first) || first.starts_with('-') {
            let code = if first.starts_with('-') {
                cc::run_probe(args.split_off(1))
            } else {
                let rest = args.split_off(2);
                cc::run(std::path::PathBuf::from(args.pop().expect("two")), rest)
            };
            return ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
        let rest = args.split_off(2);
        let rustc = std::path::PathBuf::from(args.pop().expect("two arguments"));
        let code = rustc::run(rustc, rest);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    // A background store: `larder store-job <file>`.
    if args.len() == 3 && args[1] == "store-job" {
        let code = larder_core::action::storejob::run_job_file(std::path::Path::new(&args[2]));
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    // The shim in front of a build script: `larder build-script-run <real> <args...>`.
    if args.len() >= 3 && args[1] == "build-script-run" {
        let rest = args.split_off(3);
        let real = std::path::PathBuf::from(args.pop().expect("three arguments"));
        let code = larder_core::buildrun::run(real, rest);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // A reader that stopped reading (`larder du | head`) is not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("larder: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Whether the first argument names a tool to wrap rather than a subcommand: a path
/// (cargo passes rustc's, or `rustc` itself), a rustc or clippy-driver by name, a C
/// compiler by name (`larder cc`), or flags (cc-rs's probes). Anything else goes to the
/// subcommand parser, which refuses an unknown word (`larder stat`) instead of running it
/// as a compiler.
fn is_tool_word(word: &OsString) -> bool {
    let w = word.to_string_lossy();
    w.contains('/')
        || w.starts_with('-')
        || w.starts_with("rustc")
        || w.starts_with("clippy-driver")
        || cc::is_compiler_name(&w)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Cargo { args } => {
            let code = runner::run_cargo(args)?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Command::Explain {
            last: _,
            units,
            json,
        } => {
            let config = Config::load_here()?;
            let events = last_build_events(&config)?;
            let tiers = larder_core::action::open_tiers(&config)?;
            let xs = larder_core::explain::explain(&tiers, &events, &units);
            let mut out = std::io::stdout().lock();
            if json {
                json_line(&mut out, &xs)?;
            } else if xs.is_empty() {
                writeln!(
                    out,
                    "{}",
                    if units.is_empty() {
                        "the last build had no misses"
                    } else {
                        "not compiled in the last build: cargo found it up to date (a \
                         hit or a miss is only for what cargo compiles), or it is not part \
                         of the build"
                    }
                )?;
            } else {
                write!(
                    out,
                    "{}",
                    larder_core::explain::render(&xs, std::time::SystemTime::now())
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { last: _, format } => {
            let config = Config::load_here()?;
            let events = last_build_events(&config)?;
            let summary = larder_core::summary::BuildSummary::from_events(&events);
            let mut out = std::io::stdout().lock();
            match format {
                Format::Text => write!(out, "{}", summary.render_full())?,
                Format::Markdown => write!(out, "{}", summary.render_markdown())?,
                Format::Json => {
                    json_line(
                        &mut out,
                        &serde_json::json!({"summary": summary, "events": events}),
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Export {
            last_build,
            all: _,
            out,
            json,
        } => {
            let config = Config::load_here()?;
            let store = config.open_store()?;
            let what = if last_build {
                larder_core::transfer::Selection::Build(last_build_events(&config)?)
            } else {
                larder_core::transfer::Selection::All
            };
            let done = larder_core::transfer::export(&store, &what, &out)?;
            let mut o = std::io::stdout().lock();
            if json {
                json_line(&mut o, &done)?;
            } else {
                writeln!(
                    o,
                    "exported {} entries ({} files, {}) to {}",
                    done.entries,
                    done.files,
                    human_bytes(done.bytes),
                    out.display()
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { from, json } => {
            let config = Config::load_here()?;
            let store = config.open_store()?;
            let done = larder_core::transfer::import(&store, &from)?;
            let mut o = std::io::stdout().lock();
            if json {
                json_line(&mut o, &done)?;
            } else {
                writeln!(
                    o,
                    "imported {} entries and {} blobs ({} already here); skipped {} corrupt \
                     blobs and {} entries missing a blob",
                    done.entries, done.blobs, done.present, done.corrupt, done.incomplete
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Du { by, json } => {
            let config = Config::load_here()?;
            let store = config.open_store()?;
            let catalog = catalog::Catalog::read(&store)?;
            let by = match by {
                By::Crate => catalog::GroupBy::Crate,
                By::Kind => catalog::GroupBy::Kind,
                By::Toolchain => catalog::GroupBy::Toolchain,
                By::Profile => catalog::GroupBy::Profile,
                By::Age => catalog::GroupBy::Age,
            };
            let groups = catalog.group(by, std::time::SystemTime::now());
            let mut out = std::io::stdout().lock();
            if json {
                json_line(
                    &mut out,
                    &serde_json::json!({
                        "store_bytes": catalog.store_bytes,
                        "groups": groups,
                    }),
                )?;
            } else {
                writeln!(out, "{:>10}  {:>7}  name", "outputs", "entries")?;
                for g in &groups {
                    writeln!(
                        out,
                        "{:>10}  {:>7}  {}",
                        human_bytes(g.bytes),
                        g.entries,
                        g.name
                    )?;
                }
                writeln!(
                    out,
                    "store: {} on disk (compressed) in {}; outputs are uncompressed sizes, and \
                     a blob two entries share counts for both",
                    human_bytes(catalog.store_bytes),
                    config.dir.display()
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Prune {
            krate,
            toolchain,
            older_than,
            unused_for,
            remote,
            dry_run,
            json,
        } => {
            if krate.is_none()
                && unused_for.is_none()
                && older_than.is_none()
                && toolchain.is_none()
            {
                anyhow::bail!(
                    "say what to prune: --crate NAME[@VERSION], --toolchain VERSION, \
                     --older-than DURATION and/or --unused-for DURATION (`larder clear` \
                     empties the store)"
                );
            }
            let config = Config::load_here()?;
            let store: std::sync::Arc<dyn larder_core::Store> = match &remote {
                None => std::sync::Arc::new(config.open_store()?),
                Some(url) => {
                    if unused_for.is_some() {
                        anyhow::bail!(
                            "--unused-for needs the local store's times of use; on a remote \
                             use --older-than (the time each entry was stored)"
                        );
                    }
                    let spec = larder_core::RemoteSpec::parse(
                        url,
                        false,
                        std::time::Duration::from_secs(30),
                    )
                    .map_err(|e| anyhow::anyhow!("--remote {}: {}", e.url, e.message))?;
                    let store = larder_core::open_remote(&spec)?;
                    let caps = larder_core::Store::capabilities(&store);
                    if !caps.delete {
                        anyhow::bail!(
                            "{} cannot delete entries: prune it with the server's own tools",
                            spec.name()
                        );
                    }
                    store
                }
            };
            let now = std::time::SystemTime::now();
            let selection = catalog::Selection {
                crate_name: krate,
                unused_since: unused_for.map(|d| now - d),
                created_before: older_than.map(|d| now - d),
                toolchain,
            };
            let pruned = catalog::Catalog::read(&*store)?.prune(&*store, &selection, dry_run)?;
            let mut out = std::io::stdout().lock();
            if json {
                json_line(&mut out, &pruned)?;
            } else {
                writeln!(
                    out,
                    "{} {} entries, {} blobs only they used and {} manifest entries: {}",
                    if dry_run { "would remove" } else { "removed" },
                    pruned.entries,
                    pruned.blobs,
                    pruned.manifest_entries,
                    human_bytes(pruned.bytes)
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Gc {
            max_size,
            max_age,
            dry_run,
            json,
        } => {
            let config = Config::load_here()?;
            let max_size = match max_size {
                Some(s) => larder_core::config::parse_size("--max-size", &s)?,
                None => config.max_size,
            };
            let store = config.open_store()?;
            let cutoff = max_age.map(|d| std::time::SystemTime::now() - d);
            let (files, bytes) = store.collect_garbage(Some(max_size), cutoff, dry_run)?;
            let mut out = std::io::stdout().lock();
            if json {
                json_line(
                    &mut out,
                    &serde_json::json!({"files": files, "bytes": bytes, "dry_run": dry_run}),
                )?;
            } else {
                writeln!(
                    out,
                    "{} {files} files, {} (limits: {}{})",
                    if dry_run { "would remove" } else { "removed" },
                    human_bytes(bytes),
                    human_bytes(max_size),
                    max_age.map_or(String::new(), |d| format!(
                        ", unused for {}",
                        humantime::format_duration(d)
                    )),
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            last: _,
            sample,
            krate,
            json,
        } => {
            let config = Config::load_here()?;
            let events = last_build_events(&config)?;
            let report = larder_core::verify::verify(&config, &events, sample, krate.as_deref())?;
            let mut out = std::io::stdout().lock();
            if json {
                json_line(&mut out, &report)?;
            } else {
                write!(out, "{}", larder_core::verify::render(&report))?;
            }
            Ok(if report.differs > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Fsck { repair, json } => {
            let config = Config::load_here()?;
            let report = larder_core::fsck::fsck(&config, repair)?;
            let mut out = std::io::stdout().lock();
            if json {
                json_line(&mut out, &report)?;
            } else {
                write!(out, "{}", larder_core::fsck::render(&report, repair))?;
            }
            Ok(if report.broken() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Doctor { json } => {
            let checks = larder_core::doctor::run(&Config::env_here());
            let mut out = std::io::stdout().lock();
            if json {
                json_line(&mut out, &checks)?;
            } else {
                for c in &checks {
                    writeln!(
                        out,
                        "{:<4}  {:<13} {}",
                        if c.ok { "ok" } else { "FAIL" },
                        c.name,
                        c.detail
                    )?;
                    if let Some(fix) = &c.fix {
                        writeln!(out, "      fix: {fix}")?;
                    }
                }
            }
            Ok(if checks.iter().all(|c| c.ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Config { json } => {
            let env = Config::env_here();
            let config = Config::from_env(&env)?;
            let settings = larder_core::config::show::settings(&config, &env);
            let unknown = larder_core::config::show::unknown_vars(&env);
            let mut out = std::io::stdout().lock();
            if json {
                json_line(
                    &mut out,
                    &serde_json::json!({"settings": settings, "unknown": unknown}),
                )?;
            } else {
                for s in &settings {
                    writeln!(out, "{:<26} {:<40} {}", s.variable, s.value, s.origin)?;
                }
                for u in &unknown {
                    writeln!(out, "{}", larder_core::config::show::unknown_message(u))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Init { check, undo } => {
            let mut out = std::io::stdout().lock();
            if undo {
                let path = larder_core::init::undo(&larder_core::init::config_path()?)?;
                writeln!(
                    out,
                    "restored {} as it was before larder init",
                    path.display()
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            let config = Config::load_here()?;
            let exe = std::env::current_exe()?;
            let plan = larder_core::init::plan(&config, &exe)?;
            if plan.is_done() {
                writeln!(out, "{} already uses larder", plan.path.display())?;
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(w) = &plan.replaced_wrapper {
                writeln!(out, "note: larder replaces the wrapper {w}")?;
            }
            if check {
                writeln!(
                    out,
                    "{} does not use larder yet; `larder init` would change:",
                    plan.path.display()
                )?;
                write!(out, "{}", plan.diff())?;
                return Ok(ExitCode::from(1));
            }
            writeln!(out, "writing {}:", plan.path.display())?;
            write!(out, "{}", plan.diff())?;
            larder_core::init::apply(&plan)?;
            writeln!(
                out,
                "done; `larder init --undo` puts the file back as it was (kept in {})",
                larder_core::init::backup_path(&plan.path).display()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Docker {
            command:
                DockerCommand::Init {
                    bin,
                    package,
                    profile,
                    base,
                    runtime,
                    user,
                    larder_binary,
                    larder_git,
                    force,
                    check,
                },
        } => {
            let dir = std::env::current_dir()?;
            let mut out = std::io::stdout().lock();
            if check {
                let path = dir.join("Dockerfile");
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let findings = larder_core::docker::check(&text);
                for f in &findings {
                    match f.line {
                        Some(l) => writeln!(out, "Dockerfile:{l}: {}", f.message)?,
                        None => writeln!(out, "Dockerfile: {}", f.message)?,
                    }
                }
                if findings.is_empty() {
                    writeln!(out, "Dockerfile: nothing missing for a cached build")?;
                    return Ok(ExitCode::SUCCESS);
                }
                return Ok(ExitCode::from(1));
            }
            let opts = larder_core::docker::InitOptions {
                bin,
                package,
                profile: Some(profile),
                base,
                runtime,
                user,
                larder_binary,
                larder_git,
                force,
            };
            let w = larder_core::docker::init(&dir, &opts)?;
            writeln!(out, "wrote {} (ships {})", w.dockerfile.display(), w.bin)?;
            if let Some(i) = &w.dockerignore {
                writeln!(out, "wrote {}", i.display())?;
            }
            if let Some(l) = &w.larder {
                writeln!(
                    out,
                    "copied larder to {} (the image's COPY reads it)",
                    l.display()
                )?;
            }
            writeln!(
                out,
                "build: docker build -t {0} .   with a remote tier: LARDER_REMOTE=... docker build \
                 --secret id=larder_remote,env=LARDER_REMOTE -t {0} .",
                w.bin
            )?;
            writeln!(
                out,
                "for a CI cache: docker build --target larder-cache --output type=local,dest=.larder .   \
                 (writes {}; the next build imports it)",
                larder_core::docker::CACHE_FILE
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Key {
            command: KeyCommand::Generate { name, out },
        } => {
            let key = larder_core::signing::SecretKey::generate(&name)?;
            key.write_new(&out)?;
            writeln!(std::io::stdout().lock(), "{}", key.public())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "larder",
                &mut std::io::stdout().lock(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Clear => {
            let config = Config::load_here()?;
            let store = config.open_store()?;
            let (files, bytes) = store.collect_garbage(Some(0), None, false)?;
            writeln!(
                std::io::stdout().lock(),
                "removed {files} files, {}",
                human_bytes(bytes)
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats { json, zero } => {
            let config = Config::load_here()?;
            if zero {
                stats::zero(&config)?;
            }
            let report = stats::gather(&config);
            let mut out = std::io::stdout().lock();
            if json {
                json_line(&mut out, &report)?;
            } else if !zero {
                write!(out, "{}", stats::render(&report))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The events of the last build recorded in the store.
fn last_build_events(config: &Config) -> anyhow::Result<Vec<larder_core::report::Event>> {
    let Some(path) = larder_core::report::last_report(&config.dir) else {
        anyhow::bail!(
            "no build report in {}: build through larder first (`larder cargo build`, or \
             cargo with RUSTC_WRAPPER=larder)",
            config.layout().reports().display()
        );
    };
    larder_core::report::wait_for_stores(&config.dir, &path, std::time::Duration::from_secs(30));
    Ok(larder_core::report::read_report(&path))
}

/// Prints `value` as one line of JSON (`--json`).
fn json_line(out: &mut impl std::io::Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}
