//! Producers in two languages on one message group: the official Python
//! client (tests/python/fifo.py --produce-only) and the official Node.js
//! client (tests/node/types.js --case fifo --produce-only 1) send to the SAME
//! message group of one FIFO topic at the same time, each numbering its own
//! messages. A raw FIFO consumer then reads the group: every message exactly
//! once, one in flight at a time, each producer's messages in its send order,
//! and the whole group in store order (queue offsets 0, 1, 2, ...: the group
//! is alone in its queue). In the four deployments of `four_modes!` (in a cluster, through its first
//! proxy).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use pier_proto::admin::TopicType;
use pier_proto::rocketmq::Code;
use pier_tests::external::*;
use pier_tests::*;
use pier_tests::{four_modes, Mode};

const PER_PRODUCER: usize = 150;

async fn python_and_node_producers_share_a_message_group(mode: Mode) {
    let tools = ensure_tools();
    let pier = Pier::start(mode, &[]).await;
    let (ep, c) = (pier.raw.endpoint.clone(), pier.raw.clone());
    c.create_typed_topic("mixed", TopicType::Fifo, 4).await;
    c.create_fifo_group("mixed-readers", 0).await;

    // Both scripts name their single group "mixed-g0" (Python:
    // "{group-prefix}{n}", Node: "{prefix}-g{j}") and start sending at the
    // same moment, once their clients are up.
    let group = "mixed-g0";
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let start_at = (now_ms + 5_000).to_string();
    let count = PER_PRODUCER.to_string();
    let started = Instant::now();
    let line = format!(
        "--produce-only --endpoint {ep} --topic mixed --groups 1 --group-prefix mixed-g \
         --count {count} --body-prefix py/ --start-at-ms {start_at} --timeout 60"
    );
    let py = pier.python(&tools, "fifo.py", cli(&line));
    let line = format!(
        "--case fifo --produce-only 1 --endpoint {ep} --topic mixed --group mixed-readers \
         --groups 1 --prefix mixed --count {count} --body-prefix node/ --start-at-ms {start_at} \
         --timeout 60"
    );
    let js = pier.node(&tools, "types.js", cli(&line));
    let (py, js) = tokio::join!(py, js);
    let rp = summary_ok(&py, "fifo.py --produce-only");
    let rn = summary_ok(&js, "types.js fifo --produce-only");
    assert_eq!(rp["sent"], PER_PRODUCER, "{rp}");
    assert_eq!(rn["sent"], PER_PRODUCER, "{rn}");
    let produced_s = started.elapsed().as_secs_f64();

    // One receive at a time: the group is locked while its message is in
    // flight, so each receive holds at most one message.
    let total = 2 * PER_PRODUCER;
    let mut seq: Vec<(String, i64, i32)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seq.len() < total {
        assert!(
            Instant::now() < deadline,
            "only {} of {total} received",
            seq.len()
        );
        let (code, msgs) = c.receive("mixed-readers", "mixed", 32, 30_000, 1_000).await;
        if code == Code::MessageNotFound {
            continue;
        }
        assert_eq!(code, Code::Ok);
        assert_eq!(
            msgs.len(),
            1,
            "one message of the group in flight at a time"
        );
        let m = &msgs[0];
        let sp = m.system_properties.as_ref().unwrap();
        assert_eq!(sp.message_group.as_deref(), Some(group));
        seq.push((
            body(m),
            sp.queue_offset
                .expect("delivered messages carry queue_offset"),
            sp.queue_id,
        ));
        assert_eq!(c.ack("mixed-readers", "mixed", &handle(m)).await, Code::Ok);
    }
    let (code, extra) = c.receive("mixed-readers", "mixed", 32, 30_000, 1_000).await;
    assert_eq!(code, Code::MessageNotFound, "more than sent: {extra:?}");

    // Exactly once.
    let bodies: HashSet<&str> = seq.iter().map(|(b, _, _)| b.as_str()).collect();
    assert_eq!(bodies.len(), total, "duplicates: {seq:?}");
    // Each producer's messages in its own send order.
    let numbers = |prefix: &str, parse: fn(&str) -> Option<usize>| -> Vec<usize> {
        seq.iter()
            .filter_map(|(b, _, _)| b.strip_prefix(prefix))
            .map(|rest| {
                let n = rest
                    .strip_prefix(&format!("{group}-"))
                    .expect("group in body");
                parse(n).unwrap_or_else(|| panic!("bad body number {n:?}"))
            })
            .collect()
    };
    let from_py = numbers("py/", |n| n.parse().ok().filter(|_| n.len() == 3));
    let from_js = numbers("node/", |n| n.parse().ok());
    let in_order: Vec<usize> = (0..PER_PRODUCER).collect();
    assert_eq!(from_py, in_order, "Python's messages out of send order");
    assert_eq!(from_js, in_order, "Node's messages out of send order");
    // The whole group in store order: one queue, offsets 0, 1, 2, ...
    let queues: HashSet<i32> = seq.iter().map(|(_, _, q)| *q).collect();
    assert_eq!(queues.len(), 1, "a message group lives in one queue");
    let offsets: Vec<i64> = seq.iter().map(|(_, o, _)| *o).collect();
    assert_eq!(offsets, (0..total as i64).collect::<Vec<_>>());

    // How much the two producers interleaved; when both were ready before
    // the common start, they sent concurrently and must have.
    let switches = seq
        .windows(2)
        .filter(|w| w[0].0.starts_with("py/") != w[1].0.starts_with("py/"))
        .count();
    let (wp, wn) = (rp["waited_ms"].as_i64(), rn["waited_ms"].as_i64());
    eprintln!(
        "mixed producers: sent in {produced_s:.1} s (waited py {wp:?} ms, node {wn:?} ms), {switches} switches between producers in the group"
    );
    if wp.is_some_and(|w| w > 0) && wn.is_some_and(|w| w > 0) {
        assert!(switches > 0, "the producers did not interleave: {seq:?}");
    }
    assert_drained(&c, "mixed-readers").await;
}

four_modes!(python_and_node_producers_share_a_message_group);
