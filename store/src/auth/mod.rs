//! Users and ACL rules of the client port, and the receipt-handle key of
//! this store's proxies.
//!
//! Durable in the `meta` column family (keys in `db/keys`: `u` | user,
//! `a` | user | 0 | resource | 0 | decision), held in memory. Each change
//! bumps a generation number; proxies keep a copy of every user and rule
//! and long-poll [`Auth::snapshot`] to learn of a change within moments,
//! fleet-wide. The generation starts at a random value each time the store
//! opens, so a proxy never mistakes a restarted store's state for the one
//! it holds.
//!
//! - [`policy`]: what a rule means, parsed and matched (also used by proxies);
//! - `seal`: the key files and the encryption of secrets at rest.

pub mod policy;
mod seal;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use pier_proto::admin::*;
use pier_proto::store::{AuthSnapshotRequest, AuthSnapshotResponse, AuthUser, StoredUser};
use prost::Message;
use rand::RngCore;
use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::db::{self, Cf, Db, Durability};
use crate::error::{Result, StoreError};
use policy::Policy;
pub use seal::Secret;
use seal::{load_or_create_key, Sealer, RECEIPT_KEY_FILE, SEAL_KEY_FILE};

/// The keys this module owns in the `meta` column family.
mod keys {
    /// Tag of a user record: `u` | name -> StoredUser.
    pub(super) const USER_TAG: u8 = b'u';
    /// Tag of a rule: `a` | user | 0 | resource | 0 | `A` or `D` -> AclRule.
    /// Names and resources never hold a 0 byte (their characters are
    /// checked), so a user's rules share the prefix `a` | user | 0.
    pub(super) const ACL_TAG: u8 = b'a';

    pub(super) fn user_key(name: &str) -> Vec<u8> {
        let mut k = vec![USER_TAG];
        k.extend_from_slice(name.as_bytes());
        k
    }

    pub(super) fn acl_user_prefix(user: &str) -> Vec<u8> {
        let mut k = vec![ACL_TAG];
        k.extend_from_slice(user.as_bytes());
        k.push(0);
        k
    }

    pub(super) fn acl_key(user: &str, resource: &str, allow: bool) -> Vec<u8> {
        let mut k = acl_user_prefix(user);
        k.extend_from_slice(resource.as_bytes());
        k.push(0);
        k.push(if allow { b'A' } else { b'D' });
        k
    }
}

/// Longest long poll of a snapshot request.
const MAX_WAIT_MS: u32 = 30_000;
/// Longest user name.
const MAX_USER_LEN: usize = 64;
/// Longest secret, in bytes.
const MAX_SECRET_LEN: usize = 256;

struct UserEntry {
    admin: bool,
    created_ms: i64,
    secret: Secret,
}

#[derive(Default)]
struct State {
    users: BTreeMap<String, UserEntry>,
    /// By their key in the `meta` column family.
    rules: BTreeMap<Vec<u8>, AclRule>,
}

/// The users, ACL rules and keys of a store.
pub(crate) struct Auth {
    db: Arc<Db>,
    clock: SharedClock,
    sealer: Sealer,
    receipt: Secret,
    state: RwLock<State>,
    generation: watch::Sender<u64>,
}

fn check_user_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USER_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(format!(
            "user name {name:?} must be 1 to {MAX_USER_LEN} characters of A-Z a-z 0-9 _ - . @"
        )))
    }
}

fn user_not_found(name: &str) -> StoreError {
    StoreError::UserNotFound {
        user: name.to_owned(),
    }
}

