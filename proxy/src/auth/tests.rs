use super::*;
use hmac::{Hmac, Mac};
use pier_proto::admin::{AclDecision, AclRule};
use pier_proto::store::AuthUser;
use sha1::Sha1;

/// 2024-01-31T23:59:59Z.
const NOW: i64 = 1_706_745_599;
const DATE: &str = "20240131T235959Z";

fn sign(secret: &str, date: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(date.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn headers(ak: &str, signature: &str, date: Option<&str>) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        "authorization",
        format!(
            "MQv2-HMAC-SHA1 Credential={ak}, SignedHeaders=x-mq-date-time, Signature={signature}"
        )
        .parse()
        .unwrap(),
    );
    if let Some(d) = date {
        h.insert("x-mq-date-time", d.parse().unwrap());
    }
    h
}

/// A rule of alice's, the user of these tests.
fn rule(resource: &str, actions: &[&str], decision: AclDecision, sources: &[&str]) -> AclRule {
    AclRule {
        user: "alice".into(),
        resource: resource.into(),
        actions: actions.iter().map(|a| a.to_string()).collect(),
        decision: decision as i32,
        sources: sources.iter().map(|s| s.to_string()).collect(),
    }
}

fn gate(rules: Vec<AclRule>, local_time_dates: bool) -> Arc<Gate> {
    let g = Gate::new(true, local_time_dates);
    g.apply(AuthSnapshotResponse {
        generation: 7,
        changed: true,
        users: vec![
            AuthUser {
                name: "alice".into(),
                secret: "alice-secret".into(),
                admin: false,
            },
            AuthUser {
                name: "root".into(),
                secret: "root-secret".into(),
                admin: true,
            },
        ],
        rules,
    });
    g
}

#[test]
fn each_authentication_failure_says_what_failed() {
    let g = gate(Vec::new(), false);
    let good = sign("alice-secret", DATE);
    let p = g
        .authenticate(&headers("alice", &good, Some(DATE)), None, NOW)
        .unwrap();
    assert_eq!(p.name, "alice");
    assert!(!p.admin);
    // Upper-case hex (Java, Node) and Go's credential form.
    g.authenticate(
        &headers("alice//Rocketmq", &good.to_uppercase(), Some(DATE)),
        None,
        NOW,
    )
    .unwrap();

    let err = |h: http::HeaderMap| g.authenticate(&h, None, NOW).unwrap_err();
    assert_eq!(err(http::HeaderMap::new()), AuthError::MissingHeader);
    assert!(matches!(
        err(headers("", &good, Some(DATE))),
        AuthError::MalformedHeader(_)
    ));
    assert_eq!(err(headers("alice", &good, None)), AuthError::MissingDate);
    assert!(matches!(
        err(headers("alice", &good, Some("tomorrow"))),
        AuthError::MalformedDate(_)
    ));
    assert_eq!(
        err(headers("mallory", &good, Some(DATE))),
        AuthError::UnknownUser("mallory".into())
    );
    assert_eq!(
        err(headers("alice", &sign("wrong", DATE), Some(DATE))),
        AuthError::BadSignature("alice".into())
    );
    let old = "20240130T235959Z";
    assert!(matches!(
        err(headers("alice", &sign("alice-secret", old), Some(old))),
        AuthError::StaleDate { .. }
    ));
    for e in [
        AuthError::MissingHeader,
        AuthError::MissingDate,
        AuthError::UnknownUser("u".into()),
        AuthError::BadSignature("u".into()),
    ] {
        assert!(e.is_authentication());
    }
}

