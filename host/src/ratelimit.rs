//! Per-client rate limiting: one token bucket per API key or client address.
//!
//! Each client has a bucket of `burst` tokens that refills at `rate` tokens per second; a request
//! takes a token, and a request that finds the bucket empty gets **429** with `Retry-After` (whole
//! seconds until a token is back, at least 1). Every limited response carries the bucket's state:
//! `X-RateLimit-Limit` (the bucket size), `X-RateLimit-Remaining` (tokens left) and
//! `X-RateLimit-Reset` (seconds until the bucket is full again), so well-behaved clients can pace
//! themselves before they are refused.
//!
//! The bucket is governor's GCRA, which is an exact token bucket kept as one timestamp per key
//! (no refill timer, no per-key lock). Keys live in a concurrent map; a janitor task drops the
//! buckets of clients that are back to full every [`JANITOR_PERIOD`], so memory follows the number
//! of *active* clients, not of every address ever seen.
//!
//! Who is a client ([`RateLimitBy`]): the API key the request presented (by its index in the
//! configured list — keys themselves are never stored here), or the client's address. The address
//! is the TCP peer, or — only when the operator says the proxy in front is trusted — the last
//! `X-Forwarded-For` entry, which is the one the trusted proxy itself appended (entries to its
//! left are whatever the client wrote).
//!
//! Probes (`/health*`, `/v2/health/*`) and `/metrics` are never limited: a throttled kubelet would
//! restart a healthy pod.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::Quota;

/// Why 60 s: often enough that a scan from many addresses is forgotten within a minute, rarely
/// enough that the sweep (a pass over the map) costs nothing measurable.
pub const JANITOR_PERIOD: Duration = Duration::from_secs(60);

/// What a bucket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RateLimitBy {
    /// The client's address.
    Client,
    /// The API key presented (requests without a valid key fall back to their address).
    ApiKey,
}

/// The limiter's settings (from `pfd-host serve` flags).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    /// Tokens added per second (> 0).
    pub rate: f64,
    /// Bucket size.
    pub burst: NonZeroU32,
    pub by: RateLimitBy,
    /// Use the last `X-Forwarded-For` entry as the client address.
    pub trust_forwarded_for: bool,
}

/// The identity a bucket belongs to.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub enum ClientKey {
    /// The index of the API key in the configured list.
    ApiKey(usize),
    Address(IpAddr),
}

/// The verdict on one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Allowed {
        limit: u32,
        remaining: u32,
        reset: Duration,
    },
    Limited {
        limit: u32,
        retry_after: Duration,
        reset: Duration,
    },
}

impl Decision {
    /// The `X-RateLimit-*` headers (and `Retry-After` when limited).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let secs = |d: &Duration| d.as_secs_f64().ceil() as u64;
        match self {
            Decision::Allowed {
                limit,
                remaining,
                reset,
            } => vec![
                ("x-ratelimit-limit", limit.to_string()),
                ("x-ratelimit-remaining", remaining.to_string()),
                ("x-ratelimit-reset", secs(reset).to_string()),
            ],
            Decision::Limited {
                limit,
                retry_after,
                reset,
            } => vec![
                ("x-ratelimit-limit", limit.to_string()),
                ("x-ratelimit-remaining", "0".to_string()),
                ("x-ratelimit-reset", secs(reset).max(1).to_string()),
                ("retry-after", secs(retry_after).max(1).to_string()),
            ],
        }
    }
}

type Governor = governor::RateLimiter<
    ClientKey,
    DashMapStateStore<ClientKey>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// A keyed token-bucket limiter (see the module docs).
