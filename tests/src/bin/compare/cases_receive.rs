//! Cases on ReceiveMessage parameters and AckMessage.

use super::*;

/// A case: `o`'s receive from cmp-normal as cmp-g, with its deadline.
fn normal_case<'a>(
    pr: &Probe,
    id: &'a str,
    title: &'a str,
    o: &RecvOpts,
) -> (&'a str, &'a str, ReceiveMessageRequest, Duration) {
    (
        id,
        title,
        pr.recv_request("cmp-g", "cmp-normal", o),
        o.deadline,
    )
}

pub(crate) async fn cases_receive_params(pr: &mut Probe) -> anyhow::Result<()> {
    let c = pr.c.clone_ref();
    let base = RecvOpts::new(1, 30_000, 5_000);
    // Names that do not exist or are not valid.
    let mut cases: Vec<(&str, &str, ReceiveMessageRequest, Duration)> = [
        (
            "recv.unknown_group",
            "ReceiveMessage for an unknown group",
            "cmp-nogroup",
            "cmp-normal",
        ),
        (
            "recv.unknown_topic",
            "ReceiveMessage from an unknown topic",
            "cmp-g",
            "cmp-notopic",
        ),
        (
            "recv.empty_group",
            "ReceiveMessage with an empty group name",
            "",
            "cmp-normal",
        ),
        (
            "recv.system_group",
            "ReceiveMessage for group CID_RMQ_SYS_TRANS (a RocketMQ system group name)",
            "CID_RMQ_SYS_TRANS",
            "cmp-normal",
        ),
        (
            "recv.bad_group_chars",
            "ReceiveMessage for group \"bad group!\"",
            "bad group!",
            "cmp-normal",
        ),
    ]
    .into_iter()
    .map(|(id, title, group, topic)| {
        (
            id,
            title,
            pr.recv_request(group, topic, &base),
            base.deadline,
        )
    })
    .collect();
    for (id, title, ms) in [
        (
            "recv.invisible_0",
            "ReceiveMessage with invisible_duration 0",
            Some(0),
        ),
        (
            "recv.invisible_negative",
            "ReceiveMessage with invisible_duration -5 s",
            Some(-5_000),
        ),
        (
            "recv.invisible_9s",
            "ReceiveMessage with invisible_duration 9 s (under RocketMQ's 10 s minimum)",
            Some(9_000),
        ),
        (
            "recv.invisible_huge",
            "ReceiveMessage with invisible_duration 13 h (over the 12 h maximum)",
            Some(13 * 3_600_000),
        ),
        (
            "recv.invisible_missing",
            "ReceiveMessage without invisible_duration (auto_renew false)",
            None,
        ),
    ] {
        let mut o = base.clone();
        o.invisible_ms = ms;
        cases.push(normal_case(pr, id, title, &o));
    }
    {
        let mut o = base.clone();
        o.poll_ms = Some(10_000);
        o.deadline = Duration::from_secs(2);
        cases.push(normal_case(
            pr,
            "recv.short_deadline",
            "ReceiveMessage, long_polling_timeout 10 s but a 2 s deadline",
            &o,
        ));
        let mut o = base.clone();
        o.poll_ms = None;
        o.deadline = Duration::from_secs(3);
        cases.push(normal_case(
            pr,
            "recv.go_default",
            "ReceiveMessage without long_polling_timeout, 3 s deadline (Go simple consumer's default)",
            &o,
        ));
    }
    for (id, title, kind, expr) in [
        (
            "recv.sql_filter",
            "ReceiveMessage with a SQL92 filter \"a > 1\"",
            FilterType::Sql,
            "a > 1",
        ),
        (
            "recv.bad_sql",
            "ReceiveMessage with an unparsable SQL92 filter",
            FilterType::Sql,
            "a >>> (",
        ),
        (
            "recv.tag_filter_or",
            "ReceiveMessage with tag filter \"a || b\"",
            FilterType::Tag,
            "a || b",
        ),
    ] {
        let mut o = base.clone();
        o.filter = Some(FilterExpression {
            r#type: kind as i32,
            expression: expr.into(),
        });
        cases.push(normal_case(pr, id, title, &o));
    }
    {
        let mut o = base.clone();
        o.filter = None;
        let (id, title) = ("recv.no_filter", "ReceiveMessage without filter_expression");
        cases.push(normal_case(pr, id, title, &o));
        let mut req = pr.recv_request("cmp-g", "cmp-normal", &base);
        req.message_queue = None;
        cases.push((
            "recv.no_queue",
            "ReceiveMessage without message_queue",
            req,
            base.deadline,
        ));
    }
    for (id, title, req, deadline) in cases {
        let r = pr.receive_req(&c, req, deadline).await;
        let obs = r.obs.detail(format!(
            "{} msgs, answered after {}",
            r.msgs.len(),
            secs(r.elapsed)
        ));
        // Anything received here is a stray: ack it so later cases are clean.
        for m in &r.msgs {
            pr.strays.push(format!("{id}: {}", body(m)));
            pr.ack(&c, "cmp-g", "cmp-normal", m, &handle_of(m)).await;
        }
        pr.row(id, title, obs);
    }
    Ok(())
}

