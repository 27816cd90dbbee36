//! The routes, and the one middleware every request passes: it logs the request with the
//! client's address and MAC (when known: the timeline maps addresses to MACs) and counts
//! it, including the body bytes sent.

use super::scripts::{self, Decision};
use super::{AppState, api, dashboard, files, ops};
use crate::mac::Mac;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::info;

/// iPXE's entry point (the URL DHCPv6 hands out): a script that chains to the
/// per-machine URL.
pub(super) const ENTRY: &str = crate::policy::IPXE_SCRIPT_PATH;
/// The per-machine script; iPXE's variables ride in the query.
pub(super) const MACHINE: &str = "/ipxe";
pub(super) const METRICS: &str = "/metrics";
pub(super) const HEALTHZ: &str = "/healthz";

/// Both ends of a connection: the client for the log, our own address for URLs in
/// scripts when the client sent no usable Host. [`super::conn`] puts it on every request
/// as `ConnectInfo`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Peer {
    pub remote: SocketAddr,
    pub local: SocketAddr,
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
        .route(api::SPEC, put(api::spec))
        .route(api::BULK, post(api::bulk))
        .route(api::AUTH, get(api::auth))
        .route(api::ACTIONS, get(api::actions))
        .route(api::EVENTS, get(api::events))
        .fallback(files::serve)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
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
        api::SPEC,
        api::BULK,
        api::AUTH,
        api::ACTIONS,
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
