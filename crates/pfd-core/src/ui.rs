//! `GET /ui`: the page for the people at the machine — drop a recording, see the diagnosis.
//!
//! Served by the component itself (so it works under every host, offline, with nothing from a
//! CDN): three files compiled into the component, the page calling `/diagnose`, `/bearings`
//! and `POST /v2/repository/index` on its own origin. The Content-Security-Policy allows
//! exactly that — scripts, styles and requests to this origin only, no inline code, no frames,
//! no form posts elsewhere — so even a recording's text that reached the page could not run.

use crate::app::App;
use crate::http::{Request, Response};

/// The page's files: (path, content type, contents).
pub const FILES: &[(&str, &str, &str)] = &[
    (
        "/ui",
        "text/html; charset=utf-8",
        include_str!("../ui/index.html"),
    ),
    (
        "/ui/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../ui/app.js"),
    ),
    (
        "/ui/app.css",
        "text/css; charset=utf-8",
        include_str!("../ui/app.css"),
    ),
];

/// Same-origin everything, nothing inline. `img-src data:` is not needed (the charts are SVG
/// elements, not images); `connect-src 'self'` is what lets the page call the API.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The handler of every row of [`FILES`] (the route table has one row each).
pub fn serve(_: &App, req: &Request) -> Response {
    let path = crate::http::normalize(req.path);
    let Some((_, content_type, contents)) = FILES.iter().find(|(p, _, _)| *p == path) else {
        return crate::errors::not_found();
    };
    Response {
        status: 200,
        headers: vec![("content-type", content_type.to_string())],
        body: contents.as_bytes().to_vec(),
    }
    .with_header("content-security-policy", CONTENT_SECURITY_POLICY)
    .with_header("x-content-type-options", "nosniff")
    .with_header("referrer-policy", "no-referrer")
    // A new component version serves new files: revalidate instead of caching stale ones.
    .with_header("cache-control", "no-cache")
}
