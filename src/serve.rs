//! `sixboot serve`: loads state, starts one task per configured protocol, and stops them
//! all on SIGTERM/SIGINT (or when one fails, with its error).

use crate::config::Config;
use crate::machines::{self, Machines};
use crate::metrics::{Dhcp4Metrics, Dhcp6Metrics, HttpMetrics, RaMetrics};
use crate::policy::Policy;
use crate::store::{SqliteStore, Store, Writer};
use crate::timeline::Timeline;
use crate::{dhcp4, dhcp6, http, ra, tftp};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{error, info};

/// How long tasks get to finish after a stop signal.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub async fn serve(cfg: Config) -> Result<(), String> {
    let mut store = SqliteStore::open(&cfg.state_dir)
        .map_err(|e| format!("{}: {e}", cfg.state_dir.display()))?;
    let snapshot = store.load().map_err(|e| e.to_string())?;
    let writer = Writer::start(Box::new(store));
    let policy = Arc::new(Policy::new(&cfg));
    let mut registry = Registry::with_prefix("sixboot");
    let (steps, steps_rx) = mpsc::channel(machines::SINK_CAPACITY);
    let dropped = Counter::default();
    registry.register(
        "timeline_dropped",
        "Timeline steps not put on a machine record: the records were busy",
        dropped.clone(),
    );
    let timeline = Arc::new(Timeline::with_sink(steps, dropped));
    let rules = Arc::new(crate::verdict::Rules::new(&cfg));
    let machines = Arc::new(Machines::load(
        &snapshot,
        writer.clone(),
        policy.clone(),
        rules,
    ));
    let (stop_tx, stop) = watch::channel(false);
    let mut tasks: JoinSet<(&'static str, std::io::Result<()>)> = JoinSet::new();
    {
        let (machines, stop) = (machines.clone(), stop.clone());
        tasks.spawn(async move {
            machines.run(steps_rx, stop).await;
            ("machines", Ok(()))
        });
    }

    if let Some(d4) = &cfg.dhcp4 {
        let metrics = Dhcp4Metrics::default();
        metrics.register(&mut registry);
        let server =
            dhcp4::server::Server::new(d4.clone(), policy.clone(), snapshot.leases4.clone());
        let ctx = dhcp4::shell::Context {
            interface: cfg.interface.clone(),
            server,
            writer: writer.clone(),
            metrics,
            timeline: timeline.clone(),
        };
        let stop = stop.clone();
        tasks.spawn(async move { ("dhcp4", dhcp4::shell::run(ctx, stop).await) });
    } else {
        info!("no [dhcp4] table: IPv6-only mode, no DHCPv4 socket opened");
    }

    if let Some(v6) = &cfg.ipv6 {
        let metrics = Dhcp6Metrics::default();
        metrics.register(&mut registry);
        let ctx = dhcp6::Dhcp6Context {
            cfg: v6.clone(),
            policy: policy.clone(),
            interface: cfg.interface.clone(),
            writer: writer.clone(),
            leases: snapshot.leases6.clone(),
            server_duid: dhcp6::server_duid(&snapshot.meta),
            metrics,
            timeline: timeline.clone(),
        };
        let stop6 = stop.clone();
        tasks.spawn(async move { ("dhcp6", dhcp6::run(ctx, stop6).await) });
        let metrics = RaMetrics::default();
        metrics.register(&mut registry);
        let (v6, interface, stop) = (v6.clone(), cfg.interface.clone(), stop.clone());
        let timeline = timeline.clone();
        tasks.spawn(async move { ("ra", ra::run(v6, interface, metrics, timeline, stop).await) });
    } else {
        info!("no [ipv6] table: no router advertisements and no DHCPv6");
    }

    // Last, so every protocol above has registered its metrics: `/metrics` shows them all.
    if let Some(t) = &cfg.tftp {
        let metrics = tftp::TftpMetrics::default();
        metrics.register(&mut registry);
        let tcfg = tftp::TftpConfig {
            max_transfers: t.max_transfers,
            max_per_client: t.max_per_client,
            ..tftp::TftpConfig::new(&t.root)
        };
        let (interface, timeline, stop) = (cfg.interface.clone(), timeline.clone(), stop.clone());
        tasks.spawn(async move {
            (
                "tftp",
                tftp::run(tcfg, interface, metrics, timeline, stop).await,
            )
        });
    }

    if let Some(h) = &cfg.http {
        let metrics = HttpMetrics::default();
        metrics.register(&mut registry);
        let ctx = http::HttpContext {
            http: h.clone(),
            tftp_root: cfg.tftp.as_ref().map(|t| t.root.clone()),
            policy: policy.clone(),
            registry: Arc::new(registry),
            metrics,
            timeline: timeline.clone(),
            machines: machines.clone(),
            admin_token: cfg.api.admin_token.clone(),
        };
        let stop = stop.clone();
        tasks.spawn(async move { ("http", http::run(ctx, stop).await) });
    }

    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let failure = tokio::select! {
        _ = term.recv() => { info!("SIGTERM: stopping"); None }
        _ = int.recv() => { info!("SIGINT: stopping"); None }
        Some(done) = tasks.join_next() => Some(match done {
            Ok((name, Ok(()))) => format!("{name} stopped unexpectedly"),
            Ok((name, Err(e))) => format!("{name}: {e}"),
            Err(e) => format!("task failed: {e}"),
        }),
    };
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(STOP_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    match failure {
        Some(e) => {
            error!(error = %e, "stopping");
            Err(e)
        }
        None => Ok(()),
    }
}
