//! A cursor over the arguments of one command frame

use std::ops::Range;

use bytes::Bytes;

use super::frame::{Frame, parse_i64};

/// Why an argument could not be taken from a [`Parse`]
///
/// `Display` gives Redis's reply text where Redis has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The frame is not an array (or an empty one)
    #[error("ERR Protocol error: expected a non-empty array of bulk strings")]
    NotAnArray,
    /// No argument is left
    #[error("ERR syntax error")]
    EndOfStream,
    /// An argument is not a bulk or simple string (or integer where one is
    /// accepted)
    #[error("ERR Protocol error: expected '$', got '{0}'")]
    NotAString(char),
    /// An argument expected as text is not UTF-8
    #[error("ERR invalid UTF-8 argument")]
    InvalidUtf8,
    /// An argument expected as an integer is not one
    #[error("ERR value is not an integer or out of range")]
    NotAnInteger,
    /// Arguments are left after the command was fully parsed
    #[error("ERR syntax error")]
    ExtraArguments,
}

/// A cursor over the arguments of one command
///
/// Made from where a client's request lies in the bytes it was read into
/// ([`Parse::of_ranges`], what the RESP front end does: no frame is built, and an argument
/// becomes a [`Bytes`] only when a command takes it), or from a request frame
/// ([`Parse::new`]), whose elements may be bulk strings, simple strings or integers
/// (accepted for hand-written frames).
#[derive(Debug)]
pub struct Parse<'a> {
    parts: Parts<'a>,
}

#[derive(Debug)]
enum Parts<'a> {
    /// Where each argument lies in `input`
    Ranges {
        input: &'a Bytes,
        ranges: std::slice::Iter<'a, Range<usize>>,
    },
    /// The elements of a request frame
    Frames(std::vec::IntoIter<Frame>),
}

/// A command's name as [`Parse::next_name`] takes it: borrowed from the input where it can be
#[derive(Debug)]
pub enum Name<'a> {
    /// Where it lies in the input
    Borrowed(&'a [u8]),
    /// Taken from a frame
    Owned(Bytes),
}

impl std::ops::Deref for Name<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Name::Borrowed(name) => name,
            Name::Owned(name) => name,
        }
    }
}

impl Name<'_> {
    /// The name as bytes of its own (sharing the input's allocation).
    pub fn to_bytes(&self, input: Option<&Bytes>) -> Bytes {
        match (self, input) {
            (Name::Borrowed(name), Some(input)) => input.slice_ref(name),
            (Name::Borrowed(name), None) => Bytes::copy_from_slice(name),
            (Name::Owned(name), _) => name.clone(),
        }
    }
}

impl Parse<'static> {
    /// Start parsing `frame`
    ///
    /// # Errors
    ///
    /// [`ParseError::NotAnArray`] if `frame` is not an array.
    pub fn new(frame: Frame) -> Result<Self, ParseError> {
        match frame {
            Frame::Array(parts) => Ok(Self {
                parts: Parts::Frames(parts.into_iter()),
            }),
            _ => Err(ParseError::NotAnArray),
        }
    }
}

impl<'a> Parse<'a> {
    /// Start parsing the arguments that lie at `ranges` in `input` (each range inside it).
    pub fn of_ranges(input: &'a Bytes, ranges: &'a [Range<usize>]) -> Self {
        Self {
            parts: Parts::Ranges {
                input,
                ranges: ranges.iter(),
            },
        }
    }