pub struct RateLimiter {
    config: RateLimitConfig,
    period: Duration,
    limiter: Governor,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("config", &self.config)
            .field("tracked", &self.tracked())
            .finish()
    }
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> anyhow::Result<Self> {
        if !(config.rate.is_finite() && config.rate > 0.0) {
            anyhow::bail!("rate limit must be a positive number of requests per second");
        }
        let period = Duration::from_secs_f64(1.0 / config.rate);
        let quota = Quota::with_period(period)
            .ok_or_else(|| anyhow::anyhow!("rate limit {} is too high", config.rate))?
            .allow_burst(config.burst);
        let limiter = governor::RateLimiter::dashmap(quota).with_middleware();
        Ok(RateLimiter {
            config,
            period,
            limiter,
        })
    }

    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// The bucket a request belongs to: its API key's (when limiting by key and it presented a
    /// valid one), else its address.
    pub fn client_key(
        &self,
        api_key: Option<usize>,
        peer: IpAddr,
        forwarded_for: Option<&str>,
    ) -> ClientKey {
        if let (RateLimitBy::ApiKey, Some(i)) = (self.config.by, api_key) {
            return ClientKey::ApiKey(i);
        }
        let forwarded = forwarded_for
            .filter(|_| self.config.trust_forwarded_for)
            .and_then(|v| v.rsplit(',').next())
            .and_then(|last| last.trim().parse::<IpAddr>().ok());
        ClientKey::Address(forwarded.unwrap_or(peer))
    }

    /// Takes a token from `key`'s bucket.
    pub fn check(&self, key: &ClientKey) -> Decision {
        let limit = self.config.burst.get();
        match self.limiter.check_key(key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Decision::Allowed {
                    limit,
                    remaining,
                    reset: self.period * (limit - remaining.min(limit)),
                }
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(self.limiter.clock().now());
                Decision::Limited {
                    limit,
                    retry_after,
                    // The next token, then the rest of the bucket.
                    reset: retry_after + self.period * (limit - 1),
                }
            }
        }
    }

    /// Keys currently tracked.
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }

    /// Forgets clients whose bucket is full again.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Runs [`Self::sweep`] every [`JANITOR_PERIOD`] for as long as the limiter lives.
    pub fn spawn_janitor(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(JANITOR_PERIOD);
            tick.tick().await;
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(limiter) => limiter.sweep(),
                    None => break,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: f64, burst: u32, by: RateLimitBy, trust: bool) -> RateLimiter {
        RateLimiter::new(RateLimitConfig {
            rate,
            burst: NonZeroU32::new(burst).unwrap(),
            by,
            trust_forwarded_for: trust,
        })
        .unwrap()
    }

    #[test]
    fn a_bucket_empties_then_refuses_with_a_retry_time() {
        // One token per hour: nothing refills during the test.
        let l = limiter(1.0 / 3600.0, 3, RateLimitBy::Client, false);
        let a = ClientKey::Address("10.0.0.1".parse().unwrap());
        let b = ClientKey::Address("10.0.0.2".parse().unwrap());
        for left in [2, 1, 0] {
            match l.check(&a) {
                Decision::Allowed {
                    limit, remaining, ..
                } => assert_eq!((limit, remaining), (3, left)),
                other => panic!("{other:?}"),
            }
        }
        let Decision::Limited {
            retry_after, reset, ..
        } = l.check(&a)
        else {
            panic!("fourth request allowed")
        };
        assert!(
            retry_after > Duration::from_secs(3500) && retry_after <= Duration::from_secs(3600),
            "{retry_after:?}"
        );
        assert_eq!(reset, retry_after + Duration::from_secs(2 * 3600));
        // Another client has its own bucket.
        assert!(matches!(
            l.check(&b),
            Decision::Allowed { remaining: 2, .. }
        ));
        assert_eq!(l.tracked(), 2);
    }

    #[test]
    fn headers_round_up_and_never_say_zero_seconds() {
        let limited = Decision::Limited {
            limit: 5,
            retry_after: Duration::from_millis(10),
            reset: Duration::from_millis(4010),
        };
        let h = limited.headers();
        assert!(h.contains(&("retry-after", "1".into())));
        assert!(h.contains(&("x-ratelimit-reset", "5".into())));
        assert!(h.contains(&("x-ratelimit-remaining", "0".into())));
        let allowed = Decision::Allowed {
            limit: 5,
            remaining: 3,
            reset: Duration::from_millis(2500),
        };
        assert_eq!(
            allowed.headers(),
            vec![
                ("x-ratelimit-limit", "5".to_string()),
                ("x-ratelimit-remaining", "3".to_string()),
                ("x-ratelimit-reset", "3".to_string()),
            ]
        );
    }

    #[test]
    fn client_identity() {
        let peer: IpAddr = "192.0.2.9".parse().unwrap();
        let by_client = limiter(1.0, 1, RateLimitBy::Client, false);
        assert_eq!(
            by_client.client_key(Some(1), peer, Some("203.0.113.5")),
            ClientKey::Address(peer),
            "untrusted X-Forwarded-For is ignored"
        );
        let behind_proxy = limiter(1.0, 1, RateLimitBy::Client, true);
        assert_eq!(
            behind_proxy.client_key(None, peer, Some("6.6.6.6, 203.0.113.5")),
            ClientKey::Address("203.0.113.5".parse().unwrap()),
            "the entry the proxy appended, not the client-written ones"
        );
        assert_eq!(
            behind_proxy.client_key(None, peer, Some("garbage")),
            ClientKey::Address(peer)
        );
        let by_key = limiter(1.0, 1, RateLimitBy::ApiKey, false);
        assert_eq!(by_key.client_key(Some(1), peer, None), ClientKey::ApiKey(1));
        assert_eq!(
            by_key.client_key(None, peer, None),
            ClientKey::Address(peer)
        );
    }

    #[test]
    fn invalid_rates_are_refused() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(RateLimiter::new(RateLimitConfig {
                rate,
                burst: NonZeroU32::new(1).unwrap(),
                by: RateLimitBy::Client,
                trust_forwarded_for: false,
            })
            .is_err());
        }
    }
}
