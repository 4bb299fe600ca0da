//! Who this client is: the host name, the client ids sent as
//! `x-mq-client-id`, and the ids of the messages it sends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// This machine's host name, or `localhost` when it cannot be found.
pub(crate) fn hostname() -> String {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let from_file = |p: &str| std::fs::read_to_string(p).ok();
        let from_env = |k: &str| std::env::var(k).ok();
        from_file("/proc/sys/kernel/hostname")
            .or_else(|| from_file("/etc/hostname"))
            .or_else(|| from_env("HOSTNAME"))
            .or_else(|| from_env("COMPUTERNAME"))
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned())
    })
    .clone()
}

/// The process's client id, `hostname@pid@<random>`: the same for every
/// connection of this process, printable ASCII only (a header value).
pub(crate) fn client_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let random = uuid::Uuid::new_v4().simple().to_string();
        make_client_id(&hostname(), std::process::id(), &random[..12])
    })
}

fn make_client_id(host: &str, pid: u32, random: &str) -> String {
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '@' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{host}@{pid}@{random}")
}

/// A fresh client id for one client instance (producer or consumer):
/// `hostname@pid@<sequence>@<random>`. Each client has its own, because the
/// server keys a client's Telemetry session and settings by it.
pub(crate) fn new_client_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let random = uuid::Uuid::new_v4().simple().to_string();
    make_client_id(
        &hostname(),
        std::process::id(),
        &format!("{seq}@{}", &random[..8]),
    )
}

/// A fresh message id: a random UUID as 32 upper-case hex digits.
pub(crate) fn new_message_id() -> String {
    format!("{:X}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_is_ascii_and_stable() {
        assert_eq!(make_client_id("höst @x", 42, "abc"), "h_st__x@42@abc");
        let id = client_id();
        assert_eq!(id, client_id());
        assert!(id.chars().all(|c| c.is_ascii_graphic()), "{id}");
        assert_eq!(id.split('@').count(), 3, "{id}");
        assert!(id.contains(&format!("@{}@", std::process::id())));
        assert_ne!(new_client_id(), new_client_id());
    }

    #[test]
    fn message_ids_are_32_upper_hex() {
        let id = new_message_id();
        assert_eq!(id.len(), 32);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
            "{id}"
        );
        assert_ne!(id, new_message_id());
    }
}
