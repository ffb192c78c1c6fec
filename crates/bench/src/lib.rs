//! `paddock bench`: a load generator for any server that speaks the
//! ZooKeeper protocol (Paddock or Apache ZooKeeper). Each connection keeps
//! many requests in flight on a few tokio threads, so the generator is not
//! the bottleneck (the report shows its own CPU time). Everything it
//! creates lives under `/paddock-bench`.

mod conn;
mod recipes;
pub mod report;
mod run;
pub mod spec;

pub use report::Report;
pub use run::{cleanup, run, ROOT};
pub use spec::Spec;
