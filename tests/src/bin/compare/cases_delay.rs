//! Cases on delay messages.

use super::*;

pub(crate) async fn cases_delay(pr: &mut Probe) -> anyhow::Result<()> {
    let cd = pr.cd.clone_ref();
    let group = "cmp-delay-g";
    let topic = "cmp-delay";
    // A delay message delivered; its recall afterwards (in flight, then acked).
    let mut m = pr.msg(topic, MessageType::Delay, "D1");
    let due = now_ts(2_000);
    if let Some(s) = m.system_properties.as_mut() {
        s.delivery_timestamp = Some(due);
    }
    let sent_at = Instant::now();
    let (o, entry) = pr.send(&pr.p, m).await;
    if !o.is(Code::Ok) {
        bail!("delay send: {} {}", o.outcome, o.message);
    }
    let mut got = None;
    let mut late = 0;
    while got.is_none() && sent_at.elapsed() < Duration::from_secs(30) {
        let r = pr.receive(&cd, topic, RecvOpts::held(1)).await;
        for x in r.msgs {
            if body(&x) == "D1" {
                late = sent_at.elapsed().as_millis() as i64 - 2_000;
                got = Some(x);
            } else {
                pr.strays.push(format!("delay: {}", body(&x)));
                pr.ack(&cd, group, topic, &x, &handle_of(&x)).await;
            }
        }
    }
    let obs = match &got {
        None => Obs::new("not delivered within 30 s", ""),
        Some(x) => {
            let class = if late < -100 {
                "early"
            } else if late <= 1_500 {
                "on time (≤ 1.5 s late)"
            } else {
                "late (> 1.5 s)"
            };
            Obs::new(format!("delivered {class}"), "").detail(format!(
                "{} ms after the due time; {}",
                late,
                body(x)
            ))
        }
    };
    pr.row(
        "delay.delivered_on_time",
        "DELAY message due in 2 s: when it is delivered",
        obs,
    );
    let recall = |pr: &Probe, handle: String| {
        let raw = pr.p.raw.clone();
        async move {
            match raw
                .messaging()
                .recall_message(raw.req(RecallMessageRequest {
                    topic: Some(resource(topic)),
                    recall_handle: handle,
                }))
                .await
            {
                Ok(r) => {
                    let r = r.into_inner();
                    status_obs(r.status.as_ref()).detail(if r.message_id.is_empty() {
                        "no message_id".to_owned()
                    } else {
                        "message_id returned".to_owned()
                    })
                }
                Err(e) => Obs::transport(&e),
            }
        }
    };
    let o = recall(pr, entry.recall_handle.clone()).await;
    let o = match &got {
        Some(x) => {
            let a = pr.ack(&cd, group, topic, x, &handle_of(x)).await;
            o.detail(format!(
                "ack of the delivered message afterwards: {}",
                a.outcome
            ))
        }
        None => o,
    };
    pr.row(
        "recall.delivered",
        "RecallMessage of a delay message already delivered (in flight)",
        o.detail(format!(
            "recall_handle {}",
            if entry.recall_handle.is_empty() {
                "missing"
            } else {
                "present"
            }
        )),
    );
    let o = recall(pr, entry.recall_handle.clone()).await;
    pr.row(
        "recall.delivered_acked",
        "RecallMessage of a delay message delivered and acked",
        o,
    );

    // A pending one recalled: never delivered; recalled twice.
    let mut m = pr.msg(topic, MessageType::Delay, "D2");
    if let Some(s) = m.system_properties.as_mut() {
        s.delivery_timestamp = Some(now_ts(4_000));
    }
    let (_, entry) = pr.send(&pr.p, m).await;
    let o = recall(pr, entry.recall_handle.clone()).await;
    let again = recall(pr, entry.recall_handle.clone()).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r = pr.receive(&cd, topic, RecvOpts::held(32)).await;
    let came: Vec<String> = r.msgs.iter().map(body).collect();
    for x in &r.msgs {
        pr.ack(&cd, group, topic, x, &handle_of(x)).await;
    }
    pr.row(
        "recall.pending",
        "RecallMessage of a delay message not yet due",
        Obs::new(
            format!(
                "{}, {}",
                o.outcome,
                if came.iter().any(|b| b == "D2") {
                    "delivered anyway"
                } else {
                    "never delivered"
                }
            ),
            o.message.clone(),
        ),
    );
    pr.row(
        "recall.twice",
        "RecallMessage of the same handle a second time",
        again,
    );
    let o = recall(pr, "garbage!!".into()).await;
    pr.row(
        "recall.malformed",
        "RecallMessage with a malformed recall handle",
        o,
    );
    let o = recall(pr, String::new()).await;
    pr.row(
        "recall.empty",
        "RecallMessage with an empty recall handle",
        o,
    );
    Ok(())
}
