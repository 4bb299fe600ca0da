//! `pier`: Pier's command-line tool — manage topics and consumer groups,
//! send a message, receive (and ack) messages.
//!
//! Output is human-readable lines, or one JSON object per command with
//! `--json`. Any failure exits with status 1 and one line on stderr,
//! `pier: <reason>`; usage errors exit with status 2.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use pier::admin::{topic_type_name, Admin, Created};
use pier::connect::{ConnectOptions, Connection, ServerAddr, DEFAULT_ENDPOINT};
use pier::messaging::ReceivedMessage;
use pier::{ClientConfig, FilterExpression, Message, Producer, SimpleConsumer};
use pier_proto::admin::retry_policy::Strategy;
use pier_proto::admin::{
    ConsumerGroup, DescribeGroupResponse, DescribeTopicResponse, RetryPolicy, Topic, TopicType,
};
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(
    name = "pier",
    version,
    about = "Manage and use a Pier message queue",
    propagate_version = true
)]
struct Cli {
    /// Server to talk to: host:port or http://host:port.
    #[arg(
        long,
        global = true,
        env = "PIER_ENDPOINT",
        default_value = DEFAULT_ENDPOINT,
        value_name = "ADDR",
        value_parser = parse_endpoint
    )]
    endpoint: ServerAddr,
    /// Print JSON objects instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Deadline of each request, in seconds (receive computes its own).
    #[arg(long, global = true, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Create, list, describe and delete consumer groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Send one message.
    Send(SendArgs),
    /// Receive messages for a consumer group (and ack them).
    Receive(ReceiveArgs),
}

#[derive(Subcommand, Debug)]
enum TopicCommand {
    /// Create a topic (succeeds when an identical one exists).
    Create {
        /// Topic name.
        name: String,
        /// Message type the topic accepts.
        #[arg(long = "type", value_enum, default_value_t = TopicKind::Normal)]
        kind: TopicKind,
        /// Number of queues [default: the server's, 8].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
        queues: Option<u32>,
    },
    /// List topics.
    List,
    /// Show a topic's type, queues and per-queue offsets.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic.
    Delete {
        /// Topic name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// Create a consumer group (succeeds when an identical one exists).
    Create {
        /// Consumer group name.
        name: String,
        /// Deliver messages of one message group in order, one at a time.
        #[arg(long)]
        fifo: bool,
        /// Deliveries before a message goes to the dead-letter queue
        /// [default: the server's, 17].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        max_attempts: Option<u32>,
    },
    /// List consumer groups.
    List,
    /// Show a group's settings, backlog per topic and dead-letter count.
    Describe {
        /// Consumer group name.
        name: String,
    },
    /// Delete a consumer group.
    Delete {
        /// Consumer group name.
        name: String,
    },
}

/// Topic types of `pier topic create --type`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum TopicKind {
    Normal,
    Fifo,
    Delay,
    Transaction,
}

impl From<TopicKind> for TopicType {
    fn from(k: TopicKind) -> TopicType {
        match k {
            TopicKind::Normal => TopicType::Normal,
            TopicKind::Fifo => TopicType::Fifo,
            TopicKind::Delay => TopicType::Delay,
            TopicKind::Transaction => TopicType::Transaction,
        }
    }
}

#[derive(Args, Debug)]
struct SendArgs {
    /// Topic to send to.
    topic: String,
    /// Message body (sent as UTF-8).
    body: String,
    /// Tag consumers can filter on.
    #[arg(long)]
    tag: Option<String>,
    /// Message key (repeatable).
    #[arg(long = "key", value_name = "K")]
    keys: Vec<String>,
    /// User property as key=value (repeatable).
    #[arg(long = "property", value_name = "K=V", value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// Send a FIFO message in this message group (FIFO topics).
    #[arg(long, value_name = "G", conflicts_with = "delay")]
    message_group: Option<String>,
    /// Send a DELAY message delivered this many seconds from now (delay topics).
    #[arg(long, value_name = "SECS")]
    delay: Option<u64>,
}

