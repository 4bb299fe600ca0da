//! The same store-API calls against the in-process [`Store`] and against a
//! [`RemoteStore`] talking gRPC to a store server started in this process:
//! both must give the same results and the same errors (variants and their
//! fields). Each scenario writes a transcript of what it saw, with what
//! differs between any two runs (transaction ids, timer keys, times) left
//! out; the two transcripts must be equal, and each scenario also asserts
//! what the transcript must say, so two equally broken stores do not pass.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pier_proto::admin::admin_service_server::AdminServiceServer;
use pier_proto::admin::*;
use pier_proto::store::*;
use pier_store::{
    AdminEndpoint, CheckPolicy, RemoteStore, Store, StoreApi, StoreEndpoint, StoreError,
    StoreOptions,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;

use crate::common::*;

/// A scenario's run against one store.
type Run<'a> = futures::future::BoxFuture<'a, ()>;

/// What a scenario saw, one line per call.
#[derive(Default)]
struct Transcript(Vec<String>);

impl Transcript {
    fn note(&mut self, line: impl Into<String>) {
        self.0.push(line.into());
    }

    /// Records an error by variant and fields.
    fn error(&mut self, call: &str, e: &StoreError) {
        self.note(format!("{call}: {e:?}"));
    }

    /// Records a call's outcome; `ok` says what a success returned.
    fn record<T>(&mut self, call: &str, r: Result<T, StoreError>, ok: impl FnOnce(T) -> String) {
        match r {
            Ok(v) => {
                let line = format!("{call}: {}", ok(v));
                self.note(line);
            }
            Err(e) => self.error(call, &e),
        }
    }

    fn popped(&mut self, call: &str, got: &[PoppedMessage]) {
        let items: Vec<String> = got
            .iter()
            .map(|p| {
                let m = p.message.as_ref().unwrap();
                format!("{}#{}@{}/{}", body(p), p.attempt, m.queue, m.offset)
            })
            .collect();
        self.note(format!("{call}: [{}]", items.join(", ")));
    }
}

fn options() -> StoreOptions {
    StoreOptions {
        // Checks come quickly, so the check stream can be compared.
        txn_checks: CheckPolicy {
            first_check_ms: 1_000,
            ..CheckPolicy::default()
        },
        ..StoreOptions::default()
    }
}

/// A store server on 127.0.0.1:0 in this process, and its stop.
struct Served {
    remote: RemoteStore,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    _store: Arc<Store>,
}

impl Served {
    async fn start(store: Arc<Store>) -> Served {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let api: Arc<dyn StoreApi> = store.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(StoreEndpoint::service(api.clone()))
                .add_service(AdminServiceServer::new(AdminEndpoint(api)))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                }),
        );
        Served {
            remote: RemoteStore::connect(&addr.to_string()).unwrap(),
            stop: Some(stop),
            task,
            _store: store,
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the store server stops")
            .unwrap()
            .unwrap();
    }
}

/// Runs `scenario` against a local store and a remote one (each in its own
/// directory) and returns both transcripts.
async fn both<F>(scenario: F) -> (Vec<String>, Vec<String>)
where
    F: for<'a> Fn(&'a dyn StoreApi, &'a mut Transcript) -> Run<'a>,
{
    let dir = tempfile::tempdir().unwrap();
    let local = Store::open(dir.path(), options()).unwrap();
    let mut local_t = Transcript::default();
    tokio::time::timeout(Duration::from_secs(30), scenario(&local, &mut local_t))
        .await
        .expect("the local run ends in time");

    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(Arc::new(Store::open(dir.path(), options()).unwrap())).await;
    let mut remote_t = Transcript::default();
    tokio::time::timeout(
        Duration::from_secs(30),
        scenario(&served.remote, &mut remote_t),
    )
    .await
    .expect("the remote run ends in time");
    served.shutdown().await;
    (local_t.0, remote_t.0)
}

/// Runs a scenario on both stores, checks that they agree and that the
/// transcript says what `expected` lists; returns it.
async fn agree<F>(scenario: F, expected: &[&str]) -> Vec<String>
where
    F: for<'a> Fn(&'a dyn StoreApi, &'a mut Transcript) -> Run<'a>,
{
    let (local, remote) = both(scenario).await;
    assert_eq!(local, remote, "local and remote stores disagree");
    for e in expected {
        assert!(has(&local, e), "{e:?} missing from {local:#?}");
    }
    local
}

