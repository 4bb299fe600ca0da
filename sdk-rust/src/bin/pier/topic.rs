//! `pier topic …`: create, update, purge, list, describe and delete topics.

use pier::admin::{topic_type_name, Admin, Created};
use pier_proto::admin::{DescribeTopicResponse, Topic, TopicType};
use serde_json::{json, Value};

use crate::args::TopicCommand;
use crate::render::{created, deleted, fields, format_time, listing, table_of};

/// Runs one topic command; returns what to print.
pub(crate) async fn run(admin: &Admin, cmd: TopicCommand) -> anyhow::Result<(String, Value)> {
    Ok(match cmd {
        TopicCommand::Create { name, kind, queues } => {
            let kind = kind.into();
            render_topic_created(&admin.create_topic(&name, kind, queues.unwrap_or(0)).await?)
        }
        TopicCommand::Update { name, kind, queues } => {
            // The API replaces the whole definition: start from the current one.
            let mut topic = admin.describe_topic(&name).await?.topic.unwrap_or_default();
            topic.name = name;
            if let Some(kind) = kind {
                topic.r#type = TopicType::from(kind) as i32;
            }
            if let Some(queues) = queues {
                topic.queues = queues;
            }
            render_topic_updated(&admin.update_topic(topic).await?)
        }
        TopicCommand::Purge { name } => {
            let purged = admin.purge_topic(&name).await?;
            (
                format!("purged topic {name}: {purged} message(s) deleted"),
                json!({ "topic": name, "purged": purged }),
            )
        }
        TopicCommand::List => render_topics(&admin.list_topics().await?),
        TopicCommand::Describe { name } => {
            render_topic_description(&admin.describe_topic(&name).await?)
        }
        TopicCommand::Delete { name } => {
            admin.delete_topic(&name).await?;
            deleted("topic", &name)
        }
    })
}

fn topic_json(t: &Topic) -> Value {
    json!({
        "name": t.name,
        "type": topic_type_name(t.r#type),
        "queues": t.queues,
        "created_at_ms": t.created_at_ms,
    })
}

fn queues_text(n: u32) -> String {
    if n == 1 {
        "1 queue".into()
    } else {
        format!("{n} queues")
    }
}

fn render_topic_created(c: &Created<Topic>) -> (String, Value) {
    let t = &c.value;
    let what = format!("{}, {}", topic_type_name(t.r#type), queues_text(t.queues));
    created("topic", &t.name, c.created, &what, topic_json(t))
}

fn render_topic_updated(t: &Topic) -> (String, Value) {
    let text = format!(
        "updated topic {} ({}, {})",
        t.name,
        topic_type_name(t.r#type),
        queues_text(t.queues)
    );
    (text, json!({ "topic": topic_json(t) }))
}

fn render_topics(topics: &[Topic]) -> (String, Value) {
    let header = ["NAME", "TYPE", "QUEUES", "CREATED"];
    listing("topics", topics, topic_json, &header, |t| {
        vec![
            t.name.clone(),
            topic_type_name(t.r#type),
            t.queues.to_string(),
            format_time(t.created_at_ms),
        ]
    })
}

fn render_topic_description(d: &DescribeTopicResponse) -> (String, Value) {
    let t = d.topic.clone().unwrap_or_default();
    let mut text = fields(&[
        ("topic", t.name.clone()),
        ("type", topic_type_name(t.r#type)),
        ("queues", t.queues.to_string()),
        ("created", format_time(t.created_at_ms)),
    ]);
    if !d.queues.is_empty() {
        text.push('\n');
        let header = ["QUEUE", "MIN_OFFSET", "MAX_OFFSET", "MESSAGES"];
        text.push_str(&table_of(&header, &d.queues, |q| {
            let messages = q.max_offset.saturating_sub(q.min_offset);
            vec![
                q.queue.to_string(),
                q.min_offset.to_string(),
                q.max_offset.to_string(),
                messages.to_string(),
            ]
        }));
    }
    let queues: Vec<Value> = d
        .queues
        .iter()
        .map(
            |q| json!({ "queue": q.queue, "min_offset": q.min_offset, "max_offset": q.max_offset }),
        )
        .collect();
    (text, json!({ "topic": topic_json(&t), "queues": queues }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_proto::admin::{QueueStats, TopicType};

    #[test]
    fn renders_topics() {
        let topics = vec![
            Topic {
                name: "orders".into(),
                r#type: TopicType::Fifo as i32,
                queues: 8,
                created_at_ms: 0,
            },
            Topic {
                name: "a".into(),
                r#type: TopicType::Normal as i32,
                queues: 1,
                created_at_ms: 0,
            },
        ];
        let (text, value) = render_topics(&topics);
        assert_eq!(text, "NAME    TYPE    QUEUES  CREATED\norders  fifo    8       -\na       normal  1       -\n");
        assert_eq!(value["topics"][0]["type"], "fifo");
        assert_eq!(value["topics"][1]["queues"], 1);
        assert_eq!(render_topics(&[]).0, "no topics");

        let created = Created {
            value: topics[0].clone(),
            created: false,
        };
        let (text, value) = render_topic_created(&created);
        assert_eq!(text, "topic orders already exists (fifo, 8 queues)");
        assert_eq!(value["created"], false);
        let (text, value) = render_topic_updated(&topics[1]);
        assert_eq!(text, "updated topic a (normal, 1 queue)");
        assert_eq!(value["topic"]["queues"], 1);

        let d = DescribeTopicResponse {
            topic: Some(topics[0].clone()),
            queues: vec![QueueStats {
                queue: 0,
                min_offset: 2,
                max_offset: 10,
            }],
        };
        let (text, value) = render_topic_description(&d);
        assert!(text.contains("type:     fifo\n"), "{text}");
        assert!(text.contains("0      2           10          8"), "{text}");
        assert_eq!(value["queues"][0]["max_offset"], 10);
    }
}
