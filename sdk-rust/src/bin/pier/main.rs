//! `pier`: Pier's command-line tool — manage topics and consumer groups,
//! send a message, receive (and ack) messages.
//!
//! Output is human-readable lines, or one JSON object per command with
//! `--json`. Any failure exits with status 1 and one line on stderr,
//! `pier: <reason>`; usage errors exit with status 2.
//!
//! Modules: `args` (the command line), `topic`, `group`, `client`, `user`,
//! `acl`, `dlq` and `message` (the admin commands), `when` (time arguments), `stats`
//! (rates and backlog), `send` and
//! `receive` (the data plane, through the SDK's
//! clients), `render` (text and JSON output).

mod acl;
mod args;
mod client;
mod dlq;
mod group;
mod message;
mod receive;
mod render;
mod send;
mod stats;
mod topic;
mod user;
mod when;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pier::admin::Admin;
use pier::connect::{ConnectOptions, Connection};
use pier::{ClientConfig, Credentials, TlsTrust};

use crate::args::{Cli, Command};

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

/// Runs the command: data-plane commands go through the SDK's clients,
/// admin commands through one plain connection.
async fn run(cli: Cli) -> anyhow::Result<()> {
    let tls = match (&cli.tls_ca, cli.tls) {
        (Some(ca), _) => Some(TlsTrust::CaFile(ca.clone())),
        (None, true) => Some(TlsTrust::SystemRoots),
        (None, false) => None,
    };
    let options = ConnectOptions {
        request_timeout: Duration::from_secs(cli.timeout),
        tls: tls.clone(),
        ..ConnectOptions::default()
    };
    let json = cli.json;
    let credentials = match (&cli.access_key, &cli.secret_key) {
        (Some(ak), Some(sk)) => Some(Credentials::new(ak.clone(), sk.clone())),
        _ => None,
    };
    let sdk_config = || {
        ClientConfig::from_addrs(vec![cli.endpoint.clone()]).map(|c| {
            let c = c.with_request_timeout(options.request_timeout);
            let c = match &tls {
                Some(TlsTrust::CaFile(ca)) => c.with_tls_ca(ca),
                Some(TlsTrust::SystemRoots) => c.with_tls(true),
                None => c,
            };
            match &credentials {
                Some(cr) => c.with_credentials(cr.clone()),
                None => c,
            }
        })
    };
    let admin_client = || admin(&cli.endpoint, options.clone(), credentials.clone());
    let (text, value) = match cli.command {
        Command::Send(a) => return send::run(sdk_config()?, a, json).await,
        Command::Receive(a) => return receive::run(sdk_config()?, a, json).await,
        Command::Topic(c) => topic::run(&admin_client().await?, c).await?,
        Command::Group(c) => group::run(&admin_client().await?, c).await?,
        Command::Client(c) => client::run(&admin_client().await?, c).await?,
        Command::User(c) => user::run(&admin_client().await?, c).await?,
        Command::Acl(c) => acl::run(&admin_client().await?, c).await?,
        Command::Stats(a) => stats::run(&admin_client().await?, a).await?,
        Command::Dlq(c) => dlq::run(&admin_client().await?, c, cli.timeout).await?,
        Command::Message(c) => message::run(&admin_client().await?, c).await?,
    };
    render::emit(json, &text, &value);
    Ok(())
}

/// An admin client over a fresh connection to `endpoint`.
async fn admin(
    endpoint: &pier::ServerAddr,
    options: ConnectOptions,
    credentials: Option<Credentials>,
) -> pier::Result<Admin> {
    let mut conn = Connection::connect(endpoint.clone(), options).await?;
    if let Some(c) = credentials {
        conn = conn.with_credentials(c)?;
    }
    Ok(Admin::new(&conn))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            cause: None,
        })
        .context("ack of message X failed");
        assert_eq!(
            one_line(&e),
            "ack of message X failed: consumer group g does not exist (NOT_FOUND)"
        );
    }
}
