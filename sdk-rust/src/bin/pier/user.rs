//! `pier user …`: create, list, describe and delete the users of the
//! client port. Secrets are sent once, at create, and never printed: the
//! server does not return them.

use pier::admin::Admin;
use pier_proto::admin::{DescribeUserResponse, User};
use serde_json::{json, Value};

use crate::acl::{rule_json, rule_row, RULE_HEADER};
use crate::args::UserCommand;
use crate::render::{fields, format_time, listing, table_of, yes_no};

/// Runs one user command; returns what to print.
pub(crate) async fn run(admin: &Admin, cmd: UserCommand) -> anyhow::Result<(String, Value)> {
    Ok(match cmd {
        UserCommand::Create {
            name,
            secret,
            admin: is_admin,
        } => {
            let r = admin.create_user(&name, &secret, is_admin).await?;
            let user = r.user.unwrap_or_default();
            let verb = if r.created { "created" } else { "updated" };
            (
                format!(
                    "{verb} user {}{}",
                    user.name,
                    if user.admin { " (admin)" } else { "" }
                ),
                json!({ "user": user_json(&user), "created": r.created }),
            )
        }
        UserCommand::List => render_users(&admin.list_users().await?),
        UserCommand::Describe { name } => render_user(&admin.describe_user(&name).await?),
        UserCommand::Delete { name } => {
            let rules = admin.delete_user(&name).await?;
            (
                format!("deleted user {name} and its {rules} ACL rule(s)"),
                json!({ "deleted": name, "rules_deleted": rules }),
            )
        }
    })
}

fn user_json(u: &User) -> Value {
    json!({ "name": u.name, "admin": u.admin, "created_ms": u.created_ms })
}

fn render_users(users: &[User]) -> (String, Value) {
    let header = ["user", "admin", "created"];
    listing("users", users, user_json, &header, |u| {
        let created_ms = u64::try_from(u.created_ms).unwrap_or(0);
        vec![
            u.name.clone(),
            yes_no(u.admin).into(),
            format_time(created_ms),
        ]
    })
}

fn render_user(d: &DescribeUserResponse) -> (String, Value) {
    let u = d.user.clone().unwrap_or_default();
    let mut text = fields(&[
        ("user", u.name.clone()),
        ("admin", yes_no(u.admin).into()),
        (
            "created",
            format_time(u64::try_from(u.created_ms).unwrap_or(0)),
        ),
    ]);
    if d.rules.is_empty() {
        text.push_str("no ACL rules\n");
    } else {
        text.push_str(&table_of(RULE_HEADER, &d.rules, rule_row));
    }
    let value = json!({
        "user": user_json(&u),
        "rules": d.rules.iter().map(rule_json).collect::<Vec<_>>(),
    });
    (text, value)
}
