//! Authentication and ACLs end to end (README, Authentication and ACLs):
//! every failure of a signature, ACL decisions, the admin API, changes
//! reaching every proxy of a store, and the `pier user` / `pier acl`
//! commands. The official clients with auth: tests/tests/e2e/auth_official.rs.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pier_proto::admin::AclDecision::{self, Allow, Deny};
use pier_proto::admin::{AclRule, ListTopicsRequest, TopicType};
use pier_proto::rocketmq::*;
use pier_tests::raw::{producer_settings, settings_command};
use pier_tests::signing::*;
use pier_tests::*;
use tokio_stream::StreamExt;

async fn route(c: &Raw, r: tonic::Request<QueryRouteRequest>) -> Status {
    c.messaging()
        .query_route(r)
        .await
        .expect("QueryRoute transport")
        .into_inner()
        .status
        .expect("a status")
}

fn route_req(c: &Raw, topic: &str) -> tonic::Request<QueryRouteRequest> {
    c.req(QueryRouteRequest {
        topic: Some(resource(topic)),
        endpoints: Some(c.endpoints()),
    })
}

/// SendMessage of one message as `user`: the status and the entry count.
async fn send_as(c: &Raw, topic: &str, user: &str, secret: &str) -> (Status, usize) {
    let r = signed(
        c.req(SendMessageRequest {
            messages: vec![message(topic, "hello")],
        }),
        user,
        secret,
    );
    let resp = c
        .messaging()
        .send_message(r)
        .await
        .expect("SendMessage transport")
        .into_inner();
    (resp.status.expect("a status"), resp.entries.len())
}

/// The status of a receive (short poll) as `user`.
async fn receive_as(c: &Raw, group: &str, topic: &str, user: &str, secret: &str) -> Status {
    use receive_message_response::Content;
    let req = ReceiveMessageRequest {
        filter_expression: None,
        long_polling_timeout: Some(millis(100)),
        ..c.receive_request(group, topic, 1)
    };
    let mut stream = c
        .messaging()
        .receive_message(signed(c.req(req), user, secret))
        .await
        .expect("ReceiveMessage transport")
        .into_inner();
    while let Some(frame) = stream.message().await.expect("ReceiveMessage stream") {
        if let Some(Content::Status(s)) = frame.content {
            return s;
        }
    }
    panic!("no status frame")
}

/// A standalone proxy with auth on, a client of it (unsigned unless a
/// call is signed) and its admin [`ROOT`].
async fn auth_standalone(data: &std::path::Path) -> (Node, Raw, pier::admin::Admin) {
    let proxy = Node::standalone_with(data, &auth_flags());
    let c = Raw::connect(&proxy.endpoint()).await;
    let root = admin_as(&proxy.endpoint(), ROOT.0, ROOT.1).await;
    (proxy, c, root)
}

/// The users of the ACL test, with their secrets.
const ALICE: (&str, &str) = ("alice", "a-pw");
const BOB: (&str, &str) = ("bob", "b-pw");
const CAROL: (&str, &str) = ("carol", "c-pw");

/// Waits (5 s at most) until `check` holds, and asserts that it took less
/// than a second (how fast a change reaches every proxy).
async fn within_a_second<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let took = eventually(Duration::from_secs(5), check)
        .await
        .unwrap_or_else(|| panic!("{what}: not within 5 s"));
    eprintln!("{what}: {took:?}");
    assert!(took < Duration::from_secs(1), "{what}: {took:?}");
}

/// Whether a send to `topic` as `user` gets `code` now.
async fn send_gets(c: &Raw, topic: &str, (user, secret): (&str, &str), code: Code) -> bool {
    is(&send_as(c, topic, user, secret).await.0, code)
}

/// Grants `rule` as the admin `root`.
async fn grant(root: &pier::admin::Admin, rule: AclRule) {
    root.grant_acl(rule).await.expect("GrantAcl");
}

/// Whether alice may receive from `topic` as group `g1`: the receive is
/// not refused as forbidden.
async fn alice_may_receive(c: &Raw, topic: &str) -> bool {
    !is(
        &receive_as(c, "g1", topic, "alice", "a-pw").await,
        Code::Forbidden,
    )
}

