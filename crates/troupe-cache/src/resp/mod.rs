//! The RESP2 wire format: frames and a cursor over command arguments
//!
//! Laid out like mini-redis: [`frame`] turns bytes into [`Frame`]s and back,
//! [`parse`] walks a command frame's arguments for `cmd`.

pub mod frame;
pub mod parse;

pub use frame::{Frame, Limits, RespError, Resume, encode};
pub use parse::{Parse, ParseError};
