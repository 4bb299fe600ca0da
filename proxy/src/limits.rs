//! Request-rate limits: a token bucket per client id (`x-mq-client-id`)
//! and one per authenticated user, checked before each RPC's handler runs
//! (`service::Inner::admit`), and the flags of every proxy limit.
//!
//! A bucket holds up to one second of its rate and refills continuously.
//! Memory stays bounded: a bucket left alone long enough to refill is the
//! same as a fresh one, so such buckets are dropped (checked at most once
//! per [`SWEEP_EVERY`], on the request path: no background task), and past
//! [`MAX_KEYS`] live keys, new keys share one overflow bucket, so a flood
//! of made-up client ids is throttled as one client.
//!
//! The limits are per proxy: behind a load balancer spreading a client over
//! N proxies, the client may send up to N times the rate.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::ProxyConfig;
use crate::context::ClientContext;

/// Default requests per second of one client id. pier-bench drives a proxy
/// with one client id at about 15,000 requests/s on a 2-core machine: the
/// default leaves room for several times that, so it only catches a
/// runaway client, never a benchmark. Lower it for shared deployments.
pub const DEFAULT_RATE_PER_CLIENT: u64 = 100_000;
/// Default requests per second of one user (all its clients together).
pub const DEFAULT_RATE_PER_USER: u64 = 100_000;
/// Default most messages in one SendMessage. RocketMQ's clients send one
/// message per call unless the application batches; Pier's own tests and
/// bench batch at most 500.
pub const DEFAULT_MAX_SEND_MESSAGES: usize = 1024;
/// Default most body bytes in one SendMessage: four maximal bodies, a
/// quarter of the gRPC message limit (64 MiB), so a few concurrent calls
/// cannot take a proxy's memory.
pub const DEFAULT_MAX_SEND_BYTES: usize = 16 * 1024 * 1024;

/// Live keys one table tracks before new keys share its overflow bucket.
pub const MAX_KEYS: usize = 65_536;
/// How often, at most, a table drops its refilled buckets.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Which limit a call ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The client id's rate (`rate_per_client`).
    Client,
    /// The authenticated user's rate (`rate_per_user`).
    User,
}

/// A call refused because its client or user is over its rate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {key:?} sent more than {rate} requests per second; retry later", match .scope { Scope::Client => "client", Scope::User => "user" })]
pub struct Throttled {
    /// Which rate was exceeded.
    pub scope: Scope,
    /// The client id or user name.
    pub key: String,
    /// Its rate, in requests per second.
    pub rate: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Refills for the time since the last call, then takes one token.
    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Table {
    buckets: HashMap<String, Bucket>,
    overflow: Bucket,
    last_sweep: Instant,
}

/// Token buckets of one kind of key, all with the same rate.
pub struct Buckets {
    rate: u64,
    burst: f64,
    /// Time an empty bucket takes to refill: after it, a bucket is dropped.
    refill: Duration,
    table: Mutex<Table>,
}

impl Buckets {
    /// Buckets of `rate` requests per second; `None` when `rate` is 0 (no
    /// limit).
    pub fn new(rate: u64, now: Instant) -> Option<Buckets> {
        if rate == 0 {
            return None;
        }
        let burst = rate as f64;
        Some(Buckets {
            rate,
            burst,
            refill: Duration::from_secs_f64(burst / rate as f64),
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                overflow: Bucket {
                    tokens: burst,
                    last: now,
                },
                last_sweep: now,
            }),
        })
    }

    /// Takes a token from `key`'s bucket; false when it is empty.
    pub fn admit(&self, key: &str, now: Instant) -> bool {
        let mut t = self.table.lock();
        if now.saturating_duration_since(t.last_sweep) >= SWEEP_EVERY {
            let refill = self.refill;
            t.buckets
                .retain(|_, b| now.saturating_duration_since(b.last) < refill);
            t.last_sweep = now;
        }
        let Table {
            buckets, overflow, ..
        } = &mut *t;
        if !buckets.contains_key(key) && buckets.len() < MAX_KEYS {
            buckets.insert(
                key.to_owned(),
                Bucket {
                    tokens: self.burst,
                    last: now,
                },
            );
        }
        let bucket = buckets.get_mut(key).unwrap_or(overflow);
        bucket.take(now, self.rate as f64, self.burst)
    }

    /// Keys with a bucket (not counting the overflow bucket).
    pub fn len(&self) -> usize {
        self.table.lock().buckets.len()
    }

    /// Whether no key has a bucket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The rate limits of one proxy.
pub struct RateLimiter {
    per_client: Option<Buckets>,
    per_user: Option<Buckets>,
}

impl RateLimiter {
    /// The limits `cfg` sets (a rate of 0 is no limit).
    pub fn new(cfg: &ProxyConfig) -> RateLimiter {
        let now = Instant::now();
        RateLimiter {
            per_client: Buckets::new(cfg.rate_per_client, now),
            per_user: Buckets::new(cfg.rate_per_user, now),
        }
    }

    /// Counts one call of `ctx`'s client and user. A call without a client
    /// id is not counted here: it is refused for that anyway.
    pub fn check(&self, ctx: &ClientContext) -> Result<(), Throttled> {
        self.check_at(ctx, Instant::now())
    }

    /// [`RateLimiter::check`] at the time `now`.
    pub fn check_at(&self, ctx: &ClientContext, now: Instant) -> Result<(), Throttled> {
        if let (Some(b), Some(user)) = (&self.per_user, ctx.user().map(|p| p.name.as_str())) {
            if !b.admit(user, now) {
                return Err(Throttled {
                    scope: Scope::User,
                    key: user.to_owned(),
                    rate: b.rate,
                });
            }
        }
        if let (Some(b), Some(id)) = (&self.per_client, ctx.client_id.as_deref()) {
            if !b.admit(id, now) {
                return Err(Throttled {
                    scope: Scope::Client,
                    key: id.to_owned(),
                    rate: b.rate,
                });
            }
        }
        Ok(())
    }
}