fn is(s: &Status, code: Code) -> bool {
    s.code == code as i32
}

fn rule(
    user: &str,
    resource: &str,
    actions: &[&str],
    decision: AclDecision,
    sources: &[&str],
) -> AclRule {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    AclRule {
        user: user.into(),
        resource: resource.into(),
        actions: strings(actions),
        decision: decision as i32,
        sources: strings(sources),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_authentication_failure_is_unauthorized_and_says_which_part() {
    let data = tempfile::tempdir().unwrap();
    let (proxy, c, root) = auth_standalone(data.path()).await;
    let ep = proxy.endpoint();
    root.create_topic("t", TopicType::Normal, 2).await.unwrap();
    root.create_user("alice", "alice-secret", false)
        .await
        .unwrap();
    grant(&root, rule("alice", "Topic:t", &["Pub"], Allow, &[])).await;

    let now = date(0);
    let cases: Vec<(&str, tonic::Request<QueryRouteRequest>, &str)> = vec![
        (
            "no header",
            route_req(&c, "t"),
            "authorization header is missing",
        ),
        (
            "no date",
            sign_raw(route_req(&c, "t"), Some("alice"), "alice-secret", None),
            "x-mq-date-time header is missing",
        ),
        (
            "empty access key (Python without credentials)",
            sign_raw(route_req(&c, "t"), Some(""), "", Some(&now)),
            "malformed authorization header",
        ),
        (
            "unknown user",
            sign_raw(route_req(&c, "t"), Some("mallory"), "x", Some(&now)),
            "unknown user \"mallory\"",
        ),
        (
            "wrong secret",
            sign_raw(route_req(&c, "t"), Some("alice"), "guess", Some(&now)),
            "bad signature for user \"alice\"",
        ),
        (
            "20 minutes old",
            sign_raw(
                route_req(&c, "t"),
                Some("alice"),
                "alice-secret",
                Some(&date(-20 * 60)),
            ),
            "stale date",
        ),
        (
            "20 minutes ahead",
            sign_raw(
                route_req(&c, "t"),
                Some("alice"),
                "alice-secret",
                Some(&date(20 * 60)),
            ),
            "stale date",
        ),
        (
            "not a date",
            sign_raw(
                route_req(&c, "t"),
                Some("alice"),
                "alice-secret",
                Some("soon"),
            ),
            "is not a date",
        ),
    ];
    for (what, req, expected) in cases {
        let s = route(&c, req).await;
        assert!(is(&s, Code::Unauthorized), "{what}: {s:?}");
        assert!(s.message.contains(expected), "{what}: {s:?}");
    }
    let mut garbled = route_req(&c, "t");
    garbled
        .metadata_mut()
        .insert("authorization", "MQv2-HMAC-SHA1 nonsense".parse().unwrap());
    garbled
        .metadata_mut()
        .insert("x-mq-date-time", now.parse().unwrap());
    let s = route(&c, garbled).await;
    assert!(
        is(&s, Code::Unauthorized) && s.message.contains("malformed"),
        "{s:?}"
    );

    // Signed right: served.
    let s = route(&c, signed(route_req(&c, "t"), "alice", "alice-secret")).await;
    assert!(is(&s, Code::Ok), "{s:?}");

    // A refused send still answers one entry per message (Rust 5.0.0
    // reads entries[0]).
    let (s, entries) = send_as(&c, "t", "alice", "wrong").await;
    assert!(is(&s, Code::Unauthorized), "{s:?}");
    assert_eq!(entries, 1);
    let (s, _) = send_as(&c, "t", "alice", "alice-secret").await;
    assert!(is(&s, Code::Ok), "{s:?}");

    // Telemetry ends with a gRPC status.
    let settings = TelemetryCommand {
        status: None,
        command: Some(telemetry_command::Command::Settings(Settings::default())),
    };
    let err = c
        .messaging()
        .telemetry(c.req(tokio_stream::iter(vec![settings])))
        .await
        .expect_err("an unsigned Telemetry stream is refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");

    // The admin API: unsigned, signed by a non-admin.
    let err = c
        .admin()
        .list_topics(ListTopicsRequest {})
        .await
        .expect_err("unsigned admin call");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    let alice = admin_as(&ep, "alice", "alice-secret").await;
    let err = alice.list_topics().await.expect_err("alice is no admin");
    assert!(err.to_string().contains("not an admin"), "{err}");
    assert_eq!(root.list_topics().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_decisions_allow_deny_prefix_wildcard_and_sources() {
    let data = tempfile::tempdir().unwrap();
    let (proxy, c, root) = auth_standalone(data.path()).await;
    let ep = proxy.endpoint();
    for t in ["orders-eu", "secret", "local"] {
        root.create_topic(t, TopicType::Normal, 1).await.unwrap();
    }
    root.create_group(pier_proto::admin::ConsumerGroup {
        name: "g1".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    root.create_user("alice", "a-pw", false).await.unwrap();
    root.create_user("bob", "b-pw", false).await.unwrap();
    let within = Duration::from_secs(3);

    // Nothing granted: denied, naming the permission.
    let (s, _) = send_as(&c, "orders-eu", "alice", "a-pw").await;
    assert!(is(&s, Code::Forbidden), "{s:?}");
    assert_eq!(s.message, "user alice lacks Pub on Topic:orders-eu");

    // A prefix rule.
    grant(&root, rule("alice", "Topic:orders-*", &["Pub"], Allow, &[])).await;
    let ok = eventually(within, || send_gets(&c, "orders-eu", ALICE, Code::Ok)).await;
    assert!(ok.is_some(), "the prefix rule allows orders-eu");
    let (s, _) = send_as(&c, "secret", "alice", "a-pw").await;
    assert_eq!(s.message, "user alice lacks Pub on Topic:secret");
    // A route needs Pub or Sub on the topic.
    let s = route(&c, signed(route_req(&c, "secret"), "alice", "a-pw")).await;
    assert!(is(&s, Code::Forbidden), "{s:?}");
    assert_eq!(s.message, "user alice lacks Pub or Sub on Topic:secret");
    assert!(is(
        &route(&c, signed(route_req(&c, "orders-eu"), "alice", "a-pw")).await,
        Code::Ok
    ));
    // A producer's settings need Pub on each topic it declares: the
    // Telemetry stream ends with PERMISSION_DENIED.
    let settings = settings_command(producer_settings("secret"));
    let mut stream = c
        .messaging()
        .telemetry(signed(
            c.req(tokio_stream::iter(vec![settings]).chain(tokio_stream::pending())),
            "alice",
            "a-pw",
        ))
        .await
        .expect("a signed Telemetry stream opens")
        .into_inner();
    let err = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("an answer")
        .expect_err("the settings are refused");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert_eq!(err.message(), "user alice lacks Pub on Topic:secret");

    // Receive needs Sub on the topic and on the group.
    grant(
        &root,
        rule("alice", "Topic:orders-eu", &["Sub"], Allow, &[]),
    )
    .await;
    assert!(eventually(within, || async {
        receive_as(&c, "g1", "orders-eu", "alice", "a-pw")
            .await
            .message
            == "user alice lacks Sub on Group:g1"
    })
    .await
    .is_some());
    grant(&root, rule("alice", "Group:*", &["Sub"], Allow, &[])).await;
    let allowed = eventually(within, || alice_may_receive(&c, "orders-eu")).await;
    assert!(
        allowed.is_some(),
        "alice may receive from orders-eu in time"
    );

    // Deny wins over the prefix Allow.
    grant(&root, rule("alice", "Topic:orders-eu", &["Pub"], Deny, &[])).await;
    let denied = eventually(within, || {
        send_gets(&c, "orders-eu", ALICE, Code::Forbidden)
    })
    .await;
    assert!(denied.is_some(), "the Deny rule refuses orders-eu");
    assert!(is(
        &send_as(&c, "orders-us", "alice", "a-pw").await.0,
        Code::TopicNotFound
    ));

    // Source networks: the client is 127.0.0.1.
    grant(
        &root,
        rule("alice", "Topic:local", &["Sub"], Allow, &["10.0.0.0/8"]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = receive_as(&c, "g1", "local", "alice", "a-pw").await;
    assert_eq!(s.message, "user alice lacks Sub on Topic:local");
    grant(
        &root,
        rule("alice", "Topic:local", &["Sub"], Allow, &["127.0.0.0/8"]),
    )
    .await;
    let allowed = eventually(within, || alice_may_receive(&c, "local")).await;
    assert!(allowed.is_some(), "alice may receive from local in time");

    // `*`: any resource.
    grant(&root, rule("bob", "*", &["All"], Allow, &[])).await;
    let ok = eventually(within, || send_gets(&c, "secret", BOB, Code::Ok)).await;
    assert!(ok.is_some(), "the rule on * allows bob any topic");
    // ... but not the admin API, which needs an admin user.
    let bob = admin_as(&ep, "bob", "b-pw").await;
    assert!(bob.create_user("eve", "x", true).await.is_err());
    // An admin needs no rule.
    assert!(is(&send_as(&c, "secret", ROOT.0, ROOT.1).await.0, Code::Ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_every_proxy_of_a_store_within_a_second() {
    let data = tempfile::tempdir().unwrap();
    let store = Node::store_with(
        data.path(),
        &["--admin-user", ROOT.0, "--admin-secret", ROOT.1],
    );
    let proxy = |store: &Node| {
        Node::start(
            "pier-proxy",
            &["--listen", "127.0.0.1:0", "--store", &store.addr, "--auth"],
        )
    };
    let (a, b) = (proxy(&store), proxy(&store));
    let (ca, cb) = (
        Raw::connect(&a.endpoint()).await,
        Raw::connect(&b.endpoint()).await,
    );
    let root_a = admin_as(&a.endpoint(), ROOT.0, ROOT.1).await;
    let root_b = admin_as(&b.endpoint(), ROOT.0, ROOT.1).await;
    root_a
        .create_topic("t", TopicType::Normal, 1)
        .await
        .unwrap();
    root_a.create_user("carol", "c-pw", false).await.unwrap();

    // Granted through A, used through B.
    let refused = eventually(Duration::from_secs(2), || {
        send_gets(&cb, "t", CAROL, Code::Forbidden)
    });
    assert!(refused.await.is_some());
    grant(&root_a, rule("carol", "Topic:t", &["Pub"], Allow, &[])).await;
    within_a_second("the grant through A reaching B", || {
        send_gets(&cb, "t", CAROL, Code::Ok)
    })
    .await;

    // Revoked through B, refused by A.
    root_b
        .revoke_acl("carol", "Topic:t", AclDecision::Allow)
        .await
        .unwrap();
    within_a_second("the revoke through B reaching A", || {
        send_gets(&ca, "t", CAROL, Code::Forbidden)
    })
    .await;

    // A deleted user is unknown everywhere.
    root_a.delete_user("carol").await.unwrap();
    let s = eventually(Duration::from_secs(2), || async {
        send_as(&cb, "t", "carol", "c-pw")
            .await
            .0
            .message
            .contains("unknown user")
    })
    .await;
    assert!(s.is_some());

    // No --receipt-secret: both proxies sign receipts with the store's key,
    // so a message received through A is acked through B.
    root_a
        .create_group(pier_proto::admin::ConsumerGroup {
            name: "g".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(is(&send_as(&ca, "t", ROOT.0, ROOT.1).await.0, Code::Ok));
    let recv = ReceiveMessageRequest {
        group: Some(resource("g")),
        message_queue: Some(ca.queue("t")),
        filter_expression: None,
        batch_size: 1,
        invisible_duration: Some(prost_types::Duration {
            seconds: 30,
            nanos: 0,
        }),
        auto_renew: false,
        long_polling_timeout: Some(prost_types::Duration {
            seconds: 2,
            nanos: 0,
        }),
        attempt_id: None,
    };
    let mut stream = ca
        .messaging()
        .receive_message(signed(ca.req(recv), ROOT.0, ROOT.1))
        .await
        .unwrap()
        .into_inner();
    let mut handles = Vec::new();
    while let Some(frame) = stream.message().await.unwrap() {
        if let Some(receive_message_response::Content::Message(m)) = frame.content {
            handles.push(handle(&m));
        }
    }
    assert_eq!(handles.len(), 1);
    let ack = cb
        .messaging()
        .ack_message(signed(
            cb.req(AckMessageRequest {
                group: Some(resource("g")),
                topic: Some(resource("t")),
                entries: vec![AckMessageEntry {
                    message_id: String::new(),
                    receipt_handle: handles[0].clone(),
                    lite_topic: None,
                }],
            }),
            ROOT.0,
            ROOT.1,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(is(&ack.status.unwrap(), Code::Ok));
}

fn cli(ep: &str, keys: Option<(&str, &str)>, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin("pier"));
    cmd.args(["--endpoint", ep])
        .args(args)
        .env_remove("PIER_ACCESS_KEY")
        .env_remove("PIER_SECRET_KEY")
        .stdin(Stdio::null());
    if let Some((ak, sk)) = keys {
        cmd.env("PIER_ACCESS_KEY", ak).env("PIER_SECRET_KEY", sk);
    }
    cmd.output().expect("run pier")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// One `pier` call of a scripted session: who signs, the command line,
/// whether it succeeds, and what its output must contain.
type Step<'a> = (Option<(&'a str, &'a str)>, &'a str, bool, &'a [&'a str]);

#[test]
fn user_and_acl_commands_round_trip_without_showing_secrets() {
    const SECRET: &str = "S3cret-Value-42";
    let data = tempfile::tempdir().unwrap();
    // Debug lines too: no secret may show in any of them.
    let proxy = Node::standalone_with_env(data.path(), &auth_flags(), &[("RUST_LOG", "debug")]);
    let ep = proxy.endpoint();
    let root = Some(ROOT);

    let o = cli(&ep, None, &["user", "list"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("authorization header is missing"),
        "{}",
        text(&o)
    );
    let o = cli(&ep, Some((ROOT.0, "wrong")), &["user", "list"]);
    assert!(text(&o).contains("bad signature"), "{}", text(&o));

    let alice = Some(("alice", SECRET));
    let create = format!("user create alice --secret {SECRET}");
    #[rustfmt::skip]
    let steps: &[Step] = &[
        (root, &create, true, &["created user alice"]),
        (root, &create, true, &["updated user alice"]),
        (root, "user list", true, &["alice", "root"]),
        (root, "--json user list", true, &["\"alice\""]),
        (root, "acl grant alice Topic:orders-* --actions Pub,Sub", true, &["Topic:orders-*"]),
        (root, "acl grant alice topic:orders-x --actions Pub --deny --source 10.0.0.0/8", true,
            &["denied alice Pub on Topic:orders-x"]),
        (root, "acl list --user alice", true, &["Deny", "10.0.0.0/8"]),
        (root, "user describe alice", true, &["Topic:orders-*"]),
        (root, "acl grant alice Queue:x --actions Pub", false, &["is not Topic:NAME"]),
        // alice signs with her secret, and is no admin.
        (alice, "topic list", false, &["not an admin"]),
        (root, "acl revoke alice Topic:orders-*", true, &[]),
        (root, "acl revoke alice Topic:orders-*", false, &["no Allow rule"]),
        (root, "user delete alice", true, &["1 ACL rule"]),
        (root, "user describe alice", false, &["user alice does not exist"]),
    ];
    let mut outputs = Vec::new();
    for (keys, command, ok, wanted) in steps {
        let args: Vec<&str> = command.split_whitespace().collect();
        let o = cli(&ep, *keys, &args);
        let t = text(&o);
        assert_eq!(o.status.success(), *ok, "pier {args:?}: {t}");
        for w in *wanted {
            assert!(t.contains(w), "pier {args:?}: {w:?} not in {t}");
        }
        outputs.push(t);
    }

    for t in &outputs {
        assert!(!t.contains(SECRET), "a secret was printed: {t}");
        assert!(!t.contains(ROOT.1), "a secret was printed: {t}");
    }
    // Nor logged: every line the proxy wrote so far.
    std::thread::sleep(Duration::from_millis(200));
    let log: Vec<String> = proxy.log.try_iter().collect();
    assert!(log.iter().any(|l| l.contains("call refused")), "{log:?}");
    assert!(log
        .iter()
        .all(|l| !l.contains(SECRET) && !l.contains(ROOT.1)));
    for f in ["auth.key", "receipt.key"] {
        assert!(data.path().join(f).exists(), "{f}");
    }
}
