//! `pier group …`: create, update, list, describe and delete consumer
//! groups; reset a group's position on a topic, or skip its backlog there.

use pier::admin::{Admin, Created};
use pier_proto::admin::retry_policy::Strategy;
use pier_proto::admin::{
    ConsumerGroup, DescribeGroupResponse, ResetOffsetRequest, ResetOffsetResponse, ResetTo,
    RetryPolicy,
};
use serde_json::{json, Value};

use crate::args::{GroupCommand, ResetTarget};
use crate::render::{created, deleted, fields, format_ms, format_time, listing, table_of, yes_no};

/// Runs one group command; returns what to print.
pub(crate) async fn run(admin: &Admin, cmd: GroupCommand) -> anyhow::Result<(String, Value)> {
    Ok(match cmd {
        GroupCommand::Create {
            name,
            fifo,
            max_attempts,
        } => {
            let group = ConsumerGroup {
                name,
                fifo,
                max_attempts: max_attempts.unwrap_or(0),
                retry_policy: None,
                created_at_ms: 0,
            };
            render_group_created(&admin.create_group(group).await?)
        }
        GroupCommand::Update {
            name,
            fifo,
            max_attempts,
            retry_exponential,
            retry_customized,
        } => {
            // The API replaces the whole definition: start from the current one.
            let mut g = admin.describe_group(&name).await?.group.unwrap_or_default();
            g.name = name;
            if let Some(fifo) = fifo {
                g.fifo = fifo;
            }
            if let Some(n) = max_attempts {
                g.max_attempts = n;
            }
            // None keeps the server's current policy.
            g.retry_policy = retry_exponential.or(retry_customized);
            render_group_updated(&admin.update_group(g).await?)
        }
        GroupCommand::Reset {
            name,
            topic,
            to,
            queue,
            force,
        } => {
            let (to, timestamp_ms) = match to {
                ResetTarget::Oldest => (ResetTo::Oldest, 0),
                ResetTarget::Newest => (ResetTo::Newest, 0),
                ResetTarget::At(ms) => (ResetTo::Timestamp, ms),
            };
            let req = ResetOffsetRequest {
                group: name,
                topic,
                to: to as i32,
                timestamp_ms,
                queue,
                force,
            };
            let resp = admin.reset_offset(req.clone()).await?;
            render_reset(&req, &resp)
        }
        GroupCommand::Purge { name, topic } => {
            // Skipping the backlog is a forced reset past the newest message.
            let req = ResetOffsetRequest {
                group: name,
                topic,
                to: ResetTo::Newest as i32,
                timestamp_ms: 0,
                queue: None,
                force: true,
            };
            let resp = admin.reset_offset(req.clone()).await?;
            render_reset(&req, &resp)
        }
        GroupCommand::List => render_groups(&admin.list_groups().await?),
        GroupCommand::Describe { name } => {
            render_group_description(&admin.describe_group(&name).await?)
        }
        GroupCommand::Delete { name } => {
            admin.delete_group(&name).await?;
            deleted("group", &name)
        }
    })
}

fn retry_json(p: Option<&RetryPolicy>) -> Value {
    match p.and_then(|p| p.strategy.as_ref()) {
        None => Value::Null,
        Some(Strategy::Exponential(e)) => json!({
            "exponential": { "initial_ms": e.initial_ms, "max_ms": e.max_ms, "multiplier": e.multiplier }
        }),
        Some(Strategy::Customized(c)) => json!({ "customized": { "next_ms": c.next_ms } }),
    }
}

fn group_json(g: &ConsumerGroup) -> Value {
    json!({
        "name": g.name,
        "fifo": g.fifo,
        "max_attempts": g.max_attempts,
        "retry_policy": retry_json(g.retry_policy.as_ref()),
        "created_at_ms": g.created_at_ms,
    })
}

fn render_group_created(c: &Created<ConsumerGroup>) -> (String, Value) {
    let g = &c.value;
    let what = format!("fifo: {}, max attempts: {}", yes_no(g.fifo), g.max_attempts);
    created("group", &g.name, c.created, &what, group_json(g))
}

