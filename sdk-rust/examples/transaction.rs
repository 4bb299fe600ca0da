//! Transactions: commit, rollback, and a checker answering the server's
//! check of a transaction left open.
//!
//! ```sh
//! pier topic create payments --type transaction
//! cargo run -p pier-sdk --example transaction -- 127.0.0.1:8081
//! ```

mod common;

use std::time::Duration;

use pier::{Message, MessageView, Producer, TransactionResolution};

#[tokio::main]
async fn main() -> pier::Result<()> {
    let producer = Producer::builder(common::config()?)
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