/// What a successful call with nothing to compare is recorded as.
fn ok<T>(_: T) -> String {
    "ok".into()
}

fn has(t: &[String], needle: &str) -> bool {
    t.iter().any(|l| l.contains(needle))
}

async fn create_topic(s: &dyn StoreApi, t: &mut Transcript, name: &str, ty: TopicType, q: u32) {
    let r = s
        .create_topic(CreateTopicRequest {
            topic: Some(Topic {
                name: name.into(),
                r#type: ty as i32,
                queues: q,
                created_at_ms: 0,
            }),
        })
        .await;
    t.record(&format!("create topic {name}"), r, |r| {
        format!("created {}", r.created)
    });
}

async fn create_group(s: &dyn StoreApi, t: &mut Transcript, name: &str, fifo: bool) {
    let r = s
        .create_group(CreateGroupRequest {
            group: Some(ConsumerGroup {
                name: name.into(),
                fifo,
                max_attempts: 2,
                ..Default::default()
            }),
        })
        .await;
    t.record(&format!("create group {name}"), r, |r| {
        format!("created {}", r.created)
    });
}

async fn append(s: &dyn StoreApi, t: &mut Transcript, topic: &str, messages: Vec<StoredMessage>) {
    let req = AppendRequest {
        topic: topic.into(),
        messages,
    };
    t.record(&format!("append {topic}"), s.append(req).await, |r| {
        let placed: Vec<String> = r
            .results
            .iter()
            .map(|p| {
                let how = match (p.timer.is_empty(), p.transaction_id.is_empty()) {
                    (false, _) => "timer".to_owned(),
                    (_, false) => "half".to_owned(),
                    _ => format!("@{}", p.offset),
                };
                format!("q{}{how}", p.queue)
            })
            .collect();
        placed.join(" ")
    });
}

async fn take(
    s: &dyn StoreApi,
    t: &mut Transcript,
    call: &str,
    req: PopRequest,
) -> Vec<PoppedMessage> {
    match s.pop(req).await {
        Ok(r) => {
            t.popped(call, &r.messages);
            r.messages
        }
        Err(e) => {
            t.error(call, &e);
            Vec::new()
        }
    }
}

/// A pop that does not wait (see [`pop_request`]).
fn pop_req(topic: &str, group: &str, max: u32, invisible_ms: u64) -> PopRequest {
    pop_request(topic, group, max, invisible_ms, 0)
}

