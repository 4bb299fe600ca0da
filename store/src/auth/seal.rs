//! Secrets at rest. The HMAC signatures of RocketMQ clients need each
//! user's plain secret on the server, so a secret cannot be hashed: it is
//! encrypted with AES-256-GCM under a key the store makes at random on its
//! first start and keeps in its data directory (`auth.key`, mode 0600).
//! The receipt-handle key of the store's proxies lives beside it
//! (`receipt.key`). Neither is ever logged: [`Secret`] redacts its Debug.

use std::fs;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;

use crate::error::{Result, StorageCause, StoreError};

/// Length of the keys kept in files.
const KEY_LEN: usize = 32;
/// Length of an AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// The file holding the key that encrypts users' secrets.
pub(crate) const SEAL_KEY_FILE: &str = "auth.key";
/// The file holding the key that signs receipt handles.
pub(crate) const RECEIPT_KEY_FILE: &str = "receipt.key";

/// Bytes that must not be printed: Debug shows only their length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// The bytes, for the one use they are kept for.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

/// Reads the key in `dir/name`, or makes one at random and writes it there
/// readable by the owner only.
pub(crate) fn load_or_create_key(dir: &Path, name: &str) -> Result<Secret> {
    let path = dir.join(name);
    let what = format!("reading the key file {}", path.display());
    match fs::read(&path) {
        Ok(bytes) if bytes.len() == KEY_LEN => return Ok(Secret(bytes)),
        Ok(bytes) => {
            return Err(StoreError::storage(
                what,
                StorageCause::Corrupt(format!(
                    "the key file holds {} bytes, not {KEY_LEN}",
                    bytes.len()
                )),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::storage(what, e)),
    }
    let mut key = vec![0u8; KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let what = format!("creating the key file {}", path.display());
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&path)
        .map_err(|e| StoreError::storage(what.clone(), e))?;
    f.write_all(&key)
        .and_then(|()| f.sync_all())
        .map_err(|e| StoreError::storage(what.clone(), e))?;
    // The new file's directory entry must survive a crash too: a key lost
    // after secrets were sealed or handles signed with it would make them
    // all unreadable, so a failed sync stops the start.
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| {
            StoreError::storage(format!("syncing the directory of {}", path.display()), e)
        })?;
    tracing::info!(file = %path.display(), "created a key file (mode 0600)");
    Ok(Secret(key))
}

/// Encrypts and decrypts users' secrets.
pub(crate) struct Sealer {
    cipher: Aes256Gcm,
}

impl Sealer {
    pub(crate) fn new(key: &Secret) -> Result<Sealer> {
        let cipher = Aes256Gcm::new_from_slice(key.expose()).map_err(|_| {
            StoreError::storage(
                "loading the secret key",
                StorageCause::Corrupt("the key has the wrong length".into()),
            )
        })?;
        Ok(Sealer { cipher })
    }

    /// Encrypts `secret` for `user` (the name is authenticated with it, so
    /// a sealed secret copied to another user does not open). Returns the
    /// nonce and the ciphertext.
    pub(crate) fn seal(&self, user: &str, secret: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: user.as_bytes(),
                },
            )
            .map_err(|_| {
                StoreError::storage(
                    "encrypting a secret",
                    StorageCause::Corrupt("encryption failed".into()),
                )
            })?;
        Ok((nonce.to_vec(), sealed))
    }

    /// Decrypts what [`Sealer::seal`] made for `user`.
    pub(crate) fn open(&self, user: &str, nonce: &[u8], sealed: &[u8]) -> Result<Secret> {
        let corrupt = |why: &str| {
            StoreError::storage(
                format!("decrypting the secret of user {user}"),
                StorageCause::Corrupt(why.into()),
            )
        };
        if nonce.len() != NONCE_LEN {
            return Err(corrupt("bad nonce length"));
        }
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: user.as_bytes(),
                },
            )
            .map(Secret)
            .map_err(|_| corrupt("it does not decrypt with this data directory's auth.key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_made_once_and_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_key(dir.path(), SEAL_KEY_FILE).unwrap();
        let b = load_or_create_key(dir.path(), SEAL_KEY_FILE).unwrap();
        assert_eq!(a, b, "the second start reads the same key");
        assert_eq!(a.expose().len(), KEY_LEN);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(SEAL_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        }
        let other = load_or_create_key(dir.path(), RECEIPT_KEY_FILE).unwrap();
        assert_ne!(a, other);
        assert!(!format!("{a:?}").contains(&format!("{:?}", &a.expose()[..4])));
        fs::write(dir.path().join("short.key"), b"abc").unwrap();
        assert!(load_or_create_key(dir.path(), "short.key").is_err());
    }

    #[test]
    fn seal_round_trip_is_bound_to_key_and_user() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_create_key(dir.path(), SEAL_KEY_FILE).unwrap();
        let s = Sealer::new(&key).unwrap();
        let (nonce, sealed) = s.seal("alice", b"s3cret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"), "not in clear");
        assert_eq!(
            s.open("alice", &nonce, &sealed).unwrap().expose(),
            b"s3cret"
        );
        assert!(s.open("bob", &nonce, &sealed).is_err(), "bound to the user");
        let other = Sealer::new(&Secret(vec![7; KEY_LEN])).unwrap();
        assert!(other.open("alice", &nonce, &sealed).is_err());
        assert!(s.open("alice", &nonce[..4], &sealed).is_err());
    }
}
