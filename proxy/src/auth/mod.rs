//! Authentication and ACLs of the client port.
//!
//! With `auth` on, every call names a user: `layer` checks the
//! `authorization` signature once per call (before any handler runs) and
//! puts the [`Principal`] into the request, where the per-call context
//! (`context`) hands it to the handlers; each handler then asks
//! [`Gate::authorize`] for what its request does (send: `Pub` on the
//! topic; receive, ack, change of invisibility, dead-lettering: `Sub` on
//! the topic and the group; ...). The admin API needs an admin user.
//!
//! Users and rules live in the store; the gate keeps a copy ([`View`]) and
//! follows the store's changes with a long poll ([`Gate::follow`]), so a
//! change made through any proxy reaches every proxy of the fleet within
//! moments. Decisions are cached per (user, resource, action, source) and
//! the cache is dropped with each new copy.
//!
//! - `signature`: the header and its HMAC; `date`: the date header's
//!   formats and freshness; `verified`: the signatures each worker thread
//!   verified lately (clients date to the second, so one signature serves
//!   a client's calls for that second); `layer`: the tower layer.

mod date;
mod layer;
mod signature;
mod startup;
mod verified;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::RwLock;
use pier_proto::store::{AuthSnapshotRequest, AuthSnapshotResponse};
use pier_store::auth::policy::{self, Action, Policy, ResourceKind};
use pier_store::auth::Secret;
use pier_store::{StoreApi, StoreError};
use tokio::sync::watch;

pub use layer::{AuthLayer, Refused};
pub use startup::prepare;

/// How long one long poll of the store's auth state lasts.
const FOLLOW_WAIT_MS: u32 = 10_000;
/// Pause after the store failed to answer, before asking again.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// Cached decisions kept at most (the cache is dropped when full).
const MAX_CACHED_DECISIONS: usize = 100_000;

/// The authenticated user of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's name (the access key).
    pub name: String,
    /// An admin may do everything.
    pub admin: bool,
    /// Where the call came from, for rules limited to source networks.
    pub peer: Option<IpAddr>,
}

/// Why a call was refused. [`crate::status`] maps each to its code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` header.
    #[error("authentication failed: the authorization header is missing (configure an access key and secret key)")]
    MissingHeader,
    /// The header does not parse.
    #[error("authentication failed: malformed authorization header: {0}")]
    MalformedHeader(String),
    /// No `x-mq-date-time` header.
    #[error("authentication failed: the x-mq-date-time header is missing")]
    MissingDate,
    /// The date header is in no format a client uses.
    #[error("authentication failed: the x-mq-date-time header {0:?} is not a date")]
    MalformedDate(String),
    /// The date is too far from the server's clock.
    #[error("authentication failed: stale date: x-mq-date-time {date:?} is {skew_secs} s away from the server's clock (at most {max} s allowed)", max = date::MAX_SKEW_SECS)]
    StaleDate {
        /// The header's value.
        date: String,
        /// Client date minus server time.
        skew_secs: i64,
    },
    /// No user has this access key.
    #[error("authentication failed: unknown user {0:?}")]
    UnknownUser(String),
    /// The signature does not match the user's secret.
    #[error("authentication failed: bad signature for user {0:?} (wrong secret key?)")]
    BadSignature(String),
    /// The user lacks a permission.
    #[error("user {user} lacks {action} on {kind}:{name}")]
    Forbidden {
        /// The user.
        user: String,
        /// What it tried.
        action: Action,
        /// On what kind of resource.
        kind: ResourceKind,
        /// Which one.
        name: String,
    },
    /// The call is for admin users only.
    #[error("user {0} is not an admin; the admin API needs an admin user")]
    AdminRequired(String),
}

impl AuthError {
    /// True for a failed authentication (UNAUTHORIZED), false for a missing
    /// permission (FORBIDDEN).
    pub fn is_authentication(&self) -> bool {
        !matches!(
            self,
            AuthError::Forbidden { .. } | AuthError::AdminRequired(_)
        )
    }
}

