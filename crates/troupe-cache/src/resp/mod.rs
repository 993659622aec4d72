//! The RESP2 wire format: frames and a cursor over command arguments
//!
//! Laid out like mini-redis: [`frame`] turns bytes into [`Frame`]s and back,
//! [`parse`] walks a command's arguments for `cmd`, and [`request`] decodes what clients
//! send straight into those arguments.

pub mod frame;
pub mod parse;
pub mod request;

pub use frame::{Frame, Limits, RespError, Resume, encode};
pub use parse::{Name, Parse, ParseError};
pub use request::Requests;
