//! Static files: utilities under `[http] root`, and the TFTP root's boot files under
//! [`HTTP_BOOT_PREFIX`] (UEFI HTTP boot gets such URLs from DHCP).
//!
//! This module decides only where a path may lead: a regular file inside its root,
//! reached without `..`, NUL bytes or a symlink that leaves the root, and opened there by
//! the TFTP server's [`paths::resolve`], so the open itself cannot leave the root. Every
//! refusal is logged with its reason and counted. tower-http's `ServeFile` then decides the
//! HTTP answer: HEAD, single ranges (parsed by http-range-header; 206, 416 when
//! unsatisfiable), ETag and Last-Modified with 304, Content-Length, Content-Type. It is
//! asked as for HEAD, about the open file; the bytes it names are streamed from that file
//! by [`super::body`], which copies less than `ServeFile`'s own reader.

use super::routes::Peer;
use super::{AppState, body};
use crate::policy::HTTP_BOOT_PREFIX;
use crate::tftp::paths::{self, PathError, Resolved};
use crate::timeline::Stage;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::headers::{ContentLength, ContentRange, HeaderMapExt};
use percent_encoding::percent_decode_str;
use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use tracing::warn;

/// Route label of files served from the TFTP root.
const BOOT_ROUTE: &str = "/boot/*";
/// Route label of files served from the HTTP root.
const ROOT_ROUTE: &str = "/*";

/// The roots, canonical, so a resolved path can be checked by prefix.
pub(crate) struct Roots {
    http: PathBuf,
    boot: Option<PathBuf>,
}

impl Roots {
    pub(crate) fn new(http: &Path, tftp: Option<&Path>) -> io::Result<Roots> {
        let canonical = |p: &Path| {
            std::fs::canonicalize(p)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
        };
        Ok(Roots {
            http: canonical(http)?,
            boot: tftp.map(canonical).transpose()?,
        })
    }

    pub(super) fn http(&self) -> &Path {
        &self.http
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A `..` segment, written plainly or percent-encoded.
    Traversal,
    /// A NUL byte (`%00`): no file name holds one.
    NulByte,
    /// The path resolves, through a symlink, to a file outside its root.
    OutsideRoot,
}

impl Refusal {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::Traversal => "traversal",
            Refusal::NulByte => "nul_byte",
            Refusal::OutsideRoot => "outside_root",
        }
    }
}

/// The route label for a path that no other route matched.
pub(super) fn route_of(path: &str) -> &'static str {
    if path.starts_with(HTTP_BOOT_PREFIX) {
        BOOT_ROUTE
    } else {
        ROOT_ROUTE
    }
}

/// A request path below its root, percent-decoded, as a relative path: empty and `.`
/// segments drop out, `..` and NUL are refused. An encoded `/` separates like a plain one.
fn relative(encoded: &str) -> Result<PathBuf, Refusal> {
    let bytes: Vec<u8> = percent_decode_str(encoded).collect();
    if bytes.contains(&0) {
        return Err(Refusal::NulByte);
    }
    let mut rel = PathBuf::new();
    for seg in bytes.split(|b| *b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => return Err(Refusal::Traversal),
            s => rel.push(OsStr::from_bytes(s)),
        }
    }
    Ok(rel)
}

/// The file `rel` names inside `root`, open: `Ok(None)` when there is no such regular
/// file (or it cannot be read), a refusal when a symlink leads out of the root.
async fn resolve(root: &Path, rel: PathBuf) -> Result<Option<Resolved>, Refusal> {
    let root = root.to_path_buf();
    let found = tokio::task::spawn_blocking(move || paths::resolve(&root, &rel)).await;
    match found {
        Ok(Ok(file)) => Ok(Some(file)),
        Ok(Err(PathError::SymlinkEscape)) => Err(Refusal::OutsideRoot),
        // Not there, not a file, not readable, or the runtime is shutting down.
        Ok(Err(_)) | Err(_) => Ok(None),
    }
}

/// The file a request path (still percent-encoded) names: under the TFTP root for
/// [`HTTP_BOOT_PREFIX`], else under the HTTP root. `Ok(None)` is a 404, a refusal a 403.
pub(crate) async fn locate(roots: &Roots, path: &str) -> Result<Option<Resolved>, Refusal> {
    let (root, below) = match path.strip_prefix(HTTP_BOOT_PREFIX) {
        Some(rest) => (roots.boot.as_deref(), rest),
        None => (Some(roots.http.as_path()), path),
    };
    let rel = relative(below)?;
    match root {
        Some(root) => resolve(root, rel).await,
        None => Ok(None),
    }
}

