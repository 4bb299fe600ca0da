//! The scenarios. Each starts the systems it measures and stops them.

pub mod types;
