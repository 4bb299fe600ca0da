//! Per-queue message logs: where appended messages go ([`append`]), the
//! group-commit thread that makes them durable ([`commit`]), reading them
//! back, the key and id index written with them ([`index`]), and emptying a
//! topic ([`purge`]).

mod append;
mod commit;
pub(crate) mod index;
mod purge;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use pier_proto::store::StoredMessage;
use rocksdb::Direction;

use crate::catalog::TopicEntry;
use crate::clock::SharedClock;
use crate::db::{self, keys, Cf, Db};
use crate::error::Result;

pub use commit::FlushMode;
pub(crate) use commit::{CommitHandle, Committer, Placed, Put, Writes};

/// Marks an encoded [`StoredMessage`] as entering its log at `now_ms`
/// (`visible_since_ms`) without decoding it: protobuf reads a scalar field
/// given twice as its last value, so appending the one encoded field is
/// enough. For delay timers firing in bulk, where a decode and re-encode of
/// each message would be wasted work.
pub(crate) fn stamp_visible_since(encoded: &mut Vec<u8>, now_ms: u64) {
    let stamp = StoredMessage {
        visible_since_ms: now_ms.min(i64::MAX as u64) as i64,
        ..StoredMessage::default()
    };
    // Encoding into a Vec only fails for lack of capacity, which Vec grows.
    let _ = prost::Message::encode(&stamp, encoded);
}

/// The one field of a [`StoredMessage`] a background thread reads to
/// continue the message's trace (same tag): decoding only it skips the
/// body instead of copying it.
#[derive(Clone, PartialEq, prost::Message)]
struct TraceContextOnly {
    #[prost(string, tag = "15")]
    trace_context: String,
}

/// The `traceparent` an encoded [`StoredMessage`] carries, if any.
pub(crate) fn trace_context_of(encoded: &[u8]) -> Option<String> {
    let t: TraceContextOnly = prost::Message::decode(encoded).ok()?;
    (!t.trace_context.is_empty()).then_some(t.trace_context)
}

/// The message logs of every topic and the thread that appends to them.
pub(crate) struct MessageLog {
    db: Arc<Db>,
    clock: SharedClock,
    committer: Committer,
    /// Queue of the next message sent without one (round robin).
    round_robin: AtomicUsize,
}

impl MessageLog {
    pub(crate) fn start(db: Arc<Db>, clock: SharedClock, flush: FlushMode) -> Result<MessageLog> {
        Ok(MessageLog {
            committer: Committer::start(db.clone(), flush)?,
            db,
            clock,
            round_robin: AtomicUsize::new(0),
        })
    }

    /// Returns a handle for threads that append (the timer thread).
    pub(crate) fn commit_handle(&self) -> Result<CommitHandle> {
        self.committer.handle()
    }

    /// Writes with the next group commit; answers once durable.
    pub(crate) async fn write(&self, topic: Arc<TopicEntry>, writes: Writes) -> Result<Placed> {
        self.committer.write(topic, writes).await
    }

    /// Reads one message, if still stored.
    pub(crate) fn read(
        &self,
        topic: &TopicEntry,
        queue: u32,
        offset: u64,
    ) -> Result<Option<StoredMessage>> {
        match self
            .db
            .get(Cf::Log, &keys::log_key(topic.id, queue, offset))?
        {
            Some(v) => Ok(Some(decode_message(&*v, topic, queue, offset)?)),
            None => Ok(None),
        }
    }

    /// Iterates over the stored messages of one queue from offset `from`
    /// up to (not including) `to`.
    pub(crate) fn read_range<'a>(
        &'a self,
        topic: &'a TopicEntry,
        queue: u32,
        from: u64,
        to: u64,
    ) -> Result<impl Iterator<Item = Result<(u64, StoredMessage)>> + 'a> {
        let upper = keys::log_key(topic.id, queue, to).to_vec();
        let entries = self.db.scan(
            Cf::Log,
            &keys::log_key(topic.id, queue, from),
            Direction::Forward,
            Some(upper),
        )?;
        Ok(entries.filter_map(move |item| match item {
            Err(e) => Some(Err(e)),
            Ok((k, v)) => {
                let offset = keys::log_offset(&k)?;
                Some(decode_message(Bytes::from(v), topic, queue, offset).map(|m| (offset, m)))
            }
        }))
    }

    /// Counts the messages a topic holds, entry by entry (a dead-letter
    /// queue has holes where redriven messages left, which the queue
    /// bounds do not show). For admin answers, not hot paths.
    pub(crate) fn count(&self, topic: &TopicEntry) -> Result<u64> {
        let mut n = 0;
        for (q, ql) in (0u32..).zip(&topic.queues) {
            for item in self.read_keys(topic, q, ql.min_offset(), ql.committed())? {
                item?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn read_keys(
        &self,
        topic: &TopicEntry,
        queue: u32,
        from: u64,
        to: u64,
    ) -> Result<impl Iterator<Item = Result<db::Entry>> + '_> {
        let upper = keys::log_key(topic.id, queue, to).to_vec();
        self.db.scan(
            Cf::Log,
            &keys::log_key(topic.id, queue, from),
            Direction::Forward,
            Some(upper),
        )
    }

    /// Lets queued appends finish, then stops the commit thread.
    pub(crate) fn shutdown(&self) {
        self.committer.shutdown();
    }
}

/// Decodes a log entry and fills in where it is stored (not stored with it).
/// From a pinned read (`&[u8]`) the body is copied once, out of RocksDB's
/// block; from an iterator's owned value (`Bytes`) it is a view of that value.
fn decode_message(
    v: impl Buf,
    topic: &TopicEntry,
    queue: u32,
    offset: u64,
) -> Result<StoredMessage> {
    let mut m: StoredMessage = db::decode_buf(v, "a stored message")?;
    m.topic = topic.topic.name.clone();
    m.queue = queue;
    m.offset = offset;
    Ok(m)
}