fn basics<'a>(s: &'a dyn StoreApi, t: &'a mut Transcript) -> Run<'a> {
    Box::pin(async move {
        create_topic(s, t, "t", TopicType::Normal, 2).await;
        create_topic(s, t, "t", TopicType::Normal, 2).await;
        create_topic(s, t, "t", TopicType::Fifo, 2).await;
        create_topic(s, t, "bad name", TopicType::Normal, 2).await;
        create_group(s, t, "g", false).await;
        append(s, t, "t", vec![]).await;
        append(s, t, "nope", vec![msg("x", None)]).await;
        let mut fifo = msg("x", None);
        fifo.kind = MessageKind::Fifo as i32;
        append(s, t, "t", vec![fifo]).await;
        let ids = ["m0", "m1", "m2", "m3", "m4"];
        append(s, t, "t", ids.iter().map(|i| msg(i, Some("a"))).collect()).await;

        take(s, t, "pop unknown group", pop_req("t", "nobody", 1, 1000)).await;
        let mut sql = pop_req("t", "g", 1, 1000);
        sql.filter = Some(Filter {
            kind: filter::Kind::Sql92 as i32,
            expression: "a > 1".into(),
        });
        take(s, t, "pop sql92", sql).await;
        let got = take(s, t, "pop 3", pop_req("t", "g", 3, 60_000)).await;
        assert_eq!(got.len(), 3);

        let ack = |p: &PoppedMessage| AckRequest {
            delivery: delivery("g", p),
        };
        t.record("ack first", s.ack(ack(&got[0])).await, ok);
        t.record("ack first again", s.ack(ack(&got[0])).await, ok);
        let change = ChangeInvisibleRequest {
            delivery: delivery("g", &got[1]),
            invisible_ms: 0,
            expected_visible_at_ms: 0,
            keep_handle: false,
        };
        t.record(
            "change invisible to 0",
            s.change_invisible(change).await,
            ok,
        );
        let again = take(s, t, "pop after change", pop_req("t", "g", 1, 60_000)).await;
        let mut wrong = delivery("g", &got[2]).unwrap();
        wrong.attempt = 9;
        let deliveries = vec![
            delivery("g", &again[0]).unwrap(),
            wrong,
            delivery("nobody", &got[2]).unwrap(),
        ];
        let outcomes = s.ack_many(AckManyRequest { deliveries }).await.unwrap();
        for (i, o) in outcomes.outcomes.into_iter().enumerate() {
            t.record(&format!("ack many #{i}"), pier_store::ack_result(o), ok);
        }
        let forward = ForwardToDlqRequest {
            delivery: delivery("g", &got[2]),
        };
        t.record("forward to dlq", s.forward_to_dlq(forward).await, ok);
        let group = || "g".to_owned();
        let r = s.describe_group(DescribeGroupRequest { name: group() });
        // lag_ms is wall-clock time: it differs between the two runs.
        t.record("describe group", r.await, |d| {
            let b: Vec<_> = d
                .backlog
                .iter()
                .map(|b| format!("{} ready {} inflight {}", b.topic, b.ready, b.inflight))
                .collect();
            format!("{b:?} dlq {}", d.dlq)
        });
        let r = s.describe_topic(DescribeTopicRequest { name: "t".into() });
        t.record("describe topic", r.await, |d| format!("{:?}", d.queues));
        t.record("topics", s.list_topics(ListTopicsRequest {}).await, |l| {
            let names: Vec<_> = l.topics.into_iter().map(|x| x.name).collect();
            format!("{names:?}")
        });
        let r = s.delete_group(DeleteGroupRequest { name: group() });
        t.record("delete group", r.await, ok);
        let r = s.get_group(GetGroupRequest { name: group() });
        t.record("get deleted group", r.await, |_| "found".into());
    })
}

#[tokio::test]
async fn send_pop_ack_and_admin_calls_agree() {
    agree(
        basics,
        &[
            "create topic t: created true",
            "create topic t: created false",
            "AlreadyExists",
            "InvalidArgument",
            "TopicNotFound { topic: \"nope\" }",
            "TypeConflict",
            "append t: q0@0 q1@0 q0@1 q1@1 q0@2",
            "GroupNotFound { group: \"nobody\" }",
            "IllegalFilter",
            "ack first: ok",
            "ack first again: StaleDelivery",
            "change invisible to 0: ok",
            "#2@",
            "ack many #0: ok",
            "ack many #1: StaleDelivery",
            "ack many #2: GroupNotFound",
            "forward to dlq: ok",
            "dlq 1",
            "%DLQ%g",
            "get deleted group: GroupNotFound",
        ],
    )
    .await;
}

fn fifo_and_timers<'a>(s: &'a dyn StoreApi, t: &'a mut Transcript) -> Run<'a> {
    Box::pin(async move {
        create_topic(s, t, "f", TopicType::Fifo, 4).await;
        create_group(s, t, "o", true).await;
        append(
            s,
            t,
            "f",
            vec![grouped("a0", "a"), grouped("a1", "a"), grouped("b0", "b")],
        )
        .await;
        let first = take(s, t, "fifo pop", pop_req("f", "o", 8, 60_000)).await;
        take(s, t, "fifo pop while locked", pop_req("f", "o", 8, 60_000)).await;
        for p in first.iter().filter(|p| body(p) == "a0") {
            let r = s.ack(AckRequest {
                delivery: delivery("o", p),
            });
            t.record("ack a0", r.await, ok);
        }
        take(s, t, "fifo pop after ack", pop_req("f", "o", 8, 60_000)).await;

        create_topic(s, t, "d", TopicType::Delay, 1).await;
        let later = pier_store::now_ms() + 60_000;
        append(s, t, "d", vec![delayed("later", later)]).await;
        let timer = s
            .append(AppendRequest {
                topic: "d".into(),
                messages: vec![delayed("recalled", later)],
            })
            .await
            .unwrap()
            .results[0]
            .timer
            .clone();
        for call in ["recall", "recall again"] {
            let r = s.recall(RecallRequest {
                topic: "d".into(),
                timer: timer.clone(),
            });
            t.record(call, r.await, |r| r.message_id);
        }
        append(s, t, "d", vec![delayed("soon", pier_store::now_ms() + 200)]).await;
        let mut wait = pop_req("d", "o", 8, 60_000);
        wait.poll_ms = 5_000;
        let got = s.pop(wait).await.unwrap().messages;
        t.note(format!(
            "delayed: {:?}",
            got.iter().map(body).collect::<Vec<_>>()
        ));
    })
}

