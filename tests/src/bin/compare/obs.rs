//! Observations: what one case saw, and the small conversions they need.

use super::*;

/// What one case saw. `outcome` is what the table compares (a status code,
/// or a short class of behaviour); `message` is the server's status message;
/// `detail` holds counts and timings that are shown but not compared.
#[derive(Clone, Debug, Default)]
pub(crate) struct Obs {
    pub(crate) outcome: String,
    pub(crate) message: String,
    pub(crate) detail: String,
}

impl Obs {
    pub(crate) fn new(outcome: impl Into<String>, message: impl Into<String>) -> Obs {
        Obs {
            outcome: outcome.into(),
            message: message.into(),
            detail: String::new(),
        }
    }
    pub(crate) fn detail(mut self, d: impl Into<String>) -> Obs {
        let d = d.into();
        if self.detail.is_empty() {
            self.detail = d;
        } else if !d.is_empty() {
            self.detail = format!("{}; {d}", self.detail);
        }
        self
    }
    pub(crate) fn transport(s: &tonic::Status) -> Obs {
        Obs::new(format!("gRPC {:?}", s.code()), s.message())
    }
    pub(crate) fn is(&self, code: Code) -> bool {
        self.outcome == code.as_str_name()
    }
}

pub(crate) fn code_name(code: i32) -> String {
    Code::try_from(code)
        .map(|c| c.as_str_name().to_owned())
        .unwrap_or_else(|_| format!("code {code}"))
}

pub(crate) fn status_obs(s: Option<&Status>) -> Obs {
    match s {
        Some(s) => Obs::new(code_name(s.code), s.message.clone()),
        None => Obs::new("no status", ""),
    }
}

/// What a unary call saw: the status its reply carries (`status` takes it
/// out of the reply), or the gRPC error the call failed with.
pub(crate) fn reply_obs<T>(
    r: Result<tonic::Response<T>, tonic::Status>,
    status: impl FnOnce(T) -> Option<Status>,
) -> Obs {
    match r {
        Ok(r) => status_obs(status(r.into_inner()).as_ref()),
        Err(e) => Obs::transport(&e),
    }
}

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

pub(crate) fn dur_ms(ms: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: ms / 1000,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

pub(crate) fn now_ts(offset_ms: i64) -> prost_types::Timestamp {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
        + offset_ms;
    prost_types::Timestamp {
        seconds: now.div_euclid(1000),
        nanos: (now.rem_euclid(1000) * 1_000_000) as i32,
    }
}
