//! The tokio shell of a Paddock server: it accepts connections, runs
//! sessions, and moves requests between the wire (`paddock-proto`) and the
//! tree (`paddock-tree`). Protocol rules and tree semantics live there.

pub mod admin;
mod admission;
pub mod config;
mod conn;
pub mod fourlw;
mod frames;
mod jaas;
mod order;
pub mod outbox;
pub mod pipeline;
pub mod proposal;
mod reconfig;
pub mod recovery;
mod sasl;
pub mod server;
pub mod session;
pub mod shared;
pub mod socket;
pub mod stats;
mod tls;
pub mod watches;

pub use config::ServerConfig;
pub use server::{Server, StartError, StuckStopping};
