//! The command line: global flags and the subcommands with their
//! arguments (clap definitions only; each command group runs in its own
//! module).

use clap::{Args, Parser, Subcommand, ValueEnum};
use pier::connect::DEFAULT_ENDPOINT;
use pier::ServerAddr;
use pier_proto::admin::retry_policy::Strategy;
use pier_proto::admin::{CustomizedBackoff, ExponentialBackoff, RetryPolicy, TopicType};

#[derive(Parser, Debug)]
#[command(
    name = "pier",
    version,
    about = "Manage and use a Pier message queue",
    propagate_version = true
)]
pub(crate) struct Cli {
    /// Server to talk to: host:port or http://host:port.
    #[arg(
        long,
        global = true,
        env = "PIER_ENDPOINT",
        default_value = DEFAULT_ENDPOINT,
        value_name = "ADDR",
        value_parser = parse_endpoint
    )]
    pub(crate) endpoint: ServerAddr,
    /// Print JSON objects instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Deadline of each request, in seconds (receive computes its own).
    #[arg(long, global = true, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) timeout: u64,
    /// Access key (user name) to sign calls with, when the server has auth on.
    #[arg(
        long,
        global = true,
        env = "PIER_ACCESS_KEY",
        value_name = "USER",
        requires = "secret_key"
    )]
    pub(crate) access_key: Option<String>,
    /// Secret key of --access-key.
    #[arg(
        long,
        global = true,
        env = "PIER_SECRET_KEY",
        value_name = "SECRET",
        hide_env_values = true,
        requires = "access_key"
    )]
    pub(crate) secret_key: Option<String>,
    /// Connect with TLS, trusting the system's roots (or --tls-ca).
    #[arg(long, global = true, env = "PIER_TLS")]
    pub(crate) tls: bool,
    /// Connect with TLS, trusting only the CA certificate(s) in this PEM file.
    #[arg(long, global = true, env = "PIER_TLS_CA", value_name = "FILE")]
    pub(crate) tls_ca: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Create, update, list, describe and delete topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Create, update, list, describe and delete consumer groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// List the clients connected to the proxy.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Create, list, describe and delete users (authentication).
    #[command(subcommand)]
    User(UserCommand),
    /// Grant, revoke and list ACL rules of users.
    #[command(subcommand)]
    Acl(AclCommand),
    /// Send one message.
    Send(SendArgs),
    /// Receive messages for a consumer group (and ack them).
    Receive(ReceiveArgs),
    /// Rates, backlog, lag and dead letters per topic and consumer group.
    Stats(StatsArgs),
    /// Dead-letter queues: send messages back (redrive).
    #[command(subcommand)]
    Dlq(crate::dlq::DlqCommand),
    /// Find messages by id or key, with each consumer group's state.
    #[command(subcommand)]
    Message(crate::message::MessageCommand),
}

