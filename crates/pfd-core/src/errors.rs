//! Error bodies, shaped like the LSTM_PFD (FastAPI) service's so existing clients keep parsing
//! them:
//!
//! - HTTP errors: `{"error": msg, "detail": "<status>: <msg>", "timestamp"}`;
//! - validation errors: 422 `{"detail": [{"type", "loc", "msg", "input"}]}` (pydantic v2 shape);
//! - unknown route / wrong method: `{"detail": "Not Found"}` / `{"detail": "Method Not Allowed"}`.

use serde::Serialize;
use serde_json::Value;

use crate::http::Response;
use crate::timefmt;

/// `{"error", "detail", "timestamp"}` with `status`.
pub fn http_error(status: u16, message: &str) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        error: &'a str,
        detail: String,
        timestamp: String,
    }
    Response::json(
        status,
        &Body {
            error: message,
            detail: format!("{status}: {message}"),
            timestamp: timefmt::now(),
        },
    )
}

/// `{"detail": "<text>"}`, Starlette's shape for routing errors.
pub fn detail(status: u16, text: &str) -> Response {
    Response::json(status, &serde_json::json!({ "detail": text }))
}

pub fn not_found() -> Response {
    detail(404, "Not Found")
}

pub fn method_not_allowed() -> Response {
    detail(405, "Method Not Allowed")
}

/// One element of a `loc` path: a field name or a list index.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Loc {
    Field(&'static str),
    Index(usize),
}

/// One pydantic-style validation error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidationError {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub loc: Vec<Loc>,
    pub msg: String,
    pub input: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

impl ValidationError {
    pub fn new(kind: &'static str, loc: Vec<Loc>, msg: impl Into<String>, input: Value) -> Self {
        ValidationError {
            kind,
            loc,
            msg: msg.into(),
            input: elide(input),
            ctx: None,
        }
    }

    pub fn with_ctx(mut self, ctx: Value) -> Self {
        self.ctx = Some(ctx);
        self
    }
}

/// Longest list echoed back in `input`; longer ones (a 102400-sample signal) are summarised so
/// an error never costs megabytes.
const MAX_ECHOED_ITEMS: usize = 16;

fn elide(input: Value) -> Value {
    match input {
        Value::Array(items) if items.len() > MAX_ECHOED_ITEMS => {
            Value::String(format!("<list of {} items elided>", items.len()))
        }
        Value::Object(map)
            if map
                .values()
                .any(|v| matches!(v, Value::Array(a) if a.len() > MAX_ECHOED_ITEMS)) =>
        {
            Value::Object(map.into_iter().map(|(k, v)| (k, elide(v))).collect())
        }
        other => other,
    }
}

/// The 422 response for `errors`.
pub fn validation(errors: Vec<ValidationError>) -> Response {
    Response::json(422, &serde_json::json!({ "detail": errors }))
}

/// Why a request body was refused: a 422 list, or an HTTP error (e.g. 400 for batch size).
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    Invalid(Vec<ValidationError>),
    Http(u16, String),
}

impl Rejection {
    pub fn into_response(self) -> Response {
        match self {
            Rejection::Invalid(errors) => validation(errors),
            Rejection::Http(status, message) => http_error(status, &message),
        }
    }
}

impl From<ValidationError> for Rejection {
    fn from(e: ValidationError) -> Self {
        Rejection::Invalid(vec![e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Response) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn http_error_shape() {
        let r = http_error(401, "Invalid or missing API key");
        assert_eq!(r.status, 401);
        let b = body(&r);
        assert_eq!(b["error"], "Invalid or missing API key");
        assert_eq!(b["detail"], "401: Invalid or missing API key");
        assert!(b["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn validation_shape_and_elision() {
        let e = ValidationError::new(
            "value_error",
            vec![Loc::Field("body"), Loc::Field("signals"), Loc::Index(3)],
            "Value error, x",
            Value::Array(vec![Value::from(1.0); 300]),
        );
        let b = body(&validation(vec![e]));
        assert_eq!(b["detail"][0]["type"], "value_error");
        assert_eq!(
            b["detail"][0]["loc"],
            serde_json::json!(["body", "signals", 3])
        );
        assert_eq!(b["detail"][0]["input"], "<list of 300 items elided>");
        assert!(b["detail"][0].get("ctx").is_none());
    }

    #[test]
    fn routing_errors() {
        assert_eq!(
            body(&not_found()),
            serde_json::json!({"detail": "Not Found"})
        );
        assert_eq!(method_not_allowed().status, 405);
    }
}
