//! One probe run: opens the clients, runs every group of cases in order and
//! collects the rows.

use super::*;

/// A simple consumer of `group` subscribed to `topic`.
async fn consumer(endpoint: &str, group: &str, topic: &str) -> anyhow::Result<Session> {
    Session::open(endpoint, ClientType::SimpleConsumer, Some(group), &[topic]).await
}

pub(crate) async fn probe(
    endpoint: &str,
) -> anyhow::Result<(Vec<(String, String, Obs)>, Vec<String>)> {
    let all: Vec<&str> = TOPICS
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t != "cmp-tx")
        .collect();
    let p = Session::open(endpoint, ClientType::Producer, None, &all).await?;
    let pt = Session::open(endpoint, ClientType::Producer, None, &["cmp-tx"]).await?;
    let c = consumer(endpoint, "cmp-g", "cmp-normal").await?;
    let c2 = consumer(endpoint, "cmp-g2", "cmp-normal2").await?;
    let cf = consumer(endpoint, "cmp-fifo-g", "cmp-fifo").await?;
    let cd = consumer(endpoint, "cmp-delay-g", "cmp-delay").await?;
    let mut pr = Probe {
        endpoint: endpoint.to_owned(),
        rows: Vec::new(),
        queues: BTreeMap::new(),
        seq: AtomicU64::new(1),
        strays: Vec::new(),
        p,
        pt,
        c,
        c2,
        cf,
        cd,
    };

    // Routes first, as every client starts with them. A topic just created
    // in RocketMQ reaches its name server's routes within seconds; wait for
    // that (60 s at most) rather than probe a half-ready system.
    for (t, _) in TOPICS {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r =
                pr.p.raw
                    .messaging()
                    .query_route(pr.p.raw.req(QueryRouteRequest {
                        topic: Some(resource(t)),
                        endpoints: Some(pr.p.raw.endpoints()),
                    }))
                    .await
                    .with_context(|| format!("QueryRoute {t}"))?
                    .into_inner();
            if let Some(q) = r.message_queues.first() {
                pr.queues.insert((*t).to_owned(), q.clone());
                break;
            }
            if Instant::now() >= deadline {
                bail!("no queue in the route of {t} within 60 s: {:?}", r.status);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // The orphan runs beside everything else: sent now, watched at the end.
    let orphan_sent = Instant::now();
    let orphan = pr.msg("cmp-tx", MessageType::Transaction, "orphan");
    let (orphan_obs, orphan_entry) = pr.send(&pr.pt, orphan.clone()).await;

    // Expired handles need 10 s (RocketMQ's shortest receive invisibility):
    // two messages on cmp-normal2 / cmp-g2, received now, used at the end.
    let no_settings = cases_no_settings(&mut pr).await;
    let expiring = {
        let e1 = pr.msg("cmp-normal2", MessageType::Normal, "expire-1");
        let e2 = pr.msg("cmp-normal2", MessageType::Normal, "expire-2");
        let e3 = pr.msg("cmp-normal2", MessageType::Normal, "expire-3");
        let (o, _) = pr.send_many(&pr.p, vec![e1, e2, e3]).await;
        let mut got = Vec::new();
        if o.is(Code::Ok) {
            let deadline = Instant::now() + Duration::from_secs(20);
            while got.len() < 3 && Instant::now() < deadline {
                let r = pr
                    .receive(&pr.c2, "cmp-normal2", RecvOpts::new(3, 10_000, 5_000))
                    .await;
                got.extend(r.msgs);
            }
        }
        (Instant::now(), got)
    };
    no_settings?;

    cases_route(&mut pr).await?;
    cases_batch(&mut pr).await?;
    cases_receive_params(&mut pr).await?;
    cases_ack(&mut pr).await?;
    cases_change(&mut pr).await?;
    cases_fifo(&mut pr).await?;
    cases_delay(&mut pr).await?;
    cases_tx(&mut pr).await?;
    cases_expired(&mut pr, expiring).await?;
    cases_other_rpcs(&mut pr).await?;
    cases_send(&mut pr).await?;

    // Long polling beyond the maximum, while the orphan check is awaited.
    let long_poll = {
        let mut o = RecvOpts::new(32, 30_000, 60_000);
        o.deadline = Duration::from_secs(70);
        pr.receive(&pr.c, "cmp-normal", o)
    };
    let orphan_wait = watch_orphan(&pr, &orphan, &orphan_entry, orphan_sent);
    let (lp, orphan_row) = tokio::join!(long_poll, orphan_wait);
    let lp_class = match lp.elapsed.as_secs() {
        0..=3 => "at once",
        4..=24 => "≈ 20 s (capped)",
        25..=40 => "≈ 30 s (capped)",
        41..=58 => "40–58 s",
        _ => "≈ 60 s (as asked)",
    };
    pr.row(
        "recv.long_poll_over_max",
        "ReceiveMessage, long_polling_timeout 60 s (deadline 70 s), nothing to receive",
        Obs::new(
            format!("{}, held {lp_class}", lp.obs.outcome),
            lp.obs.message.clone(),
        )
        .detail(format!("held {}", secs(lp.elapsed))),
    );
    let orphan_row = orphan_row.detail(format!("send: {}", orphan_obs.outcome));
    pr.row(
        "tx.orphan_first_check",
        "transaction half message never resolved: first RecoverOrphanedTransactionCommand on the producer's Telemetry",
        orphan_row,
    );
    Ok((pr.rows, pr.strays))
}

pub(crate) async fn watch_orphan(
    pr: &Probe,
    orphan: &Message,
    entry: &SendResultEntry,
    sent: Instant,
) -> Obs {
    let id = sp(orphan).message_id;
    let deadline = sent + Duration::from_secs(120);
    loop {
        let first = pr.pt.checks.lock().ok().and_then(|v| {
            v.iter()
                .find(|(_, c)| c.message.as_ref().map(|m| sp(m).message_id) == Some(id.clone()))
                .map(|(t, c)| (*t, c.clone()))
        });
        if let Some((at, cmd)) = first {
            let after = at.duration_since(sent);
            // Resolve it, as a checker would, so the server stops asking.
            let end = pr
                .pt
                .raw
                .messaging()
                .end_transaction(pr.pt.raw.req(EndTransactionRequest {
                    topic: Some(resource("cmp-tx")),
                    message_id: id.clone(),
                    transaction_id: cmd.transaction_id.clone(),
                    resolution: TransactionResolution::Rollback as i32,
                    source: TransactionSource::SourceServerCheck as i32,
                    trace_context: String::new(),
                }))
                .await;
            let end = reply_obs(end, |r| r.status).outcome;
            let digest = cmd
                .message
                .as_ref()
                .and_then(|m| sp(m).body_digest)
                .is_some();
            let class = match after.as_secs() {
                0..=4 => "before 5 s",
                5..=7 => "at ≈ 6 s",
                8..=40 => "within 8–40 s",
                _ => "after 40 s",
            };
            return Obs::new(format!("checked, first {class}"), "").detail(format!(
                "first check {} after the send; transaction_id {} the send's; body_digest {}; rollback answer {end}",
                secs(after),
                if cmd.transaction_id == entry.transaction_id { "=" } else { "≠" },
                if digest { "set" } else { "missing" },
            ));
        }
        if Instant::now() >= deadline {
            return Obs::new("no check within 120 s", "");
        }
        let wait = pr.pt.notify.notified();
        let _ = tokio::time::timeout(Duration::from_millis(500), wait).await;
    }
}
