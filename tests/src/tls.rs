//! Test certificates (made with `rcgen`: a CA and server certificates for
//! `127.0.0.1` and `localhost`) and TLS connections to a Pier.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// A certificate authority in a temporary directory, with one server
/// certificate it signed: `ca` (PEM, what clients trust), `cert` and `key`
/// (PEM, what a node serves).
pub struct TestPki {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
}

impl TestPki {
    pub fn new(name: &str) -> TestPki {
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Pier test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = params.self_signed(&ca_key).expect("CA certificate");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).expect("write CA");
        let pki = TestPki {
            cert: dir.path().join("server.pem"),
            key: dir.path().join("server.key"),
            ca,
            _dir: dir,
            ca_cert,
            ca_key,
        };
        pki.issue(&pki.cert, &pki.key);
        pki
    }

    /// Writes a new server certificate for `127.0.0.1` and `localhost`,
    /// signed by this CA, to `cert` and `key` (replacing them whole, as an
    /// operator's `mv` would).
    pub fn issue(&self, cert: &Path, key: &Path) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "pier test server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, cert, key);
    }

    /// Writes a client certificate (named `name`, for client
    /// authentication) signed by this CA to `cert` and `key`.
    pub fn issue_client(&self, name: &str, cert: &Path, key: &Path) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, cert, key);
    }

    /// Signs a certificate of `params` for a new key with this CA, and
    /// writes both to `cert` and `key`.
    fn sign(&self, params: CertificateParams, cert: &Path, key: &Path) {
        let new_key = KeyPair::generate().expect("key");
        let signed = params
            .signed_by(&new_key, &self.ca_cert, &self.ca_key)
            .expect("certificate");
        replace(cert, signed.pem().as_bytes());
        replace(key, new_key.serialize_pem().as_bytes());
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(&self.ca).expect("read CA")
    }

    /// `--tls-cert CERT --tls-key KEY` as strings.
    pub fn flags(&self) -> [String; 4] {
        [
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }
}

/// Writes `path` through a temporary file and a rename: a reader sees the
/// old or the new content, never half of it.
fn replace(path: &Path, content: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).expect("write temporary file");
    std::fs::rename(&tmp, path).expect("rename into place");
}

/// A TLS channel to `endpoint` (`host:port`) trusting only `ca_pem`; tonic
/// refuses a server that does not agree on ALPN `h2`. One connection.
pub async fn tls_channel(
    endpoint: &str,
    ca_pem: &[u8],
) -> Result<Channel, tonic::transport::Error> {
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    Channel::from_shared(format!("https://{endpoint}"))
        .expect("uri")
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// A standalone Pier requiring TLS with a certificate of a new test CA,
/// with a topic of 2 queues and a group reading it, and an admin client to
/// it over TLS; everything stops when it is dropped.
pub struct TlsPier {
    pub pki: TestPki,
    pub c: crate::Raw,
    pub node: crate::Node,
    _data: tempfile::TempDir,
}

impl TlsPier {
    /// `name` names the CA; `topic` and `group` (17 attempts) are created.
    pub async fn start(name: &str, topic: &str, group: &str) -> TlsPier {
        let pki = TestPki::new(name);
        let data = tempfile::tempdir().expect("temp dir");
        let flags = pki.flags();
        let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
        args.push("--tls-required");
        let node = crate::Node::standalone_with(data.path(), &args);
        let ep = node.endpoint();
        let channel = tls_channel(&ep, &pki.ca_pem())
            .await
            .expect("TLS connection");
        let c = crate::Raw::over(&ep, channel);
        c.create_topic(topic, 2).await;
        c.create_group(group, 17).await;
        TlsPier {
            pki,
            c,
            node,
            _data: data,
        }
    }
}

/// A plaintext channel to `endpoint`. One connection.
pub async fn plain_channel(endpoint: &str) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("http://{endpoint}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// A TLS connection to `endpoint` (as `127.0.0.1`) trusting only `ca_pem`,
/// offering the ALPN protocols `alpn`.
pub async fn tls_stream(
    endpoint: &str,
    ca_pem: &[u8],
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, std::io::Error> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.expect("CA PEM")).expect("CA accepted");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(endpoint).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")
        .expect("IP server name")
        .to_owned();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// A bare TLS handshake with `endpoint` offering `alpn`: the protocol the
/// server chose, or the handshake error.
pub async fn handshake(
    endpoint: &str,
    ca_pem: &[u8],
    alpn: &[&[u8]],
) -> Result<Option<Vec<u8>>, std::io::Error> {
    let tls = tls_stream(endpoint, ca_pem, alpn).await?;
    Ok(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
}
