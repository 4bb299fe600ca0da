//! The deployment recipe under test: one `pier-store`, two `pier-proxy` on
//! fixed addresses (a killed proxy comes back where the balancer expects
//! it), nginx in front with `deploy/nginx/pier.conf`, and a chaos thread
//! that kills a proxy (`SIGKILL`) and restarts it, again and again.
//!
//! nginx is Debian's, installed by `tests/scripts/setup-nginx.sh`; it runs
//! from a temporary directory on ephemeral 127.0.0.1 ports as one process
//! (`master_process off`, so no worker outlives it) and is stopped by PID.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::Node;

/// The nginx binary `setup-nginx.sh` found or installed.
pub fn nginx_binary() -> PathBuf {
    let out = crate::setup_once("setup-nginx.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default().trim();
    assert!(!last.is_empty(), "setup-nginx.sh printed no path");
    PathBuf::from(last)
}

/// A free port on 127.0.0.1 (free when asked; the caller binds it soon).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// One store and two proxies of it.
pub struct Fleet {
    pub store: Node,
    /// The proxies' addresses, fixed for the fleet's life.
    pub proxy_addrs: Vec<String>,
    proxies: Arc<Mutex<Vec<Node>>>,
    _data: TempDir,
}

fn start_proxy(addr: &str, store: &str) -> Node {
    Node::start("pier-proxy", &["--listen", addr, "--store", store])
}

impl Fleet {
    pub fn start() -> Fleet {
        let data = tempfile::tempdir().expect("temp dir");
        let store = Node::store(data.path());
        let proxies: Vec<Node> = (0..2).map(|_| Node::proxy_of(&store)).collect();
        Fleet {
            proxy_addrs: proxies.iter().map(Node::endpoint).collect(),
            proxies: Arc::new(Mutex::new(proxies)),
            store,
            _data: data,
        }
    }

    /// Starts killing a proxy (`SIGKILL`) every `every`, the two in turn,
    /// each restarted on its address after `down`.
    pub fn chaos(&self, every: Duration, down: Duration) -> Chaos {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, proxies) = (stop.clone(), self.proxies.clone());
            let (addrs, store) = (self.proxy_addrs.clone(), self.store.addr.clone());
            std::thread::spawn(move || {
                let mut kills = 0usize;
                let sleep_unless_stopped = |d: Duration| {
                    let end = Instant::now() + d;
                    while Instant::now() < end && !stop.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    !stop.load(Ordering::Acquire)
                };
                while sleep_unless_stopped(every) {
                    let i = kills % addrs.len();
                    lock(&proxies)[i].kill();
                    kills += 1;
                    std::thread::sleep(down);
                    let node = start_proxy(&addrs[i], &store);
                    lock(&proxies)[i] = node;
                }
                kills
            })
        };
        Chaos {
            stop,
            thread: Some(thread),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The chaos thread; [`Chaos::stop`] ends it and returns how many kills it
/// made (dropping it stops it too).
pub struct Chaos {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<usize>>,
}

impl Chaos {
    pub fn stop(mut self) -> usize {
        self.stop_now()
    }

    fn stop_now(&mut self) -> usize {
        self.stop.store(true, Ordering::Release);
        self.thread
            .take()
            .map_or(0, |t| t.join().expect("chaos thread panicked"))
    }
}

impl Drop for Chaos {
    fn drop(&mut self) {
        if self.thread.is_some() && !std::thread::panicking() {
            self.stop_now();
        } else {
            self.stop.store(true, Ordering::Release);
        }
    }
}

/// A self-signed CA and a server certificate it signed for IP 127.0.0.1,
/// made with the `openssl` CLI in `dir`: (ca.crt, server.crt, server.key).
pub fn test_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    // Every path is one word (a temporary directory): the openssl command
    // lines below are split at white space.
    let p = |n: &str| dir.join(n).to_str().expect("utf-8 path").to_owned();
    let (ca_key, ca, key, csr, crt, ext) = (
        p("ca.key"),
        p("ca.crt"),
        p("server.key"),
        p("server.csr"),
        p("server.crt"),
        p("server.ext"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write extensions");
    let steps = [
        format!("req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=Pier-test-CA -keyout {ca_key} -out {ca}"),
        format!("req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout {key} -out {csr}"),
        format!("x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -CAcreateserial -days 2 -extfile {ext} -out {crt}"),
    ];
    for step in steps {
        // tests/scripts/setup-nginx.sh installs openssl.
        let args: Vec<&str> = step.split_whitespace().collect();
        crate::run_ok(
            Command::new("openssl").args(&args),
            &format!("openssl {step}"),
        );
    }
    (ca.into(), crt.into(), key.into())
}

/// `deploy/nginx/pier.conf` with its example addresses, ports and
/// certificate paths replaced; panics when the recipe no longer has what
/// is replaced, so recipe and test cannot drift apart.
pub fn nginx_recipe(
    upstreams: &[String],
    port: u16,
    tls_port: u16,
    crt: &Path,
    key: &Path,
) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/pier.conf");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut out = String::new();
    let mut servers = 0;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("server 10.0.0.") {
            // The example upstreams: one line per real proxy, same options.
            servers += 1;
            if servers == 1 {
                let options = t.split_once(' ').map_or("", |(_, r)| r);
                let options = options.split_once(' ').map_or(";", |(_, r)| r);
                for u in upstreams {
                    out.push_str(&format!("    server {u} {options}\n"));
                }
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert_eq!(servers, 2, "deploy/nginx/pier.conf: example upstream lines");
    let replace = |s: String, from: &str, to: &str| {
        assert!(s.contains(from), "deploy/nginx/pier.conf has no {from:?}");
        s.replace(from, to)
    };
    let out = replace(
        out,
        "listen 8081 http2;",
        &format!("listen 127.0.0.1:{port} http2;"),
    );
    let out = replace(
        out,
        "listen 8443 ssl http2;",
        &format!("listen 127.0.0.1:{tls_port} ssl http2;"),
    );
    let out = replace(out, "/etc/pier/tls/pier.crt", crt.to_str().expect("utf-8"));
    replace(out, "/etc/pier/tls/pier.key", key.to_str().expect("utf-8"))
}

/// nginx running the recipe in front of `upstreams`.
pub struct Nginx {
    child: Option<Child>,
    pub port: u16,
    pub tls_port: u16,
    /// The CA clients trust for the TLS port.
    pub ca: PathBuf,
    pub dir: TempDir,
}

impl Nginx {
    pub fn start(binary: &Path, upstreams: &[String]) -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let (ca, crt, key) = test_certificates(d);
        let (port, tls_port) = (free_port(), free_port());
        std::fs::write(
            d.join("pier.conf"),
            nginx_recipe(upstreams, port, tls_port, &crt, &key),
        )
        .expect("write pier.conf");
        let ds = d.display();
        std::fs::write(
            d.join("nginx.conf"),
            format!(
                "daemon off;\nmaster_process off;\npid {ds}/nginx.pid;\nerror_log {ds}/error.log info;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{\n  access_log {ds}/access.log;\n  client_body_temp_path {ds}/body;\n  include {ds}/pier.conf;\n}}\n"
            ),
        )
        .expect("write nginx.conf");
        let mut child = Command::new(binary)
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-e")
            .arg(d.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let deadline = Instant::now() + Duration::from_secs(15);
        let up = |p: u16| TcpStream::connect(("127.0.0.1", p)).is_ok();
        while !(up(port) && up(tls_port)) {
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let log = std::fs::read_to_string(d.join("error.log")).unwrap_or_default();
                panic!("nginx did not start ({exited:?}):\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            child: Some(child),
            port,
            tls_port,
            ca,
            dir,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn tls_endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.tls_port)
    }

    /// The end of nginx's error log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // One process (master_process off): SIGKILL leaves nothing behind.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
