//! The `larder` binary: a rustc wrapper when cargo runs it as `RUSTC_WRAPPER`, and a
//! command-line tool otherwise. It parses arguments and maps errors to exit codes;
//! everything else lives in `larder-core`.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use larder_core::{config::Config, runner, stats, wrapper};

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

const COMMANDS: &[&str] = &["cargo", "stats", "help", "--help", "-h", "--version", "-V"];

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    // Wrapper mode: cargo runs `larder <rustc> <args...>`.
    if args.len() >= 2 && !COMMANDS.iter().any(|c| args[1] == *c) {
        let rest = args.split_off(2);
        let rustc = std::path::PathBuf::from(args.pop().expect("two arguments"));
        let code = wrapper::run(rustc, rest);
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
            let config = Config::load()?;
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
