//! exportd: a declarative export daemon for lead data.
//!
//! Definitions (`exports.d/*.toml`) are validated into specs (`config`), scheduled
//! (`schedule`), extracted from the lead store (`store`), shaped (`fields`), encoded (`format`),
//! compressed (`compress`), split into parts and delivered (`pipeline`, `deliver`). See
//! ARCHITECTURE.md for the map.

pub mod access;
pub mod alerts;
pub mod api;
pub mod chunk;
pub mod cli;
pub mod compress;
pub mod config;
pub mod cost;
pub mod daemon;
pub mod deftest;
pub mod deliver;
pub mod encrypt;
pub mod fields;
pub mod filter;
pub mod format;
pub mod pipeline;
pub mod postgres;
pub mod retention;
pub mod runner;
pub mod schedule;
pub mod state;
pub mod store;
pub mod template;
pub mod text;
pub mod value;

#[cfg(test)]
mod testing;
