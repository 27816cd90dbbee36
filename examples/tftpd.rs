//! Runs only sixboot's TFTP server, for `bench/tftp` until `sixboot serve --config` can do
//! the same from a config with just `[tftp]`.
//!
//! Usage: `tftpd INTERFACE ROOT` (defaults of [`TftpConfig::new`]); stops on SIGINT/SIGTERM.

use std::process::ExitCode;

use sixboot::tftp::{TftpConfig, TftpMetrics};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "sixboot=warn".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(interface), Some(root)) = (args.first(), args.get(1)) else {
        eprintln!("usage: tftpd INTERFACE ROOT [MAX_TRANSFERS [MAX_PER_CLIENT]]");
        return ExitCode::from(2);
    };
    let mut cfg = TftpConfig::new(root);
    let number =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    cfg.max_transfers = number(2, cfg.max_transfers);
    cfg.max_per_client = number(3, cfg.max_per_client);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tftpd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = stop.send(true);
        });
        sixboot::tftp::run(
            cfg,
            interface.clone(),
            TftpMetrics::default(),
            Default::default(),
            rx,
        )
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tftpd: {e}");
            ExitCode::FAILURE
        }
    }
}
