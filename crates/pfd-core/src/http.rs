//! The host-neutral HTTP shapes the router works on. Adapters convert from/to their own types
//! (spin-sdk's in the component, hyper's in tests and tools).

/// One request, fully buffered (Spin hands the component a buffered body anyway).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Upper-case method, e.g. `GET`.
    pub method: &'a str,
    /// The path without the query string, e.g. `/predict/batch`.
    pub path: &'a str,
    /// The query string without the `?` (empty when there is none), still percent-encoded.
    pub query: &'a str,
    /// Header names in lower case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The first value of header `name` (give it in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One response; `content_type` is set by the constructors.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response with `status`.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        let body = serde_json::to_vec(value).expect("API types always serialize");
        Response {
            status,
            headers: vec![("content-type", "application/json".to_string())],
            body,
        }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// `path` without trailing slashes (`/` stays `/`): how every route is matched.
pub fn normalize(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/"
    } else {
        trimmed
    }
}
