//! Receipt handles: what a consumer gets with each delivered message and
//! hands back to ack it, change its invisibility or dead-letter it.
//!
//! A handle is self-describing (group, topic, queue, offset, delivery
//! attempt, which handle of that attempt), so a proxy needs no table to
//! resolve it, and authenticated with an HMAC under a fleet-wide key, so any
//! proxy accepts what another issued and nobody can forge one. Whether the
//! delivery it names is still current is decided by the store: the attempt
//! number is the delivery generation, and the handle sequence says which of
//! the attempt's handles is the newest (each ChangeInvisibleDuration issues
//! a new one and retires the old).
//!
//! Layout before base64url: version 1 | queue u32 | offset u64 | attempt u32
//! | issued_ms i64 | topic len u16 | topic | group len u16 | group | 16-byte
//! HMAC-SHA256 tag over everything before it. Version 2, for a handle
//! sequence other than 0, has `handle_seq u32` after `attempt`; a receive's
//! handles (sequence 0) keep version 1, which proxies from before version 2
//! open too.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: u8 = 1;
/// The layout with a handle sequence (see the module comment).
const VERSION_SEQ: u8 = 2;
/// First byte of a recall handle (same key, different layout).
const RECALL_VERSION: u8 = 0x52;
const TAG_LEN: usize = 16;

/// The delivery a receipt handle names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Full name of the consumer group it was delivered to.
    pub group: String,
    /// Full name of the topic.
    pub topic: String,
    /// Queue of the message.
    pub queue: u32,
    /// Offset of the message in its queue.
    pub offset: u64,
    /// Delivery attempt (the store's delivery generation).
    pub attempt: u32,
    /// Which handle of that attempt: 0 for the receive's, n after the n-th
    /// ChangeInvisibleDuration.
    pub handle_seq: u32,
    /// When the handle was issued, ms since the epoch.
    pub issued_ms: i64,
}

/// Why a handle cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Not a handle of this layout (what is wrong with it).
    #[error("receipt handle is malformed: {0}")]
    Malformed(&'static str),
    /// The tag does not match: not issued under this key.
    #[error("receipt handle was not issued by this Pier fleet (signature mismatch)")]
    Forged,
}

/// The fleet-wide key that issues and opens receipt and recall handles.
#[derive(Clone)]
pub struct ReceiptKey {
    /// The HMAC with the key already absorbed: keying hashes two blocks
    /// (the padded key, inner and outer), as much as a handle's own tag
    /// costs, so each handle starts from a copy of this state instead.
    keyed: Hmac<Sha256>,
}

impl ReceiptKey {
    /// A key from the fleet's receipt secret.
    // HMAC accepts a key of any length (a long one is hashed first):
    // `new_from_slice` cannot fail for it, whatever the secret.
    #[allow(clippy::expect_used)]
    pub fn new(secret: &[u8]) -> ReceiptKey {
        ReceiptKey {
            keyed: Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length"),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.keyed.clone()
    }

    /// Appends the HMAC tag to `b` and encodes the whole as base64url.
    fn seal(&self, mut b: Vec<u8>) -> String {
        let mut mac = self.mac();
        mac.update(&b);
        let tag = mac.finalize().into_bytes();
        b.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(b)
    }

    /// Decodes a handle sealed by [`ReceiptKey::seal`] and checks its tag;
    /// returns what was sealed, whose first byte must be one of `versions`
    /// (else `wrong_version`) and which is at least `min_len` bytes long.
    fn unseal(
        &self,
        handle: &str,
        min_len: usize,
        versions: &[u8],
        wrong_version: &'static str,
    ) -> Result<Vec<u8>, ReceiptError> {
        let mut b = URL_SAFE_NO_PAD
            .decode(handle.trim())
            .map_err(|_| ReceiptError::Malformed("not base64url"))?;
        if b.len() < min_len + TAG_LEN {
            return Err(ReceiptError::Malformed("too short"));
        }
        let (body, tag) = b.split_at(b.len() - TAG_LEN);
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_truncated_left(tag)
            .map_err(|_| ReceiptError::Forged)?;
        b.truncate(b.len() - TAG_LEN);
        if !b.first().is_some_and(|v| versions.contains(v)) {
            return Err(ReceiptError::Malformed(wrong_version));
        }
        Ok(b)
    }

    /// A handle for the delivery `r`.
    pub fn issue(&self, r: &Receipt) -> String {
        let mut b = Vec::with_capacity(32 + r.topic.len() + r.group.len() + TAG_LEN);
        if r.handle_seq == 0 {
            b.push(VERSION);
        } else {
            b.push(VERSION_SEQ);
        }
        b.extend_from_slice(&r.queue.to_be_bytes());
        b.extend_from_slice(&r.offset.to_be_bytes());
        b.extend_from_slice(&r.attempt.to_be_bytes());
        if r.handle_seq != 0 {
            b.extend_from_slice(&r.handle_seq.to_be_bytes());
        }
        b.extend_from_slice(&r.issued_ms.to_be_bytes());
        for s in [&r.topic, &r.group] {
            // Names are at most 127 (topic) or 255 bytes long in practice;
            // truncation cannot happen for valid names and would only make
            // the handle fail to resolve.
            let len = s.len().min(u16::MAX as usize);
            b.extend_from_slice(&(len as u16).to_be_bytes());
            b.extend_from_slice(&s.as_bytes()[..len]);
        }
        self.seal(b)
    }

    /// The delivery a handle names, if this key issued it.
    pub fn open(&self, handle: &str) -> Result<Receipt, ReceiptError> {
        let body = self.unseal(
            handle,
            1 + 4 + 8 + 4 + 8 + 2 + 2,
            &[VERSION, VERSION_SEQ],
            "unknown version",
        )?;
        let with_seq = body.first() == Some(&VERSION_SEQ);
        let mut r = Reader { b: &body[1..] };
        // Fields are read in the order they are laid out.
        let queue = u32::from_be_bytes(r.array()?);
        let offset = u64::from_be_bytes(r.array()?);
        let attempt = u32::from_be_bytes(r.array()?);
        let handle_seq = if with_seq {
            u32::from_be_bytes(r.array()?)
        } else {
            0
        };
        let receipt = Receipt {
            queue,
            offset,
            attempt,
            handle_seq,
            issued_ms: i64::from_be_bytes(r.array()?),
            topic: r.string()?,
            group: r.string()?,
        };
        if !r.b.is_empty() {
            return Err(ReceiptError::Malformed("trailing bytes"));
        }
        Ok(receipt)
    }
}

impl ReceiptKey {
    /// A recall handle for a scheduled delay message: its topic and timer
    /// key, authenticated like receipt handles so nobody can cancel another
    /// producer's message by guessing.
    pub fn issue_recall(&self, topic: &str, timer: &[u8]) -> String {
        let mut b = vec![RECALL_VERSION];
        let len = topic.len().min(u16::MAX as usize);
        b.extend_from_slice(&(len as u16).to_be_bytes());
        b.extend_from_slice(&topic.as_bytes()[..len]);
        b.extend_from_slice(timer);
        self.seal(b)
    }