fn render_group_updated(g: &ConsumerGroup) -> (String, Value) {
    let text = format!(
        "updated group {} (fifo: {}, max attempts: {}, retry: {})",
        g.name,
        yes_no(g.fifo),
        g.max_attempts,
        retry_text(g.retry_policy.as_ref())
    );
    (text, json!({ "group": group_json(g) }))
}

fn render_reset(req: &ResetOffsetRequest, r: &ResetOffsetResponse) -> (String, Value) {
    let skipped: i128 = r
        .queues
        .iter()
        .map(|q| i128::from(q.to_offset) - i128::from(q.from_offset))
        .sum();
    let mut text = format!(
        "moved group {} on topic {} ({} queue(s)): {}",
        req.group,
        req.topic,
        r.queues.len(),
        match skipped {
            0 => "no change of position".to_owned(),
            n if n > 0 => format!("{n} message(s) skipped"),
            n => format!("{} message(s) to be delivered again", -n),
        }
    );
    if r.dropped_inflight > 0 {
        text.push_str(&format!(
            "; {} in-flight delivery(ies) dropped",
            r.dropped_inflight
        ));
    }
    let queues: Vec<Value> = r
        .queues
        .iter()
        .map(
            |q| json!({ "queue": q.queue, "from_offset": q.from_offset, "to_offset": q.to_offset }),
        )
        .collect();
    (
        text,
        json!({ "group": req.group, "topic": req.topic, "queues": queues, "dropped_inflight": r.dropped_inflight }),
    )
}

fn render_groups(groups: &[ConsumerGroup]) -> (String, Value) {
    listing(
        "groups",
        groups,
        group_json,
        &["NAME", "FIFO", "MAX_ATTEMPTS", "CREATED"],
        |g| {
            vec![
                g.name.clone(),
                yes_no(g.fifo).into(),
                g.max_attempts.to_string(),
                format_time(g.created_at_ms),
            ]
        },
    )
}

fn render_group_description(d: &DescribeGroupResponse) -> (String, Value) {
    let g = d.group.clone().unwrap_or_default();
    let mut text = fields(&[
        ("group", g.name.clone()),
        ("fifo", yes_no(g.fifo).into()),
        ("max attempts", g.max_attempts.to_string()),
        ("retry policy", retry_text(g.retry_policy.as_ref())),
        ("created", format_time(g.created_at_ms)),
        ("dead letters", d.dlq.to_string()),
    ]);
    text.push('\n');
    if d.backlog.is_empty() {
        text.push_str("no backlog");
    } else {
        let header = ["TOPIC", "READY", "INFLIGHT", "LAG"];
        text.push_str(&table_of(&header, &d.backlog, |b| {
            let lag = u64::try_from(b.lag_ms).unwrap_or(0);
            vec![
                b.topic.clone(),
                b.ready.to_string(),
                b.inflight.to_string(),
                format_ms(lag),
            ]
        }));
    }
    let backlog: Vec<Value> = d
        .backlog
        .iter()
        .map(|b| json!({ "topic": b.topic, "ready": b.ready, "inflight": b.inflight, "lag_ms": b.lag_ms }))
        .collect();
    (
        text,
        json!({ "group": group_json(&g), "backlog": backlog, "dlq": d.dlq }),
    )
}

