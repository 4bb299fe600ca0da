//! CPU limits for the scaling scenario. On a 2-core machine the only way to
//! make the proxies (not the store or the load generator) the bottleneck is
//! to give each proxy a small, fixed CPU share: a cgroup CPU quota (cgroup
//! v1 `cpu` controller or cgroup v2), so one proxy can use at most `share`
//! of a core and two proxies twice that, while the rest of the machine stays
//! free for the store and the load generator.

use std::path::PathBuf;

use anyhow::Context;

/// A cgroup with a CPU quota; removed (processes moved back) when dropped.
pub struct CpuLimit {
    dir: PathBuf,
    root_procs: PathBuf,
}

const PERIOD_US: u64 = 100_000;

impl CpuLimit {
    /// Puts process `pid` (all its threads) in a new cgroup limited to
    /// `share` of one CPU.
    pub fn apply(pid: u32, share: f64) -> anyhow::Result<CpuLimit> {
        let quota = ((share * PERIOD_US as f64) as u64).max(1_000);
        let name = format!("pier-bench-{}-{pid}", std::process::id());
        let v1 = PathBuf::from("/sys/fs/cgroup/cpu");
        let v2 = PathBuf::from("/sys/fs/cgroup");
        let (dir, root_procs) = if v1.join("cpu.cfs_quota_us").exists() {
            let dir = v1.join(&name);
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            std::fs::write(dir.join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
            std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string())?;
            (dir, v1.join("cgroup.procs"))
        } else if v2.join("cgroup.controllers").exists() {
            let dir = v2.join(&name);
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            std::fs::write(dir.join("cpu.max"), format!("{quota} {PERIOD_US}"))?;
            (dir, v2.join("cgroup.procs"))
        } else {
            anyhow::bail!("no writable cgroup cpu controller (needed to limit a proxy's CPU)");
        };
        std::fs::write(dir.join("cgroup.procs"), pid.to_string())
            .with_context(|| format!("move {pid} into {}", dir.display()))?;
        Ok(CpuLimit { dir, root_procs })
    }
}

impl Drop for CpuLimit {
    fn drop(&mut self) {
        // A cgroup can only be removed once empty: move anything still
        // inside back to the root first.
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in procs.split_whitespace() {
                let _ = std::fs::write(&self.root_procs, pid);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}
