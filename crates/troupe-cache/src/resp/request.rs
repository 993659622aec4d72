//! Client requests decoded straight into their arguments
//!
//! What every client sends is an array of bulk strings. [`Requests`] finds where each
//! argument of such a request lies in the bytes read and hands the request on at once as a
//! cursor over them ([`Parse::of_ranges`]): no frame is built, nothing is allocated per
//! request, and an argument becomes a [`Bytes`] only when a command keeps it. Anything else
//! at the top level (an inline command typed by hand, an array with another element type) is
//! built as a [`Frame`] exactly as [`Frame::decode_all`] builds it, so replies and errors are
//! the same either way.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::frame::{ONE_PASS_UP_TO, array_header, bulk, walk_top};
use super::{Frame, Limits, Parse, ParseError, RespError};

/// Decodes a connection's requests and hands each on as it is decoded
///
/// Keep one per connection: its list of argument positions keeps its capacity from one read
/// to the next.
#[derive(Debug, Default)]
pub struct Requests {
    /// Where each argument of the request at hand lies in the input
    ranges: Vec<Range<usize>>,
}

impl Requests {
    /// Decodes every complete request at the start of `buf`, advancing past them, and hands
    /// each to `each` in order, as a cursor over its arguments (or the error a frame that is
    /// not an array gets) with the bytes of its arguments. What is left in `buf` is an
    /// incomplete request (or nothing). As [`Frame::decode_all`]: input of at most
    /// [`ONE_PASS_UP_TO`] bytes is decoded in one pass, larger input is checked request by
    /// request before anything is taken from it, and arguments share the input's allocation.
    ///
    /// # Errors
    ///
    /// As [`Frame::check`], for the first request that breaks it; the requests before it were
    /// handed on and consumed from `buf`, the bad one and the rest stay in `buf`.
    pub fn decode_each(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        mut each: impl FnMut(Result<Parse<'_>, ParseError>, usize),
    ) -> Result<(), RespError> {
        if buf.len() > ONE_PASS_UP_TO {
            while let Some(end) = Frame::check(buf, limits)? {
                let bytes = buf.split_to(end).freeze();
                if self.decode_one(&bytes, 0, limits, &mut each)?.is_none() {
                    // unreachable after a successful check; reported, not panicked on
                    return Err(RespError::Protocol(
                        "request changed between check and parse".into(),
                    ));
                }
            }
            return Ok(());
        }
        let input = buf.split().freeze();
        let mut pos = 0;
        let outcome = loop {
            match self.decode_one(&input, pos, limits, &mut each) {
                Ok(Some(end)) => pos = end,
                Ok(None) => break Ok(()),
                Err(err) => break Err(err),
            }
        };
        // what was not consumed goes back (an incomplete request, or a bad one and the rest)
        if pos < input.len() {
            buf.extend_from_slice(&input[pos..]);
        }
        outcome
    }

    /// Decodes the request at `pos` in `input` and hands it to `each`; where it ends, `None`
    /// if it is incomplete (nothing handed on then).
    fn decode_one(
        &mut self,
        input: &Bytes,
        pos: usize,
        limits: &Limits,
        each: &mut impl FnMut(Result<Parse<'_>, ParseError>, usize),
    ) -> Result<Option<usize>, RespError> {
        if input.get(pos) == Some(&b'*') {
            self.ranges.clear();
            match self.find_args(input, pos, limits)? {
                None => return Ok(None),
                Some(Some((end, size))) => {
                    each(Ok(Parse::of_ranges(input, &self.ranges)), size);
                    return Ok(Some(end));
                }
                // not an array of bulk strings: built as a frame below
                Some(None) => {}
            }
        }
        let rest = input.slice(pos..);
        match walk_top(&rest, limits, Some(&rest))? {
            Some((Some(frame), used)) => {
                let size = frame_size(&frame);
                each(Parse::new(frame), size);
                Ok(Some(pos + used))
            }
            Some((None, _)) => Err(RespError::Protocol(
                "a frame was checked but not built".into(),
            )),
            None => Ok(None),
        }
    }

    /// Where the arguments of the array at `pos` lie, into `ranges`: where it ends and the
    /// bytes of its arguments; `Some(None)` if it holds anything but non-null bulk strings (or
    /// is the null array), `None` while incomplete.
    fn find_args(
        &mut self,
        input: &[u8],
        pos: usize,
        limits: &Limits,
    ) -> Result<Option<Option<(usize, usize)>>, RespError> {
        let Some((mut next, count)) = array_header(input, pos, 0, limits)? else {
            return Ok(None);
        };
        let Some(count) = count else {
            return Ok(Some(None));
        };
        let mut size = 0;
        for _ in 0..count {
            match input.get(next) {
                None => return Ok(None),
                Some(b'$') => {}
                Some(_) => return Ok(Some(None)),
            }
            let Some((body, end)) = bulk(input, next, limits)? else {
                return Ok(None);
            };
            let Some(body) = body else {
                return Ok(Some(None));
            };
            size += body.len();
            self.ranges.push(body);
            next = end;
        }
        Ok(Some(Some((next, size))))
    }

    /// Gives back memory a burst left: a list of positions longer than `keep` is dropped.
    pub fn shrink(&mut self, keep: usize) {
        if self.ranges.capacity() > keep {
            self.ranges = Vec::new();
        }
    }
}

/// The bytes of a request frame's arguments.
fn frame_size(frame: &Frame) -> usize {
    match frame {
        Frame::Array(items) => items.iter().map(frame_size).sum(),
        Frame::Bulk(bytes) => bytes.len(),
        Frame::Simple(text) | Frame::Error(text) => text.len(),
        Frame::Integer(_) | Frame::Null | Frame::NullArray => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each request's arguments (or its error), the error decoding stopped at, what was left.
    type Decoded = (
        Vec<Result<Vec<Bytes>, ParseError>>,
        Option<RespError>,
        Vec<u8>,
    );

    /// What `Requests` decodes `input` into, as each request's arguments (or its error),
    /// with the error it stopped at and what it left.
    fn decode(input: &[u8]) -> Decoded {
        let mut buf = BytesMut::from(input);
        let mut requests = Requests::default();
        let mut out = Vec::new();
        let err = requests
            .decode_each(&mut buf, &Limits::default(), |parse, _| {
                out.push(parse.and_then(|mut p| p.rest()));
            })
            .err();
        (out, err, buf.to_vec())
    }

    /// What the frame decoder makes of `input`, in the same shape.
    fn via_frames(input: &[u8]) -> Decoded {
        let mut buf = BytesMut::from(input);
        let mut frames = Vec::new();
        let err = Frame::decode_all(&mut buf, &Limits::default(), &mut frames).err();
        let out = frames
            .into_iter()
            .map(|frame| Parse::new(frame)?.rest())
            .collect();
        (out, err, buf.to_vec())
    }

    #[test]
    fn arrays_of_bulk_strings_are_handed_on_as_slices_of_the_input() {
        let (out, err, left) =
            decode(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGE");
        assert_eq!(err, None);
        assert_eq!(
            out,
            vec![
                Ok(vec![Bytes::from("GET"), Bytes::from("k")]),
                Ok(vec![Bytes::from("PING")]),
            ]
        );
        assert_eq!(left, b"*2\r\n$3\r\nGE");
    }

    #[test]
    fn other_requests_decode_as_the_frame_decoder_does() {
        for input in [
            &b"PING\r\n"[..],
            b"\r\n\r\nset a b\r\n",
            b"*2\r\n$3\r\nGET\r\n:5\r\n",
            b"*2\r\n$3\r\nGET\r\n*1\r\n$1\r\nx\r\n",
            b"*1\r\n$-1\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"+PING\r\n",
            b"*2\r\n$3\r\nGET\r\n$x\r\n",
            b"*2\r\n$3\r\nGET\r\n$1\r\nkk\r\n",
            b"*1\r\n$3\r\nGET\r\n*1\r\n%1\r\n",
        ] {
            assert_eq!(
                decode(input),
                via_frames(input),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_as_the_frame_decoder_does(
            input in proptest::collection::vec(
                proptest::sample::select(b"*$:+-\r\n0123GETk -".to_vec()), 0..96)
        ) {
            proptest::prop_assert_eq!(decode(&input), via_frames(&input));
        }
    }

    #[test]
    fn large_input_is_checked_before_it_is_taken() {
        let value = vec![b'v'; ONE_PASS_UP_TO];
        let mut input = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", value.len()).into_bytes();
        input.extend_from_slice(&value);
        input.extend_from_slice(b"\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPI");
        let (out, err, left) = decode(&input);
        assert_eq!(err, None);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].as_ref().map(|args| args[2].len()),
            Ok(ONE_PASS_UP_TO)
        );
        assert_eq!(left, b"*1\r\n$4\r\nPI");
    }
}
