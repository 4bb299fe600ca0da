//! A client's session with its servers: the shared [`ClientCore`] (identity,
//! settings, calls with fail-over, background tasks) and the Telemetry
//! stream kept open to every address.

mod client;
mod telemetry;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use self::client::{ClientCore, TransactionCheckHandler};
use crate::error::{Error, Result};

/// Opens the Telemetry sessions of `core` (one per address, owned by the
/// client) and waits, bounded, for the server's first Settings.
pub(crate) async fn start(core: &Arc<ClientCore>) -> Result<()> {
    for i in 0..core.cluster.len() {
        core.spawn(telemetry::run(core.clone(), i));
    }
    let wait = core.timeout().max(Duration::from_secs(3)).saturating_mul(2);
    if core.wait_for_server_settings(wait).await {
        Ok(())
    } else {
        Err(Error::rpc(
            tonic::Code::Unavailable,
            format!(
                "no Settings reply from any of {} within {wait:?}",
                core.endpoints_text()
            ),
        ))
    }
}
