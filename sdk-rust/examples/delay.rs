//! Delay messages: delivered at their time; one is recalled before.
//!
//! ```sh
//! pier topic create reminders --type delay
//! pier group create reminder-svc
//! cargo run -p pier-sdk --example delay -- 127.0.0.1:8081
//! ```

mod common;

use std::time::{Duration, Instant};

use pier::{FilterExpression, Message, Producer, SimpleConsumer};

#[tokio::main]
async fn main() -> pier::Result<()> {
    let config = common::config()?;
    let producer = Producer::builder(config.clone())
        .topic("reminders")
        .start()
        .await?;
    let start = Instant::now();
    let kept = Message::builder("reminders", "in 3 seconds")
        .delay(Duration::from_secs(3))
        .build()?;
    producer.send(&kept).await?;
    let cancelled = Message::builder("reminders", "never")
        .delay(Duration::from_secs(3))
        .build()?;
    let receipt = producer.send(&cancelled).await?;
    if let Some(handle) = &receipt.recall_handle {
        producer.recall("reminders", handle).await?;
        println!("recalled {}", receipt.message_id);
    }
    producer.shutdown().await;

    let consumer = SimpleConsumer::builder(config, "reminder-svc")
        .subscribe("reminders", FilterExpression::all())
        .await_duration(Duration::from_secs(5))
        .start()
        .await?;
    while start.elapsed() < Duration::from_secs(8) {
        for m in consumer.receive(8, Duration::from_secs(30)).await? {
            println!("after {:?}: {}", start.elapsed(), m.body_text());
            consumer.ack(&m).await?;
        }
    }
    consumer.shutdown().await;
    Ok(())
}