#[tokio::test]
async fn fifo_and_delay_calls_agree() {
    let local = agree(
        fifo_and_timers,
        &[
            "fifo pop while locked: []",
            "ack a0: ok",
            "fifo pop after ack: [a1#1@",
            "append d: q0timer",
            "recall: recalled",
            "recall again: TimerNotFound { topic: \"d\" }",
            "delayed: [\"soon\"]",
        ],
    )
    .await;
    let fifo_first = local.iter().find(|l| l.starts_with("fifo pop:")).unwrap();
    assert!(
        fifo_first.contains("a0#1") && fifo_first.contains("b0#1"),
        "{fifo_first}"
    );
    assert!(!fifo_first.contains("a1"), "{fifo_first}");
}

fn transactions<'a>(s: &'a dyn StoreApi, t: &'a mut Transcript) -> Run<'a> {
    Box::pin(async move {
        create_topic(s, t, "tx", TopicType::Transaction, 1).await;
        create_group(s, t, "g", false).await;
        let mut checks = s.watch_transaction_checks().await.unwrap();
        let half = |id: &str| StoredMessage {
            kind: MessageKind::Transaction as i32,
            ..msg(id, None)
        };
        let ids: Vec<String> = {
            let r = s
                .append(AppendRequest {
                    topic: "tx".into(),
                    messages: vec![half("kept"), half("checked")],
                })
                .await
                .unwrap();
            r.results.into_iter().map(|p| p.transaction_id).collect()
        };
        t.note(format!(
            "half ids: {}",
            ids.iter().map(String::len).sum::<usize>()
        ));
        let end = |id: &str, resolution: Resolution| EndTransactionRequest {
            topic: "tx".into(),
            transaction_id: id.into(),
            resolution: resolution as i32,
        };
        for (call, req) in [
            ("end unknown", end(&ids[0], Resolution::Unknown)),
            ("end commit", end(&ids[0], Resolution::Commit)),
            ("end commit again", end(&ids[0], Resolution::Commit)),
            ("end bad id", end("zz", Resolution::Commit)),
        ] {
            match s.end_transaction(req).await {
                Ok(r) => t.note(format!("{call}: {}", r.message_id)),
                Err(e) => t.note(format!("{call}: {}", kind_of(&e))),
            }
        }
        take(s, t, "pop committed", pop_req("tx", "g", 8, 60_000)).await;
        let check = tokio::time::timeout(Duration::from_secs(10), checks.next())
            .await
            .expect("a check comes")
            .expect("the stream goes on")
            .unwrap();
        t.note(format!(
            "check {} of {}: {}",
            check.check,
            check.topic,
            check.message.map(|m| m.message_id).unwrap_or_default()
        ));
        let r = s.end_transaction(end(&check.transaction_id, Resolution::Rollback));
        t.record("rollback", r.await, |r| r.message_id);
        take(s, t, "pop after rollback", pop_req("tx", "g", 8, 60_000)).await;
    })
}

/// The variant of an error whose fields hold a random id.
fn kind_of(e: &StoreError) -> &'static str {
    match e {
        StoreError::TransactionNotFound { .. } => "TransactionNotFound",
        _ => "other",
    }
}

#[tokio::test]
async fn transaction_calls_and_checks_agree() {
    agree(
        transactions,
        &[
            "half ids: 64",
            "end unknown: kept",
            "end commit: kept",
            "end commit again: TransactionNotFound",
            "end bad id: TransactionNotFound",
            "pop committed: [kept#1@0/0]",
            "check 1 of tx: checked",
            "rollback: checked",
            "pop after rollback: []",
        ],
    )
    .await;
}
