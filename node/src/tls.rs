//! TLS on a node's port: the certificate and key files, a certificate
//! resolver whose key can be swapped while the server runs, and the task
//! that reloads the files on SIGHUP or when they change on disk.
//!
//! rustls asks the resolver for a certificate at each handshake, so a
//! reload only changes what *new* connections are shown; connections
//! already set up keep their session keys and go on undisturbed. A new
//! certificate that does not load (unreadable, not PEM, a key that does not
//! match) is logged once and the old one stays in use.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::task::JoinHandle;

/// The ALPN protocol a gRPC server must agree on: grpc-java, grpc-go and
/// tonic clients refuse a TLS connection without it.
pub const ALPN_H2: &[u8] = b"h2";

/// How often the reload task looks at the files' modification times.
pub const POLL_EVERY: Duration = Duration::from_secs(3);

/// The PEM files of a server certificate (with its chain) and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the server's own first.
    pub cert: PathBuf,
    /// The private key of the first certificate.
    pub key: PathBuf,
}

impl TlsFiles {
    /// Both files, or neither: one without the other is a configuration
    /// error, reported at start.
    pub fn from_options(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> anyhow::Result<Option<TlsFiles>> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (None, None) => Ok(None),
            (Some(_), None) => anyhow::bail!("tls_cert is set but tls_key is not: give both"),
            (None, Some(_)) => anyhow::bail!("tls_key is set but tls_cert is not: give both"),
        }
    }
}

/// The crypto of every TLS connection Pier makes or accepts: rustls with
/// `ring` (named explicitly, so that another provider compiled into the
/// same binary by some dependency cannot make the choice ambiguous).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks `files`: a PEM certificate chain and a PEM private key
/// (PKCS#8, PKCS#1 or SEC1) that belongs to its first certificate.
pub fn load(files: &TlsFiles) -> anyhow::Result<Arc<CertifiedKey>> {
    let cert_pem = std::fs::read(&files.cert)
        .with_context(|| format!("cannot read certificate {}", files.cert.display()))?;
    let key_pem = std::fs::read(&files.key)
        .with_context(|| format!("cannot read key {}", files.key.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("bad certificate {}: {e}", files.cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("no certificate in {}", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| anyhow::anyhow!("bad key {}: {e}", files.key.display()))?;
    let signer = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| anyhow::anyhow!("unusable key {}: {e}", files.key.display()))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        // Some key types cannot tell their public key: nothing to compare.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => anyhow::bail!(
            "key {} does not belong to certificate {}: {e}",
            files.key.display(),
            files.cert.display()
        ),
    }
    Ok(Arc::new(certified))
}

