//! The machines API (JSON). Reading is open; changing a next action needs
//! `[api] admin_token` as a bearer token; a report needs the machine's current burn-in
//! token. Every refusal is a 4xx with `{"error": "..."}` saying why, and is logged.
//!
//! MACs in URLs are lowercase and colon-separated (`52:54:00:12:34:56`); any other form
//! is refused with 400 rather than guessed at, so one machine has one URL.

use super::AppState;
use crate::mac::Mac;
use crate::machines::{Invalid, Refusal, Report};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum_extra::TypedHeader;
use axum_extra::headers::Authorization;
use axum_extra::headers::authorization::Bearer;
use axum_extra::typed_header::TypedHeaderRejection;
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

/// The machine list; one machine is `MACHINES/{mac}`.
pub(super) const MACHINES: &str = "/api/v1/machines";
pub(super) const MACHINE: &str = "/api/v1/machines/{mac}";
pub(super) const REPORT: &str = "/api/v1/machines/{mac}/report";
pub(super) const NEXT: &str = "/api/v1/machines/{mac}/next";
/// Live updates (Server-Sent Events): one `machine` event per changed machine.
pub(super) const EVENTS: &str = "/api/v1/events";

/// Largest request body taken (a report is a few KiB).
pub(super) const MAX_BODY: usize = 64 << 10;

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        v.to_string(),
    )
        .into_response()
}

/// A refusal: logged, and answered with what was wrong.
fn refuse(status: StatusCode, why: impl Into<String>) -> Response {
    let why = why.into();
    debug!(status = status.as_u16(), why, "API request refused");
    let mut res = json_response(status, &json!({ "error": why }));
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
    }
    res
}

/// A MAC from a URL, in the one accepted form.
pub(super) fn url_mac(s: &str) -> Option<[u8; 6]> {
    crate::mac::parse(s).filter(|m| Mac(m).to_string() == s)
}

fn bad_mac(s: &str) -> Response {
    refuse(
        StatusCode::BAD_REQUEST,
        format!("`{s}` is not a MAC in lowercase colon form like 52:54:00:12:34:56"),
    )
}

/// An `Authorization: Bearer <token>` header as extracted. Taken as a `Result` so that a
/// missing or other-scheme header is no rejection of its own but no token, refused with
/// the handler's 401 after the checks that come first.
type Auth = Result<TypedHeader<Authorization<Bearer>>, TypedHeaderRejection>;

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(auth: &Auth) -> Option<&str> {
    auth.as_ref().ok().map(|TypedHeader(a)| a.token())
}

/// The body, at most [`MAX_BODY`] bytes (413 past it, also when Content-Length says so).
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    let too_big = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is larger than {MAX_BODY} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_big());
    }
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        let limit = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if limit {
            too_big()
        } else {
            refuse(StatusCode::BAD_REQUEST, format!("cannot read body: {e}"))
        }
    })
}

pub(super) async fn list(State(st): State<Arc<AppState>>) -> Response {
    json_response(StatusCode::OK, &Value::Array(st.machines.list()))
}

pub(super) async fn one(State(st): State<Arc<AppState>>, Path(mac): Path<String>) -> Response {
    let Some(m) = url_mac(&mac) else {
        return bad_mac(&mac);
    };
    match st.machines.get(m) {
        Some(v) => json_response(StatusCode::OK, &v),
        None => refuse(StatusCode::NOT_FOUND, format!("no machine {mac}")),
    }
}

/// `POST .../report`: the burn-in image's result. Checked in this order: MAC form (400),
/// known machine (404), token (401), size (413), JSON (400), schema (422); stored on disk
/// before the 200.
pub(super) async fn report(
    State(st): State<Arc<AppState>>,
    Path(mac): Path<String>,
    auth: Auth,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(m) = url_mac(&mac) else {
        return bad_mac(&mac);
    };
    let token = bearer(&auth);
    if let Err(r) = st.machines.check_token(m, token) {
        return refused(&mac, r);
    }
    let bytes = match read_body(&headers, body).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let (parsed, sent) = match Report::parse(&bytes) {
        Ok(r) => r,
        Err(Invalid::Malformed(e)) => {
            return refuse(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}"));
        }
        Err(Invalid::Schema(e)) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not a burn-in report: {e}"),
            );
        }
    };
    match st.machines.report(m, token, &parsed, sent).await {
        Ok(label) => {
            info!(%mac, result = %label, duration_s = parsed.duration_s, "burn-in report stored");
            json_response(StatusCode::OK, &json!({ "stored": true, "result": label }))
        }
        Err(r) => refused(&mac, r),
    }
}

fn refused(mac: &str, r: Refusal) -> Response {
    match r {
        Refusal::UnknownMachine => refuse(StatusCode::NOT_FOUND, format!("no machine {mac}")),
        Refusal::BadToken => {
            warn!(%mac, "burn-in report with a missing or wrong token refused");
            refuse(
                StatusCode::UNAUTHORIZED,
                "missing or wrong burn-in token (Authorization: Bearer <sixboot.token>)",
            )
        }
        Refusal::Store(e) => {
            tracing::error!(%mac, error = %e, "burn-in report not stored");
            refuse(StatusCode::SERVICE_UNAVAILABLE, "report not stored; retry")
        }
    }
}