#[derive(Args, Debug)]
struct ReceiveArgs {
    /// Topic to receive from.
    topic: String,
    /// Consumer group receiving.
    #[arg(long)]
    group: String,
    /// Most messages to receive.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(i32).range(1..=1024))]
    max: i32,
    /// Seconds to wait for a message when none is ready.
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=3600))]
    wait: u64,
    /// Seconds received messages stay invisible to the group unless acked.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=43200))]
    invisible: u64,
    /// Tag filter: `*`, `TagA` or `TagA || TagB`.
    #[arg(long = "tag", value_name = "EXPR")]
    tag: Option<String>,
    /// Leave the messages unacknowledged (they come back after --invisible).
    #[arg(long)]
    no_ack: bool,
}

fn parse_endpoint(s: &str) -> Result<ServerAddr, String> {
    s.parse::<ServerAddr>().map_err(|e| e.to_string())
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not key=value"))?;
    if k.trim().is_empty() {
        return Err(format!("{s:?} has an empty key"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pier: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, without repeating a cause already
/// included in the text before it.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || out.contains(text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(text);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let options = ConnectOptions {
        request_timeout: Duration::from_secs(cli.timeout),
        ..ConnectOptions::default()
    };
    let json = cli.json;
    // Data-plane commands go through the SDK's clients; admin commands
    // through one plain connection.
    let sdk_config = || {
        ClientConfig::from_addrs(vec![cli.endpoint.clone()])
            .map(|c| c.with_request_timeout(options.request_timeout))
    };
    match cli.command {
        Command::Send(a) => send(sdk_config()?, a, json).await,
        Command::Receive(a) => receive(sdk_config()?, a, json).await,
        Command::Topic(c) => {
            let conn = Connection::connect(cli.endpoint.clone(), options).await?;
            topic(&conn, c, json).await
        }
        Command::Group(c) => {
            let conn = Connection::connect(cli.endpoint.clone(), options).await?;
            group(&conn, c, json).await
        }
    }
}

/// Prints `value` (with `--json`) or `text`.
fn emit(json: bool, text: &str, value: &Value) {
    if json {
        println!("{value}");
    } else if !text.is_empty() {
        println!("{}", text.trim_end());
    }
}

async fn topic(conn: &Connection, cmd: TopicCommand, json: bool) -> anyhow::Result<()> {
    let mut admin = Admin::new(conn);
    match cmd {
        TopicCommand::Create { name, kind, queues } => {
            let c = admin
                .create_topic(&name, kind.into(), queues.unwrap_or(0))
                .await?;
            let (text, value) = render_topic_created(&c);
            emit(json, &text, &value);
        }
        TopicCommand::List => {
            let topics = admin.list_topics().await?;
            let (text, value) = render_topics(&topics);
            emit(json, &text, &value);
        }
        TopicCommand::Describe { name } => {
            let d = admin.describe_topic(&name).await?;
            let (text, value) = render_topic_description(&d);
            emit(json, &text, &value);
        }
        TopicCommand::Delete { name } => {
            admin.delete_topic(&name).await?;
            emit(
                json,
                &format!("deleted topic {name}"),
                &json!({ "deleted": name }),
            );
        }
    }
    Ok(())
}

async fn group(conn: &Connection, cmd: GroupCommand, json: bool) -> anyhow::Result<()> {
    let mut admin = Admin::new(conn);
    match cmd {
        GroupCommand::Create {
            name,
            fifo,
            max_attempts,
        } => {
            let c = admin
                .create_group(ConsumerGroup {
                    name,
                    fifo,
                    max_attempts: max_attempts.unwrap_or(0),
                    retry_policy: None,
                    created_at_ms: 0,
                })
                .await?;
            let (text, value) = render_group_created(&c);
            emit(json, &text, &value);
        }
        GroupCommand::List => {
            let groups = admin.list_groups().await?;
            let (text, value) = render_groups(&groups);
            emit(json, &text, &value);
        }
        GroupCommand::Describe { name } => {
            let d = admin.describe_group(&name).await?;
            let (text, value) = render_group_description(&d);
            emit(json, &text, &value);
        }
        GroupCommand::Delete { name } => {
            admin.delete_group(&name).await?;
            emit(
                json,
                &format!("deleted group {name}"),
                &json!({ "deleted": name }),
            );
        }
    }
    Ok(())
}

fn outgoing(a: SendArgs) -> pier::Result<Message> {
    let mut b = Message::builder(a.topic, a.body.into_bytes());
    if let Some(tag) = a.tag {
        b = b.tag(tag);
    }
    for k in a.keys {
        b = b.key(k);
    }
    for (k, v) in a.properties {
        b = b.property(k, v);
    }
    if let Some(g) = a.message_group {
        b = b.message_group(g);
    }
    if let Some(secs) = a.delay {
        b = b.delay(Duration::from_secs(secs));
    }
    b.build()
}

async fn send(config: ClientConfig, a: SendArgs, json: bool) -> anyhow::Result<()> {
    let message = outgoing(a)?;
    let producer = Producer::builder(config)
        .topic(message.topic())
        .start()
        .await?;
    let result = producer.send(&message).await;
    producer.shutdown().await;
    let receipt = result?;
    emit(
        json,
        &format!(
            "sent message_id={} offset={}",
            receipt.message_id, receipt.offset
        ),
        &json!({ "topic": message.topic(), "message_id": receipt.message_id, "offset": receipt.offset }),
    );
    Ok(())
}

fn filter_of(a: &ReceiveArgs) -> FilterExpression {
    FilterExpression::Tag(a.tag.clone().unwrap_or_else(|| "*".into()))
}

async fn receive(config: ClientConfig, a: ReceiveArgs, json: bool) -> anyhow::Result<()> {
    let consumer = SimpleConsumer::builder(config, a.group.clone())
        .subscribe(a.topic.clone(), filter_of(&a))
        .await_duration(Duration::from_secs(a.wait))
        .start()
        .await?;
    let result = receive_with(&consumer, &a, json).await;
    consumer.shutdown().await;
    result
}

async fn receive_with(
    consumer: &SimpleConsumer,
    a: &ReceiveArgs,
    json: bool,
) -> anyhow::Result<()> {
    let max = usize::try_from(a.max).unwrap_or(1);
    let views = consumer
        .receive(max, Duration::from_secs(a.invisible))
        .await?;
    let messages: Vec<ReceivedMessage> = views.iter().map(ReceivedMessage::from).collect();
    // Print first, then ack: a message is never acked before it was shown.
    if json {
        let list: Vec<Value> = messages.iter().map(message_json).collect();
        println!("{}", json!({ "messages": list }));
    } else if messages.is_empty() {
        println!("no message");
    } else {
        for m in &messages {
            println!("{}", message_line(m));
        }
    }
    if !a.no_ack {
        for m in &views {
            consumer
                .ack(m)
                .await
                .with_context(|| format!("ack of message {} failed", m.message_id()))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Rendering: (text, JSON) pairs, kept pure so they can be tested.

fn message_line(m: &ReceivedMessage) -> String {
    let body = m.body_text().replace('\n', "\\n");
    format!(
        "message_id={} attempt={} tag={} body={}",
        m.message_id,
        m.delivery_attempt,
        m.tag.as_deref().unwrap_or("-"),
        body
    )
}

fn message_json(m: &ReceivedMessage) -> Value {
    json!({
        "message_id": m.message_id,
        "topic": m.topic,
        "tag": m.tag,
        "keys": m.keys,
        "properties": m.properties,
        "delivery_attempt": m.delivery_attempt,
        "queue_id": m.queue_id,
        "queue_offset": m.queue_offset,
        "message_group": m.message_group,
        "born_at_ms": m.born_at_ms,
        "born_host": m.born_host,
        "receipt_handle": m.receipt_handle,
        "body": m.body_text(),
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
    let text = if c.created {
        format!("created topic {} ({what})", t.name)
    } else {
        format!("topic {} already exists ({what})", t.name)
    };
    (
        text,
        json!({ "created": c.created, "topic": topic_json(t) }),
    )
}

fn render_topics(topics: &[Topic]) -> (String, Value) {
    let value = json!({ "topics": topics.iter().map(topic_json).collect::<Vec<_>>() });
    if topics.is_empty() {
        return ("no topics".into(), value);
    }
    let rows: Vec<Vec<String>> = topics
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                topic_type_name(t.r#type),
                t.queues.to_string(),
                format_time(t.created_at_ms),
            ]
        })
        .collect();
    (table(&["NAME", "TYPE", "QUEUES", "CREATED"], &rows), value)
}

fn render_topic_description(d: &DescribeTopicResponse) -> (String, Value) {
    let t = d.topic.clone().unwrap_or_default();
    let mut text = fields(&[
        ("topic", t.name.clone()),
        ("type", topic_type_name(t.r#type)),
        ("queues", t.queues.to_string()),
        ("created", format_time(t.created_at_ms)),
    ]);
    let rows: Vec<Vec<String>> = d
        .queues
        .iter()
        .map(|q| {
            vec![
                q.queue.to_string(),
                q.min_offset.to_string(),
                q.max_offset.to_string(),
                q.max_offset.saturating_sub(q.min_offset).to_string(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        text.push('\n');
        text.push_str(&table(
            &["QUEUE", "MIN_OFFSET", "MAX_OFFSET", "MESSAGES"],
            &rows,
        ));
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

fn render_group_created(c: &Created<ConsumerGroup>) -> (String, Value) {
    let g = &c.value;
    let what = format!("fifo: {}, max attempts: {}", yes_no(g.fifo), g.max_attempts);
    let text = if c.created {
        format!("created group {} ({what})", g.name)
    } else {
        format!("group {} already exists ({what})", g.name)
    };
    (
        text,
        json!({ "created": c.created, "group": group_json(g) }),
    )
}

fn render_groups(groups: &[ConsumerGroup]) -> (String, Value) {
    let value = json!({ "groups": groups.iter().map(group_json).collect::<Vec<_>>() });
    if groups.is_empty() {
        return ("no groups".into(), value);
    }
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.name.clone(),
                yes_no(g.fifo).into(),
                g.max_attempts.to_string(),
                format_time(g.created_at_ms),
            ]
        })
        .collect();
    (
        table(&["NAME", "FIFO", "MAX_ATTEMPTS", "CREATED"], &rows),
        value,
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
        let rows: Vec<Vec<String>> = d
            .backlog
            .iter()
            .map(|b| vec![b.topic.clone(), b.ready.to_string(), b.inflight.to_string()])
            .collect();
        text.push_str(&table(&["TOPIC", "READY", "INFLIGHT"], &rows));
    }
    let backlog: Vec<Value> = d
        .backlog
        .iter()
        .map(|b| json!({ "topic": b.topic, "ready": b.ready, "inflight": b.inflight }))
        .collect();
    (
        text,
        json!({ "group": group_json(&g), "backlog": backlog, "dlq": d.dlq }),
    )
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
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

/// `1500ms`, `3s`, `5m`, `2h`: the largest unit that divides `ms` exactly.
fn format_ms(ms: u64) -> String {
    match ms {
        0 => "0s".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC (`-` for 0, i.e. unset).
fn format_time(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let secs = ms / 1000;
    let day_secs = secs % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        day_secs / 3600,
        day_secs % 3600 / 60,
        day_secs % 60,
        ms % 1000
    )
}

/// Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

/// `label:  value` lines with the values aligned.
fn fields(items: &[(&str, String)]) -> String {
    let width = items.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    items
        .iter()
        .map(|(k, v)| format!("{:<width$}  {v}\n", format!("{k}:")))
        .collect()
}

/// A left-aligned table with a header row; columns separated by two spaces.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(cell);
            let pad = w.saturating_sub(cell.chars().count());
            s.extend(std::iter::repeat_n(' ', pad));
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use pier_proto::admin::{ExponentialBackoff, QueueStats, TopicBacklog};
    use std::collections::BTreeMap;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pier").chain(args.iter().copied()))
    }

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn topic_create_arguments() {
        let cli = parse(&[
            "topic", "create", "orders", "--type", "fifo", "--queues", "4",
        ])
        .unwrap();
        match cli.command {
            Command::Topic(TopicCommand::Create { name, kind, queues }) => {
                assert_eq!(name, "orders");
                assert_eq!(kind, TopicKind::Fifo);
                assert_eq!(TopicType::from(kind), TopicType::Fifo);
                assert_eq!(queues, Some(4));
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli = parse(&["topic", "create", "t"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Topic(TopicCommand::Create {
                kind: TopicKind::Normal,
                queues: None,
                ..
            })
        ));
        for (kind, want) in [
            ("normal", TopicType::Normal),
            ("delay", TopicType::Delay),
            ("transaction", TopicType::Transaction),
        ] {
            let cli = parse(&["topic", "create", "t", "--type", kind]).unwrap();
            let Command::Topic(TopicCommand::Create { kind, .. }) = cli.command else {
                panic!()
            };
            assert_eq!(TopicType::from(kind), want);
        }
        assert!(parse(&["topic", "create", "t", "--type", "lite"]).is_err());
        assert!(parse(&["topic", "create", "t", "--queues", "0"]).is_err());
        assert!(parse(&["topic", "create"]).is_err());
    }

    #[test]
    fn global_flags_anywhere() {
        let cli = parse(&[
            "topic",
            "list",
            "--endpoint",
            "http://10.0.0.1:9000",
            "--json",
        ])
        .unwrap();
        assert_eq!(cli.endpoint.to_string(), "10.0.0.1:9000");
        assert!(cli.json);
        let cli = parse(&["--endpoint", "[::1]:1", "group", "list"]).unwrap();
        assert_eq!(cli.endpoint.host(), "::1");
        assert!(parse(&["--endpoint", "nohost", "topic", "list"]).is_err());
        assert!(parse(&["--endpoint", "https://h:1", "topic", "list"]).is_err());
    }

    #[test]
    fn default_endpoint() {
        if std::env::var_os("PIER_ENDPOINT").is_none() {
            let cli = parse(&["topic", "list"]).unwrap();
            assert_eq!(cli.endpoint.to_string(), "127.0.0.1:8081");
            assert!(!cli.json);
            assert_eq!(cli.timeout, 10);
        }
    }

    #[test]
    fn group_create_arguments() {
        let cli = parse(&["group", "create", "g1", "--fifo", "--max-attempts", "5"]).unwrap();
        match cli.command {
            Command::Group(GroupCommand::Create {
                name,
                fifo,
                max_attempts,
            }) => {
                assert_eq!((name.as_str(), fifo, max_attempts), ("g1", true, Some(5)));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse(&["group", "create", "g1", "--max-attempts", "0"]).is_err());
        assert!(parse(&["group", "describe"]).is_err());
    }

    #[test]
    fn send_arguments() {
        let cli = parse(&[
            "send",
            "orders",
            "hello world",
            "--tag",
            "TagA",
            "--key",
            "k1",
            "--key",
            "k2",
            "--property",
            "a=1",
            "--property",
            "b=x=y",
            "--property",
            "empty=",
        ])
        .unwrap();
        let Command::Send(a) = cli.command else {
            panic!("not send")
        };
        let m = outgoing(a).unwrap();
        assert_eq!(m.topic(), "orders");
        assert_eq!(m.body(), b"hello world");
        assert_eq!(m.tag(), Some("TagA"));
        assert_eq!(m.keys(), ["k1", "k2"]);
        assert_eq!(m.properties().get("a").map(String::as_str), Some("1"));
        assert_eq!(m.properties().get("b").map(String::as_str), Some("x=y"));
        assert_eq!(m.properties().get("empty").map(String::as_str), Some(""));
        assert!(m.message_group().is_none() && m.delivery_time().is_none());

        assert!(parse(&["send", "t", "b", "--property", "novalue"]).is_err());
        assert!(parse(&["send", "t", "b", "--property", "=v"]).is_err());
        assert!(parse(&["send", "t"]).is_err());
        assert!(parse(&["send", "t", "b", "--message-group", "g", "--delay", "5"]).is_err());
        let Command::Send(a) = parse(&["send", "t", "b", "--delay", "5"]).unwrap().command else {
            panic!()
        };
        assert!(outgoing(a).unwrap().delivery_time().is_some());
    }

    #[test]
    fn property_parser() {
        assert_eq!(parse_property("k=v"), Ok(("k".into(), "v".into())));
        assert_eq!(parse_property("k=a=b"), Ok(("k".into(), "a=b".into())));
        assert!(parse_property("k").is_err());
        assert!(parse_property(" =v").is_err());
    }

    #[test]
    fn receive_arguments() {
        let cli = parse(&["receive", "orders", "--group", "g1"]).unwrap();
        let Command::Receive(a) = cli.command else {
            panic!("not receive")
        };
        assert_eq!((a.max, a.wait, a.invisible, a.no_ack), (16, 5, 30, false));
        assert!(a.tag.is_none());
        assert_eq!(filter_of(&a), FilterExpression::all());

        let cli = parse(&[
            "receive",
            "orders",
            "--group",
            "g1",
            "--max",
            "3",
            "--wait",
            "0",
            "--invisible",
            "60",
            "--tag",
            "A || B",
            "--no-ack",
        ])
        .unwrap();
        let Command::Receive(a) = cli.command else {
            panic!("not receive")
        };
        assert_eq!((a.max, a.wait, a.invisible), (3, 0, 60));
        assert_eq!(filter_of(&a), FilterExpression::Tag("A || B".into()));
        assert!(a.no_ack);

        assert!(
            parse(&["receive", "orders"]).is_err(),
            "--group is required"
        );
        assert!(parse(&["receive", "orders", "--group", "g", "--max", "0"]).is_err());
        assert!(parse(&["receive", "orders", "--group", "g", "--invisible", "0"]).is_err());
    }

    #[test]
    fn errors_fit_on_one_line() {
        let e = anyhow::Error::new(pier::Error::Status {
            code: 40402,
            name: "TOPIC_NOT_FOUND".into(),
            message: "topic orders does not exist".into(),
        });
        assert_eq!(
            one_line(&e),
            "topic orders does not exist (TOPIC_NOT_FOUND)"
        );
        let e = anyhow::Error::new(pier::Error::Rpc {
            code: tonic::Code::NotFound,
            message: "consumer group g\ndoes not exist".into(),
        })
        .context("ack of message X failed");
        assert_eq!(
            one_line(&e),
            "ack of message X failed: consumer group g does not exist (NOT_FOUND)"
        );
    }

    #[test]
    fn times_and_durations() {
        assert_eq!(format_time(0), "-");
        assert_eq!(format_time(1), "1970-01-01T00:00:00.001Z");
        assert_eq!(format_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_ms(0), "0s");
        assert_eq!(format_ms(1_500), "1500ms");
        assert_eq!(format_ms(3_000), "3s");
        assert_eq!(format_ms(300_000), "5m");
        assert_eq!(format_ms(7_200_000), "2h");
    }

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
            }],
            dlq: 2,
        };
        let (text, value) = render_group_description(&d);
        assert!(
            text.contains("retry policy:  exponential 1s..2h x2\n"),
            "{text}"
        );
        assert!(text.contains("dead letters:  2\n"), "{text}");
        assert!(text.contains("orders  3      1"), "{text}");
        assert_eq!(value["dlq"], 2);
        assert_eq!(value["backlog"][0]["ready"], 3);
        assert_eq!(
            value["group"]["retry_policy"]["exponential"]["max_ms"],
            7_200_000
        );
        assert_eq!(render_groups(&[]).0, "no groups");
        assert_eq!(retry_text(None), "server default");
    }

    #[test]
    fn renders_messages() {
        let m = ReceivedMessage {
            topic: "orders".into(),
            message_id: "ABC".into(),
            tag: None,
            keys: vec![],
            properties: BTreeMap::new(),
            delivery_attempt: 2,
            queue_id: 0,
            queue_offset: Some(4),
            message_group: None,
            born_at_ms: None,
            born_host: "h".into(),
            receipt_handle: "RH".into(),
            body: b"line1\nline2 \xff".to_vec(),
        };
        assert_eq!(
            message_line(&m),
            "message_id=ABC attempt=2 tag=- body=line1\\nline2 \u{fffd}"
        );
        let v = message_json(&m);
        assert_eq!(v["queue_offset"], 4);
        assert_eq!(v["tag"], Value::Null);
    }
}
