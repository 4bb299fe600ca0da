//! Transactions: commit, rollback, and a checker answering the server's
//! check of a transaction left open.
//!
//! ```sh
//! pier topic create payments --type transaction
//! cargo run -p pier-sdk --example transaction -- 127.0.0.1:8081
//! ```

use std::time::Duration;

use pier::{ClientConfig, Message, MessageView, Producer, TransactionResolution};

fn endpoint() -> String {
    std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PIER_ENDPOINT").ok())
        .unwrap_or_else(|| "127.0.0.1:8081".into())
}

#[tokio::main]
async fn main() -> pier::Result<()> {
    let producer = Producer::builder(ClientConfig::new(&endpoint())?)
        .topic("payments")
        // The server asks about a transaction left open after 2 s.
        .orphan_check_after(Duration::from_secs(2))
        .transaction_checker(|m: MessageView| async move {
            // Look the outcome up in the application's own records.
            println!("server check for {}: committing", m.message_id());
            TransactionResolution::Commit
        })
        .start()
        .await?;

    let mut tx = producer.begin_transaction()?;
    tx.send(&Message::builder("payments", "debit 10").build()?)
        .await?;
    // ... the local transaction succeeds:
    tx.commit().await?;

    let mut tx = producer.begin_transaction()?;
    tx.send(&Message::builder("payments", "debit 99").build()?)
        .await?;
    tx.rollback().await?;

    let mut tx = producer.begin_transaction()?;
    tx.send(&Message::builder("payments", "debit 5").build()?)
        .await?;
    drop(tx); // neither committed nor rolled back: the checker decides.
    tokio::time::sleep(Duration::from_secs(4)).await;
    producer.shutdown().await;
    Ok(())
}
