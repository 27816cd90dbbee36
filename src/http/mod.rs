//! The HTTP stage: iPXE's entry script, per-machine scripts rendered from templates,
//! utilities and boot files streamed from disk, the machines API, the dashboard, and the
//! operational endpoints.
//!
//! axum and tower-http speak HTTP. This module only decides where a path may lead
//! (`files`), what goes into a script (`scripts`, which asks `policy` what each machine
//! gets), what the API accepts (`api`), what the dashboard shows (`dashboard`), and what
//! is logged, counted and put on each machine's timeline.

mod api;
mod body;
mod conn;
mod dashboard;
pub(crate) mod files;
mod ops;
mod routes;
mod scripts;
mod template_check;
mod templates;

pub use template_check::check_templates;

use crate::config::Http;
use crate::machines::Machines;
use crate::metrics::HttpMetrics;
use crate::policy::Policy;
use crate::timeline::{Event, Protocol, Stage, Timeline};
use prometheus_client::registry::Registry;
use socket2::{Domain, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

/// Everything the HTTP task needs.
pub struct HttpContext {
    pub http: Http,
    /// The TFTP root, also served under [`crate::policy::HTTP_BOOT_PREFIX`] for UEFI HTTP
    /// boot; `None` without `[tftp]`.
    pub tftp_root: Option<PathBuf>,
    pub policy: Arc<Policy>,
    /// The registry every protocol registered into: `/metrics` renders all of it.
    pub registry: Arc<Registry>,
    pub metrics: HttpMetrics,
    /// Each machine's stages; HTTP learns MACs from script URLs and reports what it served.
    pub timeline: Arc<Timeline>,
    /// The machine records the API and the dashboard show and the scripts follow.
    pub machines: Arc<Machines>,
    /// `[api] admin_token`: without it, the API refuses every change.
    pub admin_token: Option<String>,
}

/// What every handler shares.
struct AppState {
    roots: files::Roots,
    templates: templates::Templates,
    policy: Arc<Policy>,
    registry: Arc<Registry>,
    metrics: HttpMetrics,
    timeline: Arc<Timeline>,
    machines: Arc<Machines>,
    admin_token: Option<String>,
    /// Turns true at shutdown: live update streams end then, so they hold nothing up.
    shutdown: watch::Receiver<bool>,
}

impl AppState {
    /// Puts one HTTP stage on the timeline of the machine behind `client`.
    fn stage(&self, client: std::net::IpAddr, stage: Stage, detail: String) {
        self.timeline
            .record(Event::at(client, Protocol::Http, stage, detail));
    }

    /// Puts a whole file sent to `client` on its machine's timeline: `path` as requested,
    /// and, decoded, as the file the machine records act on.
    fn served(&self, client: std::net::IpAddr, path: String) {
        let file = percent_encoding::percent_decode_str(&path)
            .decode_utf8_lossy()
            .trim_start_matches('/')
            .to_string();
        self.timeline.record(Event {
            file: Some(file),
            ..Event::at(client, Protocol::Http, Stage::Served, path)
        });
    }
}

/// Connections waiting to be accepted, per listener.
const BACKLOG: i32 = 1024;

/// A listener on `addr`. IPv6 sockets are v6-only so `[::]:p` and `0.0.0.0:p` can both
/// be listed; freebind lets sixboot start before the address has finished appearing.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let fail = |e: io::Error| io::Error::new(e.kind(), format!("HTTP listen {addr}: {e}"));
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(fail)?;
    s.set_reuse_address(true).map_err(fail)?;
    if addr.is_ipv6() {
        s.set_only_v6(true).map_err(fail)?;
        s.set_freebind_v6(true).map_err(fail)?;
    } else {
        s.set_freebind_v4(true).map_err(fail)?;
    }
    s.set_nonblocking(true).map_err(fail)?;
    s.bind(&addr.into()).map_err(fail)?;
    s.listen(BACKLOG).map_err(fail)?;
    TcpListener::from_std(s.into())
}

/// Serves every `[http] listen` address until `shutdown` turns true, then lets requests
/// in flight finish (the caller bounds how long).
pub async fn run(ctx: HttpContext, shutdown: watch::Receiver<bool>) -> io::Result<()> {
    let listeners = ctx
        .http
        .listen
        .iter()
        .map(|a| bind(*a))
        .collect::<io::Result<Vec<_>>>()?;
    let state = Arc::new(AppState {
        roots: files::Roots::new(&ctx.http.root, ctx.tftp_root.as_deref())?,
        templates: templates::Templates::new(ctx.http.templates.clone()),
        policy: ctx.policy,
        registry: ctx.registry,
        metrics: ctx.metrics,
        timeline: ctx.timeline,
        machines: ctx.machines,
        admin_token: ctx.admin_token,
        shutdown: shutdown.clone(),
    });
    let limits = conn::Limits {
        slots: Arc::new(tokio::sync::Semaphore::new(ctx.http.max_connections)),
        request_timeout: ctx.http.request_timeout,
        send_timeout: ctx.http.send_timeout,
        metrics: state.metrics.clone(),
    };
    let app = routes::router(state);
    for listener in &listeners {
        info!(address = %listener.local_addr()?, max_connections = ctx.http.max_connections,
            request_timeout = ?ctx.http.request_timeout, "HTTP listening");
    }
    conn::serve(listeners, app, limits, shutdown).await?;
    Ok(())
}
