//! libsslsess: OpenSSL's session cache, taken over for existing programs.
//!
//! Modules map to the layers of the design:
//! - [`cache`]: the cache core, pure Rust, unit-tested on its own;
//! - `session`, `context`, `libssl`: the glue to the real libssl objects
//!   (session references, per-context state, the real libssl functions),
//!   and `clock`, the system clock the caches of real contexts read;
//! - `boundary`: the exported C functions, thin and panic-safe;
//! - `errors`, `config`: the error queue and load-time configuration;
//! - `sync`: the locks, and what a race detector is told about them.

pub mod cache;

mod binding;
mod boundary;
mod clock;
mod config;
mod context;
mod errors;
mod libssl;
mod session;
mod sync;
