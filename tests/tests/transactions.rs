//! Transactional messages through real proxies, in both modes: commit,
//! rollback, double commit, and an UNKNOWN answer resolved through the
//! orphan check sent on the producer's Telemetry stream.

use std::time::Duration;

use pier_proto::admin::TopicType;
use pier_proto::rocketmq::*;
use pier_tests::*;

fn half(topic: &str, body: &str) -> Message {
    let mut m = message(topic, body);
    let sp = m.system_properties.as_mut().unwrap();
    sp.message_type = MessageType::Transaction as i32;
    sp.orphaned_transaction_recovery_duration = Some(prost_types::Duration {
        seconds: 1,
        nanos: 0,
    });
    m
}

async fn end(c: &Raw, topic: &str, r: &SendResultEntry, resolution: TransactionResolution) -> Code {
    let resp = c
        .messaging()
        .end_transaction(c.req(EndTransactionRequest {
            topic: Some(resource(topic)),
            message_id: r.message_id.clone(),
            transaction_id: r.transaction_id.clone(),
            resolution: resolution as i32,
            source: TransactionSource::SourceClient as i32,
            trace_context: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    Code::try_from(resp.status.unwrap().code).unwrap()
}

async fn transactions(a: &Raw, b: &Raw) {
    a.create_typed_topic("payments", TopicType::Transaction, 2)
        .await;
    a.create_group("settle", 17).await;
    // The producer's Telemetry stream is on proxy b; it sends through a.
    let (_keep, mut checks) = b.producer_stream("payments").await;

    // Commit: invisible until committed, delivered once however often the
    // commit arrives.
    let sent = a.send(half("payments", "commit-me")).await;
    let e = sent.entries[0].clone();
    assert_eq!(e.status.as_ref().unwrap().code, Code::Ok as i32, "{sent:?}");
    assert!(!e.transaction_id.is_empty());
    let (code, _) = b.receive("settle", "payments", 8, 30_000, 300).await;
    assert_eq!(code, Code::MessageNotFound, "half messages are invisible");
    assert_eq!(
        end(a, "payments", &e, TransactionResolution::Commit).await,
        Code::Ok
    );
    assert_eq!(
        end(b, "payments", &e, TransactionResolution::Commit).await,
        Code::InvalidTransactionId
    );
    let (_, msgs) = b.receive("settle", "payments", 8, 30_000, 2_000).await;
    assert_eq!(msgs.iter().map(body).collect::<Vec<_>>(), vec!["commit-me"]);
    assert_eq!(
        msgs[0].system_properties.as_ref().unwrap().message_type,
        MessageType::Transaction as i32
    );
    assert_eq!(
        a.ack("settle", "payments", &handle(&msgs[0])).await,
        Code::Ok
    );

    // Rollback: never delivered.
    let e = a.send(half("payments", "roll-me-back")).await.entries[0].clone();
    assert_eq!(
        end(a, "payments", &e, TransactionResolution::Rollback).await,
        Code::Ok
    );
    assert_eq!(
        end(a, "payments", &e, TransactionResolution::Commit).await,
        Code::InvalidTransactionId
    );

    // UNKNOWN keeps it pending; the store then asks the producer (on its
    // Telemetry stream, through the other proxy), which commits.
    let e = a.send(half("payments", "ask-me")).await.entries[0].clone();
    assert_eq!(
        end(a, "payments", &e, TransactionResolution::Unspecified).await,
        Code::Ok
    );
    let cmd = tokio::time::timeout(Duration::from_secs(10), checks.message())
        .await
        .expect("an orphan check within 10 s")
        .unwrap()
        .unwrap();
    let Some(telemetry_command::Command::RecoverOrphanedTransactionCommand(check)) = cmd.command
    else {
        panic!("expected an orphan check, got {cmd:?}");
    };
    assert_eq!(check.transaction_id, e.transaction_id);
    let m = check.message.expect("the check carries the message");
    assert_eq!(body(&m), "ask-me");
    let sp = m.system_properties.as_ref().unwrap();
    assert_eq!(sp.message_id, e.message_id);
    assert_eq!(
        sp.body_digest.as_ref().unwrap().checksum.len(),
        32,
        "Node needs the digest"
    );
    assert_eq!(
        end(b, "payments", &e, TransactionResolution::Commit).await,
        Code::Ok
    );
    let (_, msgs) = a.receive("settle", "payments", 8, 30_000, 2_000).await;
    assert_eq!(msgs.iter().map(body).collect::<Vec<_>>(), vec!["ask-me"]);

    // Unknown and empty ids.
    let bogus = SendResultEntry {
        transaction_id: "00112233445566778899AABBCCDDEEFF".into(),
        ..Default::default()
    };
    assert_eq!(
        end(a, "payments", &bogus, TransactionResolution::Commit).await,
        Code::InvalidTransactionId
    );
    let empty = SendResultEntry::default();
    assert_eq!(
        end(a, "payments", &empty, TransactionResolution::Commit).await,
        Code::InvalidTransactionId
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_transactions() {
    let data = tempfile::tempdir().unwrap();
    let proxy = Node::standalone(data.path());
    let c = Raw::connect(&proxy.endpoint()).await;
    transactions(&c, &c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_transactions() {
    let data = tempfile::tempdir().unwrap();
    let store = Node::store(data.path());
    let pa = Node::proxy_of(&store);
    let pb = Node::proxy_of(&store);
    let a = Raw::connect(&pa.endpoint()).await;
    let b = Raw::connect(&pb.endpoint()).await;
    transactions(&a, &b).await;
}