#[test]
fn dates_outside_the_window_are_stale() {
    let g = gate(Vec::new(), false);
    let at = |date: &str| {
        g.authenticate(
            &headers("alice", &sign("alice-secret", date), Some(date)),
            None,
            NOW,
        )
    };
    assert!(at("20240131T234459Z").is_ok(), "exactly 15 minutes early");
    let e = at("20240131T234458Z").unwrap_err();
    assert!(
        matches!(
            e,
            AuthError::StaleDate {
                skew_secs: -901,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("stale"), "{e}");
    // Rust writes RFC 3339 with an offset.
    assert!(at("2024-02-01T07:59:59.123456789+08:00").is_ok());
    // A Java client at UTC+8 writes local time with a literal Z.
    assert!(at("20240201T075959Z").is_err());
    let lenient = gate(Vec::new(), true);
    let d = "20240201T075959Z";
    assert!(lenient
        .authenticate(
            &headers("alice", &sign("alice-secret", d), Some(d)),
            None,
            NOW
        )
        .is_ok());
}

#[test]
fn acl_decisions() {
    let g = gate(
        vec![
            rule("Topic:orders-*", &["Pub"], AclDecision::Allow, &[]),
            rule("Topic:orders-secret", &["Pub"], AclDecision::Deny, &[]),
            rule("Group:*", &["Sub"], AclDecision::Allow, &[]),
            rule("Topic:local", &["Sub"], AclDecision::Allow, &["10.0.0.0/8"]),
        ],
        false,
    );
    let alice = |peer: Option<&str>| Principal {
        name: "alice".into(),
        admin: false,
        peer: peer.map(|p| p.parse().unwrap()),
    };
    let a = alice(None);
    g.authorize(Some(&a), &[Need::topic("orders-eu", Action::Pub)])
        .unwrap();
    let e = g
        .authorize(Some(&a), &[Need::topic("orders-secret", Action::Pub)])
        .unwrap_err();
    assert_eq!(e.to_string(), "user alice lacks Pub on Topic:orders-secret");
    assert!(!e.is_authentication());
    let e = g
        .authorize(
            Some(&a),
            &[Need::topic("orders-eu", Action::Sub), Need::group("g1")],
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "user alice lacks Sub on Topic:orders-eu");
    g.authorize(Some(&a), &[Need::group("g1")]).unwrap();
    assert!(g
        .authorize(Some(&a), &[Need::topic("local", Action::Sub)])
        .is_err());
    g.authorize(
        Some(&alice(Some("10.1.2.3"))),
        &[Need::topic("local", Action::Sub)],
    )
    .unwrap();
    let root = Principal {
        name: "root".into(),
        admin: true,
        peer: None,
    };
    g.authorize(Some(&root), &[Need::topic("anything", Action::Sub)])
        .unwrap();
    assert_eq!(
        g.authorize(None, &[Need::group("g")]).unwrap_err(),
        AuthError::MissingHeader
    );
    Gate::new(false, false)
        .authorize(None, &[Need::group("g")])
        .unwrap();
}

#[test]
fn a_new_copy_of_the_rules_replaces_cached_decisions() {
    let g = gate(
        vec![rule("Topic:t", &["Pub"], AclDecision::Allow, &[])],
        false,
    );
    let a = Principal {
        name: "alice".into(),
        admin: false,
        peer: None,
    };
    let need = [Need::topic("t", Action::Pub)];
    g.authorize(Some(&a), &need).unwrap();
    g.authorize(Some(&a), &need).unwrap();
    g.apply(AuthSnapshotResponse {
        generation: 8,
        changed: true,
        users: vec![AuthUser {
            name: "alice".into(),
            secret: "alice-secret".into(),
            admin: false,
        }],
        rules: vec![rule("Topic:t", &["Pub"], AclDecision::Deny, &[])],
    });
    assert!(
        g.authorize(Some(&a), &need).is_err(),
        "the cached allow is gone"
    );
    assert_eq!(g.generation(), Some(8));
}

/// A copy of the users holding alice alone, with `secret`, no rules.
fn only_alice(generation: u64, secret: &str) -> AuthSnapshotResponse {
    AuthSnapshotResponse {
        generation,
        changed: true,
        users: vec![AuthUser {
            name: "alice".into(),
            secret: secret.into(),
            admin: false,
        }],
        rules: Vec::new(),
    }
}

#[test]
fn a_remembered_signature_still_goes_stale_and_dies_with_its_secret() {
    let g = gate(Vec::new(), false);
    let good = sign("alice-secret", DATE);
    let h = headers("alice", &good, Some(DATE));
    assert_eq!(g.authenticate(&h, None, NOW).unwrap().name, "alice");
    // The second call is answered from `verified`: the same outcome.
    let again = g.authenticate(&h, None, NOW).unwrap();
    assert_eq!((again.name.as_str(), again.admin), ("alice", false));
    // Freshness is checked on every call.
    let late = NOW + date::MAX_SKEW_SECS + 1;
    assert!(matches!(
        g.authenticate(&h, None, late),
        Err(AuthError::StaleDate { .. })
    ));
    // Another gate of the same generation does not share this one's pairs.
    let other = Gate::new(true, false);
    other.apply(only_alice(7, "another-secret"));
    assert!(matches!(
        other.authenticate(&h, None, NOW),
        Err(AuthError::BadSignature(_))
    ));
    // A new secret is a new generation: the remembered pair no longer counts.
    g.apply(only_alice(8, "a-new-secret"));
    assert!(matches!(
        g.authenticate(&h, None, NOW),
        Err(AuthError::BadSignature(_))
    ));
}
