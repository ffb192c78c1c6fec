//! The ZooKeeper client wire protocol: jute encoding, the records, opcodes
//! and error codes, and the length-prefixed frame codec. Pure: no I/O.

pub mod consts;
pub mod frame;
pub mod jute;
pub mod message;
pub mod records;
pub mod text;

pub use consts::{op, ErrorCode};
pub use jute::{DecodeError, Jute, Reader};
pub use message::{encode_notification, encode_reply, MultiResult, Request, Response};
pub use records::*;