/// One permission a request needs.
#[derive(Debug, Clone, Copy)]
pub struct Need<'a> {
    /// Topic or group.
    pub kind: ResourceKind,
    /// Its store-side name.
    pub name: &'a str,
    /// Pub or Sub.
    pub action: Action,
}

impl<'a> Need<'a> {
    /// `action` on a topic.
    pub fn topic(name: &'a str, action: Action) -> Need<'a> {
        Need {
            kind: ResourceKind::Topic,
            name,
            action,
        }
    }

    /// `Sub` as a consumer group.
    pub fn group(name: &'a str) -> Need<'a> {
        Need {
            kind: ResourceKind::Group,
            name,
            action: Action::Sub,
        }
    }
}

struct UserView {
    secret: Secret,
    admin: bool,
}

/// The gate's copy of the store's users and rules.
#[derive(Default)]
struct View {
    /// `None` until the first copy arrived.
    generation: Option<u64>,
    users: HashMap<String, UserView>,
    policies: HashMap<String, Vec<Policy>>,
}

type DecisionKey = (String, ResourceKind, String, Action, Option<IpAddr>);

/// Authentication and authorization of one proxy.
pub struct Gate {
    /// Tells this gate's entries in `verified` from another's.
    id: u64,
    enabled: bool,
    local_time_dates: bool,
    view: RwLock<Arc<View>>,
    /// Decisions by generation of the view they were made with.
    decisions: DashMap<DecisionKey, (u64, bool)>,
}

impl Gate {
    /// A gate; `enabled: false` lets every call through.
    pub fn new(enabled: bool, local_time_dates: bool) -> Arc<Gate> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Arc::new(Gate {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            enabled,
            local_time_dates,
            view: RwLock::new(Arc::new(View::default())),
            decisions: DashMap::new(),
        })
    }

    /// Whether calls are checked.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The generation of the rules in use (`None` before the first load).
    pub fn generation(&self) -> Option<u64> {
        self.view.read().generation
    }

    /// Checks a call's `authorization` and `x-mq-date-time` headers.
    pub(crate) fn authenticate(
        &self,
        headers: &http::HeaderMap,
        peer: Option<IpAddr>,
        now_secs: i64,
    ) -> Result<Principal, AuthError> {
        let view = self.view.read().clone();
        // The exact bytes, and the users they are checked against, key the
        // signatures this thread verified lately.
        let raw = |name: &str| headers.get(name).map(http::HeaderValue::as_bytes);
        let remembered = match (view.generation, raw("authorization"), raw("x-mq-date-time")) {
            (Some(g), Some(a), Some(d)) => Some((g, a, d)),
            _ => None,
        };
        if let Some((g, a, d)) = remembered {
            // Verified on this thread within the same users; a stale date
            // goes the whole way below, for its error.
            if let Some(hit) = verified::lookup(self.id, g, a, d) {
                if date::is_fresh(hit.date, now_secs, self.local_time_dates) {
                    return Ok(Principal {
                        name: hit.name,
                        admin: hit.admin,
                        peer,
                    });
                }
            }
        }
        let text = |name: &str| headers.get(name).map(|v| v.to_str().map(str::trim));
        let header = match text("authorization") {
            None => return Err(AuthError::MissingHeader),
            Some(Err(_)) => return Err(AuthError::MalformedHeader("not printable ASCII".into())),
            Some(Ok(h)) => h,
        };
        let claim = signature::parse(header)?;
        let date_text = match text("x-mq-date-time") {
            None => return Err(AuthError::MissingDate),
            Some(Err(_)) => return Err(AuthError::MalformedDate("<not ASCII>".into())),
            Some(Ok(d)) => d,
        };
        let date =
            date::parse(date_text).ok_or_else(|| AuthError::MalformedDate(date_text.to_owned()))?;
        let user = view
            .users
            .get(&claim.access_key)
            .ok_or_else(|| AuthError::UnknownUser(claim.access_key.clone()))?;
        if !signature::verify(user.secret.expose(), date_text, &claim.signature) {
            return Err(AuthError::BadSignature(claim.access_key));
        }
        if !date::is_fresh(date, now_secs, self.local_time_dates) {
            return Err(AuthError::StaleDate {
                date: date_text.to_owned(),
                skew_secs: date.epoch_secs - now_secs,
            });
        }
        if let Some((g, a, d)) = remembered {
            verified::remember(self.id, g, a, d, &claim.access_key, user.admin, date);
        }
        Ok(Principal {
            name: claim.access_key,
            admin: user.admin,
            peer,
        })
    }

    /// Whether `user` may do everything in `needs`; the error names the
    /// first permission missing. With auth off, everything is allowed.
    pub fn authorize(&self, user: Option<&Principal>, needs: &[Need<'_>]) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        let Some(user) = user else {
            return Err(AuthError::MissingHeader);
        };
        if user.admin {
            return Ok(());
        }
        let view = self.view.read().clone();
        let generation = view.generation.unwrap_or_default();
        for need in needs {
            let key: DecisionKey = (
                user.name.clone(),
                need.kind,
                need.name.to_owned(),
                need.action,
                user.peer,
            );
            let allowed = match self.decisions.get(&key) {
                Some(d) if d.0 == generation => d.1,
                _ => {
                    let rules = view.policies.get(&user.name).map_or(&[][..], Vec::as_slice);
                    let allowed =
                        policy::permits(rules, need.kind, need.name, need.action, user.peer);
                    if self.decisions.len() >= MAX_CACHED_DECISIONS {
                        self.decisions.clear();
                    }
                    self.decisions.insert(key, (generation, allowed));
                    allowed
                }
            };
            if !allowed {
                return Err(AuthError::Forbidden {
                    user: user.name.clone(),
                    action: need.action,
                    kind: need.kind,
                    name: need.name.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Takes a new copy of the store's users and rules.
    fn apply(&self, snap: AuthSnapshotResponse) {
        let mut policies: HashMap<String, Vec<Policy>> = HashMap::new();
        for rule in &snap.rules {
            match Policy::parse(rule) {
                Ok(p) => policies.entry(p.user().to_owned()).or_default().push(p),
                // The store checked it when it was granted: a newer store
                // may know more. Skipping it can only deny more.
                Err(why) => {
                    tracing::warn!(user = %rule.user, resource = %rule.resource, %why, "ACL rule ignored")
                }
            }
        }
        let users = snap
            .users
            .into_iter()
            .map(|u| {
                (
                    u.name,
                    UserView {
                        secret: Secret::new(u.secret.into_bytes()),
                        admin: u.admin,
                    },
                )
            })
            .collect();
        *self.view.write() = Arc::new(View {
            generation: Some(snap.generation),
            users,
            policies,
        });
        self.decisions.clear();
    }

    /// Loads the users and rules once (at start).
    pub async fn load(&self, store: &dyn StoreApi) -> Result<(), StoreError> {
        let snap = store.auth_snapshot(AuthSnapshotRequest::default()).await?;
        self.apply(snap);
        Ok(())
    }

    /// Follows the store's changes until the proxy drains.
    pub async fn follow(
        self: Arc<Self>,
        store: Arc<dyn StoreApi>,
        mut draining: watch::Receiver<bool>,
    ) {
        let mut failing = false;
        loop {
            let req = AuthSnapshotRequest {
                // Never a generation the store has: the first answer is a copy.
                known_generation: self.generation().unwrap_or(u64::MAX),
                wait_ms: FOLLOW_WAIT_MS,
            };
            let answer = tokio::select! {
                r = store.auth_snapshot(req) => r,
                _ = draining.wait_for(|d| *d) => return,
            };
            match answer {
                Ok(snap) => {
                    if failing {
                        tracing::info!("auth state: the store answers again");
                        failing = false;
                    }
                    if snap.changed {
                        tracing::debug!(
                            generation = snap.generation,
                            users = snap.users.len(),
                            rules = snap.rules.len(),
                            "auth state updated"
                        );
                        self.apply(snap);
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e.report(), "auth state: cannot follow the store's users and rules; keeping the last copy");
                        failing = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_AFTER) => {}
                        _ = draining.wait_for(|d| *d) => return,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
