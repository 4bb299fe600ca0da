//! The Telemetry stream (settings exchange, server-pushed commands such as
//! transaction checks) and NotifyClientTermination. Sessions themselves
//! live in `session`.

use std::sync::Arc;

use futures::StreamExt;
use pier_proto::rocketmq::*;
use pier_store::auth::policy::Action;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Streaming};

use super::{BoxStream, Inner, RpcResult};
use crate::auth::Need;
use crate::context::ClientContext;
use crate::status::ok;

pub(super) async fn telemetry(
    inner: &Arc<Inner>,
    request: Request<Streaming<TelemetryCommand>>,
) -> RpcResult<BoxStream<TelemetryCommand>> {
    let ctx = ClientContext::of(&request);
    let Some(client_id) = ctx.client_id.clone() else {
        return Err(tonic::Status::invalid_argument(
            "the x-mq-client-id header is required",
        ));
    };
    let (tx, rx) = mpsc::channel(16);
    let (stream_id, ended) = inner.sessions.open(&client_id, &ctx, tx.clone());
    let mut inbound = request.into_inner();
    let this = inner.clone();
    // Answer at once (the response headers go out now: Rust 5.0.0 blocks
    // its start on them) and read the client's commands in the background.
    // The reader ends with the client's stream, or when the reply stream is
    // dropped (the client left, or the proxy drained: see below), or when
    // the session expires. The proxy waits for it when it stops.
    inner.tasks.spawn(async move {
        loop {
            let cmd = tokio::select! {
                m = inbound.message() => m,
                _ = tx.closed() => break,
                _ = ended.cancelled() => break,
            };
            match cmd {
                Ok(Some(cmd)) => {
                    this.on_telemetry(&ctx, &client_id, stream_id, cmd, &tx)
                        .await
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(client = %client_id, error = %e, "telemetry stream broke");
                    break;
                }
            }
        }
        if this.sessions.close(&client_id, Some(stream_id)) {
            // The client went away: stop renewing its deliveries, so they
            // become visible to the rest of the group.
            this.renewer.forget_client(&client_id);
            tracing::debug!(client = %client_id, "telemetry session closed");
        }
    });
    // The stream ends when the proxy drains, so a graceful stop does not
    // wait for clients that keep their Telemetry open forever.
    let mut draining = inner.draining.clone();
    let stream = ReceiverStream::new(rx).take_until(async move {
        let _ = draining.wait_for(|d| *d).await;
    });
    Ok(Response::new(Box::pin(stream)))
}

pub(super) async fn notify_client_termination(
    inner: &Inner,
    request: Request<NotifyClientTerminationRequest>,
) -> RpcResult<NotifyClientTerminationResponse> {
    let ctx = ClientContext::of(&request);
    // Ending a consumer's session needs Sub as its group (as the reference).
    if let Ok(group) = crate::validate::group(request.get_ref().group.as_ref(), &ctx.namespace) {
        if let Err(rej) = inner.authorize(&ctx, &[Need::group(&group)]) {
            return Ok(Response::new(NotifyClientTerminationResponse {
                status: Some(rej.to_status(&ctx)),
            }));
        }
    }
    if let Some(id) = &ctx.client_id {
        inner.sessions.close(id, None);
        inner.renewer.forget_client(id);
    }
    Ok(Response::new(NotifyClientTerminationResponse {
        status: Some(ok()),
    }))
}

impl Inner {
    async fn on_telemetry(
        &self,
        ctx: &ClientContext,
        client_id: &str,
        stream_id: u64,
        cmd: TelemetryCommand,
        tx: &mpsc::Sender<Result<TelemetryCommand, tonic::Status>>,
    ) {
        use telemetry_command::Command;
        match cmd.command {
            Some(Command::Settings(s)) => {
                if let Err(rej) = self.authorize_settings(ctx, &s) {
                    // As the reference: the stream ends with a gRPC error.
                    let _ = tx.send(Err(rej)).await;
                    return;
                }
                let reply = self.settings_reply(ctx, s).await;
                self.sessions.update_settings(client_id, stream_id, &reply);
                let out = TelemetryCommand {
                    status: Some(ok()),
                    command: Some(Command::Settings(reply)),
                };
                if tx.send(Ok(out)).await.is_err() {
                    tracing::debug!(client = %client_id, "telemetry stream closed before settings reply");
                }
            }
            Some(other) => {
                tracing::debug!(client = %client_id, command = ?std::mem::discriminant(&other), "telemetry command ignored");
            }
            None => {}
        }
    }
}

impl Inner {
    /// What a client's settings declare: `Pub` on each topic it publishes,
    /// `Sub` as its group and on each topic it subscribes (as the reference).
    #[allow(clippy::result_large_err)]
    fn authorize_settings(&self, ctx: &ClientContext, s: &Settings) -> Result<(), tonic::Status> {
        use settings::PubSub;
        let refused = |rej: crate::status::Rejection| crate::status::stream_status(&rej);
        match &s.pub_sub {
            Some(PubSub::Publishing(p)) => {
                for t in &p.topics {
                    if let Ok(topic) = crate::validate::topic(Some(t), &ctx.namespace) {
                        self.authorize(ctx, &[Need::topic(&topic, Action::Pub)])
                            .map_err(refused)?;
                    }
                }
            }
            Some(PubSub::Subscription(sub)) => {
                if let Ok(group) = crate::validate::group(sub.group.as_ref(), &ctx.namespace) {
                    self.authorize(ctx, &[Need::group(&group)])
                        .map_err(refused)?;
                }
                for e in &sub.subscriptions {
                    if let Ok(topic) = crate::validate::topic(e.topic.as_ref(), &ctx.namespace) {
                        self.authorize(ctx, &[Need::topic(&topic, Action::Sub)])
                            .map_err(refused)?;
                    }
                }
            }
            None => {}
        }
        Ok(())
    }
}
