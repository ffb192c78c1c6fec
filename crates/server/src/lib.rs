//! The tokio shell of a Paddock server: it accepts connections, runs
//! sessions, and moves requests between the wire (`paddock-proto`) and the
//! tree (`paddock-tree`). Protocol rules and tree semantics live there.

pub mod admin;
pub mod config;
mod conn;
pub mod fourlw;
mod frames;
pub mod outbox;
pub mod pipeline;
mod reconfig;
pub mod recovery;
pub mod server;
pub mod session;
pub mod shared;
pub mod stats;
pub mod watches;

pub use config::ServerConfig;
pub use server::{Server, StartError, StuckStopping};