impl Auth {
    /// Loads the users and rules, and the key files in `dir` (made on the
    /// first start).
    pub(crate) fn open(dir: &Path, db: Arc<Db>, clock: SharedClock) -> Result<Auth> {
        let sealer = Sealer::new(&load_or_create_key(dir, SEAL_KEY_FILE)?)?;
        let receipt = load_or_create_key(dir, RECEIPT_KEY_FILE)?;
        let mut state = State::default();
        for item in db.scan_prefix(Cf::Meta, &[keys::USER_TAG])? {
            let (_, v) = item?;
            let u: StoredUser = db::decode(&v, "a user record")?;
            let secret = sealer.open(&u.name, &u.nonce, &u.sealed_secret)?;
            state.users.insert(
                u.name,
                UserEntry {
                    admin: u.admin,
                    created_ms: u.created_ms,
                    secret,
                },
            );
        }
        for item in db.scan_prefix(Cf::Meta, &[keys::ACL_TAG])? {
            let (k, v) = item?;
            let rule: AclRule = db::decode(&v, "an ACL rule")?;
            state.rules.insert(k.into_vec(), rule);
        }
        let start = rand::rngs::OsRng.next_u64() >> 1;
        Ok(Auth {
            db,
            clock,
            sealer,
            receipt,
            state: RwLock::new(state),
            generation: watch::channel(start).0,
        })
    }

    /// The key receipt handles are signed with.
    pub(crate) fn receipt_secret(&self) -> &Secret {
        &self.receipt
    }

    /// How many users exist.
    pub(crate) fn user_count(&self) -> usize {
        self.state.read().users.len()
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Creates a user, or sets the secret and admin flag of an existing one.
    pub(crate) fn create_user(&self, req: CreateUserRequest) -> Result<CreateUserResponse> {
        check_user_name(&req.name)?;
        if req.secret.is_empty() || req.secret.len() > MAX_SECRET_LEN {
            return Err(StoreError::invalid(format!(
                "a secret must be 1 to {MAX_SECRET_LEN} bytes"
            )));
        }
        let mut state = self.state.write();
        let existing = state.users.get(&req.name).map(|u| u.created_ms);
        let created_ms = existing.unwrap_or_else(|| self.clock.now_ms());
        let (nonce, sealed_secret) = self.sealer.seal(&req.name, req.secret.as_bytes())?;
        let record = StoredUser {
            name: req.name.clone(),
            admin: req.admin,
            created_ms,
            nonce,
            sealed_secret,
        };
        let mut batch = self.db.batch()?;
        batch.put(Cf::Meta, keys::user_key(&req.name), record.encode_to_vec());
        self.db.write(batch, Durability::Synced, "saving a user")?;
        state.users.insert(
            req.name.clone(),
            UserEntry {
                admin: req.admin,
                created_ms,
                secret: Secret::new(req.secret.into_bytes()),
            },
        );
        self.bump();
        Ok(CreateUserResponse {
            user: Some(User {
                name: req.name,
                admin: req.admin,
                created_ms,
            }),
            created: existing.is_none(),
        })
    }

    /// Deletes a user and its rules.
    pub(crate) fn delete_user(&self, name: &str) -> Result<DeleteUserResponse> {
        let mut state = self.state.write();
        if !state.users.contains_key(name) {
            return Err(user_not_found(name));
        }
        let prefix = keys::acl_user_prefix(name);
        let rule_keys: Vec<Vec<u8>> = state
            .rules
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        let mut batch = self.db.batch()?;
        batch.delete(Cf::Meta, keys::user_key(name));
        for k in &rule_keys {
            batch.delete(Cf::Meta, k);
        }
        self.db
            .write(batch, Durability::Synced, "deleting a user")?;
        state.users.remove(name);
        for k in &rule_keys {
            state.rules.remove(k);
        }
        self.bump();
        Ok(DeleteUserResponse {
            rules_deleted: u32::try_from(rule_keys.len()).unwrap_or(u32::MAX),
        })
    }

    /// Every user, by name (no secrets).
    pub(crate) fn list_users(&self) -> ListUsersResponse {
        let state = self.state.read();
        ListUsersResponse {
            users: state
                .users
                .iter()
                .map(|(name, u)| User {
                    name: name.clone(),
                    admin: u.admin,
                    created_ms: u.created_ms,
                })
                .collect(),
        }
    }

    /// One user and its rules (no secret).
    pub(crate) fn describe_user(&self, name: &str) -> Result<DescribeUserResponse> {
        let state = self.state.read();
        let u = state.users.get(name).ok_or_else(|| user_not_found(name))?;
        let prefix = keys::acl_user_prefix(name);
        Ok(DescribeUserResponse {
            user: Some(User {
                name: name.to_owned(),
                admin: u.admin,
                created_ms: u.created_ms,
            }),
            rules: state
                .rules
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(_, r)| r.clone())
                .collect(),
        })
    }

