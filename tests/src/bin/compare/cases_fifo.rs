//! Cases on FIFO topics and orderly groups.

use super::*;

pub(crate) async fn cases_fifo(pr: &mut Probe) -> anyhow::Result<()> {
    let cf = pr.cf.clone_ref();
    let group = "cmp-fifo-g";
    let topic = "cmp-fifo";
    for i in 1..=3 {
        let m = pr.fifo_msg(topic, "order-1", &format!("F{i}"));
        let (o, _) = pr.send(&pr.p, m).await;
        if !o.is(Code::Ok) {
            bail!("fifo send: {} {}", o.outcome, o.message);
        }
    }
    // First receive, batch 1.
    let r = pr
        .receive_some(&cf, topic, RecvOpts::held(1), Duration::from_secs(20))
        .await;
    let Some(first) = r.msgs.first().cloned() else {
        pr.row(
            "fifo.first",
            "FIFO: first receive of F1..F3 (one message group)",
            r.obs,
        );
        return Ok(());
    };
    pr.row(
        "fifo.first",
        "FIFO: first receive of F1..F3 (one message group), batch 1",
        Obs::new(
            format!("{}, {}", r.obs.outcome, body(&first)),
            r.obs.message.clone(),
        ),
    );
    // While F1 is in flight, nothing of its group.
    let r = pr.receive(&cf, topic, RecvOpts::held(32)).await;
    let bodies: Vec<String> = r.msgs.iter().map(body).collect();
    pr.row(
        "fifo.blocked_while_in_flight",
        "FIFO: receive while F1 is in flight",
        Obs::new(
            format!(
                "{}{}",
                r.obs.outcome,
                if bodies.is_empty() {
                    String::new()
                } else {
                    format!(", {}", bodies.join(" "))
                }
            ),
            r.obs.message.clone(),
        )
        .detail(format!("answered after {}", secs(r.elapsed))),
    );
    // Nack F1 (1 s): the same message must come first again.
    let t0 = Instant::now();
    let (o, _) = pr
        .change(
            &cf,
            group,
            topic,
            &first,
            &handle_of(&first),
            Some(dur_ms(1_000)),
        )
        .await;
    let mut next = None;
    if o.is(Code::Ok) {
        let r = pr
            .receive_some(&cf, topic, RecvOpts::held(1), Duration::from_secs(40))
            .await;
        next = r.msgs.first().cloned();
    }
    let obs = match &next {
        None => Obs::new(
            format!("{}, nothing back within 40 s", o.outcome),
            o.message.clone(),
        ),
        Some(x) => Obs::new(
            format!("{}, then {} (attempt {})", o.outcome, body(x), attempt(x)),
            o.message.clone(),
        )
        .detail(format!("back after {}", secs(t0.elapsed()))),
    };
    pr.row(
        "fifo.nack_same_first",
        "FIFO: nack F1 (ChangeInvisibleDuration 1 s), receive: which message comes first",
        obs,
    );
    // Ack it and read the rest one by one: the order.
    let mut order = Vec::new();
    if let Some(x) = next {
        pr.ack(&cf, group, topic, &x, &handle_of(&x)).await;
        order.push(body(&x));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while order.len() < 3 && Instant::now() < deadline {
        let r = pr.receive(&cf, topic, RecvOpts::held(1)).await;
        for x in r.msgs {
            order.push(body(&x));
            pr.ack(&cf, group, topic, &x, &handle_of(&x)).await;
        }
    }
    pr.row(
        "fifo.order_after_nack",
        "FIFO: the order of F1..F3 after the nack (batch 1, each acked)",
        Obs::new(order.join(" "), ""),
    );

    // Two message groups in one queue: while A1 is in flight, is B1 free?
    for (b, g) in [("A1", "order-a"), ("B1", "order-b")] {
        let m = pr.fifo_msg(topic, g, b);
        pr.send(&pr.p, m).await;
    }
    let r = pr
        .receive_some(&cf, topic, RecvOpts::held(1), Duration::from_secs(20))
        .await;
    let first: Vec<String> = r.msgs.iter().map(body).collect();
    let second = pr.receive(&cf, topic, RecvOpts::held(1)).await;
    let then: Vec<String> = second.msgs.iter().map(body).collect();
    pr.row(
        "fifo.other_group_while_in_flight",
        "FIFO: A1 (group a) and B1 (group b) in one queue; receive (batch 1) while A1 is in flight",
        Obs::new(
            format!(
                "{}, {}",
                second.obs.outcome,
                if then.is_empty() {
                    "nothing".to_owned()
                } else {
                    then.join(" ")
                }
            ),
            second.obs.message.clone(),
        )
        .detail(format!(
            "first receive: {}; answered after {}",
            first.join(" "),
            secs(second.elapsed)
        )),
    );
    for x in r.msgs.iter().chain(second.msgs.iter()) {
        pr.ack(&cf, group, topic, x, &handle_of(x)).await;
    }
    pr.drain(&cf, topic).await;

    // How many of one group's messages does one receive hand out?
    for i in 1..=3 {
        let m = pr.fifo_msg(topic, "order-2", &format!("G{i}"));
        pr.send(&pr.p, m).await;
    }
    let r = pr
        .receive_some(&cf, topic, RecvOpts::held(32), Duration::from_secs(20))
        .await;
    let bodies: Vec<String> = r.msgs.iter().map(body).collect();
    pr.row(
        "fifo.batch_of_one_group",
        "FIFO: receive with batch 32 when G1..G3 of one message group wait",
        Obs::new(
            format!("{}, {}", r.obs.outcome, bodies.join(" ")),
            r.obs.message.clone(),
        ),
    );
    for x in &r.msgs {
        pr.ack(&cf, group, topic, x, &handle_of(x)).await;
    }
    pr.drain(&cf, topic).await;
    Ok(())
}