/// A verifier requiring every client to show a certificate signed by a CA
/// of the PEM file `ca` (read once, at start).
pub fn client_verifier(ca: &Path) -> anyhow::Result<Arc<dyn ClientCertVerifier>> {
    let pem =
        std::fs::read(ca).with_context(|| format!("cannot read client CA {}", ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| anyhow::anyhow!("bad client CA {}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| anyhow::anyhow!("unusable client CA {}: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        anyhow::bail!("no certificate in client CA {}", ca.display());
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| anyhow::anyhow!("client CA {}: {e}", ca.display()))
}

/// The certificate shown to clients, swappable while the server runs.
pub struct CertResolver {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl CertResolver {
    /// Loads `files`; an error here stops the node from starting.
    pub fn load(files: TlsFiles) -> anyhow::Result<Arc<CertResolver>> {
        let first = load(&files)?;
        Ok(Arc::new(CertResolver {
            files,
            current: RwLock::new(first),
        }))
    }

    /// The files this resolver loads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Loads the files again and, if they are good, serves them to new
    /// connections; otherwise keeps the certificate in use.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = load(&self.files)?;
        // A poisoned lock only means a panic elsewhere while holding it;
        // the value (an Arc) is always whole.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A rustls server configuration showing this resolver's certificate,
    /// with ALPN `h2`.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<ServerConfig>> {
        self.server_config_for(None)
    }

    /// [`CertResolver::server_config`], asking clients for a certificate
    /// that `clients` accepts when given (mutual TLS, see [`client_verifier`]).
    pub fn server_config_for(
        self: &Arc<Self>,
        clients: Option<Arc<dyn ClientCertVerifier>>,
    ) -> anyhow::Result<Arc<ServerConfig>> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = match clients {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(self.clone());
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// What identifies one version of a file on disk.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn stamps(files: &TlsFiles) -> (Stamp, Stamp) {
    (stamp(&files.cert), stamp(&files.key))
}

/// Starts the task that reloads `resolver`'s files on SIGHUP and when their
/// modification time or size changes (looked at every `every`), until
/// `stop` resolves. The caller owns the handle and awaits it at shutdown.
///
/// A version of the files that fails to load is logged once: the poll
/// tries it again only after the files change again (a SIGHUP always
/// tries, and always says how it went).
pub fn spawn_reloader(
    resolver: Arc<CertResolver>,
    every: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut hangups = hangup_signals();
        let mut seen = stamps(resolver.files());
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            let why = tokio::select! {
                () = &mut stop => return,
                _ = tick.tick() => {
                    let now = stamps(resolver.files());
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    "the files changed"
                }
                () = next_hangup(&mut hangups) => {
                    seen = stamps(resolver.files());
                    "SIGHUP"
                }
            };
            match resolver.reload() {
                Ok(()) => tracing::info!(
                    cert = %resolver.files().cert.display(),
                    trigger = why,
                    "TLS certificate reloaded"
                ),
                Err(e) => tracing::warn!(
                    cert = %resolver.files().cert.display(),
                    trigger = why,
                    error = format!("{e:#}"),
                    "TLS certificate not reloaded, the previous one stays in use"
                ),
            }
        }
    })
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

fn hangup_signals() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: certificates reload on file change only");
                None
            }
        }
    }
    #[cfg(not(unix))]
    None
}

async fn next_hangup(hangups: &mut Hangups) {
    #[cfg(unix)]
    if let Some(s) = hangups {
        if s.recv().await.is_some() {
            return;
        }
    }
    let _ = hangups;
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> TlsFiles {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn both_files_or_neither() {
        let p = || Some(PathBuf::from("x"));
        assert!(TlsFiles::from_options(None, None).unwrap().is_none());
        assert!(TlsFiles::from_options(p(), p()).unwrap().is_some());
        assert!(TlsFiles::from_options(p(), None).is_err());
        assert!(TlsFiles::from_options(None, p()).is_err());
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_pair(dir.path(), "a");
        let b = write_pair(dir.path(), "b");
        assert!(load(&a).is_ok());
        let mismatched = TlsFiles {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        let e = format!("{:#}", load(&mismatched).unwrap_err());
        assert!(e.contains("does not belong"), "{e}");
        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, "not pem").unwrap();
        let e = format!(
            "{:#}",
            load(&TlsFiles {
                cert: garbage.clone(),
                key: a.key.clone()
            })
            .unwrap_err()
        );
        assert!(e.contains("no certificate"), "{e}");
        let e = format!(
            "{:#}",
            load(&TlsFiles {
                cert: dir.path().join("missing"),
                key: a.key.clone()
            })
            .unwrap_err()
        );
        assert!(e.contains("cannot read certificate"), "{e}");
    }

    #[test]
    fn a_failed_reload_keeps_the_certificate_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_pair(dir.path(), "a");
        let resolver = CertResolver::load(a.clone()).unwrap();
        let before = resolver.current();
        std::fs::write(&a.cert, "broken").unwrap();
        assert!(resolver.reload().is_err());
        assert!(Arc::ptr_eq(&before, &resolver.current()));
        // A good new pair replaces it.
        let b = write_pair(dir.path(), "b");
        std::fs::copy(&b.cert, &a.cert).unwrap();
        std::fs::copy(&b.key, &a.key).unwrap();
        resolver.reload().unwrap();
        assert_ne!(before.cert, resolver.current().cert);
        let config = resolver.server_config().unwrap();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
    }
}
