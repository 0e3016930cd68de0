//! Integration tests: each module drives the real `exportd` binary through [`util::Test`].

mod daemon;
mod export;
mod sftp;
mod systemd;
mod util;
mod validate;
