//! Integration tests: each module drives the real `exportd` binary through [`util::Test`].

mod access;
mod alerts;
mod cli;
mod daemon;
mod deftest;
mod encrypt;
mod export;
mod messages;
mod objects;
mod page;
mod parquet;
mod postgres;
mod retention;
mod secrets;
mod sftp;
mod systemd;
mod util;
mod validate;
