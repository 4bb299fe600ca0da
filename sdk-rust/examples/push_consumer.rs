//! PushConsumer: a listener per message, until Ctrl-C (then a graceful
//! shutdown that finishes the messages already received).
//!
//! ```sh
//! pier group create billing
//! cargo run -p pier-sdk --example push_consumer -- 127.0.0.1:8081
//! ```

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pier::{ConsumeResult, FilterExpression, MessageView, PushConsumer};

#[tokio::main]
async fn main() -> pier::Result<()> {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let consumer = PushConsumer::builder(common::config()?, "billing")
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
