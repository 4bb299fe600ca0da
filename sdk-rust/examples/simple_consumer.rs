//! SimpleConsumer: receive, work, ack; or come back later.
//!
//! ```sh
//! pier group create billing
//! cargo run -p pier-sdk --example simple_consumer -- 127.0.0.1:8081
//! ```

mod common;

use std::time::Duration;

use pier::{FilterExpression, SimpleConsumer};

#[tokio::main]
async fn main() -> pier::Result<()> {
    let consumer = SimpleConsumer::builder(common::config()?, "billing")
        .subscribe("orders", FilterExpression::all())
        .await_duration(Duration::from_secs(5))
        .start()
        .await?;
    let messages = consumer.receive(16, Duration::from_secs(30)).await?;
    println!("received {}", messages.len());
    for m in messages {
        if m.body().is_empty() {
            // Not now: make it visible again in 10 s.
            consumer
                .change_invisible_duration(&m, Duration::from_secs(10))
                .await?;
            continue;
        }
        println!(
            "{} (attempt {}): {}",
            m.message_id(),
            m.delivery_attempt(),
            m.body_text()
        );
        consumer.ack(&m).await?;
    }
    consumer.shutdown().await;
    Ok(())
}
