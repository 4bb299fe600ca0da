//! One Telemetry session per address (protocol.md §4.5): sends this
//! client's Settings, applies the server's (hot updates included), sends
//! heartbeats, answers server commands (transaction checks go to the
//! producer's `TransactionCheckHandler`) and reconnects with back-off when
//! the stream breaks.

use std::sync::Arc;
use std::time::Duration;

use pier_proto::rocketmq::telemetry_command::Command;
use pier_proto::rocketmq::{Code, Status, TelemetryCommand, ThreadStackTrace, VerifyMessageResult};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::client::ClientCore;
use crate::connect::deadline;
use crate::error::{Error, Result};

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

/// The session loop of address `i`. It runs until the client's shutdown
/// drops it (it is spawned with [`ClientCore::spawn`]).
pub(crate) async fn run(core: Arc<ClientCore>, i: usize) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let Err(e) = session(&core, i).await;
        core.cluster.mark_down(i);
        tracing::debug!(endpoint = %core.cluster.addr(i), error = %e, "telemetry session lost; reconnecting");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Sends one heartbeat to address `i`, logging a failure (the next one
/// comes soon).
async fn heartbeat(core: &ClientCore, i: usize) {
    if let Err(e) = core.heartbeat(i).await {
        tracing::debug!(endpoint = %core.cluster.addr(i), error = %e, "heartbeat failed");
    }
}

/// One stream's life; it only returns when the stream broke.
async fn session(core: &Arc<ClientCore>, i: usize) -> Result<std::convert::Infallible> {
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
    heartbeat(core, i).await;
    let mut heartbeats = tokio::time::interval_at(
        tokio::time::Instant::now() + HEARTBEAT_EVERY,
        HEARTBEAT_EVERY,
    );
    let mut resync =
        tokio::time::interval_at(tokio::time::Instant::now() + RESYNC_EVERY, RESYNC_EVERY);
    loop {
        tokio::select! {
            m = inbound.message() => match m? {
                Some(cmd) => on_command(core, i, cmd, &tx),
                None => return Err(Error::Protocol("the server ended the Telemetry stream".into())),
            },
            _ = heartbeats.tick() => {
                // Off the session loop: a slow heartbeat must not delay
                // the server's commands.
                let core2 = core.clone();
                core.spawn(async move { heartbeat(&core2, i).await });
            }
            _ = resync.tick() => {
                let _ = tx.send(settings_command(core)).await;
            }
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
            match core.transaction_checks.as_ref() {
                Some(handler) => core.spawn(handler.on_check(core.clone(), i, c)),
                None => tracing::warn!(
                    transaction_id = %c.transaction_id,
                    "transaction check received but this client has no transaction checker"
                ),
            }
        }
        Some(Command::PrintThreadStackTraceCommand(c)) => not_implemented(
            tx,
            "not available in the Rust SDK",
            Command::ThreadStackTrace(ThreadStackTrace {
                nonce: c.nonce,
                thread_stack_trace: None,
            }),
        ),
        Some(Command::VerifyMessageCommand(c)) => not_implemented(
            tx,
            "message verification is not supported",
            Command::VerifyMessageResult(VerifyMessageResult { nonce: c.nonce }),
        ),
        other => tracing::debug!(command = ?other, "telemetry command ignored"),
    }
}

/// Answers a command this SDK does not implement, with its nonce, so the
/// server does not wait for a reply.
fn not_implemented(tx: &mpsc::Sender<TelemetryCommand>, why: &str, reply: Command) {
    let _ = tx.try_send(TelemetryCommand {
        status: Some(status(Code::NotImplemented, why)),
        command: Some(reply),
    });
}

fn status(code: Code, message: &str) -> Status {
    Status {
        code: code as i32,
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_proto::rocketmq::settings::PubSub;
    use pier_proto::rocketmq::{ClientType, Settings, Subscription};

    fn core() -> Arc<ClientCore> {
        let config = crate::config::ClientConfig::new("127.0.0.1:1").unwrap();
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
        core.with_subscription(|s| s.and_then(|s| s.fifo))
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
