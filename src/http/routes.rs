//! The routes, and the one middleware every request passes: it logs the request with the
//! client's address and MAC (when known: the timeline maps addresses to MACs) and counts
//! it, including the body bytes sent.

use super::scripts::{self, Decision};
use super::{AppState, api, dashboard, files, ops};
use crate::mac::Mac;
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::serve::{IncomingStream, Listener};
use http_body_util::BodyExt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tracing::info;

/// iPXE's entry point (the URL DHCPv6 hands out): a script that chains to the
/// per-machine URL.
pub(super) const ENTRY: &str = crate::policy::IPXE_SCRIPT_PATH;
/// The per-machine script; iPXE's variables ride in the query.
pub(super) const MACHINE: &str = "/ipxe";
pub(super) const METRICS: &str = "/metrics";
pub(super) const HEALTHZ: &str = "/healthz";

/// Both ends of a connection: the client for the log, our own address for URLs in
/// scripts when the client sent no usable Host.
#[derive(Debug, Clone, Copy)]
pub(super) struct Peer {
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

/// A TCP listener whose connections know both their ends (as [`Peer`], which axum then
/// hands to handlers as `ConnectInfo`) and send without Nagle's delay: scripts are
/// small and should leave at once.
struct Tcp(TcpListener);

impl Listener for Tcp {
    type Io = TcpStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (TcpStream, Peer) {
        // axum's own accept loop, which rides out transient errors such as EMFILE.
        let (tcp, remote) = Listener::accept(&mut self.0).await;
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().unwrap_or(remote);
        (tcp, Peer { remote, local })
    }

    fn local_addr(&self) -> io::Result<Peer> {
        let local = self.0.local_addr()?;
        Ok(Peer {
            remote: local,
            local,
        })
    }
}

impl Connected<IncomingStream<'_, Tcp>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Tcp>) -> Peer {
        *stream.remote_addr()
    }
}

pub(super) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(ENTRY, get(scripts::entry))
        .route(MACHINE, get(scripts::machine))
        .route(METRICS, get(ops::metrics))
        .route(HEALTHZ, get(ops::healthz))
        .route(dashboard::DASHBOARD, get(dashboard::dashboard))
        .route(dashboard::MACHINE, get(dashboard::machine))
        .route(api::MACHINES, get(api::list))
        .route(api::MACHINE, get(api::one))
        .route(api::REPORT, post(api::report))
        .route(api::NEXT, put(api::next))
        .route(api::EVENTS, get(api::events))
        .fallback(files::serve)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Serves one listener until `stop` resolves, then lets requests in flight finish.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(
        Tcp(listener),
        app.into_make_service_with_connect_info::<Peer>(),
    )
    .with_graceful_shutdown(stop)
    .await
}

/// The route label for metrics: the matched route, else where `files` looked.
fn route_of(req: &Request) -> &'static str {
    let matched = req.extensions().get::<MatchedPath>().map(|m| m.as_str());
    [
        ENTRY,
        MACHINE,
        METRICS,
        HEALTHZ,
        dashboard::DASHBOARD,
        dashboard::MACHINE,
        api::MACHINES,
        api::MACHINE,
        api::REPORT,
        api::NEXT,
        api::EVENTS,
    ]
    .into_iter()
    .find(|r| Some(*r) == matched)
    .unwrap_or_else(|| files::route_of(req.uri().path()))
}

async fn observe(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
    next: Next,
) -> Response {
    let route = route_of(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let res = next.run(req).await;
    let status = res.status();
    // From DHCP's lease for this address, or this or an earlier script URL.
    let mac = st.timeline.mac_of(peer.remote.ip());
    info!(
        client = %peer.remote.ip(),
        mac = %mac.as_ref().map_or_else(|| "-".to_string(), |m| Mac(m).to_string()),
        %method,
        path,
        status = status.as_u16(),
        decision = res.extensions().get::<Decision>().map(|d| d.0),
        "request"
    );
    st.metrics
        .requests
        .get_or_create(&[
            ("route", route.to_string()),
            ("status", status.as_str().to_string()),
        ])
        .inc();
    let sent = st
        .metrics
        .sent_bytes
        .get_or_create(&[("route", route)])
        .clone();
    res.map(|body| {
        Body::new(body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                sent.inc_by(data.len() as u64);
            }
            frame
        }))
    })
}
