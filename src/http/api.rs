//! The machines API (JSON). Reading is open; changing a machine (its pipeline, batch or
//! spec) needs `[api] admin_token` as a bearer token; a report needs the machine's current
//! burn-in token. Every refusal is a 4xx with `{"error": "..."}` saying why, and is logged.
//!
//! MACs in URLs are lowercase and colon-separated (`52:54:00:12:34:56`); any other form
//! is refused with 400 rather than guessed at, so one machine has one URL.

use super::AppState;
use crate::mac::Mac;
use crate::machines::{Edit, Refusal};
use crate::pipeline::{ENDS, STEPS};
use crate::verdict::Spec;
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
use sixboot_report::{Invalid, MAX_REPORT_BYTES, Report};
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
pub(super) const SPEC: &str = "/api/v1/machines/{mac}/spec";
/// One change to many machines at once (the dashboard's selection).
pub(super) const BULK: &str = "/api/v1/machines/bulk";
/// Whether a bearer token is the admin token (the dashboard's sign-in).
pub(super) const AUTH: &str = "/api/v1/auth";
/// What a pipeline may hold (the dashboard's picker).
pub(super) const ACTIONS: &str = "/api/v1/actions";
/// Live updates (Server-Sent Events): one `machine` event per changed machine.
pub(super) const EVENTS: &str = "/api/v1/events";

/// Largest request body taken other than a report (a bulk change of 10,000 MACs fits).
pub(super) const MAX_BODY: usize = 256 << 10;
/// Most machines one bulk change may name.
const MAX_BULK: usize = 10_000;

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

/// The body, at most `max` bytes (413 past it, also when Content-Length says so).
async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, Response> {
    let too_big = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is larger than {max} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_big());
    }
    axum::body::to_bytes(body, max).await.map_err(|e| {
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

/// `POST .../report`: a step's report from the burn-in image. Checked in this order: MAC
/// form (400), known machine (404), token (401), size (413), JSON (400), schema with the
/// bad field's path (422); stored on disk before the 200, which says what the image does
/// next.
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
    let bytes = match read_body(&headers, body, MAX_REPORT_BYTES).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let parsed = match Report::parse(&bytes) {
        Ok(r) => r,
        Err(Invalid::Malformed(e)) => {
            return refuse(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}"));
        }
        Err(Invalid::Schema { path, why }) => {
            // `refuse` with the field's path beside the reason, for the image's console.
            warn!(%mac, path, why, "report refused");
            let error = format!("not a report: {path}: {why}");
            return json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({ "error": error, "path": path }),
            );
        }
    };
    let (step, duration_s) = (parsed.step, parsed.duration_s);
    match st.machines.report(m, token, parsed).await {
        Ok(a) => {
            info!(%mac, step = step.as_str(), result = %a.result, then = ?a.then, duration_s, "report stored");
            json_response(StatusCode::OK, &json!(a))
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

/// A refusal decided but not yet answered (small, unlike a [`Response`]).
struct No(StatusCode, String);

impl IntoResponse for No {
    fn into_response(self) -> Response {
        refuse(self.0, self.1)
    }
}

/// Checks the admin token: 403 when changes are disabled, 401 when the token is wrong.
fn admin(st: &AppState, auth: &Auth, what: &str) -> Result<(), No> {
    let Some(admin) = st.admin_token.as_deref() else {
        return Err(No(
            StatusCode::FORBIDDEN,
            "changing machines is disabled: set [api] admin_token in the config".into(),
        ));
    };
    if bearer(auth).is_some_and(|t| crate::machines::tokens_match(admin, t)) {
        return Ok(());
    }
    warn!(what, "change with a missing or wrong admin token refused");
    Err(No(
        StatusCode::UNAUTHORIZED,
        "missing or wrong admin token (Authorization: Bearer <[api] admin_token>)".into(),
    ))
}

/// A JSON body of at most [`MAX_BODY`] bytes.
async fn read_json(headers: &HeaderMap, body: Body) -> Result<Value, Response> {
    let bytes = read_body(headers, body, MAX_BODY).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))
}

fn unprocessable(why: impl Into<String>) -> No {
    No(StatusCode::UNPROCESSABLE_ENTITY, why.into())
}

/// The pipeline a body's `next` (one action) or `pipeline` (a list, or `null` to clear)
/// asks for.
fn pipeline_of(st: &AppState, v: &Value) -> Result<Option<Edit>, No> {
    let p = match (v.get("next"), v.get("pipeline")) {
        (Some(_), Some(_)) => {
            return Err(unprocessable("give `next` or `pipeline`, not both"));
        }
        (Some(Value::String(n)), None) => st.policy.pipeline(&[n]),
        (Some(_), None) => return Err(unprocessable("next: must be a string")),
        (None, Some(Value::Null)) => return Ok(Some(Edit::Pipeline(None))),
        (None, Some(Value::Array(l))) => {
            let names: Option<Vec<&str>> = l.iter().map(Value::as_str).collect();
            let Some(names) = names else {
                return Err(unprocessable("pipeline: must be a list of step names"));
            };
            st.policy.pipeline(&names)
        }
        (None, Some(_)) => return Err(unprocessable("pipeline: must be a list or null")),
        (None, None) => return Ok(None),
    };
    p.map(|p| Some(Edit::Pipeline(Some(p))))
        .map_err(unprocessable)
}

/// A spec: an object, or `null` to clear.
fn spec_edit(v: &Value) -> Result<Edit, No> {
    match v {
        Value::Null => Ok(Edit::Spec(None)),
        s => Spec::parse(s.clone())
            .map(|s| Edit::Spec(Some(s)))
            .map_err(|e| unprocessable(format!("spec.{e}"))),
    }
}

/// A body's `batch`: a name, or `null` to leave every batch.
fn batch_of(v: Option<&Value>) -> Result<Option<Edit>, No> {
    match v {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Edit::Batch(None))),
        Some(Value::String(b))
            if !b.is_empty()
                && b.len() <= 64
                && b.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            Ok(Some(Edit::Batch(Some(b.clone()))))
        }
        Some(_) => Err(unprocessable(
            "batch: must be 1 to 64 letters, digits, `-`, `_` or `.`, or null",
        )),
    }
}