    /// (topic, timer key) of a recall handle.
    pub fn open_recall(&self, handle: &str) -> Result<(String, Vec<u8>), ReceiptError> {
        let body = self.unseal(handle, 1 + 2, &[RECALL_VERSION], "not a recall handle")?;
        let mut r = Reader { b: &body[1..] };
        let topic = r.string()?;
        Ok((topic, r.b.to_vec()))
    }
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ReceiptError> {
        if self.b.len() < n {
            return Err(ReceiptError::Malformed("truncated"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ReceiptError> {
        self.take(N)?
            .try_into()
            .map_err(|_| ReceiptError::Malformed("truncated"))
    }

    fn string(&mut self) -> Result<String, ReceiptError> {
        let len = u16::from_be_bytes(self.array()?) as usize;
        let s = self.take(len)?;
        String::from_utf8(s.to_vec()).map_err(|_| ReceiptError::Malformed("name is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Receipt {
        Receipt {
            group: "g".into(),
            topic: "ns%topic".into(),
            queue: 3,
            offset: 12345,
            attempt: 2,
            handle_seq: 0,
            issued_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn round_trip() {
        let k = ReceiptKey::new(b"secret");
        let h = k.issue(&sample());
        assert_eq!(k.open(&h).unwrap(), sample());
        let changed = Receipt {
            handle_seq: 7,
            ..sample()
        };
        assert_eq!(k.open(&k.issue(&changed)).unwrap(), changed);
    }

    #[test]
    fn a_receive_handle_keeps_the_first_layout() {
        let k = ReceiptKey::new(b"secret");
        let first = URL_SAFE_NO_PAD.decode(k.issue(&sample())).unwrap();
        assert_eq!(first[0], VERSION, "proxies before handle_seq open it");
        let changed = Receipt {
            handle_seq: 1,
            ..sample()
        };
        let second = URL_SAFE_NO_PAD.decode(k.issue(&changed)).unwrap();
        assert_eq!(second[0], VERSION_SEQ);
        assert_eq!(second.len(), first.len() + 4);
    }

    #[test]
    fn other_key_or_tampering_is_forged() {
        let h = ReceiptKey::new(b"secret").issue(&sample());
        assert_eq!(
            ReceiptKey::new(b"other").open(&h),
            Err(ReceiptError::Forged)
        );
        let mut bytes = URL_SAFE_NO_PAD.decode(&h).unwrap();
        bytes[5] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(
            ReceiptKey::new(b"secret").open(&tampered),
            Err(ReceiptError::Forged)
        );
    }

    #[test]
    fn recall_round_trip_and_forgery() {
        let k = ReceiptKey::new(b"secret");
        let h = k.issue_recall("ns%t", b"0123456789abcdefghij");
        assert_eq!(
            k.open_recall(&h).unwrap(),
            ("ns%t".to_owned(), b"0123456789abcdefghij".to_vec())
        );
        assert_eq!(
            ReceiptKey::new(b"x").open_recall(&h),
            Err(ReceiptError::Forged)
        );
        // A receipt handle is not a recall handle.
        assert!(k.open_recall(&k.issue(&sample())).is_err());
    }

    #[test]
    fn garbage_and_truncation_are_malformed() {
        let k = ReceiptKey::new(b"secret");
        let h = k.issue(&sample());
        assert!(matches!(
            k.open("not a handle!"),
            Err(ReceiptError::Malformed(_))
        ));
        assert!(matches!(k.open(""), Err(ReceiptError::Malformed(_))));
        assert!(k.open(&h[..h.len() / 2]).is_err());
    }
}
