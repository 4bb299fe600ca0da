//! `pier client list`: the clients connected to the proxy the CLI talks to.

use pier::admin::Admin;
use pier_proto::admin::{ClientInfo, ListClientsResponse};
use serde_json::{json, Value};

use crate::args::ClientCommand;
use crate::render::{format_time, table_of};

/// Runs one client command; returns what to print.
pub(crate) async fn run(admin: &Admin, cmd: ClientCommand) -> anyhow::Result<(String, Value)> {
    Ok(match cmd {
        ClientCommand::List { group, topic } => render_clients(
            &admin
                .list_clients(
                    group.as_deref().unwrap_or_default(),
                    topic.as_deref().unwrap_or_default(),
                )
                .await?,
        ),
    })
}

fn client_json(c: &ClientInfo) -> Value {
    json!({
        "client_id": c.client_id,
        "client_type": c.client_type,
        "language": c.language,
        "version": c.version,
        "namespace": c.namespace,
        "group": c.group,
        "topics": c.topics,
        "last_seen_ms": c.last_seen_ms,
    })
}

fn render_clients(r: &ListClientsResponse) -> (String, Value) {
    let value = json!({
        "proxy": r.proxy,
        "client_expiry_ms": r.client_expiry_ms,
        "clients": r.clients.iter().map(client_json).collect::<Vec<_>>(),
    });
    if r.clients.is_empty() {
        return (format!("no clients connected to proxy {}", r.proxy), value);
    }
    let header = [
        "client id",
        "type",
        "client",
        "group",
        "topics",
        "last seen",
    ];
    let rows = table_of(&header, &r.clients, |c| {
        let group = if c.group.is_empty() { "-" } else { &c.group };
        vec![
            c.client_id.clone(),
            c.client_type.clone(),
            format!("{} {}", c.language, c.version),
            group.to_owned(),
            c.topics.join(","),
            format_time(u64::try_from(c.last_seen_ms).unwrap_or(0)),
        ]
    });
    let text = format!(
        "clients of proxy {} (dropped when unseen for {} s)\n{rows}",
        r.proxy,
        r.client_expiry_ms / 1000,
    );
    (text, value)
}
