//! The dashboard: every machine on one page at `/`, one machine's timeline and report at
//! `/machines/{mac}`. Both are rendered on the server from overridable templates; a few
//! lines of plain JavaScript in them follow the live updates (`/api/v1/events`).
//!
//! `/` claims no file (the static fallback serves no folder index), and a
//! `/machines/...` path that is not a MAC still reaches the static files.

use super::api::url_mac;
use super::routes::Peer;
use super::templates::{self, Templates};
use super::{AppState, files};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::context;
use minijinja::value::Serde;
use serde_json::Value;
use std::sync::Arc;
use tracing::error;

pub(super) const DASHBOARD: &str = "/";
pub(super) const MACHINE: &str = "/machines/{mac}";
const MACHINE_PREFIX: &str = "/machines/";

/// The dashboard's filters: `state` values of a machine, and what the button says.
const FILTERS: [(&str, &str); 5] = [
    ("all", "All"),
    ("running", "Running"),
    ("pass", "Pass"),
    ("fail", "Fail"),
    ("none", "No result"),
];

fn page(name: &str, rendered: Result<String, minijinja::Error>) -> Response {
    match rendered {
        Ok(html) => ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => {
            error!(template = name, error = %e, "cannot render page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The filter asked for in `?state=`, or `all`.
fn filter_of(uri: &Uri) -> &'static str {
    let asked = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("state="));
    FILTERS
        .iter()
        .map(|f| f.0)
        .find(|f| Some(*f) == asked)
        .unwrap_or("all")
}

/// The dashboard page for these machine summaries, showing `filter`.
pub(super) fn dashboard_page(
    t: &Templates,
    machines: Vec<Value>,
    filter: &str,
) -> Result<String, minijinja::Error> {
    let filters: Vec<_> = FILTERS
        .iter()
        .map(|&(id, title)| context! { id, title })
        .collect();
    let ctx = context! { machines => Serde(machines), filter, filters };
    t.render(templates::DASHBOARD, ctx)
}

/// One machine's page, from its detail view (summary, timeline, report).
pub(super) fn machine_page(t: &Templates, m: &Value) -> Result<String, minijinja::Error> {
    let report = m
        .get("report")
        .filter(|r| !r.is_null())
        .map(|r| serde_json::to_string_pretty(r).unwrap_or_default());
    t.render(templates::MACHINE_PAGE, context! { m => Serde(m), report })
}

pub(super) async fn dashboard(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    page(
        templates::DASHBOARD,
        dashboard_page(&st.templates, st.machines.list(), filter_of(&uri)),
    )
}

pub(super) async fn machine(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
) -> Response {
    let rest = req.uri().path().strip_prefix(MACHINE_PREFIX).unwrap_or("");
    let Some(mac) = url_mac(rest) else {
        return files::serve(State(st), ConnectInfo(peer), req).await;
    };
    let Some(m) = st.machines.get(mac) else {
        return (StatusCode::NOT_FOUND, Html(format!("<!doctype html><title>sixboot</title><p>No machine {rest}. <a href=\"/\">All machines</a></p>"))).into_response();
    };
    page(templates::MACHINE_PAGE, machine_page(&st.templates, &m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_filters_show_everything() {
        let f = |q: &str| filter_of(&q.parse::<Uri>().unwrap());
        assert_eq!(f("/?state=fail"), "fail");
        assert_eq!(f("/?x=1&state=running"), "running");
        assert_eq!(f("/?state=%3Cb%3E"), "all");
        assert_eq!(f("/"), "all");
    }
}
