//! Integration tests: each module drives the real `exportd` binary through [`util::Test`].

mod access;
mod daemon;
mod export;
mod page;
mod retention;
mod systemd;
mod util;
mod validate;