/// The flags of the proxy's limits (each also a config key and an
/// environment variable), shared here so the binary only flattens them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LimitArgs {
    /// Most messages in one SendMessage [default: 1024]; more is refused
    /// with PAYLOAD_TOO_LARGE.
    #[arg(long, env = "PIER_MAX_SEND_MESSAGES")]
    pub max_send_messages: Option<usize>,
    /// Most body bytes in one SendMessage [default: 16777216]; more is
    /// refused with MESSAGE_BODY_TOO_LARGE.
    #[arg(long, env = "PIER_MAX_SEND_BYTES")]
    pub max_send_bytes: Option<usize>,
    /// Embedded store: most messages one consumer group may hold received
    /// and not yet acked (0: no limit) [default: 100000]; past it receives
    /// get TOO_MANY_REQUESTS. In cluster mode set it on pier-store.
    #[arg(long, env = "PIER_MAX_INFLIGHT_PER_GROUP")]
    pub max_inflight_per_group: Option<u64>,
    /// Requests per second one client id may make to this proxy (0: no
    /// limit) [default: 100000]; past it, TOO_MANY_REQUESTS.
    #[arg(long, env = "PIER_RATE_PER_CLIENT")]
    pub rate_per_client: Option<u64>,
    /// Requests per second one authenticated user may make to this proxy
    /// (0: no limit) [default: 100000]; past it, TOO_MANY_REQUESTS.
    #[arg(long, env = "PIER_RATE_PER_USER")]
    pub rate_per_user: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str) -> ClientContext {
        ClientContext {
            client_id: Some(id.into()),
            ..Default::default()
        }
    }

    fn limiter(per_client: u64, per_user: u64) -> RateLimiter {
        RateLimiter::new(&ProxyConfig {
            rate_per_client: per_client,
            rate_per_user: per_user,
            ..ProxyConfig::default()
        })
    }

    #[test]
    fn a_client_over_its_rate_is_throttled_and_others_are_not() {
        let l = limiter(10, 0);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(l.check_at(&client("a"), t0), Ok(()));
        }
        let e = l.check_at(&client("a"), t0).unwrap_err();
        assert_eq!(e.scope, Scope::Client);
        assert_eq!(e.rate, 10);
        assert!(e.to_string().contains("\"a\""), "{e}");
        assert_eq!(l.check_at(&client("b"), t0), Ok(()), "b has its own bucket");
        // No client id: refused elsewhere, not counted here.
        for _ in 0..20 {
            assert_eq!(l.check_at(&ClientContext::default(), t0), Ok(()));
        }
    }

    #[test]
    fn buckets_refill_with_time() {
        let l = limiter(10, 0);
        let t0 = Instant::now();
        for _ in 0..10 {
            l.check_at(&client("a"), t0).unwrap();
        }
        assert!(l.check_at(&client("a"), t0).is_err());
        // 10 per second: one token every 100 ms.
        let t1 = t0 + Duration::from_millis(150);
        assert!(l.check_at(&client("a"), t1).is_ok());
        assert!(l.check_at(&client("a"), t1).is_err());
        // Never more than one second's worth.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..10 {
            assert!(l.check_at(&client("a"), t2).is_ok());
        }
        assert!(l.check_at(&client("a"), t2).is_err());
    }

    #[test]
    fn a_user_is_limited_over_all_its_clients() {
        let l = limiter(0, 5);
        let t0 = Instant::now();
        let as_user = |id: &str| ClientContext {
            user: Some(std::sync::Arc::new(crate::auth::Principal {
                name: "alice".into(),
                admin: false,
                peer: None,
            })),
            ..client(id)
        };
        for i in 0..5 {
            assert!(l.check_at(&as_user(&format!("c{i}")), t0).is_ok());
        }
        let e = l.check_at(&as_user("c9"), t0).unwrap_err();
        assert_eq!((e.scope, e.key.as_str()), (Scope::User, "alice"));
        // Unauthenticated calls have no user bucket.
        assert!(l.check_at(&client("c9"), t0).is_ok());
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let l = limiter(0, 0);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            assert!(l.check_at(&client("a"), t0).is_ok());
        }
    }

    #[test]
    fn idle_buckets_are_dropped_and_memory_stays_bounded() {
        let t0 = Instant::now();
        let b = Buckets::new(10, t0).unwrap();
        for i in 0..100 {
            assert!(b.admit(&format!("k{i}"), t0));
        }
        assert_eq!(b.len(), 100);
        // After a full refill (1 s at 10/s) plus the sweep period, an
        // untouched bucket is gone; one just used stays.
        let t1 = t0 + Duration::from_millis(1500);
        assert!(b.admit("k0", t1 - Duration::from_millis(100)));
        assert!(b.admit("fresh", t1));
        assert_eq!(b.len(), 2, "only k0 and fresh are live");

        // Past MAX_KEYS, new keys share the overflow bucket.
        let b = Buckets::new(10, t0).unwrap();
        for i in 0..MAX_KEYS {
            b.admit(&format!("k{i}"), t0);
        }
        let admitted = (0..100).filter(|i| b.admit(&format!("new{i}"), t0)).count();
        assert_eq!(b.len(), MAX_KEYS);
        assert_eq!(admitted, 10, "the newcomers share one bucket of 10");
    }
}
