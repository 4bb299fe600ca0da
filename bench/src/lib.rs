//! Pier's benchmark tool. Its scenarios (send, pop, latency, backlog, scale
//! and the peers they compare against) are tracked in their own issue and
//! not written yet; the crate exists so the workspace layout is complete.
