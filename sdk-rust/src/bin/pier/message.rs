//! `pier message …`: find messages of a topic by id or key, and show what
//! each consumer group did with them (ready, in flight with its attempt and
//! deadline, acked, dead-lettered).

use clap::Subcommand;
use pier::admin::Admin;
use pier_proto::admin::{FindMessagesRequest, FindMessagesResponse, FoundMessage};
use serde_json::{json, Value};

use crate::render::{fields, format_time, table};
use crate::when::parse_time;

#[derive(Subcommand, Debug)]
pub(crate) enum MessageCommand {
    /// Show one message by id: body, properties, store time, and each
    /// consumer group's state.
    Show {
        /// The message id.
        id: String,
        /// The topic it was sent to.
        #[arg(long)]
        topic: String,
        /// Body bytes to show.
        #[arg(long, value_name = "BYTES", default_value_t = 1024)]
        max_body: u32,
    },
    /// Find messages of a topic by key (in a time range), or all those
    /// stored in a time range.
    Find {
        /// The topic.
        #[arg(long)]
        topic: String,
        /// A message key (without one, give --since or --until).
        #[arg(long, required_unless_present_any = ["since", "until"])]
        key: Option<String>,
        /// Stored at or after this time (ms since the epoch, RFC 3339 UTC, or ago: 10m).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        since: Option<i64>,
        /// Stored before this time.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        until: Option<i64>,
        /// Most messages to show.
        #[arg(long, value_name = "N", default_value_t = 32)]
        limit: u32,
        /// Body bytes to show per message.
        #[arg(long, value_name = "BYTES", default_value_t = 256)]
        max_body: u32,
    },
}

/// Runs one message command; returns what to print.
pub(crate) async fn run(admin: &Admin, cmd: MessageCommand) -> anyhow::Result<(String, Value)> {
    let req = match cmd {
        MessageCommand::Show {
            id,
            topic,
            max_body,
        } => FindMessagesRequest {
            topic,
            message_id: id,
            limit: 1,
            max_body_bytes: max_body,
            ..Default::default()
        },
        MessageCommand::Find {
            topic,
            key,
            since,
            until,
            limit,
            max_body,
        } => FindMessagesRequest {
            topic,
            key: key.unwrap_or_default(),
            since_ms: since.unwrap_or(0),
            until_ms: until.unwrap_or(0),
            limit,
            max_body_bytes: max_body,
            ..Default::default()
        },
    };
    let resp = admin.find_messages(req.clone()).await?;
    if resp.messages.is_empty() && !req.message_id.is_empty() {
        anyhow::bail!(
            "message {} not found in topic {}",
            req.message_id,
            req.topic
        );
    }
    Ok(render(&resp))
}

fn message_json(m: &FoundMessage) -> Value {
    let groups: Vec<Value> = m
        .groups
        .iter()
        .map(|g| json!({ "group": g.group, "state": g.state, "attempt": g.attempt, "visible_at_ms": g.visible_at_ms }))
        .collect();
    json!({
        "topic": m.topic, "queue": m.queue, "offset": m.offset, "message_id": m.message_id,
        "tag": m.tag, "keys": m.keys, "properties": m.properties,
        "body": String::from_utf8_lossy(&m.body), "body_size": m.body_size,
        "born_at_ms": m.born_at_ms, "stored_at_ms": m.stored_at_ms,
        "message_group": m.message_group, "groups": groups,
    })
}

fn render(r: &FindMessagesResponse) -> (String, Value) {
    let value = json!({
        "messages": r.messages.iter().map(message_json).collect::<Vec<_>>(),
        "truncated": r.truncated,
    });
    if r.messages.is_empty() {
        return ("no message found".into(), value);
    }
    let mut text = String::new();
    for m in &r.messages {
        if !text.is_empty() {
            text.push('\n');
        }
        let mut body = String::from_utf8_lossy(&m.body).into_owned();
        if (m.body.len() as u64) < m.body_size {
            body.push_str(&format!("… ({} bytes)", m.body_size));
        }
        let props: Vec<String> = m
            .properties
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        text.push_str(&fields(&[
            ("message", m.message_id.clone()),
            (
                "topic",
                format!("{} queue {} offset {}", m.topic, m.queue, m.offset),
            ),
            (
                "stored",
                format_time(u64::try_from(m.stored_at_ms).unwrap_or(0)),
            ),
            ("tag", m.tag.clone()),
            ("keys", m.keys.join(", ")),
            ("properties", props.join(", ")),
            ("body", body),
        ]));
        let rows: Vec<Vec<String>> = m
            .groups
            .iter()
            .map(|g| {
                let (attempt, until) = if g.attempt > 0 {
                    (
                        g.attempt.to_string(),
                        format_time(u64::try_from(g.visible_at_ms).unwrap_or(0)),
                    )
                } else {
                    ("-".into(), "-".into())
                };
                vec![g.group.clone(), g.state.clone(), attempt, until]
            })
            .collect();
        if rows.is_empty() {
            text.push_str("no consumer group consumes this topic yet\n");
        } else {
            text.push_str(&table(
                &["GROUP", "STATE", "ATTEMPT", "INVISIBLE_UNTIL"],
                &rows,
            ));
        }
    }
    if r.truncated {
        text.push_str("\n(more may match: narrow with --since/--until or raise --limit)");
    }
    (text, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::tests::parse;
    use crate::args::Command;
    use pier_proto::admin::GroupMessageState;

    #[test]
    fn arguments_and_output() {
        let cli = parse(&["message", "show", "ID1", "--topic", "t"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Message(MessageCommand::Show { .. })
        ));
        assert!(parse(&["message", "show", "ID1"]).is_err());
        // A key or a time range is needed: a whole topic is not listed.
        assert!(parse(&["message", "find", "--topic", "t"]).is_err());
        assert!(parse(&["message", "find", "--topic", "t", "--since", "10m"]).is_ok());
        assert!(parse(&["message", "find", "--topic", "t", "--key", "k"]).is_ok());
        let r = FindMessagesResponse {
            messages: vec![FoundMessage {
                topic: "t".into(),
                message_id: "ID1".into(),
                keys: vec!["k".into()],
                body: bytes::Bytes::from_static(b"hel"),
                body_size: 5,
                groups: vec![GroupMessageState {
                    group: "g".into(),
                    state: "inflight".into(),
                    attempt: 2,
                    visible_at_ms: 1_000,
                }],
                ..Default::default()
            }],
            truncated: false,
        };
        let (text, value) = render(&r);
        assert!(text.contains("body:        hel… (5 bytes)"), "{text}");
        assert!(text.contains("g      inflight  2"), "{text}");
        assert_eq!(value["messages"][0]["groups"][0]["state"], "inflight");
        assert_eq!(
            render(&FindMessagesResponse::default()).0,
            "no message found"
        );
    }
}
