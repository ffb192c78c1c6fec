//! The in-memory znode tree and the deterministic apply of transactions.
//! Pure logic: no I/O, no clocks, no tasks. Time and caller identities come
//! in with each Txn, so every replica that applies the same log agrees.

pub mod acl;
pub mod node;
mod nodes;
pub mod path;
pub mod snapshot;
pub mod tree;
pub mod txn;
pub mod watch;

pub use node::{Node, NodeKind};
pub use snapshot::FrozenTree;
pub use tree::{DataTree, SessionEntry, TreeConfig};
pub use txn::{Applied, Event, Txn, TxnOp, SYSTEM_SESSION};
pub use watch::{WatchRegistry, WatcherId};