pub(crate) async fn cases_ack(pr: &mut Probe) -> anyhow::Result<()> {
    let c = pr.c.clone_ref();
    // Good ack, then the same handle again.
    let m = pr.fresh(&c, "cmp-normal", "ack").await?;
    let h = handle_of(&m);
    let o = pr.ack(&c, "cmp-g", "cmp-normal", &m, &h).await;
    pr.row("ack.ok", "AckMessage with the handle just received", o);
    let o = pr.ack(&c, "cmp-g", "cmp-normal", &m, &h).await;
    pr.row(
        "ack.twice",
        "AckMessage of the same handle a second time",
        o,
    );

    // Bad handles; each time the genuine handle is tried afterwards.
    let bad = [
        (
            "ack.malformed",
            "AckMessage with a malformed handle \"garbage!!\"",
            Spoil::Garbage,
            "cmp-g",
            "cmp-normal",
        ),
        (
            "ack.empty_handle",
            "AckMessage with an empty handle",
            Spoil::Empty,
            "cmp-g",
            "cmp-normal",
        ),
        (
            "ack.truncated",
            "AckMessage with the first half of a genuine handle",
            Spoil::Truncated,
            "cmp-g",
            "cmp-normal",
        ),
        (
            "ack.tampered",
            "AckMessage with a genuine handle, one character changed in its middle",
            Spoil::Tampered,
            "cmp-g",
            "cmp-normal",
        ),
        (
            "ack.other_group",
            "AckMessage of a genuine handle of group cmp-g, sent for group cmp-g2",
            Spoil::Genuine,
            "cmp-g2",
            "cmp-normal",
        ),
        (
            "ack.other_topic",
            "AckMessage of a genuine handle of cmp-normal, sent for topic cmp-normal2",
            Spoil::Genuine,
            "cmp-g",
            "cmp-normal2",
        ),
        (
            "ack.unknown_group",
            "AckMessage of a genuine handle, for an unknown group",
            Spoil::Genuine,
            "cmp-nogroup",
            "cmp-normal",
        ),
        (
            "ack.unknown_topic",
            "AckMessage of a genuine handle, for an unknown topic",
            Spoil::Genuine,
            "cmp-g",
            "cmp-notopic",
        ),
    ];
    pr.spoiled_handles(&c, &bad, async |pr, m, group, topic, sent| {
        (pr.ack(&c, group, topic, m, sent).await, None)
    })
    .await?;
    // The message id of another message with a genuine handle.
    let m = pr.fresh(&c, "cmp-normal", "ack-wrong-id").await?;
    let mut other = m.clone();
    if let Some(s) = other.system_properties.as_mut() {
        s.message_id = pr.next_id();
    }
    let o = pr
        .ack(&c, "cmp-g", "cmp-normal", &other, &handle_of(&m))
        .await;
    let again = pr.ack(&c, "cmp-g", "cmp-normal", &m, &handle_of(&m)).await;
    pr.row(
        "ack.wrong_message_id",
        "AckMessage with a genuine handle but another message's id",
        o.detail(format!(
            "ack with the right id afterwards: {}",
            again.outcome
        )),
    );
    // An ack request without entries.
    let (top, each) = pr.ack_entries(&c, "cmp-g", "cmp-normal", Vec::new()).await;
    pr.row(
        "ack.no_entries",
        "AckMessage with no entries",
        top.detail(format!("{} result entries", each.len())),
    );
    Ok(())
}
