//! Signatures this worker thread verified lately.
//!
//! A signature covers only the date header, and most clients date their
//! calls to the second (protocol.md §5), so every call a client makes
//! within one second carries the same `authorization` and `x-mq-date-time`
//! values. Remembering the last few pairs that verified, with the user
//! they named and the generation of the users they were checked against,
//! lets the later calls skip the parsing, the user lookup and the HMAC.
//! The outcome is the same as verifying again: the HMAC of the same date
//! with the same secret is the same, and any change to the users (a new
//! secret, a deleted user) moves the generation, which no entry then
//! matches. Freshness is not remembered: the caller checks it on every
//! call.

use std::cell::RefCell;

use super::date::ClientDate;

/// Pairs remembered per thread: a few clients' current second each.
const SLOTS: usize = 8;

/// What a remembered pair gives a call: the user it named and its date.
#[derive(Debug, Clone)]
pub(super) struct Hit {
    pub(super) name: String,
    pub(super) admin: bool,
    pub(super) date: ClientDate,
}

/// A pair of header values that verified.
#[derive(Debug)]
struct Entry {
    /// The gate and the generation of its users (a test process may hold
    /// several gates).
    gate: u64,
    generation: u64,
    authorization: Box<[u8]>,
    date_header: Box<[u8]>,
    /// The user the signature named.
    name: String,
    admin: bool,
    /// The date header, read.
    date: ClientDate,
}

#[derive(Default)]
struct Slots {
    entries: [Option<Entry>; SLOTS],
    /// Where the next pair goes (the oldest is replaced).
    next: usize,
}

thread_local! {
    static VERIFIED: RefCell<Slots> = RefCell::default();
}

/// The user and date of `authorization` and `date_header` verified by `gate`
/// against the users of `generation`, if this thread has one.
pub(super) fn lookup(
    gate: u64,
    generation: u64,
    authorization: &[u8],
    date_header: &[u8],
) -> Option<Hit> {
    // Only what the call needs is copied out: this runs on every signed
    // call, and the header bytes are only for matching.
    VERIFIED.with(|v| {
        v.borrow()
            .entries
            .iter()
            .flatten()
            .find(|e| {
                e.gate == gate
                    && e.generation == generation
                    && *e.date_header == *date_header
                    && *e.authorization == *authorization
            })
            .map(|e| Hit {
                name: e.name.clone(),
                admin: e.admin,
                date: e.date,
            })
    })
}

/// Remembers that `authorization` and `date_header` verified as `name`
/// by `gate` against the users of `generation`.
pub(super) fn remember(
    gate: u64,
    generation: u64,
    authorization: &[u8],
    date_header: &[u8],
    name: &str,
    admin: bool,
    date: ClientDate,
) {
    VERIFIED.with(|v| {
        let mut slots = v.borrow_mut();
        let at = slots.next;
        slots.entries[at] = Some(Entry {
            gate,
            generation,
            authorization: authorization.into(),
            date_header: date_header.into(),
            name: name.to_owned(),
            admin,
            date,
        });
        slots.next = (at + 1) % SLOTS;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date() -> ClientDate {
        ClientDate {
            epoch_secs: 1,
            compact: true,
        }
    }

    #[test]
    fn a_pair_is_found_only_with_its_generation_and_exact_values() {
        remember(1, 7, b"sig-a", b"20260101T000000Z", "alice", false, date());
        let hit = lookup(1, 7, b"sig-a", b"20260101T000000Z").expect("remembered");
        assert_eq!((hit.name.as_str(), hit.admin), ("alice", false));
        assert!(
            lookup(1, 8, b"sig-a", b"20260101T000000Z").is_none(),
            "users changed"
        );
        assert!(lookup(1, 7, b"sig-b", b"20260101T000000Z").is_none());
        assert!(lookup(1, 7, b"sig-a", b"20260101T000001Z").is_none());
    }

    #[test]
    fn the_oldest_pair_makes_room() {
        for i in 0..=SLOTS {
            remember(
                1,
                1,
                format!("sig-{i}").as_bytes(),
                b"d",
                "bob",
                true,
                date(),
            );
        }
        assert!(lookup(1, 1, b"sig-0", b"d").is_none(), "replaced");
        assert!(lookup(1, 1, format!("sig-{SLOTS}").as_bytes(), b"d").is_some());
        assert!(lookup(1, 1, b"sig-1", b"d").is_some());
    }
}
