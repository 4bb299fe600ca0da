//! `pier acl …`: grant, revoke and list ACL rules (RocketMQ 5.3 ACL 2.0
//! model: user, resource pattern, actions, Allow or Deny, source networks).

use pier::admin::Admin;
use pier_proto::admin::{AclDecision, AclRule};
use serde_json::{json, Value};

use crate::args::AclCommand;
use crate::render::table;

/// Column names of a rule table.
pub(crate) const RULE_HEADER: &[&str] = &["user", "resource", "actions", "decision", "sources"];

fn decision(d: i32) -> &'static str {
    match AclDecision::try_from(d) {
        Ok(AclDecision::Deny) => "Deny",
        _ => "Allow",
    }
}

/// A rule as a table row.
pub(crate) fn rule_row(r: &AclRule) -> Vec<String> {
    vec![
        r.user.clone(),
        r.resource.clone(),
        r.actions.join(","),
        decision(r.decision).into(),
        if r.sources.is_empty() {
            "any".into()
        } else {
            r.sources.join(",")
        },
    ]
}

/// A rule as JSON.
pub(crate) fn rule_json(r: &AclRule) -> Value {
    json!({
        "user": r.user,
        "resource": r.resource,
        "actions": r.actions,
        "decision": decision(r.decision),
        "sources": r.sources,
    })
}

fn decision_of(deny: bool) -> AclDecision {
    if deny {
        AclDecision::Deny
    } else {
        AclDecision::Allow
    }
}

/// Runs one ACL command; returns what to print.
pub(crate) async fn run(admin: &Admin, cmd: AclCommand) -> anyhow::Result<(String, Value)> {
    Ok(match cmd {
        AclCommand::Grant {
            user,
            resource,
            actions,
            deny,
            sources,
        } => {
            let rule = admin
                .grant_acl(AclRule {
                    user,
                    resource,
                    actions,
                    decision: decision_of(deny) as i32,
                    sources,
                })
                .await?;
            (
                format!(
                    "{} {} {} on {}",
                    if deny { "denied" } else { "granted" },
                    rule.user,
                    rule.actions.join(","),
                    rule.resource
                ),
                rule_json(&rule),
            )
        }
        AclCommand::Revoke {
            user,
            resource,
            deny,
        } => {
            admin
                .revoke_acl(&user, &resource, decision_of(deny))
                .await?;
            (
                format!(
                    "revoked the {} rule of {user} on {resource}",
                    decision(decision_of(deny) as i32)
                ),
                json!({ "revoked": { "user": user, "resource": resource, "decision": decision(decision_of(deny) as i32) } }),
            )
        }
        AclCommand::List { user } => {
            let rules = admin.list_acls(user.as_deref().unwrap_or_default()).await?;
            let value = json!({ "rules": rules.iter().map(rule_json).collect::<Vec<_>>() });
            if rules.is_empty() {
                ("no ACL rules".into(), value)
            } else {
                let rows: Vec<Vec<String>> = rules.iter().map(rule_row).collect();
                (table(RULE_HEADER, &rows), value)
            }
        }
    })
}
