//! The fleet recipe for real (`deploy/nginx/pier.conf`): one store, two
//! proxies behind Debian's nginx, the official Python 5.1.2 and Node.js
//! 1.0.8 clients producing and consuming through nginx while a proxy is
//! killed (`SIGKILL`) and restarted again and again. Every send the server
//! acknowledged must be received (duplicates are allowed: at-least-once).
//! Once in plaintext, once with TLS terminated at nginx (the clients' TLS
//! on, trusting a test CA through `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`, which
//! both gRPC C-core (Python) and grpc-js (Node) read).
//!
//! The CI form kills a proxy every 5 s for 30 s. The long form (a kill every
//! 30 s for 10 minutes) is the same test with
//! `PIER_FLEET_SECONDS=600 PIER_FLEET_KILL_EVERY_S=30` (see deploy/README.md).

use std::path::PathBuf;
use std::time::Duration;

use pier_tests::external::{args, node_env, python_env, summary};
use pier_tests::fleet::{nginx_binary, Fleet, Nginx};
use pier_tests::*;

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn through_nginx(tls: bool) {
    let tools = ensure_tools();
    let nginx_bin = nginx_binary();
    let seconds = env_secs("PIER_FLEET_SECONDS", 30);
    let every = env_secs("PIER_FLEET_KILL_EVERY_S", 5);

    let fleet = Fleet::start();
    let nginx = Nginx::start(&nginx_bin, &fleet.proxy_addrs);
    // Topics and groups are made through nginx too (the admin API).
    let admin = Raw::connect(&nginx.endpoint()).await;
    for name in ["py", "node"] {
        admin.create_topic(&format!("fleet-{name}"), 4).await;
        admin.create_group(&format!("fleet-{name}-g"), 16).await;
    }
    let endpoint = if tls {
        nginx.tls_endpoint()
    } else {
        nginx.endpoint()
    };
    let tls_flag = if tls { "1" } else { "0" };
    let run = |name: &str, prefix: &str| {
        vec![
            "--endpoint".to_owned(),
            endpoint.clone(),
            "--topic".into(),
            format!("fleet-{name}"),
            "--group".into(),
            format!("fleet-{name}-g"),
            "--seconds".into(),
            seconds.to_string(),
            "--prefix".into(),
            prefix.into(),
        ]
    };
    let mut py_args = run("py", "py");
    py_args.extend(args(&["--drain", "90"]));
    if tls {
        py_args.push("--tls".into());
    }
    let mut node_args = run("node", "node");
    node_args.extend(args(&["--drain", "90", "--tls", tls_flag]));
    let ca: PathBuf = nginx.ca.clone();

    let py_env = [("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", ca.clone())];
    // grpc-js takes its roots from gRPC's roots variable when it is set
    // (this machine sets it to the system bundle), so the CA goes there
    // rather than in NODE_EXTRA_CA_CERTS.
    let node_env_vars = [("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", ca)];
    let chaos = fleet.chaos(Duration::from_secs(every), Duration::from_millis(500));
    let (py, node) = tokio::join!(
        python_env(&tools, "fleet.py", py_args, &py_env),
        node_env(&tools, "fleet.js", node_args, &node_env_vars),
    );
    let kills = chaos.stop();
    let mode = if tls { "TLS at nginx" } else { "plaintext" };
    eprintln!("{mode}: {kills} proxy kills");
    for (who, out) in [("python", &py), ("node", &node)] {
        let s = summary(out, &format!("{who} through nginx ({mode})"));
        eprintln!("{who} ({mode}): {s}");
        assert_eq!(
            s["missing"],
            0,
            "{who} ({mode}) lost acknowledged sends: {s}\nnginx: {}",
            nginx.log_tail()
        );
        assert!(
            s["sent"].as_u64().unwrap_or(0) > 0,
            "{who}: nothing sent: {s}"
        );
        assert_eq!(s["ok"], true, "{who} ({mode}): {s}");
    }
    assert!(
        kills as u64 >= seconds / every / 2,
        "the proxies were killed only {kills} times"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_clients_through_nginx_lose_nothing_while_proxies_die() {
    through_nginx(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_clients_through_tls_at_nginx_lose_nothing_while_proxies_die() {
    through_nginx(true).await
}
