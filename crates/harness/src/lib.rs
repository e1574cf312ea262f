//! The multi-region harness: start N regions as real `regionsync` processes (web and
//! scheduler in one), each on its own database, with a fault proxy on every directed link;
//! drive a seeded workload through the public API; kill, restart and skew regions; wait for
//! quiescence and check convergence (QUALITY-BARS R1, R3–R5; `make demo`, `make chaos`).
//!
//! It is a black box on purpose: it depends on no workspace crate, talks to regions over
//! HTTP and reads their databases only to check the end state.

pub mod chaos;
pub mod cluster;
pub mod crash;
pub mod proxy;
pub mod state;
