//! The store's gauges, observed when the meter provider collects (a
//! Prometheus scrape): backlog per subscription, catalog sizes, storage.
//!
//! The callbacks hold weak references, so a closed store is not kept alive
//! by the meter; after it is gone they observe nothing. The backlog of all
//! subscriptions is computed once per collection and shared by the four
//! gauges that read it (see [`Snapshot`]).

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use opentelemetry::metrics::{AsyncInstrument, Meter, ObservableGauge};
use opentelemetry::KeyValue;

use super::{get, METER};
use crate::catalog::Catalog;
use crate::clock::SharedClock;
use crate::db::{Cf, Db};
use crate::pop::{Consumption, SubGauge};

/// A snapshot younger than this is reused: one collection reads all the
/// backlog gauges within microseconds of each other.
const SNAPSHOT_FRESH: Duration = Duration::from_millis(500);

/// What the gauges read from.
pub(crate) struct Sources {
    pub(crate) catalog: Weak<Catalog>,
    pub(crate) pop: Weak<Consumption>,
    pub(crate) db: Weak<Db>,
    pub(crate) clock: SharedClock,
}

/// The backlog of every subscription, taken at most once per collection.
struct Snapshot {
    sources: Sources,
    last: Mutex<Option<(Instant, Arc<Vec<SubGauge>>)>>,
}

impl Snapshot {
    fn read(&self) -> Arc<Vec<SubGauge>> {
        let mut last = match self.last.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        if let Some((at, v)) = last.as_ref() {
            if at.elapsed() < SNAPSHOT_FRESH {
                return v.clone();
            }
        }
        let fresh = Arc::new(match self.sources.pop.upgrade() {
            Some(pop) => pop.gauges(self.sources.clock.now_ms()),
            None => Vec::new(),
        });
        *last = Some((Instant::now(), fresh.clone()));
        fresh
    }
}

/// Handles of the registered gauges; the store keeps them while open.
pub(crate) struct Gauges(#[allow(dead_code)] Vec<ObservableGauge<u64>>);

/// Registers the store's gauges on the global meter.
pub(crate) fn register(sources: Sources) -> Gauges {
    // The callbacks below read the label caps of `get()`; building those
    // instruments inside a callback would deadlock: a collection (a scrape,
    // an OTLP push) holds the SDK's pipeline lock while it runs callbacks,
    // and creating an instrument takes the same lock. So they exist first.
    let _ = get();
    let meter = opentelemetry::global::meter(METER);
    let catalog = sources.catalog.clone();
    let db = sources.db.clone();
    let snap = Arc::new(Snapshot {
        sources,
        last: Mutex::new(None),
    });
    let mut g = Vec::new();
    let per_sub =
        |name: &'static str, what: &'static str, unit: &'static str, f: fn(&SubGauge) -> u64| {
            let snap = snap.clone();
            gauge(&meter, name, what, unit, move |o| {
                let m = get();
                for s in snap.read().iter() {
                    let labels = [
                        KeyValue::new("topic", m.topics.fold(&s.topic)),
                        KeyValue::new("consumer_group", m.groups.fold(&s.group)),
                    ];
                    o.observe(f(s), &labels);
                }
            })
        };
    g.push(per_sub(
        "rocketmq_consumer_ready_messages",
        "Messages a consumer group can receive now",
        "messages",
        |s| s.backlog.ready,
    ));
    g.push(per_sub(
        "rocketmq_consumer_inflight_messages",
        "Messages delivered to a consumer group and not acked yet",
        "messages",
        |s| s.backlog.inflight,
    ));
    g.push(per_sub(
        "rocketmq_consumer_queueing_latency",
        "How long the oldest message not delivered to the group yet has waited",
        "milliseconds",
        |s| s.backlog.queueing_ms as u64,
    ));
    g.push(per_sub(
        "rocketmq_consumer_lag_latency",
        "How long the oldest message the group has not acked has waited",
        "milliseconds",
        |s| s.backlog.lag_ms as u64,
    ));
    g.push(weak_gauge(
        &meter,
        &catalog,
        ("rocketmq_topic_number", "Topics", ""),
        |c| c.topics().len() as u64,
    ));
    g.push(weak_gauge(
        &meter,
        &catalog,
        ("rocketmq_consumer_group_number", "Consumer groups", ""),
        |c| c.groups().len() as u64,
    ));
    let db_gauge =
        |name: &'static str, what: &'static str, unit: &'static str, f: fn(&Db) -> u64| {
            weak_gauge(&meter, &db, (name, what, unit), f)
        };
    g.push(db_gauge(
        "rocketmq_storage_size",
        "Bytes the store's tables and memtables take",
        "bytes",
        |db| {
            Cf::ALL
                .iter()
                .map(|cf| {
                    db.property(*cf, "rocksdb.total-sst-files-size")
                        .unwrap_or(0)
                        + db.property(*cf, "rocksdb.cur-size-all-mem-tables")
                            .unwrap_or(0)
                })
                .sum()
        },
    ));
    g.push(db_gauge(
        "pier_store_timers_pending",
        "Delay messages waiting for their time (RocksDB's estimate)",
        "messages",
        |db| {
            db.property(Cf::Timer, "rocksdb.estimate-num-keys")
                .unwrap_or(0)
        },
    ));
    g.push(db_gauge(
        "pier_store_transactions_pending",
        "Unresolved transactions (RocksDB's estimate)",
        "messages",
        // Two records per transaction: the half message and its next check.
        |db| {
            db.property(Cf::Txn, "rocksdb.estimate-num-keys")
                .unwrap_or(0)
                / 2
        },
    ));
    Gauges(g)
}

/// A gauge of what `f` reads from `source` while it is alive; `about` is
/// its (name, description, unit).
fn weak_gauge<T: Send + Sync + 'static>(
    meter: &Meter,
    source: &Weak<T>,
    about: (&'static str, &'static str, &'static str),
    f: fn(&T) -> u64,
) -> ObservableGauge<u64> {
    let source = source.clone();
    gauge(meter, about.0, about.1, about.2, move |o| {
        if let Some(s) = source.upgrade() {
            o.observe(f(&s), &[]);
        }
    })
}

fn gauge(
    meter: &Meter,
    name: &'static str,
    what: &'static str,
    unit: &'static str,
    observe: impl Fn(&dyn AsyncInstrument<u64>) + Send + Sync + 'static,
) -> ObservableGauge<u64> {
    let mut b = meter
        .u64_observable_gauge(name)
        .with_description(what)
        .with_callback(observe);
    if !unit.is_empty() {
        b = b.with_unit(unit);
    }
    b.build()
}
