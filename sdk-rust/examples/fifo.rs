//! FIFO: messages of one message group are consumed in send order.
//!
//! ```sh
//! pier topic create trades --type fifo
//! pier group create matcher --fifo
//! cargo run -p pier-sdk --example fifo -- 127.0.0.1:8081
//! ```

mod common;

use std::time::Duration;

use pier::{ConsumeResult, FilterExpression, Message, MessageView, Producer, PushConsumer};

#[tokio::main]
async fn main() -> pier::Result<()> {
    let config = common::config()?;
    let producer = Producer::builder(config.clone())
        .topic("trades")
        .start()
        .await?;
    for i in 0..5 {
        for account in ["alice", "bob"] {
            let m = Message::builder("trades", format!("{account} step {i}"))
                .message_group(account)
                .build()?;
            producer.send(&m).await?;
        }
    }
    producer.shutdown().await;

    let consumer = PushConsumer::builder(config, "matcher")
        .subscribe("trades", FilterExpression::all())
        .listener(|m: MessageView| async move {
            println!("[{}] {}", m.message_group().unwrap_or("-"), m.body_text());
            ConsumeResult::Success
        })
        .start()
        .await?;
    println!("FIFO group: {}", consumer.is_fifo());
    tokio::time::sleep(Duration::from_secs(3)).await;
    consumer.shutdown().await;
    Ok(())
}