fn retry_text(p: Option<&RetryPolicy>) -> String {
    match p.and_then(|p| p.strategy.as_ref()) {
        None => "server default".into(),
        Some(Strategy::Exponential(e)) => format!(
            "exponential {}..{} x{}",
            format_ms(e.initial_ms),
            format_ms(e.max_ms),
            e.multiplier
        ),
        Some(Strategy::Customized(c)) => {
            let steps: Vec<String> = c.next_ms.iter().map(|ms| format_ms(*ms)).collect();
            format!("customized {}", steps.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::tests::parse;
    use crate::args::{Command, TopicCommand, TopicKind};
    use pier_proto::admin::{ExponentialBackoff, TopicBacklog};

    #[test]
    fn renders_groups() {
        let g = ConsumerGroup {
            name: "g1".into(),
            fifo: true,
            max_attempts: 17,
            retry_policy: Some(RetryPolicy {
                strategy: Some(Strategy::Exponential(ExponentialBackoff {
                    initial_ms: 1_000,
                    max_ms: 7_200_000,
                    multiplier: 2.0,
                })),
            }),
            created_at_ms: 0,
        };
        let (text, _) = render_group_created(&Created {
            value: g.clone(),
            created: true,
        });
        assert_eq!(text, "created group g1 (fifo: yes, max attempts: 17)");
        let d = DescribeGroupResponse {
            group: Some(g.clone()),
            backlog: vec![TopicBacklog {
                topic: "orders".into(),
                ready: 3,
                inflight: 1,
                lag_ms: 90_000,
            }],
            dlq: 2,
        };
        let (text, value) = render_group_description(&d);
        assert!(
            text.contains("retry policy:  exponential 1s..2h x2\n"),
            "{text}"
        );
        assert!(text.contains("dead letters:  2\n"), "{text}");
        assert!(text.contains("orders  3      1         90s"), "{text}");
        assert_eq!(value["backlog"][0]["lag_ms"], 90_000);
        assert_eq!(value["dlq"], 2);
        assert_eq!(value["backlog"][0]["ready"], 3);
        assert_eq!(
            value["group"]["retry_policy"]["exponential"]["max_ms"],
            7_200_000
        );
        assert_eq!(render_groups(&[]).0, "no groups");
        let req = ResetOffsetRequest {
            group: "g1".into(),
            topic: "orders".into(),
            ..Default::default()
        };
        let resp = ResetOffsetResponse {
            queues: vec![pier_proto::admin::QueueReset {
                queue: 0,
                from_offset: 10,
                to_offset: 4,
            }],
            dropped_inflight: 2,
        };
        assert_eq!(
            render_reset(&req, &resp).0,
            "moved group g1 on topic orders (1 queue(s)): 6 message(s) to be delivered again; 2 in-flight delivery(ies) dropped"
        );
        assert_eq!(
            render_group_updated(&g).0,
            "updated group g1 (fifo: yes, max attempts: 17, retry: exponential 1s..2h x2)"
        );
        assert_eq!(retry_text(None), "server default");
    }

    #[test]
    fn update_arguments() {
        let cli = parse(&["topic", "update", "t", "--type", "fifo", "--queues", "16"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Topic(TopicCommand::Update {
                kind: Some(TopicKind::Fifo),
                queues: Some(16),
                ..
            })
        ));
        let cli = parse(&[
            "group",
            "update",
            "g",
            "--fifo",
            "false",
            "--retry-exponential",
            "500,60000,1.5",
        ])
        .unwrap();
        let Command::Group(GroupCommand::Update {
            fifo,
            max_attempts,
            retry_exponential,
            ..
        }) = cli.command
        else {
            panic!()
        };
        assert_eq!((fifo, max_attempts), (Some(false), None));
        let Some(Strategy::Exponential(e)) = retry_exponential.and_then(|r| r.strategy) else {
            panic!()
        };
        assert_eq!((e.initial_ms, e.max_ms, e.multiplier), (500, 60_000, 1.5));
        assert!(parse(&["group", "update", "g", "--retry-customized", "1000, 5000"]).is_ok());
        assert!(parse(&["group", "update", "g", "--retry-customized", "1s"]).is_err());
        assert!(parse(&["group", "update", "g", "--retry-exponential", "1,2"]).is_err());
        assert!(parse(&[
            "group",
            "update",
            "g",
            "--retry-exponential",
            "1,2,2",
            "--retry-customized",
            "1"
        ])
        .is_err());
    }

    #[test]
    fn reset_and_purge_arguments() {
        let cli = parse(&["group", "reset", "g", "--topic", "t", "--to", "oldest"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Group(GroupCommand::Reset {
                to: ResetTarget::Oldest,
                queue: None,
                force: false,
                ..
            })
        ));
        let cli = parse(&[
            "group", "reset", "g", "--topic", "t", "--to", "1000", "--queue", "2", "--force",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Group(GroupCommand::Reset {
                to: ResetTarget::At(1000),
                queue: Some(2),
                force: true,
                ..
            })
        ));
        assert!(parse(&["group", "reset", "g", "--topic", "t", "--to", "later"]).is_err());
        assert!(parse(&["group", "reset", "g", "--to", "newest"]).is_err());
        assert!(parse(&["group", "purge", "g", "--topic", "t"]).is_ok());
        assert!(parse(&["topic", "purge", "t"]).is_ok());
    }
}
