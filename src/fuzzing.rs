//! Entry points for the fuzz targets in `fuzz/`, for the one decision that is not public
//! API: where an HTTP path leads. Kept here rather than widening `http`, so the server's
//! own modules keep their narrow interfaces; nothing in sixboot itself calls this.

use std::io;
use std::path::{Path, PathBuf};

/// The HTTP server's roots, canonicalized as `serve` does at start.
pub struct HttpRoots(crate::http::files::Roots);

impl HttpRoots {
    pub fn new(http: &Path, boot: Option<&Path>) -> io::Result<HttpRoots> {
        crate::http::files::Roots::new(http, boot).map(HttpRoots)
    }
}

/// What the fallback route makes of a request path (as `Uri::path` gives it, still
/// percent-encoded): the (canonical) file to serve, `Ok(None)` for a 404, or the refusal
/// (403) label.
pub async fn http_file(roots: &HttpRoots, path: &str) -> Result<Option<PathBuf>, &'static str> {
    match crate::http::files::locate(&roots.0, path).await {
        Ok(found) => Ok(found.map(|f| f.path)),
        Err(r) => Err(r.as_str()),
    }
}
