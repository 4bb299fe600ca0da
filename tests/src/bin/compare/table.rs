//! Joining two probe files into the Markdown table of RESULTS.md.

use super::*;

pub(crate) fn matches(pattern: &str, seen: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => seen.starts_with(prefix),
        None => pattern == seen,
    }
}

pub(crate) fn cell(s: &str, max: usize) -> String {
    let s: String = s.replace('|', "\\|").replace('\n', " ");
    if s.chars().count() > max {
        let t: String = s.chars().take(max).collect();
        format!("{t}…")
    } else {
        s
    }
}

pub(crate) fn load(path: &str) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    serde_json::from_str(&text).with_context(|| format!("parse {path}"))
}

pub(crate) fn table(args: &Args) -> anyhow::Result<bool> {
    let rmq = load(args.get("--rocketmq")?)?;
    let pier = load(args.get("--pier")?)?;
    let by_id = |v: &Value| -> BTreeMap<String, Value> {
        v["cases"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["id"].as_str().unwrap_or_default().to_owned(), c.clone()))
            .collect()
    };
    let (r, p) = (by_id(&rmq), by_id(&pier));
    let order: Vec<(String, String)> = pier["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_owned(),
                c["title"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut rows = String::new();
    let (mut same, mut better, mut different, mut unexplained) = (0, 0, 0, 0);
    let mut notes = String::new();
    let show = |c: Option<&Value>| -> (String, String) {
        match c {
            None => ("(not run)".into(), String::new()),
            Some(c) => {
                let msg = c["message"].as_str().unwrap_or_default();
                let det = c["detail"].as_str().unwrap_or_default();
                let text = match (msg.is_empty(), det.is_empty()) {
                    (true, true) => String::new(),
                    (false, true) => format!("“{}”", cell(msg, 110)),
                    (true, false) => cell(det, 160),
                    (false, false) => format!("“{}” — {}", cell(msg, 110), cell(det, 160)),
                };
                (
                    format!("`{}`", cell(c["outcome"].as_str().unwrap_or_default(), 80)),
                    text,
                )
            }
        }
    };
    for (i, (id, title)) in order.iter().enumerate() {
        let (rc, rm) = show(r.get(id));
        let (pc, pm) = show(p.get(id));
        let ro = r
            .get(id)
            .and_then(|c| c["outcome"].as_str())
            .unwrap_or("(not run)");
        let po = p
            .get(id)
            .and_then(|c| c["outcome"].as_str())
            .unwrap_or("(not run)");
        let verdict = if ro == po {
            same += 1;
            "same".to_owned()
        } else if let Some(v) = VERDICTS
            .iter()
            .find(|v| v.id == id && matches(v.rocketmq, ro) && matches(v.pier, po))
        {
            notes.push_str(&format!(
                "- **{id}** ({}): {}\n",
                if v.better { "better" } else { "different" },
                v.why
            ));
            if v.better {
                better += 1;
                "**better** (see notes)".to_owned()
            } else {
                different += 1;
                "different, argued (see notes)".to_owned()
            }
        } else {
            unexplained += 1;
            "**DIFFERENT — UNEXPLAINED**".to_owned()
        };
        rows.push_str(&format!(
            "| {} | {} `{id}` | {rc} {rm} | {pc} {pm} | {verdict} |\n",
            i + 1,
            cell(title, 140)
        ));
    }
    let total = order.len();
    let mut out = String::new();
    out.push_str("# Pier beside Apache RocketMQ 5: behaviour side by side\n\n");
    out.push_str(
        "Written by `bash tests/compare/run.sh` (run by hand, not in CI): the same edge cases, sent \
         through the raw `apache.rocketmq.v2` gRPC API by `tests/src/bin/compare/`, to Apache \
         RocketMQ (name server + broker with its gRPC proxy in local mode, `SYNC_FLUSH`, started by \
         `bench/scripts/rocketmq.sh`) and to a standalone Pier, with the same topics and groups \
         created on both. The prober behaves like an official client: Telemetry + Settings first, \
         heartbeats, message queues from QueryRoute.\n\n",
    );
    if let Ok(meta) = args.get("--meta") {
        if let Ok(text) = std::fs::read_to_string(meta) {
            out.push_str(&text);
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "**Summary: {total} cases — {same} same, {better} better in Pier, {different} different (argued), {unexplained} unexplained.**\n\n"
    ));
    out.push_str(
        "Each side shows the compared outcome (a status code, or a short class of behaviour), then \
         the server's status message and details that are shown but not compared (counts, timings). \
         A row is *same* when the outcomes are equal; every other row carries the argument for it in \
         the notes below the table.\n\n",
    );
    out.push_str("| # | case | RocketMQ | Pier | verdict |\n|---|---|---|---|---|\n");
    out.push_str(&rows);
    if !notes.is_empty() {
        out.push_str("\n## Notes on the rows that differ\n\n");
        out.push_str(&notes);
    }
    for (name, v) in [("RocketMQ", &rmq), ("Pier", &pier)] {
        let strays: Vec<String> = v["strays"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        if !strays.is_empty() {
            out.push_str(&format!(
                "\n{name}: messages the prober received where it did not expect them, and acked (case where it showed up: the body, which starts with the case that sent it): {}\n",
                cell(&strays.join("; "), 600)
            ));
        }
    }
    if let Ok(path) = args.get("--scenarios") {
        out.push_str(&scenarios_table(path)?);
    }
    std::fs::write(args.get("--out")?, out)?;
    eprintln!(
        "{total} cases: {same} same, {better} better, {different} different (argued), {unexplained} unexplained"
    );
    Ok(unexplained == 0)
}

/// Lines `system<TAB>client<TAB>scenario<TAB>pass|fail<TAB>seconds<TAB>note`.
pub(crate) fn scenarios_table(path: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    let mut order: Vec<(String, String)> = Vec::new();
    let mut seen: BTreeMap<(String, String, String), (String, String, String)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.splitn(6, '\t').collect();
        if f.len() < 5 {
            continue;
        }
        let key = (f[1].to_owned(), f[2].to_owned());
        if !order.contains(&key) {
            order.push(key);
        }
        seen.insert(
            (f[0].to_owned(), f[1].to_owned(), f[2].to_owned()),
            (
                f[3].to_owned(),
                f[4].to_owned(),
                f.get(5).copied().unwrap_or("").to_owned(),
            ),
        );
    }
    let mut out = String::from(
        "\n## Official-client scenarios against both\n\n\
         The same scripts with the same arguments against each system (pass = the script's own \
         verdict, exit status 0). The delay and transaction scripts run with `--tail-await 5`: \
         their default 1 s receives are refused by RocketMQ (ILLEGAL_POLLING_TIME, see \
         recv.short_deadline).\n\n\
         | client | scenario | RocketMQ | Pier |\n|---|---|---|---|\n",
    );
    for (client, scenario) in &order {
        let show = |sys: &str| match seen.get(&(sys.to_owned(), client.clone(), scenario.clone())) {
            None => "(not run)".to_owned(),
            Some((verdict, s, note)) => {
                let v = if verdict == "pass" {
                    "pass".to_owned()
                } else {
                    format!("**{verdict}**")
                };
                if note.is_empty() {
                    format!("{v} ({s} s)")
                } else {
                    format!("{v} ({s} s) — {}", cell(note, 200))
                }
            }
        };
        out.push_str(&format!(
            "| {client} | {scenario} | {} | {} |\n",
            show("rocketmq"),
            show("pier")
        ));
    }
    Ok(out)
}