    /// The bytes the arguments lie in, if they came that way.
    pub fn input(&self) -> Option<&'a Bytes> {
        match &self.parts {
            Parts::Ranges { input, .. } => Some(input),
            Parts::Frames(_) => None,
        }
    }

    /// Arguments not yet taken
    pub fn remaining(&self) -> usize {
        match &self.parts {
            Parts::Ranges { ranges, .. } => ranges.len(),
            Parts::Frames(frames) => frames.len(),
        }
    }

    /// Take the next argument as a command name: borrowed where it can be, as nothing needs
    /// to keep it
    ///
    /// # Errors
    ///
    /// As [`Parse::next_bytes`].
    pub fn next_name(&mut self) -> Result<Name<'a>, ParseError> {
        match &mut self.parts {
            Parts::Ranges { input, ranges } => {
                let input: &'a Bytes = input;
                let range = ranges.next().ok_or(ParseError::EndOfStream)?;
                Ok(Name::Borrowed(input.get(range.clone()).unwrap_or_default()))
            }
            Parts::Frames(_) => self.next_bytes().map(Name::Owned),
        }
    }

    /// Take the next argument as raw bytes
    ///
    /// # Errors
    ///
    /// [`ParseError::EndOfStream`] if none is left,
    /// [`ParseError::NotAString`] if it is an array, null or error.
    pub fn next_bytes(&mut self) -> Result<Bytes, ParseError> {
        let frames = match &mut self.parts {
            Parts::Ranges { input, ranges } => {
                let range = ranges.next().ok_or(ParseError::EndOfStream)?;
                return Ok(input.slice(range.clone()));
            }
            Parts::Frames(frames) => frames,
        };
        match frames.next() {
            None => Err(ParseError::EndOfStream),
            Some(Frame::Bulk(data)) => Ok(data),
            Some(Frame::Simple(s)) => Ok(Bytes::from(s)),
            Some(Frame::Integer(n)) => Ok(Bytes::from(n.to_string())),
            Some(Frame::Error(_)) => Err(ParseError::NotAString('-')),
            Some(Frame::Null) => Err(ParseError::NotAString('$')),
            Some(Frame::Array(_) | Frame::NullArray) => Err(ParseError::NotAString('*')),
        }
    }

    /// Take the next argument as UTF-8 text
    ///
    /// # Errors
    ///
    /// As [`Parse::next_bytes`], and [`ParseError::InvalidUtf8`].
    pub fn next_string(&mut self) -> Result<String, ParseError> {
        let data = self.next_bytes()?;
        String::from_utf8(data.to_vec()).map_err(|_| ParseError::InvalidUtf8)
    }

    /// Take the next argument as an `i64`, parsed as strictly as Redis does
    /// (no spaces, no `+`, no leading zeros)
    ///
    /// # Errors
    ///
    /// As [`Parse::next_bytes`], and [`ParseError::NotAnInteger`], whose text
    /// is `ERR value is not an integer or out of range`.
    pub fn next_int(&mut self) -> Result<i64, ParseError> {
        if let Parts::Frames(frames) = &mut self.parts
            && let Some(&Frame::Integer(n)) = frames.as_slice().first()
        {
            frames.next();
            return Ok(n);
        }
        parse_i64(&self.next_bytes()?).ok_or(ParseError::NotAnInteger)
    }

    /// Take every remaining argument as raw bytes
    ///
    /// # Errors
    ///
    /// As [`Parse::next_bytes`].
    pub fn rest(&mut self) -> Result<Vec<Bytes>, ParseError> {
        let mut out = Vec::with_capacity(self.remaining());
        while self.remaining() > 0 {
            out.push(self.next_bytes()?);
        }
        Ok(out)
    }

    /// Check that every argument was taken
    ///
    /// # Errors
    ///
    /// [`ParseError::ExtraArguments`] if some are left.
    pub fn finish(&mut self) -> Result<(), ParseError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(ParseError::ExtraArguments)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(parts: &[&str]) -> Frame {
        Frame::Array(
            parts
                .iter()
                .map(|p| Frame::Bulk(Bytes::copy_from_slice(p.as_bytes())))
                .collect(),
        )
    }

    #[test]
    fn cursor() {
        let mut p = Parse::new(frame(&["set", "k", "12", "x"])).unwrap();
        assert_eq!(p.remaining(), 4);
        assert_eq!(p.next_string().unwrap(), "set");
        assert_eq!(p.next_bytes().unwrap(), Bytes::from("k"));
        assert_eq!(p.next_int().unwrap(), 12);
        assert_eq!(p.finish(), Err(ParseError::ExtraArguments));
        assert_eq!(p.next_bytes().unwrap(), Bytes::from("x"));
        assert_eq!(p.finish(), Ok(()));
        assert_eq!(p.next_bytes(), Err(ParseError::EndOfStream));
    }

    #[test]
    fn integers_are_strict() {
        for bad in [
            "",
            "+1",
            " 1",
            "01",
            "-0",
            "1.5",
            "9223372036854775808",
            "abc",
        ] {
            let mut p = Parse::new(frame(&[bad])).unwrap();
            let err = p.next_int().unwrap_err();
            assert_eq!(
                err.to_string(),
                "ERR value is not an integer or out of range"
            );
        }
        let mut p = Parse::new(frame(&["-9223372036854775808", "0"])).unwrap();
        assert_eq!(p.next_int().unwrap(), i64::MIN);
        assert_eq!(p.next_int().unwrap(), 0);
        let mut p = Parse::new(Frame::Array(vec![Frame::Integer(7)])).unwrap();
        assert_eq!(p.next_int().unwrap(), 7);
    }

    #[test]
    fn not_an_array() {
        assert_eq!(
            Parse::new(Frame::Simple("PING".into())).unwrap_err(),
            ParseError::NotAnArray
        );
        let mut p = Parse::new(Frame::Array(vec![Frame::Null])).unwrap();
        assert_eq!(p.next_bytes(), Err(ParseError::NotAString('$')));
    }
}
