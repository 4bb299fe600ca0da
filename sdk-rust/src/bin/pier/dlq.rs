//! `pier dlq …`: dead-letter queues. `redrive` sends a group's
//! dead-lettered messages back to the topics they came from, where only
//! that group receives them again, from attempt 1 (like SQS's DLQ redrive).

use clap::Subcommand;
use pier::admin::Admin;
use pier_proto::admin::RedriveDlqRequest;
use serde_json::{json, Value};

use crate::when::parse_time;

#[derive(Subcommand, Debug)]
pub(crate) enum DlqCommand {
    /// Send messages of %DLQ%<group> back to their original topics (moved,
    /// or with --copy copied); all of them, or those matching every filter
    /// given.
    Redrive {
        /// The consumer group whose dead letters go back.
        #[arg(long)]
        group: String,
        /// Only the message with this id.
        #[arg(long, value_name = "ID")]
        message_id: Option<String>,
        /// Only messages with this key.
        #[arg(long)]
        key: Option<String>,
        /// Only messages with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only messages dead-lettered at or after this time (ms since the
        /// epoch, RFC 3339 UTC, or ago: 10m, 2h).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        since: Option<i64>,
        /// Only messages dead-lettered before this time.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        until: Option<i64>,
        /// Most messages sent back per second [default: no limit].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        rate: Option<u32>,
        /// Leave the messages in the dead-letter queue too.
        #[arg(long)]
        copy: bool,
    },
}

/// Runs one dlq command; `timeout_secs` bounds each call, so a rate-limited
/// redrive goes in calls that each fit in it.
pub(crate) async fn run(
    admin: &Admin,
    cmd: DlqCommand,
    timeout_secs: u64,
) -> anyhow::Result<(String, Value)> {
    let DlqCommand::Redrive {
        group,
        message_id,
        key,
        tag,
        since,
        until,
        rate,
        copy,
    } = cmd;
    let rate = rate.unwrap_or(0);
    // At a rate, half the deadline's worth of messages per call.
    let per_call = match rate {
        0 => 1000,
        r => (u64::from(r) * timeout_secs / 2).clamp(1, 100_000) as u32,
    };
    let mut req = RedriveDlqRequest {
        group: group.clone(),
        message_id: message_id.unwrap_or_default(),
        key: key.unwrap_or_default(),
        tag: tag.unwrap_or_default(),
        since_ms: since.unwrap_or(0),
        until_ms: until.unwrap_or(0),
        rate,
        copy,
        from_offset: 0,
        max_messages: per_call,
    };
    let (mut redriven, mut skipped) = (0u64, 0u64);
    loop {
        let resp = admin.redrive_dlq(req.clone()).await?;
        redriven += resp.redriven;
        skipped += resp.skipped;
        if !resp.more {
            break;
        }
        req.from_offset = resp.next_offset;
    }
    Ok(render(&group, redriven, skipped, copy))
}

fn render(group: &str, redriven: u64, skipped: u64, copy: bool) -> (String, Value) {
    let verb = if copy { "copied" } else { "moved" };
    let mut text =
        format!("{verb} {redriven} dead-lettered message(s) of group {group} back to their topics");
    if skipped > 0 {
        text.push_str(&format!(
            "; {skipped} left in %DLQ%{group}: their topic no longer exists"
        ));
    }
    (
        text,
        json!({ "group": group, "redriven": redriven, "skipped": skipped, "copy": copy }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::tests::parse;
    use crate::args::Command;

    #[test]
    fn redrive_arguments_and_output() {
        let cli = parse(&[
            "dlq", "redrive", "--group", "g", "--key", "k", "--since", "1000", "--rate", "5",
            "--copy",
        ])
        .unwrap();
        let Command::Dlq(DlqCommand::Redrive {
            group,
            key,
            since,
            rate,
            copy,
            ..
        }) = cli.command
        else {
            panic!()
        };
        assert_eq!(
            (group.as_str(), key.as_deref(), since, rate, copy),
            ("g", Some("k"), Some(1000), Some(5), true)
        );
        assert!(parse(&["dlq", "redrive"]).is_err());
        assert!(parse(&["dlq", "redrive", "--group", "g", "--rate", "0"]).is_err());
        assert!(parse(&["dlq", "redrive", "--group", "g", "--since", "soon"]).is_err());
        let (text, value) = render("g", 3, 1, false);
        assert_eq!(
            text,
            "moved 3 dead-lettered message(s) of group g back to their topics; 1 left in %DLQ%g: their topic no longer exists"
        );
        assert_eq!(value["redriven"], 3);
    }
}
