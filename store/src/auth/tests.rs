use super::*;
use crate::clock::ManualClock;

fn open(dir: &Path) -> (Arc<Db>, Auth) {
    let db = Arc::new(Db::open(dir, None).unwrap());
    let auth = Auth::open(dir, db.clone(), Arc::new(ManualClock::new(1_000))).unwrap();
    (db, auth)
}

fn user(name: &str, secret: &str, admin: bool) -> CreateUserRequest {
    CreateUserRequest {
        name: name.into(),
        secret: secret.into(),
        admin,
    }
}

/// An ACL rule from any address, as a client sends it (also the fixture of
/// the policy tests).
pub(super) fn rule(user: &str, resource: &str, actions: &[&str], deny: bool) -> AclRule {
    AclRule {
        user: user.into(),
        resource: resource.into(),
        actions: actions.iter().map(|a| a.to_string()).collect(),
        decision: if deny {
            AclDecision::Deny
        } else {
            AclDecision::Allow
        } as i32,
        sources: Vec::new(),
    }
}

fn no_stop() -> std::future::Pending<()> {
    std::future::pending()
}

#[tokio::test]
async fn users_survive_a_reopen_encrypted_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (db, auth) = open(dir.path());
        let r = auth
            .create_user(user("alice", "alice-s3cret", false))
            .unwrap();
        assert!(r.created);
        let again = auth
            .create_user(user("alice", "rotated-s3cret", true))
            .unwrap();
        assert!(!again.created, "an existing user is updated");
        let raw = db.get(Cf::Meta, &keys::user_key("alice")).unwrap().unwrap();
        assert!(
            !raw.windows(6).any(|w| w == b"s3cret"),
            "the secret is not stored in clear"
        );
    }
    let (_db, auth) = open(dir.path());
    let users = auth.list_users().users;
    assert_eq!(users.len(), 1);
    assert!(users[0].admin);
    let snap = auth
        .snapshot(AuthSnapshotRequest::default(), no_stop())
        .await;
    assert_eq!(snap.users[0].secret, "rotated-s3cret");
    let described = auth.describe_user("alice").unwrap();
    assert!(!format!("{described:?}").contains("s3cret"));
    assert!(matches!(
        auth.describe_user("bob"),
        Err(StoreError::UserNotFound { .. })
    ));
}

#[tokio::test]
async fn a_secret_sealed_under_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_db, auth) = open(dir.path());
        auth.create_user(user("alice", "pw", false)).unwrap();
    }
    std::fs::remove_file(dir.path().join(SEAL_KEY_FILE)).unwrap();
    let db = Arc::new(Db::open(dir.path(), None).unwrap());
    let err = Auth::open(dir.path(), db, Arc::new(ManualClock::new(0)))
        .err()
        .expect("a secret that does not decrypt stops the open");
    assert!(err.report().contains("alice"), "{}", err.report());
}

#[tokio::test]
async fn rules_are_checked_kept_and_deleted_with_their_user() {
    let dir = tempfile::tempdir().unwrap();
    let (db, auth) = open(dir.path());
    assert!(matches!(
        auth.grant(rule("nobody", "Topic:t", &["Pub"], false)),
        Err(StoreError::UserNotFound { .. })
    ));
    auth.create_user(user("alice", "pw", false)).unwrap();
    assert!(matches!(
        auth.grant(rule("alice", "Queue:t", &["Pub"], false)),
        Err(StoreError::InvalidArgument { .. })
    ));
    let granted = auth
        .grant(rule("alice", "topic:orders-*", &["pub"], false))
        .unwrap();
    assert_eq!(granted.rule.unwrap().resource, "Topic:orders-*");
    // The same (user, resource, decision) replaces the rule.
    auth.grant(rule("alice", "Topic:orders-*", &["Pub", "Sub"], false))
        .unwrap();
    auth.grant(rule("alice", "Topic:orders-x", &["Sub"], true))
        .unwrap();
    let rules = auth.list_acls("alice").rules;
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert_eq!(auth.describe_user("alice").unwrap().rules.len(), 2);
    auth.revoke(RevokeAclRequest {
        user: "alice".into(),
        resource: "Topic:orders-x".into(),
        decision: AclDecision::Deny as i32,
    })
    .unwrap();
    assert!(auth
        .revoke(RevokeAclRequest {
            user: "alice".into(),
            resource: "Topic:orders-x".into(),
            decision: AclDecision::Deny as i32,
        })
        .is_err());
    assert_eq!(auth.delete_user("alice").unwrap().rules_deleted, 1);
    assert!(auth.list_acls("").rules.is_empty());
    drop(auth);
    drop(db);
    let (_db, auth) = open(dir.path());
    assert_eq!(auth.user_count(), 0);
    assert!(auth.list_acls("").rules.is_empty());
}

#[tokio::test]
async fn snapshot_long_polls_until_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, auth) = open(dir.path());
    let auth = Arc::new(auth);
    let first = auth
        .snapshot(AuthSnapshotRequest::default(), no_stop())
        .await;
    assert!(first.changed);
    let same = auth
        .snapshot(
            AuthSnapshotRequest {
                known_generation: first.generation,
                wait_ms: 50,
            },
            no_stop(),
        )
        .await;
    assert!(!same.changed);
    let waiter = {
        let auth = auth.clone();
        tokio::spawn(async move {
            auth.snapshot(
                AuthSnapshotRequest {
                    known_generation: first.generation,
                    wait_ms: 10_000,
                },
                no_stop(),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    auth.create_user(user("bob", "pw", false)).unwrap();
    let changed = waiter.await.unwrap();
    assert!(changed.changed);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(changed.users.len(), 1);
    // A stop ends the wait at once.
    let stopped = auth
        .snapshot(
            AuthSnapshotRequest {
                known_generation: changed.generation,
                wait_ms: 10_000,
            },
            async {},
        )
        .await;
    assert!(!stopped.changed);
}