/// Applies `edits` to `macs` and answers with what `done` makes of the count.
async fn apply(st: &AppState, macs: &[[u8; 6]], edits: &[Edit]) -> Result<usize, Response> {
    st.machines.change(macs, edits).await.map_err(|e| {
        tracing::error!(machines = macs.len(), error = %e, "change not stored");
        refuse(StatusCode::SERVICE_UNAVAILABLE, "change not stored; retry")
    })
}

/// One machine's change: admin token, MAC, JSON body, then `edit_of` makes the change
/// from the body; 200 with the machine once it is on disk. Makes the record if the
/// machine was never seen (so an operator can set it up front).
async fn change_one(
    st: &AppState,
    mac: &str,
    auth: &Auth,
    headers: &HeaderMap,
    body: Body,
    what: &str,
    edit_of: impl FnOnce(&AppState, &Value) -> Result<Edit, No>,
) -> Response {
    if let Err(r) = admin(st, auth, what) {
        return r.into_response();
    }
    let Some(m) = url_mac(mac) else {
        return bad_mac(mac);
    };
    let v = match read_json(headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let edit = match edit_of(st, &v) {
        Ok(e) => e,
        Err(r) => return r.into_response(),
    };
    match apply(st, &[m], &[edit]).await {
        Ok(_) => {
            info!(%mac, what, "machine changed");
            json_response(StatusCode::OK, &st.machines.get(m).unwrap_or(Value::Null))
        }
        Err(r) => r,
    }
}

/// `PUT .../next` with `{"next": "<action>"}` or `{"pipeline": ["inventory", ...]}`.
pub(super) async fn next(
    State(st): State<Arc<AppState>>,
    Path(mac): Path<String>,
    auth: Auth,
    headers: HeaderMap,
    body: Body,
) -> Response {
    change_one(&st, &mac, &auth, &headers, body, "next", |st, v| {
        pipeline_of(st, v)?.ok_or_else(|| {
            unprocessable(
                "body must be {\"next\": \"<action>\"} or {\"pipeline\": [\"<step>\", ...]}",
            )
        })
    })
    .await
}

/// `PUT .../spec` with the spec the machine is sold with (see [`Spec`]), or `null`.
pub(super) async fn spec(
    State(st): State<Arc<AppState>>,
    Path(mac): Path<String>,
    auth: Auth,
    headers: HeaderMap,
    body: Body,
) -> Response {
    change_one(&st, &mac, &auth, &headers, body, "spec", |_, v| {
        spec_edit(v)
    })
    .await
}

/// `POST /api/v1/machines/bulk` with `{"macs": [...]}` and any of `next`, `pipeline`,
/// `batch` and `spec`. Everything is checked before anything changes, and the change is
/// one write: all the machines change, or none.
pub(super) async fn bulk(
    State(st): State<Arc<AppState>>,
    auth: Auth,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = admin(&st, &auth, "bulk") {
        return r.into_response();
    }
    let v = match read_json(&headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(k) = v.as_object().and_then(|o| {
        o.keys()
            .find(|k| !["macs", "next", "pipeline", "batch", "spec"].contains(&k.as_str()))
    }) {
        return unprocessable(format!(
            "unknown key `{k}`; known: macs, next, pipeline, batch, spec"
        ))
        .into_response();
    }
    let Some(list) = v.get("macs").and_then(Value::as_array) else {
        return unprocessable("macs: must be a list of MACs").into_response();
    };
    if list.is_empty() || list.len() > MAX_BULK {
        return unprocessable(format!("macs: 1 to {MAX_BULK} machines")).into_response();
    }
    let mut macs = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        match m.as_str().and_then(url_mac) {
            Some(m) if !macs.contains(&m) => macs.push(m),
            Some(_) => return unprocessable(format!("macs[{i}]: named twice")).into_response(),
            None => {
                return unprocessable(format!(
                    "macs[{i}]: not a MAC in lowercase colon form like 52:54:00:12:34:56"
                ))
                .into_response();
            }
        }
    }
    let mut edits = Vec::new();
    for got in [
        pipeline_of(&st, &v),
        batch_of(v.get("batch")),
        v.get("spec").map(spec_edit).transpose(),
    ] {
        match got {
            Ok(e) => edits.extend(e),
            Err(r) => return r.into_response(),
        }
    }
    if edits.is_empty() {
        return unprocessable("nothing to change: give next, pipeline, batch or spec")
            .into_response();
    }
    match apply(&st, &macs, &edits).await {
        Ok(n) => {
            info!(machines = n, "bulk change");
            json_response(StatusCode::OK, &json!({ "changed": n }))
        }
        Err(r) => r,
    }
}

/// `GET /api/v1/auth`: 204 when the bearer token is the admin token.
pub(super) async fn auth(State(st): State<Arc<AppState>>, auth: Auth) -> Response {
    match admin(&st, &auth, "sign-in") {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r.into_response(),
    }
}

/// `GET /api/v1/actions`: the steps, ends and other menu items a pipeline may hold.
pub(super) async fn actions(State(st): State<Arc<AppState>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"steps": STEPS, "ends": ENDS, "items": st.policy.other_items()}),
    )
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
