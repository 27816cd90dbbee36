//! Command line: `serve`, `check`, `explain`.

use crate::config::{self, Checks};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sixboot",
    version,
    about = "Network-boot server: legacy PXE firmware in, IPv6-only networks out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve in the foreground; logs go to stderr, filtered by RUST_LOG (default: info).
    Serve {
        #[arg(long, short)]
        config: PathBuf,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
    },
    /// Check a config file; print every problem as FILE:LINE:COL: message.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show what sixboot would answer a kind of client at each protocol, and why.
    Explain {
        #[arg(long, short)]
        config: PathBuf,
        /// One of: bios, uefi-x64, uefi-arm64, ipxe-bios, ipxe-efi, http-x64, os.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::explain::KINDS))]
        client: String,
        /// One machine, as `52:54:00:12:34:56`: its `[[host]]` pin, and the next action the
        /// API set for it (read from the store, read-only).
        #[arg(long, value_parser = parse_mac)]
        mac: Option<[u8; 6]>,
    },
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    crate::mac::parse(s).ok_or_else(|| format!("`{s}` is not a MAC like 52:54:00:12:34:56"))
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match load(&config) {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    eprintln!("{w}");
                }
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(problems) => {
                eprint!("{problems}");
                ExitCode::FAILURE
            }
        },
        Command::Explain {
            config,
            client,
            mac,
        } => match config::load(&config, Checks::FileOnly) {
            Ok(cfg) => {
                let sample = crate::explain::sample(&client).expect("clap checked the kind");
                print!("{}", crate::explain::explain(&cfg, &sample, mac));
                ExitCode::SUCCESS
            }
            Err(problems) => {
                eprint!("{problems}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { config, log_json } => {
            init_logging(log_json);
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(problems) => {
                    eprint!("{problems}");
                    return ExitCode::FAILURE;
                }
            };
            for w in &cfg.warnings {
                tracing::warn!("{w}");
            }
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("sixboot: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(crate::serve::serve(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sixboot: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The config with every system check, and the operator's templates compiled and tried:
/// what `check` passes is what `serve` starts with. Problems come as
/// `FILE:LINE:COL: message` lines.
fn load(path: &Path) -> Result<config::Config, String> {
    let cfg = config::load(path, Checks::System).map_err(|p| p.to_string())?;
    let problems = crate::http::check_templates(&cfg);
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(problems.iter().map(|p| format!("{p}\n")).collect())
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        b.json().init();
    } else {
        b.init();
    }
}