    /// Adds a rule, or replaces the one with its user, resource and decision.
    pub(crate) fn grant(&self, rule: AclRule) -> Result<GrantAclResponse> {
        let policy = Policy::parse(&rule).map_err(StoreError::invalid)?;
        let rule = policy.to_rule();
        let mut state = self.state.write();
        if !state.users.contains_key(&rule.user) {
            return Err(user_not_found(&rule.user));
        }
        let key = keys::acl_key(&rule.user, &rule.resource, policy.allows());
        let mut batch = self.db.batch()?;
        batch.put(Cf::Meta, &key, rule.encode_to_vec());
        self.db
            .write(batch, Durability::Synced, "saving an ACL rule")?;
        state.rules.insert(key, rule.clone());
        self.bump();
        Ok(GrantAclResponse { rule: Some(rule) })
    }

    /// Removes the rule with this user, resource and decision.
    pub(crate) fn revoke(&self, req: RevokeAclRequest) -> Result<RevokeAclResponse> {
        // Parsed as a rule to write the resource the way it was stored.
        let policy = Policy::parse(&AclRule {
            user: req.user.clone(),
            resource: req.resource.clone(),
            actions: vec!["All".into()],
            decision: req.decision,
            sources: Vec::new(),
        })
        .map_err(StoreError::invalid)?;
        let key = keys::acl_key(&req.user, &policy.resource(), policy.allows());
        let mut state = self.state.write();
        if !state.rules.contains_key(&key) {
            return Err(StoreError::invalid(format!(
                "user {} has no {} rule on {}",
                req.user,
                if policy.allows() { "Allow" } else { "Deny" },
                policy.resource()
            )));
        }
        let mut batch = self.db.batch()?;
        batch.delete(Cf::Meta, &key);
        self.db
            .write(batch, Durability::Synced, "deleting an ACL rule")?;
        state.rules.remove(&key);
        self.bump();
        Ok(RevokeAclResponse {})
    }

    /// Every rule, or those of one user.
    pub(crate) fn list_acls(&self, user: &str) -> ListAclsResponse {
        let state = self.state.read();
        ListAclsResponse {
            rules: state
                .rules
                .values()
                .filter(|r| user.is_empty() || r.user == user)
                .cloned()
                .collect(),
        }
    }

    /// Every user (with its secret) and rule. When the caller already holds
    /// the current generation, waits up to `wait_ms` (or until `stop`) for
    /// a change first, and answers `changed: false` if none came.
    pub(crate) async fn snapshot(
        &self,
        req: AuthSnapshotRequest,
        stop: impl Future<Output = ()>,
    ) -> AuthSnapshotResponse {
        let mut rx = self.generation.subscribe();
        let known = req.known_generation;
        if *rx.borrow_and_update() == known && req.wait_ms > 0 {
            let wait = Duration::from_millis(u64::from(req.wait_ms.min(MAX_WAIT_MS)));
            tokio::select! {
                _ = tokio::time::timeout(wait, rx.wait_for(|g| *g != known)) => {}
                () = stop => {}
            }
        }
        let state = self.state.read();
        let generation = *self.generation.borrow();
        if generation == known {
            return AuthSnapshotResponse {
                generation,
                changed: false,
                users: Vec::new(),
                rules: Vec::new(),
            };
        }
        AuthSnapshotResponse {
            generation,
            changed: true,
            users: state
                .users
                .iter()
                .map(|(name, u)| AuthUser {
                    name: name.clone(),
                    secret: String::from_utf8_lossy(u.secret.expose()).into_owned(),
                    admin: u.admin,
                })
                .collect(),
            rules: state.rules.values().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests;
