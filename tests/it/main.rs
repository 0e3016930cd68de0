//! Integration tests: each module drives the real `exportd` binary through [`util::Test`].

mod access;
mod cli;
mod daemon;
mod export;
mod page;
mod retention;
mod systemd;
mod util;
mod validate;
