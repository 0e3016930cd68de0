//! Integration tests: each module drives the real `exportd` binary through [`util::Test`].

mod daemon;
mod export;
mod postgres;
mod systemd;
mod util;
mod validate;
