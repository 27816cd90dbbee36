//! Operational endpoints: `/metrics` renders the registry every protocol registered
//! into; `/healthz` says whether this stage can serve.

use super::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use std::sync::Arc;

/// prometheus-client writes OpenMetrics text, which Prometheus scrapes natively.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) async fn metrics(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, OPENMETRICS)],
        crate::metrics::render(&st.registry),
    )
}

/// Ready when the listeners are up (this answer proves it) and the HTTP root is
/// still a readable folder.
pub(super) async fn healthz(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    match tokio::fs::read_dir(st.roots.http()).await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "http root is not readable\n",
        ),
    }
}