#[derive(Subcommand, Debug)]
pub(crate) enum TopicCommand {
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
    /// Change a topic's type or grow its queue count (fields not given stay
    /// as they are). As RocketMQ, the message type may change; queues never
    /// shrink (their messages and cursors would be orphaned).
    Update {
        /// Topic name.
        name: String,
        /// New message type.
        #[arg(long = "type", value_enum)]
        kind: Option<TopicKind>,
        /// New number of queues (at least the current one).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
        queues: Option<u32>,
    },
    /// Delete every message a topic holds (the topic and its groups stay).
    Purge {
        /// Topic name.
        name: String,
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
pub(crate) enum UserCommand {
    /// Create a user, or set an existing user's secret and admin flag.
    Create {
        /// User name (the access key clients sign with).
        name: String,
        /// Its secret key.
        #[arg(long, env = "PIER_USER_SECRET", hide_env_values = true)]
        secret: String,
        /// An admin may do everything, the admin API included.
        #[arg(long)]
        admin: bool,
    },
    /// List users (never their secrets).
    List,
    /// Show a user and its ACL rules (never its secret).
    Describe {
        /// User name.
        name: String,
    },
    /// Delete a user and its ACL rules.
    Delete {
        /// User name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum AclCommand {
    /// Allow (or with --deny, deny) actions on a resource to a user.
    Grant {
        /// User name.
        user: String,
        /// `Topic:NAME`, `Group:NAME`, a prefix `Topic:orders-*`, `Group:*`, or `*`.
        resource: String,
        /// Comma-separated: Pub, Sub, All.
        #[arg(long, value_delimiter = ',', required = true)]
        actions: Vec<String>,
        /// A Deny rule (deny wins over any Allow).
        #[arg(long)]
        deny: bool,
        /// Only for calls from this network (CIDR or address); repeatable.
        #[arg(long = "source", value_name = "CIDR")]
        sources: Vec<String>,
    },
    /// Remove a user's Allow (or with --deny, Deny) rule on a resource.
    Revoke {
        /// User name.
        user: String,
        /// The resource as granted.
        resource: String,
        /// Remove the Deny rule.
        #[arg(long)]
        deny: bool,
    },
    /// List the rules, of every user or of one.
    List {
        /// Only this user's rules.
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum ClientCommand {
    /// Clients holding a session with this proxy: type, language, version,
    /// group, topics and last heartbeat.
    List {
        /// Only the clients of this consumer group.
        #[arg(long)]
        group: Option<String>,
        /// Only the clients producing to or consuming this topic.
        #[arg(long)]
        topic: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum GroupCommand {
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
    /// Change a group's settings (fields not given stay as they are).
    Update {
        /// Consumer group name.
        name: String,
        /// Deliver messages of one message group in order (true or false).
        #[arg(long, value_name = "BOOL")]
        fifo: Option<bool>,
        /// Deliveries before a message goes to the dead-letter queue.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        max_attempts: Option<u32>,
        /// Exponential retry backoff: INITIAL_MS,MAX_MS,MULTIPLIER.
        #[arg(long, value_name = "INITIAL,MAX,MULT", value_parser = parse_exponential,
              conflicts_with = "retry_customized")]
        retry_exponential: Option<RetryPolicy>,
        /// Retry backoff step by step: MS,MS,... (the last one repeats).
        #[arg(long, value_name = "MS,...", value_parser = parse_customized)]
        retry_customized: Option<RetryPolicy>,
    },
    /// Move a group's position on a topic: to the oldest message, past
    /// the newest, or to the first stored at or after a time.
    Reset {
        /// Consumer group name.
        name: String,
        /// The topic.
        #[arg(long)]
        topic: String,
        /// `oldest`, `newest`, or a time (ms since the epoch, RFC 3339 UTC,
        /// or ago: 10m, 2h).
        #[arg(long, value_name = "WHERE", value_parser = parse_reset_target)]
        to: ResetTarget,
        /// Only this queue.
        #[arg(long, value_name = "N")]
        queue: Option<u32>,
        /// Reset even while the group has messages of the topic in flight
        /// (their receipt handles become stale).
        #[arg(long)]
        force: bool,
    },
    /// Skip a group's backlog on a topic (other groups keep theirs); drops
    /// its in-flight messages there.
    Purge {
        /// Consumer group name.
        name: String,
        /// The topic.
        #[arg(long)]
        topic: String,
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
pub(crate) enum TopicKind {
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
pub(crate) struct SendArgs {
    /// Topic to send to.
    pub(crate) topic: String,
    /// Message body (sent as UTF-8).
    pub(crate) body: String,
    /// Tag consumers can filter on.
    #[arg(long)]
    pub(crate) tag: Option<String>,
    /// Message key (repeatable).
    #[arg(long = "key", value_name = "K")]
    pub(crate) keys: Vec<String>,
    /// User property as key=value (repeatable).
    #[arg(long = "property", value_name = "K=V", value_parser = parse_property)]
    pub(crate) properties: Vec<(String, String)>,
    /// Send a FIFO message in this message group (FIFO topics).
    #[arg(long, value_name = "G", conflicts_with = "delay")]
    pub(crate) message_group: Option<String>,
    /// Send a DELAY message delivered this many seconds from now (delay topics).
    #[arg(long, value_name = "SECS")]
    pub(crate) delay: Option<u64>,
}

#[derive(Args, Debug)]
pub(crate) struct ReceiveArgs {
    /// Topic to receive from.
    pub(crate) topic: String,
    /// Consumer group receiving.
    #[arg(long)]
    pub(crate) group: String,
    /// Most messages to receive.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub(crate) max: i32,
    /// Seconds to wait for a message when none is ready.
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub(crate) wait: u64,
    /// Seconds received messages stay invisible to the group unless acked.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=43200))]
    pub(crate) invisible: u64,
    /// Tag filter: `*`, `TagA` or `TagA || TagB`.
    #[arg(long = "tag", value_name = "EXPR")]
    pub(crate) tag: Option<String>,
    /// Leave the messages unacknowledged (they come back after --invisible).
    #[arg(long)]
    pub(crate) no_ack: bool,
}

#[derive(Args, Debug)]
pub(crate) struct StatsArgs {
    /// Seconds between the two samples the rates are computed from.
    #[arg(long, value_name = "SECS", default_value_t = 2.0, value_parser = parse_interval)]
    pub(crate) interval: f64,
    /// Only this topic.
    #[arg(long)]
    pub(crate) topic: Option<String>,
    /// Only this consumer group.
    #[arg(long)]
    pub(crate) group: Option<String>,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.1..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0.1 and 3600"
        )),
    }
}

/// Where `pier group reset --to` puts a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResetTarget {
    Oldest,
    Newest,
    /// Ms since the epoch.
    At(i64),
}

fn parse_reset_target(s: &str) -> Result<ResetTarget, String> {
    match s {
        "oldest" => Ok(ResetTarget::Oldest),
        "newest" => Ok(ResetTarget::Newest),
        t => crate::when::parse_time(t).map(ResetTarget::At),
    }
}

fn parse_exponential(s: &str) -> Result<RetryPolicy, String> {
    let bad = || format!("{s:?} is not INITIAL_MS,MAX_MS,MULTIPLIER (e.g. 1000,7200000,2)");
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [initial, max, mult] = parts.as_slice() else {
        return Err(bad());
    };
    let e = ExponentialBackoff {
        initial_ms: initial.parse().map_err(|_| bad())?,
        max_ms: max.parse().map_err(|_| bad())?,
        multiplier: mult.parse().map_err(|_| bad())?,
    };
    Ok(RetryPolicy {
        strategy: Some(Strategy::Exponential(e)),
    })
}

fn parse_customized(s: &str) -> Result<RetryPolicy, String> {
    let next_ms = s
        .split(',')
        .map(|p| p.trim().parse::<u64>())
        .collect::<Result<Vec<u64>, _>>()
        .map_err(|_| format!("{s:?} is not a comma-separated list of milliseconds"))?;
    Ok(RetryPolicy {
        strategy: Some(Strategy::Customized(CustomizedBackoff { next_ms })),
    })
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::CommandFactory;

    pub(crate) fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
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
    fn property_parser() {
        assert_eq!(parse_property("k=v"), Ok(("k".into(), "v".into())));
        assert_eq!(parse_property("k=a=b"), Ok(("k".into(), "a=b".into())));
        assert!(parse_property("k").is_err());
        assert!(parse_property(" =v").is_err());
    }
}
