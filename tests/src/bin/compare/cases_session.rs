//! Cases on sessions without Settings, QueryRoute and batches.

use super::*;

/// Calls from a client that never opened Telemetry (no Settings), and the
/// Telemetry exchange itself.
pub(crate) async fn cases_no_settings(pr: &mut Probe) -> anyhow::Result<()> {
    let fresh = Raw::connect(&pr.endpoint).await;
    let bare = Session {
        raw: fresh.clone(),
        group: Some("cmp-g2".into()),
        kind: ClientType::SimpleConsumer,
        telemetry: mpsc::channel(1).0,
        checks: Default::default(),
        notify: Default::default(),
        tasks: Vec::new(),
    };
    let (o, _) = pr
        .send(
            &bare,
            pr.msg("cmp-sink", MessageType::Normal, "no-settings"),
        )
        .await;
    pr.row(
        "session.send_without_settings",
        "SendMessage from a client that never sent Settings",
        o,
    );
    let r = pr
        .receive(&bare, "cmp-normal2", RecvOpts::new(1, 30_000, 5_000))
        .await;
    pr.row(
        "session.receive_without_settings",
        "ReceiveMessage from a client that never sent Settings",
        r.obs.detail(format!("{} msgs", r.msgs.len())),
    );
    let hb = fresh
        .messaging()
        .heartbeat(fresh.req(HeartbeatRequest {
            group: Some(resource("cmp-g2")),
            client_type: ClientType::SimpleConsumer as i32,
        }))
        .await;
    let o = reply_obs(hb, |r| r.status);
    pr.row(
        "session.heartbeat_without_settings",
        "Heartbeat from a client that never sent Settings",
        o,
    );
    let nt = fresh
        .messaging()
        .notify_client_termination(fresh.req(NotifyClientTerminationRequest {
            group: Some(resource("cmp-g2")),
        }))
        .await;
    let o = reply_obs(nt, |r| r.status);
    pr.row(
        "session.terminate_unknown_client",
        "NotifyClientTermination from a client that never sent Settings",
        o,
    );
    drop(bare);

    // Settings without pub_sub.
    let raw = Raw::connect(&pr.endpoint).await;
    let mut s = producer_settings(&raw, &["cmp-normal"]);
    s.pub_sub = None;
    let o = settings_reply(&raw, s).await;
    pr.row(
        "telemetry.settings_without_pub_sub",
        "Telemetry: producer Settings without pub_sub",
        o,
    );
    // A simple consumer of a group that does not exist.
    let raw = Raw::connect(&pr.endpoint).await;
    let s = consumer_settings(&raw, "cmp-nogroup", &["cmp-normal"]);
    let o = settings_reply(&raw, s).await;
    pr.row(
        "telemetry.unknown_group",
        "Telemetry: simple consumer Settings of an unknown group",
        o,
    );
    // A producer declaring a topic that does not exist.
    let raw = Raw::connect(&pr.endpoint).await;
    let s = producer_settings(&raw, &["cmp-notopic"]);
    let o = settings_reply(&raw, s).await;
    pr.row(
        "telemetry.unknown_topic",
        "Telemetry: producer Settings naming an unknown topic",
        o,
    );
    // Client properties over the limits (more than 32 entries).
    let raw = Raw::connect(&pr.endpoint).await;
    let mut s = producer_settings(&raw, &["cmp-normal"]);
    for i in 0..40 {
        s.client_properties.insert(format!("k{i}"), "v".into());
    }
    let o = settings_reply(&raw, s).await;
    pr.row(
        "telemetry.too_many_client_properties",
        "Telemetry: Settings with 40 client_properties (limit 32)",
        o,
    );
    Ok(())
}

pub(crate) async fn route(
    raw: &Raw,
    topic: &str,
    endpoints: Option<Endpoints>,
    header: bool,
) -> Obs {
    let msg = QueryRouteRequest {
        topic: Some(resource(topic)),
        endpoints,
    };
    let req = if header {
        raw.req(msg)
    } else {
        tonic::Request::new(msg)
    };
    match raw.messaging().query_route(req).await {
        Err(e) => Obs::transport(&e),
        Ok(r) => {
            let r = r.into_inner();
            let mut o = status_obs(r.status.as_ref());
            if !r.message_queues.is_empty() {
                let mut types: Vec<String> = r
                    .message_queues
                    .iter()
                    .flat_map(|q| q.accept_message_types.iter())
                    .map(|t| {
                        MessageType::try_from(*t)
                            .map(|t| t.as_str_name().to_owned())
                            .unwrap_or_else(|_| t.to_string())
                    })
                    .collect();
                types.sort();
                types.dedup();
                o.outcome = format!("{}, accepts {}", o.outcome, types.join("+"));
                o = o.detail(format!("{} queues", r.message_queues.len()));
            }
            o
        }
    }
}

