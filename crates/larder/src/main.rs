//! The `larder` binary: a rustc wrapper when cargo runs it as `RUSTC_WRAPPER`, a C and
//! C++ compiler wrapper when build scripts run it as `CC="larder cc"`, and a
//! command-line tool otherwise. It parses arguments and maps errors to exit codes;
//! everything else lives in `larder-core`.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use larder_core::{cc, config::Config, runner, rustc, stats};

/// A build cache for Rust.
#[derive(Parser)]
#[command(name = "larder", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run cargo with larder as its rustc wrapper and report hits and misses.
    Cargo {
        /// Arguments passed to cargo.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
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

const COMMANDS: &[&str] = &[
    "cargo",
    "stats",
    "help",
    "--help",
    "-h",
    "--version",
    "-V",
    "build-script-run",
    "store-job",
];

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
    if args.len() >= 2 && !COMMANDS.iter().any(|c| args[1] == *c) {
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
        Err(e) => {
            eprintln!("larder: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Cargo { args } => {
            let code = runner::run_cargo(args)?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Command::Stats { json, zero } => {
            let config = Config::load_here()?;
            if zero {
                stats::zero(&config)?;
            }
            let report = stats::gather(&config);
            let mut out = std::io::stdout().lock();
            use std::io::Write;
            if json {
                serde_json_line(&mut out, &report)?;
            } else if !zero {
                write!(out, "{}", stats::render(&report))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn serde_json_line(
    out: &mut impl std::io::Write,
    report: &stats::StatsReport,
) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, report)?;
    writeln!(out)?;
    Ok(())
}
