//! API keys: which key a request presents, and whether it is one of the configured keys.
//!
//! The component checks keys on every protected route (it must: under `spin up` nothing else
//! does), and pfd-host checks them again *before reading the body*, so an unauthenticated client
//! cannot make the server buffer a 100 MB upload or create an instance. Both call these functions,
//! so the two checks cannot drift apart.
//!
//! Several keys may be configured (`PFD_API_KEY=key1,key2`): that is how a key is rotated without
//! downtime (add the new one, move clients, drop the old one), and it gives pfd-host's rate limiter
//! one bucket per key. A request names its key in `X-API-Key: <key>` or
//! `Authorization: Bearer <key>`.

use subtle::{Choice, ConstantTimeEq};

/// The key a request presents: `X-API-Key`, else the token of `Authorization: Bearer`.
/// `header` looks a header up by its lower-case name.
pub fn presented<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Option<&'a str> {
    header("x-api-key").or_else(|| {
        header("authorization").and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            // RFC 7235: the scheme is case-insensitive.
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
    })
}

/// The index of the configured key equal to `presented`, or `None`.
///
/// Every configured key is compared, in constant time and without an early exit, so the response
/// time tells an attacker neither how much of a guess was right nor which key matched. (The
/// comparison of two strings of different lengths ends at once; a key's length is not a secret
/// worth hiding at the cost of hashing every request.)
pub fn matching_key(keys: &[String], presented: &str) -> Option<usize> {
    let mut found = Choice::from(0);
    let mut index = 0usize;
    for (i, key) in keys.iter().enumerate() {
        let equal = key.as_bytes().ct_eq(presented.as_bytes());
        // Branch-free select of the matching index.
        index |= i & 0usize.wrapping_sub(equal.unwrap_u8() as usize);
        found |= equal;
    }
    bool::from(found).then_some(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn presented_key_sources() {
        assert_eq!(presented(headers(&[("x-api-key", "a")])), Some("a"));
        assert_eq!(
            presented(headers(&[("authorization", "Bearer b")])),
            Some("b")
        );
        assert_eq!(
            presented(headers(&[("authorization", "bearer  c ")])),
            Some("c")
        );
        assert_eq!(
            presented(headers(&[("authorization", "Basic dXNlcg==")])),
            None
        );
        assert_eq!(presented(headers(&[("authorization", "Bearer")])), None);
        // X-API-Key wins when both are sent.
        assert_eq!(
            presented(headers(&[
                ("x-api-key", "a"),
                ("authorization", "Bearer b")
            ])),
            Some("a")
        );
        assert_eq!(presented(headers(&[])), None);
    }

    #[test]
    fn matching_key_finds_the_right_index() {
        let keys = vec!["old-key".to_string(), "new-key".to_string()];
        assert_eq!(matching_key(&keys, "old-key"), Some(0));
        assert_eq!(matching_key(&keys, "new-key"), Some(1));
        assert_eq!(matching_key(&keys, "new-ke"), None);
        assert_eq!(matching_key(&keys, ""), None);
        assert_eq!(matching_key(&[], "x"), None);
    }
}
