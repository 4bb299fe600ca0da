//! `paired`: what a setting costs (TLS, authentication, tracing), measured
//! so that this machine's drift cannot decide it.
//!
//! On two cores and a virtual disk one 10 s step moves by 10-20 % from one
//! run to the next, and the drift is slow: a system measured a minute after
//! another meets another disk. Here every system of `--only` runs at once
//! (each its own node and data directory, idle while the others are
//! loaded), and the send load goes to each in turn for a short slice, in
//! alternating order (A B C, C B A, ...). A system's cost is the median,
//! over the rounds, of its rate in a slice against the first system's rate
//! in the same round (slices seconds apart); its throughput is the sum of
//! its slices.

use std::time::Duration;

use super::{body_1k, start, Ctx};
use crate::load::{closed_send, Outcome};
use crate::record::Record;
use crate::system::rss_mib;

/// How long one slice of load lasts, and how many rounds of slices each
/// step makes.
fn slices(ctx: &Ctx) -> (Duration, usize) {
    ctx.size(
        (Duration::from_secs(2), 15),
        (Duration::from_millis(300), 2),
    )
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Record>> {
    let specs = ctx.systems(false, false, false);
    let concurrencies = match ctx.concurrency.as_slice() {
        [] => ctx.size(vec![16, 256], vec![16]),
        asked => asked.to_vec(),
    };
    let (slice, rounds) = slices(ctx);
    let body = body_1k();
    let mut systems = Vec::new();
    for spec in &specs {
        if let Some(sys) = start(spec).await? {
            systems.push((spec.label, sys));
        }
    }
    // A peer that does not start is skipped (`start`): what is left must
    // still be a comparison.
    anyhow::ensure!(
        systems.len() >= 2,
        "paired: needs two or more systems, named with --only (the first in the bench's order is the baseline), e.g. --only \"pier standalone,TLS\"; {} started",
        systems.len()
    );
    let mut out = Vec::new();
    for &c in &concurrencies {
        for (_, sys) in &systems {
            sys.reset().await?;
        }
        // rates[system][round], and every slice's outcome merged per system.
        let mut rates = vec![Vec::with_capacity(rounds); systems.len()];
        let mut totals: Vec<Outcome> = systems.iter().map(|_| Outcome::empty()).collect();
        for round in 0..rounds {
            let order: Vec<usize> = if round.is_multiple_of(2) {
                (0..systems.len()).collect()
            } else {
                (0..systems.len()).rev().collect()
            };
            for i in order {
                let (label, sys) = &systems[i];
                let o =
                    closed_send(sys.as_ref(), c, slice, &body, &format!("{label} c={c}")).await?;
                rates[i].push(o.throughput());
                let total = &mut totals[i];
                total.msgs += o.msgs;
                total.elapsed += o.elapsed;
                total.hist.add(&o.hist).ok();
            }
        }
        let (base_label, _) = systems[0];
        for (i, ((_, sys), total)) in systems.iter().zip(&totals).enumerate() {
            let ratio = median(
                rates[i]
                    .iter()
                    .zip(&rates[0])
                    .map(|(x, b)| x / b.max(f64::MIN_POSITIVE))
                    .collect(),
            );
            let config = format!(
                "{}; {rounds} slices of {:.1} s, median slice ratio to {base_label} {ratio:.3}",
                sys.config(),
                slice.as_secs_f64()
            );
            let r = Record::new(
                "paired",
                &sys.name(),
                config,
                c,
                total,
                rss_mib(&sys.pids()),
            );
            r.announce();
            out.push(r);
        }
    }
    Ok(out)
}

/// The median of `v` (the mean of the two middle values for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }
}
