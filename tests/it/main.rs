//! Integration tests: each module drives the real `exportd` binary through [`util::Test`].

mod util;
mod validate;
