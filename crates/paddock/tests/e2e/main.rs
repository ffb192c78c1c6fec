//! End-to-end tests of the `paddock` binary and server: one test binary
//! (each file is a module), so the suite links the server once.

mod bench;
mod binary;
mod client_ops;
mod common;
mod disk_full;
mod durability;
mod ensemble;
mod jobs;
mod operator;
mod session_faults;
mod watches;
mod wire;
