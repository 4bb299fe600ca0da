//! Cases on the remaining RPCs.

use super::*;

pub(crate) async fn cases_other_rpcs(pr: &mut Probe) -> anyhow::Result<()> {
    let c = pr.c.clone_ref();
    let dlq = |handle: String, group: &str, id: String| {
        let raw = c.raw.clone();
        let group = group.to_owned();
        async move {
            let r = raw
                .messaging()
                .forward_message_to_dead_letter_queue(raw.req(
                    ForwardMessageToDeadLetterQueueRequest {
                        group: Some(resource(&group)),
                        topic: Some(resource("cmp-normal")),
                        receipt_handle: handle,
                        message_id: id,
                        delivery_attempt: 1,
                        max_delivery_attempts: 16,
                        lite_topic: None,
                    },
                ))
                .await;
            reply_obs(r, |r| r.status)
        }
    };
    let o = dlq("garbage!!".into(), "cmp-g", pr.next_id()).await;
    pr.row(
        "dlq.malformed",
        "ForwardMessageToDeadLetterQueue with a malformed handle",
        o,
    );
    let m = pr.fresh(&c, "cmp-normal", "dlq").await?;
    let o = dlq(handle_of(&m), "cmp-g", sp(&m).message_id).await;
    let again = pr.ack(&c, "cmp-g", "cmp-normal", &m, &handle_of(&m)).await;
    pr.row(
        "dlq.ok",
        "ForwardMessageToDeadLetterQueue with a genuine handle",
        o.detail(format!("ack afterwards: {}", again.outcome)),
    );
    for (id, title, topic, group) in [
        (
            "assignment.unknown_topic",
            "QueryAssignment for an unknown topic",
            "cmp-notopic",
            "cmp-g",
        ),
        (
            "assignment.unknown_group",
            "QueryAssignment for an unknown group",
            "cmp-normal",
            "cmp-nogroup",
        ),
        (
            "assignment.ok",
            "QueryAssignment of a NORMAL topic for its group",
            "cmp-normal",
            "cmp-g",
        ),
    ] {
        let r = c
            .raw
            .messaging()
            .query_assignment(c.raw.req(QueryAssignmentRequest {
                topic: Some(resource(topic)),
                group: Some(resource(group)),
                endpoints: Some(c.raw.endpoints()),
            }))
            .await;
        let o = match r {
            Ok(r) => {
                let r = r.into_inner();
                let mut o = status_obs(r.status.as_ref());
                if !r.assignments.is_empty() {
                    let ids: Vec<String> = r
                        .assignments
                        .iter()
                        .map(|a| {
                            a.message_queue
                                .as_ref()
                                .map(|q| q.id.to_string())
                                .unwrap_or_default()
                        })
                        .collect();
                    o = o.detail(format!("queue ids {}", ids.join(",")));
                }
                o
            }
            Err(e) => Obs::transport(&e),
        };
        pr.row(id, title, o);
    }
    Ok(())
}
