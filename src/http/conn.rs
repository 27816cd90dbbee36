//! The accept loop: hyper serves each connection, with the two limits `axum::serve` does
//! not set. A client gets `[http] request_timeout` to send each request head (on a new
//! connection and between kept-alive requests), so a slowloris or an idle socket is closed
//! instead of held; and at most `[http] max_connections` connections are served at once,
//! across all listeners. Past the cap, new connections wait in the kernel's backlog until
//! a slot frees, rather than being refused: a booting machine that arrives during a flood
//! is served late, not turned away. A client that stops reading a response is closed once
//! a write has waited `[http] send_timeout`, so it cannot hold its slot either.

use super::routes::Peer;
use crate::metrics::{HttpMetrics, inc};
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;
use tracing::{debug, warn};

/// What every connection of every listener shares.
#[derive(Clone)]
pub(super) struct Limits {
    /// One permit per connection being served.
    pub slots: Arc<Semaphore>,
    pub request_timeout: Duration,
    pub send_timeout: Duration,
    pub metrics: HttpMetrics,
}

/// After a failed accept (EMFILE, ENFILE, ENOBUFS), wait this long before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves every listener until `stop` turns true, then lets the connections finish their
/// requests in flight (the caller bounds how long). One loop accepts from all listeners,
/// so the one slot it takes before accepting is the only one not serving a connection.
pub(super) async fn serve(
    listeners: Vec<TcpListener>,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut conns = JoinSet::new();
    let mut capped = false;
    loop {
        while conns.try_join_next().is_some() {}
        let permit = match limits.slots.clone().try_acquire_owned() {
            Ok(p) => {
                capped = false;
                p
            }
            Err(_) => {
                limits.metrics.connections_capped.inc();
                if !capped {
                    warn!(
                        "HTTP connection cap reached; new connections wait ([http] max_connections)"
                    );
                    capped = true;
                }
                tokio::select! {
                    p = limits.slots.clone().acquire_owned() => p.map_err(io::Error::other)?,
                    () = stopped(&mut stop) => break,
                }
            }
        };
        let (tcp, remote) = tokio::select! {
            r = accept(&listeners) => match r {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().unwrap_or(remote);
        let peer = Peer { remote, local };
        conns.spawn(connection(
            tcp,
            peer,
            app.clone(),
            limits.clone(),
            permit,
            stop.clone(),
        ));
    }
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// The next connection on any of `listeners`.
async fn accept(listeners: &[TcpListener]) -> io::Result<(TcpStream, std::net::SocketAddr)> {
    std::future::poll_fn(|cx| {
        listeners
            .iter()
            .find_map(|l| match l.poll_accept(cx) {
                Poll::Ready(r) => Some(Poll::Ready(r)),
                Poll::Pending => None,
            })
            .unwrap_or(Poll::Pending)
    })
    .await
}

/// Serves one connection; its slot is released when this returns.
async fn connection(
    tcp: TcpStream,
    peer: Peer,
    app: Router,
    limits: Limits,
    _slot: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    let service = app.map_request(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .serve_connection(
            stalling(tcp, limits.send_timeout),
            TowerToHyperService::new(service),
        );
    tokio::pin!(conn);
    let m = &limits.metrics;
    m.connections_open.inc();
    let done = tokio::select! {
        r = conn.as_mut() => r,
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    m.connections_open.dec();
    match done {
        Ok(()) => {}
        Err(e) if e.is_timeout() => {
            inc(&m.connections_dropped, "reason", "header_timeout");
            debug!(client = %peer.remote, timeout = ?limits.request_timeout, "HTTP connection closed: no complete request head in time");
        }
        Err(e) if write_timed_out(&e) => {
            inc(&m.connections_dropped, "reason", "send_timeout");
            debug!(client = %peer.remote, timeout = ?limits.send_timeout, "HTTP connection closed: the client stopped taking the response");
        }
        Err(e) => debug!(client = %peer.remote, error = %e, "HTTP connection ended with an error"),
    }
}

/// The connection, with writes that fail with `TimedOut` once one has waited `limit`
/// without the client taking any more bytes.
fn stalling(
    tcp: TcpStream,
    limit: Duration,
) -> TokioIo<std::pin::Pin<Box<tokio_io_timeout::TimeoutStream<TcpStream>>>> {
    let mut io = tokio_io_timeout::TimeoutStream::new(tcp);
    io.set_write_timeout(Some(limit));
    TokioIo::new(Box::pin(io))
}

/// Whether hyper gave up because a write to the client stalled (see [`stalling`]).
fn write_timed_out(e: &hyper::Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
