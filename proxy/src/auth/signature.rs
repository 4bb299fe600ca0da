//! The `authorization` header of RocketMQ 5 clients (protocol.md §5):
//!
//! `MQv2-HMAC-SHA1 Credential=<AK>, SignedHeaders=x-mq-date-time, Signature=<hex>`
//!
//! where the signature is HMAC-SHA1 of the exact `x-mq-date-time` value
//! keyed with the user's secret. Java and Node write the hex in upper
//! case, the others in lower case; Go writes `Credential=<AK>//Rocketmq`.

use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::AuthError;

/// The only algorithm the clients use.
const ALGORITHM: &str = "MQv2-HMAC-SHA1";

/// What an `authorization` header claims.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Claim {
    /// The access key: the user's name.
    pub(crate) access_key: String,
    /// The HMAC, decoded from hex.
    pub(crate) signature: Vec<u8>,
}

/// Parses an `authorization` header; the error names what is wrong.
pub(crate) fn parse(header: &str) -> Result<Claim, AuthError> {
    let malformed = |why: &str| AuthError::MalformedHeader(why.to_owned());
    let (algorithm, rest) = header
        .trim()
        .split_once(' ')
        .ok_or_else(|| malformed("expected `MQv2-HMAC-SHA1 Credential=..., Signature=...`"))?;
    if algorithm != ALGORITHM {
        return Err(malformed("unsupported algorithm; expected MQv2-HMAC-SHA1"));
    }
    let mut credential = None;
    let mut signature = None;
    for item in rest.split(',') {
        let Some((k, v)) = item.trim().split_once('=') else {
            continue;
        };
        match k.trim() {
            // Go appends `/<region>/Rocketmq`: the user is what precedes
            // the first '/'.
            "Credential" => credential = Some(v.split('/').next().unwrap_or_default().trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    let access_key = credential.ok_or_else(|| malformed("no Credential"))?;
    if access_key.is_empty() {
        return Err(malformed("the Credential (access key) is empty"));
    }
    let signature = signature.ok_or_else(|| malformed("no Signature"))?;
    let signature = hex::decode(signature).map_err(|_| malformed("the Signature is not hex"))?;
    Ok(Claim {
        access_key: access_key.to_owned(),
        signature,
    })
}

/// Whether `signature` is HMAC-SHA1(`secret`, `date`); compared in
/// constant time.
pub(crate) fn verify(secret: &[u8], date: &str, signature: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        // HMAC takes keys of any length; nothing to verify against.
        return false;
    };
    mac.update(date.as_bytes());
    mac.verify_slice(signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HMAC-SHA1("SK1", "20240131T235959Z") as Python's `hmac` computes it.
    const SIG: &str = "f26099e9657ad11b2557ef8c1895682849c390a6";

    fn header(credential: &str, sig: &str) -> String {
        format!(
            "MQv2-HMAC-SHA1 Credential={credential}, SignedHeaders=x-mq-date-time, Signature={sig}"
        )
    }

    #[test]
    fn each_clients_header_verifies() {
        for (credential, sig) in [
            ("AK1", SIG.to_owned()),
            ("AK1", SIG.to_uppercase()),
            ("AK1//Rocketmq", SIG.to_owned()),
        ] {
            let c = parse(&header(credential, &sig)).unwrap();
            assert_eq!(c.access_key, "AK1");
            assert!(verify(b"SK1", "20240131T235959Z", &c.signature));
            assert!(!verify(b"SK2", "20240131T235959Z", &c.signature));
            assert!(!verify(b"SK1", "20240131T235958Z", &c.signature));
        }
    }

    #[test]
    fn malformed_headers_say_why() {
        let why = |h: &str| match parse(h) {
            Err(AuthError::MalformedHeader(w)) => w,
            other => panic!("{h:?}: {other:?}"),
        };
        assert!(why("garbage").contains("expected"));
        assert!(why(&header("AK", SIG).replace("MQv2", "MQv1")).contains("algorithm"));
        assert!(why("MQv2-HMAC-SHA1 Signature=00").contains("no Credential"));
        assert!(why("MQv2-HMAC-SHA1 Credential=AK").contains("no Signature"));
        // Python 5.1.2 without credentials.
        assert!(why(&header("", SIG)).contains("empty"));
        assert!(why(&header("AK", "xyz")).contains("not hex"));
    }
}
