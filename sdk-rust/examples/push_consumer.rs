//! PushConsumer: a listener per message, until Ctrl-C (then a graceful
//! shutdown that finishes the messages already received).
//!
//! ```sh
//! pier group create billing
//! cargo run -p pier-sdk --example push_consumer -- 127.0.0.1:8081
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pier::{ClientConfig, ConsumeResult, FilterExpression, MessageView, PushConsumer};

fn endpoint() -> String {
    std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PIER_ENDPOINT").ok())
        .unwrap_or_else(|| "127.0.0.1:8081".into())
}

#[tokio::main]
async fn main() -> pier::Result<()> {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let consumer = PushConsumer::builder(ClientConfig::new(&endpoint())?, "billing")
        .subscribe("orders", FilterExpression::all())
        .max_cache_messages(256)
        .consumption_concurrency(8)
        .listener(move |m: MessageView| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::Relaxed);
                println!("{}: {}", m.message_id(), m.body_text());
                // Failure: the message comes back after the group's retry delay.
                ConsumeResult::Success
            }
        })
        .start()
        .await?;
    println!("consuming; Ctrl-C to stop");
    let _ = tokio::signal::ctrl_c().await;
    consumer.shutdown().await;
    println!("consumed {}", count.load(Ordering::Relaxed));
    Ok(())
}