pub(crate) async fn cases_route(pr: &mut Probe) -> anyhow::Result<()> {
    let raw = pr.p.raw.clone();
    let ep = Some(raw.endpoints());
    let cases: Vec<(&str, &str, String, Option<Endpoints>, bool)> = vec![
        (
            "route.ok",
            "QueryRoute of a NORMAL topic",
            "cmp-normal".into(),
            ep.clone(),
            true,
        ),
        (
            "route.fifo_ok",
            "QueryRoute of a FIFO topic",
            "cmp-fifo".into(),
            ep.clone(),
            true,
        ),
        (
            "route.unknown_topic",
            "QueryRoute of an unknown topic",
            "cmp-notopic".into(),
            ep.clone(),
            true,
        ),
        (
            "route.empty_topic",
            "QueryRoute with an empty topic name",
            String::new(),
            ep.clone(),
            true,
        ),
        (
            "route.bad_chars",
            "QueryRoute of \"bad topic!\" (invalid characters)",
            "bad topic!".into(),
            ep.clone(),
            true,
        ),
        (
            "route.too_long",
            "QueryRoute of a 200-character topic name",
            "t".repeat(200),
            ep.clone(),
            true,
        ),
        (
            "route.system_topic",
            "QueryRoute of RMQ_SYS_TRANS_HALF_TOPIC (a system topic)",
            "RMQ_SYS_TRANS_HALF_TOPIC".into(),
            ep.clone(),
            true,
        ),
        (
            "route.no_endpoints",
            "QueryRoute without endpoints",
            "cmp-normal".into(),
            None,
            true,
        ),
        (
            "route.no_client_id",
            "QueryRoute without the x-mq-client-id header",
            "cmp-normal".into(),
            ep.clone(),
            false,
        ),
    ];
    for (id, title, topic, endpoints, header) in cases {
        let o = route(&raw, &topic, endpoints, header).await;
        pr.row(id, title, o);
    }
    Ok(())
}

/// Batch sizes 0, 1, 1,000 and -1, each with 40 fresh messages waiting.
pub(crate) async fn cases_batch(pr: &mut Probe) -> anyhow::Result<()> {
    let c = pr.c.clone_ref();
    let stray = pr.drain(&c, "cmp-normal").await;
    if stray > 0 {
        pr.strays
            .push(format!("batch: {stray} left on cmp-normal before"));
    }
    for (id, title, batch) in [
        (
            "recv.batch_0",
            "ReceiveMessage with batch_size 0 (40 messages waiting)",
            0,
        ),
        (
            "recv.batch_1",
            "ReceiveMessage with batch_size 1 (40 waiting)",
            1,
        ),
        (
            "recv.batch_1000",
            "ReceiveMessage with batch_size 1,000 (40 waiting)",
            1000,
        ),
        (
            "recv.batch_negative",
            "ReceiveMessage with batch_size -1 (40 waiting)",
            -1,
        ),
    ] {
        let msgs: Vec<Message> = (0..40)
            .map(|i| pr.msg("cmp-normal", MessageType::Normal, &format!("{id}-{i}")))
            .collect();
        let (o, _) = pr.send_many(&pr.p, msgs).await;
        if !o.is(Code::Ok) {
            bail!("batch send: {} {}", o.outcome, o.message);
        }
        // Let both systems index the 40 before the receive under test.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = pr
            .receive(&c, "cmp-normal", RecvOpts::new(batch, 60_000, 5_000))
            .await;
        let n = r.msgs.len();
        let class = match n {
            0 => "0 msgs".to_owned(),
            40 => "all 40".to_owned(),
            n => format!("{n} msgs"),
        };
        pr.row(
            id,
            title,
            Obs::new(format!("{}, {class}", r.obs.outcome), r.obs.message.clone())
                .detail(r.obs.detail.clone())
                .detail(format!("answered after {}", secs(r.elapsed))),
        );
        if id == "recv.batch_1000" && n > 1 {
            // Ack them all in one request.
            let entries: Vec<(String, String)> = r
                .msgs
                .iter()
                .map(|m| (sp(m).message_id, handle_of(m)))
                .collect();
            let (top, each) = pr.ack_entries(&c, "cmp-g", "cmp-normal", entries).await;
            let ok = each.iter().filter(|o| o.is(Code::Ok)).count();
            pr.row(
                "ack.batch",
                "AckMessage with all the messages of one receive in one request",
                top.detail(format!("{ok} of {n} entries OK")),
            );
        } else {
            for m in &r.msgs {
                pr.ack(&c, "cmp-g", "cmp-normal", m, &handle_of(m)).await;
            }
        }
        pr.drain(&c, "cmp-normal").await;
    }
    Ok(())
}
