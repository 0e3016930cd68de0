//! Integration tests: each module drives the real `exportd` binary through [`util::Test`].

mod access;
mod daemon;
mod export;
mod messages;
mod objects;
mod parquet;
mod postgres;
mod retention;
mod sftp;
mod systemd;
mod util;
mod validate;
