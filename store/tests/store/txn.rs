//! Transactions: half messages, resolution, restarts.

use pier_proto::admin::*;
use pier_proto::store::*;
use pier_store::{StoreApi, StoreError};

use crate::common::*;

#[tokio::test]
async fn half_messages_survive_restart_and_commit_once() {
    let dir = tempfile::tempdir().unwrap();
    let txn_id;
    {
        let store = open(dir.path());
        setup(&*store, "t", "g", 17).await;
        create_topic(&*store, "tx", TopicType::Transaction, 1).await;
        let r = append(
            &*store,
            "tx",
            vec![StoredMessage {
                kind: MessageKind::Transaction as i32,
                ..msg("pending", None)
            }],
        )
        .await;
        txn_id = r.results[0].transaction_id.clone();
        assert_eq!(txn_id.len(), 32);
        assert!(pop(&*store, "tx", "g", 1, 10_000, 0).await.is_empty());
        store.shutdown();
    }
    let store = open(dir.path());
    let end = |resolution: Resolution| EndTransactionRequest {
        topic: "tx".into(),
        transaction_id: txn_id.clone(),
        resolution: resolution as i32,
    };
    store
        .end_transaction(end(Resolution::Unknown))
        .await
        .unwrap();
    assert!(
        pop(&*store, "tx", "g", 1, 10_000, 0).await.is_empty(),
        "UNKNOWN keeps it pending"
    );
    let r = store
        .end_transaction(end(Resolution::Commit))
        .await
        .unwrap();
    assert_eq!(r.message_id, "pending");
    let again = store
        .end_transaction(end(Resolution::Commit))
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::TransactionNotFound { .. }));
    let got = pop(&*store, "tx", "g", 10, 10_000, 0).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), vec!["pending"]);
}
