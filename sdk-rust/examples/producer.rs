//! Sends a few messages (one by one, then as a batch).
//!
//! ```sh
//! pier topic create orders
//! cargo run -p pier-sdk --example producer -- 127.0.0.1:8081
//! ```
//! The endpoint comes from the first argument, else `PIER_ENDPOINT`, else
//! 127.0.0.1:8081 (several addresses: `host1:8081,host2:8081`).

use pier::{ClientConfig, Message, Producer};

fn endpoint() -> String {
    std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PIER_ENDPOINT").ok())
        .unwrap_or_else(|| "127.0.0.1:8081".into())
}

#[tokio::main]
async fn main() -> pier::Result<()> {
    let producer = Producer::builder(ClientConfig::new(&endpoint())?)
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
