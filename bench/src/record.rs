//! One result row: the record format of `bench/results/latest.json`.

use crate::load::Outcome;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub scenario: String,
    pub system: String,
    pub config: String,
    pub concurrency: usize,
    /// Messages per second offered (open loop); `None` for closed loop.
    pub rate: Option<f64>,
    pub duration_s: f64,
    pub msgs: u64,
    pub throughput_msgs_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Resident memory of the server processes; `None` where not measured.
    pub rss_mib: Option<f64>,
}

impl Record {
    pub fn new(
        scenario: &str,
        system: &str,
        config: String,
        concurrency: usize,
        out: &Outcome,
        rss_mib: Option<f64>,
    ) -> Record {
        let ms = |v: u64| v as f64 / 1000.0;
        let h = &out.hist;
        Record {
            scenario: scenario.into(),
            system: system.into(),
            config,
            concurrency,
            rate: None,
            duration_s: out.elapsed.as_secs_f64(),
            msgs: out.msgs,
            throughput_msgs_per_s: out.throughput(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            rss_mib,
        }
    }

    pub fn with_rate(mut self, rate: f64) -> Record {
        self.rate = Some(rate);
        self
    }

    /// Prints the row as it lands, so a long run shows its figures early.
    pub fn announce(&self) {
        eprintln!(
            "  {:<10} {:<10} {:<48} c={:<4} {:>9.0} msg/s  p50 {:>7.2}  p99 {:>7.2}  max {:>8.2} ms{}",
            self.scenario,
            self.system,
            self.config,
            self.concurrency,
            self.throughput_msgs_per_s,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.rss_mib
                .map_or(String::new(), |r| format!("  rss {r:.0} MiB"))
        );
    }
}
