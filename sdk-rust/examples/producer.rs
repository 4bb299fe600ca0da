//! Sends a few messages (one by one, then as a batch).
//!
//! ```sh
//! pier topic create orders
//! cargo run -p pier-sdk --example producer -- 127.0.0.1:8081
//! ```
//! The endpoint comes from the first argument, else `PIER_ENDPOINT`, else
//! 127.0.0.1:8081 (several addresses: `host1:8081,host2:8081`).

mod common;

use pier::{Message, Producer};

#[tokio::main]
async fn main() -> pier::Result<()> {
    let producer = Producer::builder(common::config()?)
        .topic("orders")
        .start()
        .await?;
    for i in 0..3 {
        let message = Message::builder("orders", format!("order {i}"))
            .tag("created")
            .key(format!("order-{i}"))
            .build()?;
        let receipt = producer.send(&message).await?;
        println!("sent {} (offset {})", receipt.message_id, receipt.offset);
    }
    let batch = (3..6)
        .map(|i| Message::builder("orders", format!("order {i}")).build())
        .collect::<pier::Result<Vec<_>>>()?;
    for receipt in producer.send_batch(&batch).await? {
        println!("sent {} in a batch", receipt.message_id);
    }
    producer.shutdown().await;
    Ok(())
}
