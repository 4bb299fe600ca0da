//! One Telemetry session per address (protocol.md §4.5): sends this
//! client's Settings, applies the server's (hot updates included), sends
//! heartbeats, answers server commands (transaction checks through the
//! producer's checker) and reconnects with back-off when the stream breaks.

use std::sync::Arc;
use std::time::Duration;

use pier_proto::rocketmq::telemetry_command::Command;
use pier_proto::rocketmq::{
    Code, EndTransactionRequest, RecoverOrphanedTransactionCommand, Status, TelemetryCommand,
    ThreadStackTrace, TransactionResolution, TransactionSource, VerifyMessageResult,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::ClientCore;
use crate::connect::{deadline, request};
use crate::error::check;
use crate::message::MessageView;
use crate::producer::TransactionResolution as Resolution;

const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
const RESYNC_EVERY: Duration = Duration::from_secs(30);
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

fn settings_command(core: &ClientCore) -> TelemetryCommand {
    TelemetryCommand {
        status: None,
        command: Some(Command::Settings(core.local_settings())),
    }
}

/// The session loop of address `i`; ends at shutdown.
pub(crate) async fn run(core: Arc<ClientCore>, i: usize) {
    let mut shutdown = core.shutdown_signal();
    let mut backoff = MIN_BACKOFF;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match session(&core, i, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => {
                core.cluster.mark_down(i);
                tracing::debug!(endpoint = %core.cluster.addr(i), error = %e, "telemetry session lost; reconnecting");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One stream's life: Ok at shutdown, Err when the stream broke.
async fn session(
    core: &Arc<ClientCore>,
    i: usize,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> crate::Result<()> {
    let (tx, rx) = mpsc::channel(16);
    let _ = tx.send(settings_command(core)).await;
    let mut rpc = core.cluster.client(i);
    let t = core.timeout().max(Duration::from_secs(3));
    let mut inbound = deadline(t, async {
        Ok(rpc
            .telemetry(tonic::Request::new(ReceiverStream::new(rx)))
            .await?
            .into_inner())
    })
    .await?;
    core.cluster.mark_up(i);
    // The first heartbeat at once: it registers the client (and its group).
    if let Err(e) = core.heartbeat(i).await {
        tracing::debug!(endpoint = %core.cluster.addr(i), error = %e, "heartbeat failed");
    }
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + HEARTBEAT_EVERY,
        HEARTBEAT_EVERY,
    );
    let mut resync =
        tokio::time::interval_at(tokio::time::Instant::now() + RESYNC_EVERY, RESYNC_EVERY);
    loop {
        tokio::select! {
            m = inbound.message() => match m? {
                Some(cmd) => on_command(core, i, cmd, &tx),
                None => return Err(crate::Error::Protocol("the server ended the Telemetry stream".into())),
            },
            _ = heartbeat.tick() => {
                let core = core.clone();
                tokio::spawn(async move {
                    if let Err(e) = core.heartbeat(i).await {
                        tracing::debug!(endpoint = %core.cluster.addr(i), error = %e, "heartbeat failed");
                    }
                });
            }
            _ = resync.tick() => {
                let _ = tx.send(settings_command(core)).await;
            }
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

fn on_command(
    core: &Arc<ClientCore>,
    i: usize,
    cmd: TelemetryCommand,
    tx: &mpsc::Sender<TelemetryCommand>,
) {
    let ok = cmd
        .status
        .as_ref()
        .is_none_or(|s| s.code == Code::Ok as i32);
    match cmd.command {
        Some(Command::Settings(s)) if ok => core.apply_server_settings(s),
        Some(Command::Settings(_)) => {
            tracing::warn!(status = ?cmd.status, "the server refused this client's settings");
        }
        Some(Command::RecoverOrphanedTransactionCommand(c)) => {
            let core = core.clone();
            tokio::spawn(async move { recover(core, i, c).await });
        }
        Some(Command::PrintThreadStackTraceCommand(c)) => {
            let _ = tx.try_send(TelemetryCommand {
                status: Some(status(
                    Code::NotImplemented,
                    "not available in the Rust SDK",
                )),
                command: Some(Command::ThreadStackTrace(ThreadStackTrace {
                    nonce: c.nonce,
                    thread_stack_trace: None,
                })),
            });
        }
        Some(Command::VerifyMessageCommand(c)) => {
            let _ = tx.try_send(TelemetryCommand {
                status: Some(status(
                    Code::NotImplemented,
                    "message verification is not supported",
                )),
                command: Some(Command::VerifyMessageResult(VerifyMessageResult {
                    nonce: c.nonce,
                })),
            });
        }
        other => tracing::debug!(command = ?other, "telemetry command ignored"),
    }
}

fn status(code: Code, message: &str) -> Status {
    Status {
        code: code as i32,
        message: message.to_owned(),
    }
}

/// Answers a transaction check through the producer's checker, with
/// EndTransaction (source SERVER_CHECK) to the address the check came from.
async fn recover(core: Arc<ClientCore>, i: usize, c: RecoverOrphanedTransactionCommand) {
    let Some(checker) = core.checker.clone() else {
        tracing::warn!("transaction check received but this producer has no checker");
        return;
    };
    let Some(message) = c.message else { return };
    let view = match MessageView::from_wire(message, i, false) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "malformed transaction check");
            return;
        }
    };
    let resolution = match checker.check(view.clone()).await {
        Resolution::Commit => TransactionResolution::Commit,
        Resolution::Rollback => TransactionResolution::Rollback,
        // Unknown: say nothing; the server checks again later.
        Resolution::Unknown => return,
    };
    let req = EndTransactionRequest {
        topic: Some(core.resource(view.topic())),
        message_id: view.message_id().to_owned(),
        transaction_id: c.transaction_id,
        resolution: resolution as i32,
        source: TransactionSource::SourceServerCheck as i32,
        trace_context: String::new(),
    };
    let t = core.timeout();
    let r = core
        .cluster
        .call(Some(i), |mut rpc| {
            let req = req.clone();
            deadline(t, async move {
                let resp = rpc.end_transaction(request(req, t)).await?.into_inner();
                check(resp.status.as_ref())
            })
        })
        .await;
    if let Err(e) = r {
        tracing::warn!(message_id = view.message_id(), error = %e, "answering a transaction check failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_proto::rocketmq::settings::PubSub;
    use pier_proto::rocketmq::{ClientType, Settings, Subscription};

    fn core() -> Arc<ClientCore> {
        let config = crate::ClientConfig::new("127.0.0.1:1").unwrap();
        ClientCore::new(
            config,
            ClientType::PushConsumer,
            Some("g".into()),
            PubSub::Subscription(Subscription::default()),
            None,
        )
        .unwrap()
    }

    fn fifo_settings(fifo: bool) -> Settings {
        Settings {
            pub_sub: Some(PubSub::Subscription(Subscription {
                fifo: Some(fifo),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn fifo_of(core: &ClientCore) -> Option<bool> {
        match core.server_settings()?.pub_sub {
            Some(PubSub::Subscription(s)) => s.fifo,
            _ => None,
        }
    }

    #[tokio::test]
    async fn server_settings_apply_and_hot_updates_replace_them() {
        let core = core();
        let (tx, mut rx) = mpsc::channel(4);
        assert_eq!(fifo_of(&core), None);
        let cmd = |status: Option<Status>, fifo| TelemetryCommand {
            status,
            command: Some(Command::Settings(fifo_settings(fifo))),
        };
        on_command(&core, 0, cmd(Some(status(Code::Ok, "")), false), &tx);
        assert_eq!(fifo_of(&core), Some(false));
        // A later push from the server (no status) is a hot update.
        on_command(&core, 0, cmd(None, true), &tx);
        assert_eq!(fifo_of(&core), Some(true));
        // A refusal does not replace what applies.
        on_command(
            &core,
            0,
            cmd(Some(status(Code::BadRequest, "no")), false),
            &tx,
        );
        assert_eq!(fifo_of(&core), Some(true));
        assert!(rx.try_recv().is_err(), "settings need no answer");
    }

    #[tokio::test]
    async fn unsupported_commands_are_answered_not_implemented() {
        let core = core();
        let (tx, mut rx) = mpsc::channel(4);
        on_command(
            &core,
            0,
            TelemetryCommand {
                status: None,
                command: Some(Command::VerifyMessageCommand(
                    pier_proto::rocketmq::VerifyMessageCommand {
                        nonce: "n1".into(),
                        message: None,
                    },
                )),
            },
            &tx,
        );
        let reply = rx.try_recv().unwrap();
        assert_eq!(reply.status.unwrap().code, Code::NotImplemented as i32);
        assert!(matches!(
            reply.command,
            Some(Command::VerifyMessageResult(VerifyMessageResult { nonce })) if nonce == "n1"
        ));
        // Unknown command kinds are ignored.
        on_command(&core, 0, TelemetryCommand::default(), &tx);
        assert!(rx.try_recv().is_err());
    }
}