/// The fallback route: every path no script or operational route claimed.
pub(super) async fn serve(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    mut req: Request,
) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    let path = req.uri().path();
    let client = peer.remote.ip();
    let found = match locate(&st.roots, path).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            st.stage(client, Stage::Missing, path.to_string());
            return StatusCode::NOT_FOUND.into_response();
        }
        Err(r) => {
            warn!(%client, path, reason = %r.as_str(), "path refused");
            crate::metrics::inc(&st.metrics.refused, "reason", r.as_str());
            st.stage(client, Stage::Refused, format!("{} {path}", r.as_str()));
            return StatusCode::FORBIDDEN.into_response();
        }
    };
    let path = path.to_string();
    // ServeFile applies Range even when If-Range no longer matches; serving the whole
    // file instead is always correct (RFC 9110 §14.2 lets a server ignore Range).
    if req.headers().contains_key(header::IF_RANGE) {
        req.headers_mut().remove(header::RANGE);
    }
    let get = req.method() == Method::GET;
    *req.method_mut() = Method::HEAD;
    // ServeFile takes a path and opens it again; the open file's own path in /proc makes
    // it describe the file opened inside the root, whatever the path names by now.
    let mime = mime_guess::from_path(&found.path).first_or_octet_stream();
    let open = format!("/proc/self/fd/{}", found.file.as_raw_fd());
    let res = ServeFile::new_with_mime(open, &mime)
        .ignore_multi_range_requests(true)
        .oneshot(req)
        .await;
    let (parts, _) = match res {
        Ok(r) => r.into_parts(),
        Err(never) => match never {},
    };
    let body = match (get, span(&parts)) {
        (true, Some((start, len))) => {
            st.served(client, path);
            body::file_range(found.file, start, len)
        }
        _ => Body::empty(),
    };
    Response::from_parts(parts, body)
}

/// The bytes a 200 or 206 answer carries, as (start, length), from its headers.
fn span(res: &axum::http::response::Parts) -> Option<(u64, u64)> {
    let ContentLength(len) = res.headers.typed_get()?;
    match res.status {
        StatusCode::OK => Some((0, len)),
        StatusCode::PARTIAL_CONTENT => {
            let (start, _) = res.headers.typed_get::<ContentRange>()?.bytes_range()?;
            Some((start, len))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_decoded_and_checked_segment_by_segment() {
        assert_eq!(relative("/a/./b//c"), Ok(PathBuf::from("a/b/c")));
        assert_eq!(
            relative("/memtest86+x64.bin"),
            Ok(PathBuf::from("memtest86+x64.bin"))
        );
        assert_eq!(relative("/with%20space"), Ok(PathBuf::from("with space")));
        assert_eq!(relative("/a%2fb"), Ok(PathBuf::from("a/b")));
        assert_eq!(relative("/../etc/passwd"), Err(Refusal::Traversal));
        assert_eq!(relative("/a/%2e%2e/%2E%2E/x"), Err(Refusal::Traversal));
        assert_eq!(relative("/a%2f..%2fb"), Err(Refusal::Traversal));
        assert_eq!(relative("/x%00.bin"), Err(Refusal::NulByte));
        // A name that merely contains dots is a name.
        assert_eq!(relative("/..a/b.."), Ok(PathBuf::from("..a/b..")));
    }

    #[tokio::test]
    async fn symlinks_may_not_leave_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        std::fs::write(root.join("sub/file"), b"f").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("out")).unwrap();
        std::os::unix::fs::symlink("sub/file", root.join("in")).unwrap();
        let root = std::fs::canonicalize(root).unwrap();
        let path = async |rel: &str| {
            let found = resolve(&root, PathBuf::from(rel)).await;
            found.map(|f| f.map(|f| f.path))
        };
        assert_eq!(path("out").await, Err(Refusal::OutsideRoot));
        assert_eq!(path("in").await, Ok(Some(root.join("sub/file"))));
        assert_eq!(path("sub").await, Ok(None));
        assert_eq!(path("nope").await, Ok(None));
    }
}