/// `PUT .../next` with `{"next": "<menu|local|item id>"}`. Needs the admin token; makes
/// the record if the machine was never seen (so an operator can set it up front).
pub(super) async fn next(
    State(st): State<Arc<AppState>>,
    Path(mac): Path<String>,
    auth: Auth,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(admin) = st.admin_token.as_deref() else {
        return refuse(
            StatusCode::FORBIDDEN,
            "changing a next action is disabled: set [api] admin_token in the config",
        );
    };
    let ok = bearer(&auth).is_some_and(|t| crate::machines::tokens_match(admin, t));
    if !ok {
        warn!(%mac, "next action change with a missing or wrong admin token refused");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token (Authorization: Bearer <[api] admin_token>)",
        );
    }
    let Some(m) = url_mac(&mac) else {
        return bad_mac(&mac);
    };
    let bytes = match read_body(&headers, body).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let v: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
    };
    let Some(want) = v.get("next").and_then(Value::as_str) else {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "body must be {\"next\": \"<action>\"}",
        );
    };
    if !st.policy.is_next_action(want) {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "unknown next action `{want}`; one of: {}",
                st.policy.next_actions().join(", ")
            ),
        );
    }
    match st.machines.set_next(m, want).await {
        Ok(view) => {
            info!(%mac, next = want, "next action set");
            json_response(StatusCode::OK, &view)
        }
        Err(e) => {
            tracing::error!(%mac, error = %e, "next action not stored");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "next action not stored; retry",
            )
        }
    }
}

/// Live updates: every changed machine's summary as an SSE `machine` event. A client
/// that falls behind the buffer is dropped (its browser reconnects and reloads the list);
/// every stream ends at shutdown.
pub(super) async fn events(
    State(st): State<Arc<AppState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let updates = updates(st.machines.subscribe(), st.shutdown.clone());
    Sse::new(updates.map(|json| Ok(Event::default().event("machine").data(&*json))))
        .keep_alive(KeepAlive::default())
}

/// The updates one subscriber sees: every one, in order, until it falls behind (then
/// none: it is dropped) or `stop` turns true.
fn updates(
    rx: broadcast::Receiver<Arc<str>>,
    stop: watch::Receiver<bool>,
) -> impl Stream<Item = Arc<str>> {
    futures_util::stream::unfold((rx, stop), |(mut rx, mut stop)| async move {
        let got = tokio::select! {
            got = rx.recv() => got,
            _ = stop.wait_for(|s| *s) => return None,
        };
        match got {
            Ok(json) => Some((json, (rx, stop))),
            Err(RecvError::Lagged(n)) => {
                debug!(missed = n, "live update client fell behind; dropped");
                None
            }
            Err(RecvError::Closed) => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_in_urls_have_one_form() {
        assert_eq!(
            url_mac("52:54:00:ab:cd:01"),
            Some([0x52, 0x54, 0, 0xab, 0xcd, 1])
        );
        assert_eq!(url_mac("52:54:00:AB:cd:01"), None);
        assert_eq!(url_mac("52-54-00-ab-cd-01"), None);
        assert_eq!(url_mac("52:54:00:ab:cd"), None);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_dropped_and_stop_ends_every_stream() {
        let (tx, _) = broadcast::channel::<Arc<str>>(4);
        let (stop_tx, stop) = watch::channel(false);
        let keeping_up = updates(tx.subscribe(), stop.clone());
        let lagging = updates(tx.subscribe(), stop);
        futures_util::pin_mut!(keeping_up, lagging);
        tx.send("a".into()).unwrap();
        assert_eq!(keeping_up.next().await.as_deref(), Some("a"));
        for i in 0..10 {
            tx.send(i.to_string().into()).unwrap();
            assert_eq!(keeping_up.next().await, Some(i.to_string().into()));
        }
        assert_eq!(lagging.next().await, None, "fell behind: dropped");
        stop_tx.send(true).unwrap();
        assert_eq!(keeping_up.next().await, None, "stopped");
    }

    /// The token a request with this `Authorization` value carries, as the handlers see it.
    async fn token_of(value: Option<&str>) -> Option<String> {
        use axum::extract::FromRequestParts;
        let mut req = axum::http::Request::builder();
        if let Some(v) = value {
            req = req.header(header::AUTHORIZATION, v);
        }
        let (mut parts, ()) = req.body(()).unwrap().into_parts();
        let Ok(auth) = Auth::from_request_parts(&mut parts, &()).await;
        bearer(&auth).map(str::to_owned)
    }

    #[tokio::test]
    async fn bearer_tokens_are_read_from_authorization() {
        assert_eq!(token_of(None).await, None);
        assert_eq!(token_of(Some("Bearer abc")).await.as_deref(), Some("abc"));
        // Trailing whitespace never gets here: hyper trims it off every field value.
        assert_eq!(token_of(Some("bearer  abc")).await.as_deref(), Some("abc"));
        assert_eq!(token_of(Some("Basic abc")).await, None);
        assert_eq!(token_of(Some("Bearerabc")).await, None);
    }
}
