//! The scenarios. Each starts the systems it measures, one at a time, and
//! stops each (by dropping it) before starting the next, so no two systems
//! share the machine during a measurement; `paired` alone keeps its systems
//! running together and loads one at a time, so drift cannot tell them apart.

pub mod backlog;
pub mod latency;
pub mod mixed;
pub mod paired;
pub mod pop;
pub mod scale;
pub mod sdk;
pub mod send;
pub mod types;

use crate::pier::Pier;
use crate::record::Record;
use crate::system::{Spec, System};

/// What every scenario needs to know about the run.
pub struct Ctx {
    /// Small sizes and Pier only: checks the tool works (CI smoke run).
    pub quick: bool,
    /// Measure the peers (Redis, RabbitMQ, NATS) and the ceilings too.
    pub peers: bool,
    /// When not empty, only the systems whose label contains one of these
    /// (for a before/after of one comparison without the whole field).
    pub only: Vec<String>,
    /// When not empty, the concurrencies `send` measures.
    pub concurrency: Vec<usize>,
}

impl Ctx {
    /// The systems a scenario compares: Pier standalone (and cluster when
    /// asked), then the durable peers (consuming ones only for `pops`),
    /// then the machine's ceilings (write-only ones, for `send`).
    pub fn systems(&self, cluster: bool, pops: bool, ceilings: bool) -> Vec<Spec> {
        let mut v = vec![Pier::standalone_spec()];
        if cluster {
            v.push(Pier::cluster_spec());
        }
        // TLS on vs off, when asked for by name (`--only`).
        if self.only.iter().any(|o| o.contains("TLS")) {
            v.push(Pier::standalone_tls_spec());
        }
        if self.only.iter().any(|o| o.contains("auth")) {
            v.push(Pier::standalone_secure_spec());
        }
        // Tracing and OTLP export on vs off (issue 16), likewise.
        if self.only.iter().any(|o| o.contains("otel")) {
            v.push(Pier::standalone_otel_low_spec());
            v.push(Pier::standalone_otel_full_spec());
        }
        if self.peers && !self.quick {
            v.extend(
                crate::peers::durable_peers()
                    .into_iter()
                    .filter(|s| !pops || s.pops),
            );
            if ceilings {
                v.extend(crate::peers::ceilings());
            }
        }
        if !self.only.is_empty() {
            v.retain(|s| self.only.iter().any(|o| s.label.contains(o.as_str())));
        }
        v
    }

    /// Picks the full or the quick value.
    pub fn size<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

/// Starts a system, or says why it could not and moves on: a peer that does
/// not start must not stop the rest of the run (Pier failing to start does).
pub async fn start(spec: &Spec) -> anyhow::Result<Option<Box<dyn System>>> {
    match (spec.start)().await {
        Ok(s) => Ok(Some(s)),
        Err(e) if !spec.label.starts_with("pier") => {
            eprintln!("  skipping {}: {e:#}", spec.label);
            Ok(None)
        }
        Err(e) => Err(e.context(format!("starting {}", spec.label))),
    }
}

/// Measures each system of `specs` once per step, in order: starts it (see
/// [`start`]), resets it before each step, and announces and keeps each
/// step's record. `measure` gives the record and whether to go on to the
/// next step with this system.
pub async fn each_step<T: Copy>(
    specs: Vec<Spec>,
    steps: &[T],
    mut measure: impl AsyncFnMut(&Spec, &dyn System, T) -> anyhow::Result<(Record, bool)>,
) -> anyhow::Result<Vec<Record>> {
    let mut out = Vec::new();
    for spec in specs {
        let Some(sys) = start(&spec).await? else {
            continue;
        };
        for &step in steps {
            sys.reset().await?;
            let (r, go_on) = measure(&spec, sys.as_ref(), step).await?;
            r.announce();
            out.push(r);
            if !go_on {
                break;
            }
        }
    }
    Ok(out)
}

/// A 1 KiB body (the default of every scenario).
pub fn body_1k() -> Vec<u8> {
    vec![b'x'; 1024]
}
