//! Cases on transactions, and on handles whose invisible time ran out.

use super::*;

pub(crate) async fn cases_tx(pr: &mut Probe) -> anyhow::Result<()> {
    let pt = pr.pt.clone_ref();
    let end = |pr: &Probe, id: String, tx: String, res: TransactionResolution| {
        let raw = pr.pt.raw.clone();
        async move {
            let r = raw
                .messaging()
                .end_transaction(raw.req(EndTransactionRequest {
                    topic: Some(resource("cmp-tx")),
                    message_id: id,
                    transaction_id: tx,
                    resolution: res as i32,
                    source: TransactionSource::SourceClient as i32,
                    trace_context: String::new(),
                }))
                .await;
            reply_obs(r, |r| r.status)
        }
    };
    let m = pr.msg("cmp-tx", MessageType::Transaction, "T1");
    let id = sp(&m).message_id;
    let (o, entry) = pr.send(&pt, m).await;
    pr.row(
        "tx.send",
        "SendMessage of a TRANSACTION message",
        o.detail(format!(
            "transaction_id {}",
            if entry.transaction_id.is_empty() {
                "empty"
            } else {
                "returned"
            }
        )),
    );
    let tx = entry.transaction_id.clone();
    use TransactionResolution::{Commit, Rollback, Unspecified};
    for (case, title, tx_id, resolution) in [
        (
            "tx.unknown_transaction_id",
            "EndTransaction with a made-up transaction_id",
            "garbage".to_owned(),
            Commit,
        ),
        (
            "tx.empty_transaction_id",
            "EndTransaction with an empty transaction_id",
            String::new(),
            Commit,
        ),
        ("tx.commit", "EndTransaction COMMIT", tx.clone(), Commit),
        (
            "tx.commit_twice",
            "EndTransaction COMMIT a second time",
            tx.clone(),
            Commit,
        ),
        (
            "tx.rollback_after_commit",
            "EndTransaction ROLLBACK after COMMIT",
            tx,
            Rollback,
        ),
    ] {
        let o = end(pr, id.clone(), tx_id, resolution).await;
        pr.row(case, title, o);
    }

    // A genuine transaction id with another message's id.
    let m = pr.msg("cmp-tx", MessageType::Transaction, "T3");
    let (_, entry) = pr.send(&pt, m).await;
    let o = end(pr, pr.next_id(), entry.transaction_id.clone(), Commit).await;
    pr.row(
        "tx.other_message_id",
        "EndTransaction with a genuine transaction_id but another message id",
        o,
    );

    // UNSPECIFIED ("unknown yet", what the Python and Rust checkers send),
    // then the real answer.
    let m = pr.msg("cmp-tx", MessageType::Transaction, "T2");
    let id = sp(&m).message_id;
    let (_, entry) = pr.send(&pt, m).await;
    for (case, title, resolution) in [
        (
            "tx.unspecified",
            "EndTransaction with resolution UNSPECIFIED",
            Unspecified,
        ),
        (
            "tx.end_after_unspecified",
            "EndTransaction ROLLBACK after an UNSPECIFIED one",
            Rollback,
        ),
    ] {
        let o = end(pr, id.clone(), entry.transaction_id.clone(), resolution).await;
        pr.row(case, title, o);
    }
    Ok(())
}

/// Handles whose invisible time ran out (10 s, received at the start).
pub(crate) async fn cases_expired(
    pr: &mut Probe,
    expiring: (Instant, Vec<Message>),
) -> anyhow::Result<()> {
    let c2 = pr.c2.clone_ref();
    let (at, msgs) = expiring;
    let wait = Duration::from_secs(12).saturating_sub(at.elapsed());
    tokio::time::sleep(wait).await;
    let find = |b: &str| msgs.iter().find(|m| body(m) == b).cloned();
    let (Some(e1), Some(e2), Some(e3)) = (find("expire-1"), find("expire-2"), find("expire-3"))
    else {
        pr.row(
            "ack.expired",
            "AckMessage with a handle whose invisible time (10 s) ran out",
            Obs::new("prober: the three messages were not received", ""),
        );
        return Ok(());
    };
    let o = pr
        .ack(&c2, "cmp-g2", "cmp-normal2", &e1, &handle_of(&e1))
        .await;
    pr.row(
        "ack.expired",
        "AckMessage with a handle whose invisible time (10 s) ran out, the message not received again yet",
        o.detail(format!("{} after the receive", secs(at.elapsed()))),
    );
    let (o, _) = pr
        .change(
            &c2,
            "cmp-g2",
            "cmp-normal2",
            &e2,
            &handle_of(&e2),
            Some(dur_ms(LONG_INVISIBLE_MS)),
        )
        .await;
    pr.row(
        "cid.expired",
        "ChangeInvisibleDuration with a handle whose invisible time (10 s) ran out, not received again yet",
        o,
    );
    // What comes back: E3 surely (nobody touched it), E1 and E2 if the
    // calls above were refused. Then the first delivery's handle of E3.
    let mut back: Vec<Message> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline && !back.iter().any(|m| body(m) == "expire-3") {
        let r = pr.receive(&c2, "cmp-normal2", RecvOpts::held(32)).await;
        back.extend(r.msgs);
    }
    // A last short look for the other two.
    let r = pr.receive(&c2, "cmp-normal2", RecvOpts::held(32)).await;
    back.extend(r.msgs);
    let mut seen: Vec<String> = back
        .iter()
        .map(|m| format!("{} (attempt {})", body(m), attempt(m)))
        .collect();
    seen.sort();
    pr.row(
        "expired.redelivered",
        "After ack.expired and cid.expired (and expire-3 left alone): what is delivered again",
        Obs::new(
            if seen.is_empty() {
                "none".to_owned()
            } else {
                seen.join(", ")
            },
            "",
        ),
    );
    for m in &back {
        let first = match body(m).as_str() {
            "expire-1" => handle_of(&e1),
            "expire-2" => handle_of(&e2),
            _ => handle_of(&e3),
        };
        let o = pr.ack(&c2, "cmp-g2", "cmp-normal2", m, &first).await;
        let new = pr.ack(&c2, "cmp-g2", "cmp-normal2", m, &handle_of(m)).await;
        if body(m) == "expire-3" {
            pr.row(
                "ack.old_handle_after_redelivery",
                "AckMessage with the first delivery's handle after the message was delivered again",
                o.detail(format!("ack with the new handle: {}", new.outcome)),
            );
        }
    }
    Ok(())
}
