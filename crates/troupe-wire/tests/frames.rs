//! Properties of the frame codec: round trips, incremental input, and rejection of every
//! malformed frame without panicking.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use troupe_wire::{
    ActorPath, DEFAULT_MAX_FRAME_LEN, Envelope, EnvelopeKind, Frame, FrameCodec, Hello,
    MAX_HELLO_ROLES, MessageType, PROTOCOL_VERSION, RemoteErrorCode, ReplyOutcome, TraceContext,
    WireError,
};

// ---------------------------------------------------------------------------------------------
// Strategies

/// Any Unicode text, sometimes longer than 127 bytes so multi-byte varint lengths occur.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(any::<char>(), 0..12),
        1 => prop::collection::vec(any::<char>(), 0..80),
    ]
    .prop_map(String::from_iter)
}

fn blob() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..80),
        1 => prop::collection::vec(any::<u8>(), 0..600),
    ]
    .prop_map(Bytes::from)
}

fn path() -> impl Strategy<Value = ActorPath> {
    (text(), text()).prop_map(|(node, name)| ActorPath { node, name })
}

fn error_code() -> impl Strategy<Value = RemoteErrorCode> {
    prop::sample::select(vec![
        RemoteErrorCode::NotFound,
        RemoteErrorCode::Decode,
        RemoteErrorCode::ActorFailed,
        RemoteErrorCode::Overloaded,
        RemoteErrorCode::TooLarge,
        RemoteErrorCode::Timeout,
        RemoteErrorCode::UnknownType,
        RemoteErrorCode::Other,
    ])
}

fn envelope_kind() -> impl Strategy<Value = EnvelopeKind> {
    prop_oneof![
        Just(EnvelopeKind::Cast),
        (any::<u64>(), any::<u32>()).prop_map(|(request_id, timeout_ms)| EnvelopeKind::Call {
            request_id,
            timeout_ms
        }),
        any::<u64>().prop_map(|request_id| EnvelopeKind::Reply {
            request_id,
            outcome: ReplyOutcome::Ok
        }),
        (any::<u64>(), error_code(), text()).prop_map(|(request_id, code, detail)| {
            EnvelopeKind::Reply {
                request_id,
                outcome: ReplyOutcome::Err { code, detail },
            }
        }),
    ]
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        envelope_kind(),
        path(),
        prop::option::of(path()),
        (text(), any::<u16>()).prop_map(|(name, version)| MessageType { name, version }),
        prop::option::of(
            (text(), text()).prop_map(|(traceparent, tracestate)| TraceContext {
                traceparent,
                tracestate,
            }),
        ),
        blob(),
    )
        .prop_map(
            |(kind, target, sender, msg_type, trace, payload)| Envelope {
                kind,
                target,
                sender,
                msg_type,
                trace,
                payload,
            },
        )
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        1 => (text(), text(), any::<u64>(), prop::collection::vec(text(), 0..=MAX_HELLO_ROLES))
            .prop_map(|(cluster, node, incarnation, roles)| {
                Frame::Hello(Hello::new(cluster, node, incarnation).with_roles(roles))
            }),
        4 => envelope().prop_map(Frame::Envelope),
        1 => any::<u64>().prop_map(|stream_seq| Frame::LargeMarker { stream_seq }),
        1 => (any::<u8>(), blob()).prop_map(|(channel, body)| Frame::Control { channel, body }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn encode(frame: &Frame) -> BytesMut {
    let mut buf = BytesMut::new();
    FrameCodec::default()
        .encode(frame, &mut buf)
        .expect("test frames are within the default limit");
    buf
}

/// Re-frames the first `len` bytes of an encoded frame's body under a matching length prefix.
fn reframe(body: &[u8]) -> BytesMut {
    let mut buf = BytesMut::with_capacity(4 + body.len());
    buf.put_u32(u32::try_from(body.len()).expect("test bodies are small"));
    buf.put_slice(body);
    buf
}

/// Decodes everything in `src`; stops at the first `Ok(None)` or error.
fn decode_all(codec: &FrameCodec, src: &mut BytesMut) -> (Vec<Frame>, Option<WireError>) {
    let mut frames = Vec::new();
    loop {
        match codec.decode(src) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

/// Decodes `bytes` fed in pieces of the given sizes (cycled), checking that `Ok(None)` consumes
/// nothing.
fn decode_in_chunks(bytes: &[u8], sizes: &[usize]) -> Vec<Frame> {
    let codec = FrameCodec::default();
    let mut src = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = bytes;
    let mut sizes = sizes.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(1).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        src.extend_from_slice(chunk);
        rest = tail;
        loop {
            let before = src.len();
            match codec.decode(&mut src) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => {
                    assert_eq!(src.len(), before, "Ok(None) must not consume");
                    break;
                }
                Err(e) => panic!("valid input rejected: {e}"),
            }
        }
    }
    assert!(src.is_empty(), "bytes left after the last frame");
    frames
}

/// Whatever decodes must re-encode to exactly the bytes it came from (one encoding per frame).
fn assert_canonical(consumed: &[u8], frame: &Frame) {
    assert_eq!(&encode(frame)[..], consumed, "decoded {frame:?}");
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #[test]
    fn any_frame_round_trips(frame in frame()) {
        let mut buf = encode(&frame);
        prop_assert_eq!(buf.len(), frame.encoded_len());
        let decoded = FrameCodec::default().decode(&mut buf);
        prop_assert_eq!(decoded, Ok(Some(frame)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn a_frame_fed_byte_by_byte_decodes_once_complete(frame in frame()) {
        let bytes = encode(&frame);
        let codec = FrameCodec::default();
        let mut src = BytesMut::new();
        for (i, byte) in bytes.iter().enumerate() {
            src.put_u8(*byte);
            let result = codec.decode(&mut src);
            if i + 1 < bytes.len() {
                prop_assert_eq!(result, Ok(None));
                prop_assert_eq!(&src[..], &bytes[..=i]);
            } else {
                prop_assert_eq!(result, Ok(Some(frame.clone())));
                prop_assert!(src.is_empty());
            }
        }
    }

    #[test]
    fn concatenated_frames_decode_in_order_from_random_chunks(
        frames in prop::collection::vec(frame(), 1..6),
        sizes in prop::collection::vec(1usize..64, 1..8),
    ) {
        let codec = FrameCodec::default();
        let mut bytes = BytesMut::new();
        for frame in &frames {
            codec.encode(frame, &mut bytes).expect("within the limit");
        }
        prop_assert_eq!(decode_in_chunks(&bytes, &sizes), frames.clone());
        // And all at once.
        let (decoded, err) = decode_all(&codec, &mut bytes);
        prop_assert_eq!(decoded, frames);
        prop_assert_eq!(err, None);
        prop_assert!(bytes.is_empty());
    }

    #[test]
    fn every_truncated_body_is_rejected_and_nothing_is_consumed(frame in frame()) {
        let bytes = encode(&frame);
        let body = &bytes[4..];
        for cut in 0..body.len() {
            let mut src = reframe(&body[..cut]);
            let before = src.clone();
            let result = FrameCodec::default().decode(&mut src);
            prop_assert!(result.is_err(), "cut at {} of {}: {:?}", cut, body.len(), result);
            prop_assert_eq!(&src, &before, "an error must leave the input as it was");
        }
    }

    #[test]
    fn a_body_with_bytes_appended_is_rejected(frame in frame(), extra in prop::collection::vec(any::<u8>(), 1..8)) {
        let bytes = encode(&frame);
        let mut body = bytes[4..].to_vec();
        body.extend_from_slice(&extra);
        let result = FrameCodec::default().decode(&mut reframe(&body));
        prop_assert!(result.is_err(), "{:?}", result);
    }

    #[test]
    fn corrupted_bodies_never_panic_and_what_decodes_is_canonical(
        frame in frame(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<bool>()), 1..6),
    ) {
        let bytes = encode(&frame);
        let mut body = bytes[4..].to_vec();
        for (at, value, flip) in edits {
            let i = at.index(body.len());
            if let Some(byte) = body.get_mut(i) {
                *byte = if flip { *byte ^ (1 << (value % 8)) } else { value };
            }
        }
        let framed = reframe(&body);
        let mut src = framed.clone();
        if let Ok(Some(decoded)) = FrameCodec::default().decode(&mut src) {
            assert_canonical(&framed, &decoded);
        }
    }

    #[test]
    fn arbitrary_input_never_panics(
        input in prop::collection::vec(any::<u8>(), 0..512),
        max in prop_oneof![Just(DEFAULT_MAX_FRAME_LEN), 0usize..600],
    ) {
        let codec = FrameCodec::new(max);
        let mut src = BytesMut::from(&input[..]);
        loop {
            let before = src.clone();
            match codec.decode(&mut src) {
                Ok(Some(frame)) => {
                    let consumed = before.len() - src.len();
                    assert_canonical(&before[..consumed], &frame);
                }
                Ok(None) => {
                    prop_assert_eq!(&src, &before);
                    break;
                }
                Err(_) => {
                    prop_assert_eq!(&src, &before);
                    break;
                }
            }
        }
    }

    /// Arbitrary bodies behind a valid prefix reach the field parsers far more often than
    /// arbitrary streams do.
    #[test]
    fn arbitrary_bodies_of_each_kind_never_panic(
        kind in 0u8..6,
        rest in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let mut body = vec![kind];
        body.extend_from_slice(&rest);
        let framed = reframe(&body);
        let mut src = framed.clone();
        if let Ok(Some(decoded)) = FrameCodec::default().decode(&mut src) {
            assert_canonical(&framed, &decoded);
        }
    }

    #[test]
    fn a_frame_over_the_limit_is_not_encoded(frame in frame(), prefill in prop::collection::vec(any::<u8>(), 0..8)) {
        let needed = frame.encoded_len() - 4;
        let codec = FrameCodec::new(needed - 1);
        let mut dst = BytesMut::from(&prefill[..]);
        let result = codec.encode(&frame, &mut dst);
        prop_assert_eq!(result, Err(WireError::FrameTooLarge { len: needed, max: needed - 1 }));
        prop_assert_eq!(&dst[..], &prefill[..]);
        // Exactly at the limit is fine, and decodes under the same limit.
        let codec = FrameCodec::new(needed);
        codec.encode(&frame, &mut dst).expect("exactly at the limit");
        let _ = dst.split_to(prefill.len());
        prop_assert_eq!(codec.decode(&mut dst), Ok(Some(frame)));
    }
}

// ---------------------------------------------------------------------------------------------
// Examples

fn cast() -> Envelope {
    Envelope {
        kind: EnvelopeKind::Cast,
        target: ActorPath::new("b", "db"),
        sender: None,
        msg_type: MessageType::new("kv.Put", 1),
        trace: None,
        payload: Bytes::from_static(&[0x91, 0x07]),
    }
}

#[test]
fn a_cast_envelope_has_the_documented_bytes() {
    let bytes = encode(&Frame::Envelope(cast()));
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0, 0, 0, 22,                       // body length
        2,                                 // frame kind: Envelope
        0, 4,                              // protocol 4
        0,                                 // envelope kind: Cast
        0,                                 // flags: no sender, no trace
        1, b'b', 2, b'd', b'b',            // target node "b", name "db"
        6, b'k', b'v', b'.', b'P', b'u', b't', 0, 1, // type "kv.Put" v1
        2, 0x91, 0x07,                     // payload
    ];
    assert_eq!(&bytes[..], expected);
}

#[test]
fn every_field_appears_in_the_documented_order() {
    let envelope = Envelope {
        kind: EnvelopeKind::Reply {
            request_id: 0x0102_0304_0506_0708,
            outcome: ReplyOutcome::Err {
                code: RemoteErrorCode::Timeout,
                detail: "t".into(),
            },
        },
        sender: Some(ActorPath::new("a", "c")),
        trace: Some(TraceContext {
            traceparent: "p".into(),
            tracestate: String::new(),
        }),
        ..cast()
    };
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0, 0, 0, 40,
        2, 0, 4,
        3, 1, 2, 3, 4, 5, 6, 7, 8, 5, 1, b't', // Reply Err, request id, Timeout, "t"
        0b11,                                   // flags: sender and trace
        1, b'b', 2, b'd', b'b',
        1, b'a', 1, b'c',                       // sender
        6, b'k', b'v', b'.', b'P', b'u', b't', 0, 1,
        1, b'p', 0,                             // traceparent "p", tracestate ""
        2, 0x91, 0x07,
    ];
    assert_eq!(&encode(&Frame::Envelope(envelope))[..], expected);

    let hello = Hello::new("c", "n", 9);
    assert_eq!(
        &encode(&Frame::Hello(hello.clone()))[..],
        &[
            0, 0, 0, 24, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, b'c', 1, b'n',
            0
        ]
    );
    let hello = hello.with_roles(vec!["ab".into(), "c".into()]);
    assert_eq!(
        &encode(&Frame::Hello(hello))[..],
        &[
            0, 0, 0, 29, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, b'c', 1, b'n',
            2, 2, b'a', b'b', 1, b'c'
        ]
    );
    assert_eq!(
        &encode(&Frame::LargeMarker { stream_seq: 258 })[..],
        &[0, 0, 0, 9, 3, 0, 0, 0, 0, 0, 0, 1, 2]
    );
    let control = Frame::Control {
        channel: 7,
        body: Bytes::from_static(b"xy"),
    };
    assert_eq!(&encode(&control)[..], &[0, 0, 0, 5, 4, 7, 2, b'x', b'y']);
}

#[test]
fn a_declared_length_over_the_limit_fails_from_the_prefix_alone() {
    let codec = FrameCodec::default();
    let mut src = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
    let capacity = src.capacity();
    assert_eq!(
        codec.decode(&mut src),
        Err(WireError::FrameTooLarge {
            len: 0xffff_ffff,
            max: DEFAULT_MAX_FRAME_LEN
        })
    );
    assert_eq!(
        src.capacity(),
        capacity,
        "nothing reserved for a rejected frame"
    );

    let small = FrameCodec::new(16);
    let mut src = reframe(&[0; 17]);
    assert_eq!(
        small.decode(&mut src),
        Err(WireError::FrameTooLarge { len: 17, max: 16 })
    );
}

#[test]
fn fewer_than_four_bytes_need_more_input() {
    let codec = FrameCodec::default();
    for len in 0..4 {
        let mut src = BytesMut::from(&[0xff, 0xff, 0xff][..len]);
        assert_eq!(codec.decode(&mut src), Ok(None));
        assert_eq!(src.len(), len);
    }
}

#[test]
fn the_limit_is_capped_at_what_the_prefix_can_express() {
    assert_eq!(FrameCodec::default().max_frame_len(), DEFAULT_MAX_FRAME_LEN);
    assert_eq!(
        FrameCodec::new(usize::MAX).max_frame_len() as u64,
        u64::from(u32::MAX)
    );
}

#[test]
fn the_payload_shares_the_received_buffer() {
    let mut src = encode(&Frame::Envelope(cast()));
    let range = src.as_ptr_range();
    let Ok(Some(Frame::Envelope(envelope))) = FrameCodec::default().decode(&mut src) else {
        panic!("expected an envelope");
    };
    assert!(
        range.contains(&envelope.payload.as_ptr()),
        "payload was copied"
    );
}

fn decode_body(body: &[u8]) -> Result<Option<Frame>, WireError> {
    FrameCodec::default().decode(&mut reframe(body))
}

/// The body of `cast()` with one byte replaced.
fn cast_body_with(at: usize, value: u8) -> Vec<u8> {
    let mut body = encode(&Frame::Envelope(cast()))[4..].to_vec();
    body[at] = value;
    body
}

#[test]
fn each_malformed_field_has_its_own_error() {
    assert_eq!(
        decode_body(&[]),
        Err(WireError::Truncated { what: "frame kind" })
    );
    assert_eq!(decode_body(&[0]), Err(WireError::UnknownFrameKind(0)));
    assert_eq!(decode_body(&[9, 1, 2]), Err(WireError::UnknownFrameKind(9)));
    assert_eq!(
        decode_body(&cast_body_with(2, 5)),
        Err(WireError::ProtocolVersion {
            got: 5,
            supported: PROTOCOL_VERSION
        })
    );
    assert_eq!(
        decode_body(&cast_body_with(3, 4)),
        Err(WireError::UnknownEnvelopeKind(4))
    );
    assert_eq!(
        decode_body(&cast_body_with(4, 0b100)),
        Err(WireError::Malformed {
            what: "envelope flags"
        })
    );
    assert_eq!(
        decode_body(&cast_body_with(6, 0xff)),
        Err(WireError::InvalidUtf8 {
            what: "target node"
        })
    );
    let mut non_minimal = cast_body_with(5, 0x81);
    non_minimal[6] = 0x00; // 0x81 0x00 is a two-byte encoding of 1
    assert_eq!(
        decode_body(&non_minimal),
        Err(WireError::Malformed {
            what: "target node"
        })
    );
    assert_eq!(
        decode_body(&cast_body_with(5, 0x80)),
        Err(WireError::Truncated {
            what: "target node"
        })
    );
    let mut long = encode(&Frame::LargeMarker { stream_seq: 1 })[4..].to_vec();
    long.push(0);
    assert_eq!(decode_body(&long), Err(WireError::TrailingBytes { len: 1 }));
    assert_eq!(
        decode_body(&[3, 0, 0]),
        Err(WireError::Truncated {
            what: "large marker stream seq"
        })
    );

    let reply = Frame::Envelope(Envelope {
        kind: EnvelopeKind::Reply {
            request_id: 1,
            outcome: ReplyOutcome::Err {
                code: RemoteErrorCode::Other,
                detail: String::new(),
            },
        },
        ..cast()
    });
    let mut body = encode(&reply)[4..].to_vec();
    body[12] = 9; // the error code byte
    assert_eq!(decode_body(&body), Err(WireError::UnknownErrorCode(9)));
}

#[test]
fn a_hello_claims_at_most_max_hello_roles() {
    let roles = |n: usize| (0..n).map(|i| format!("r{i}")).collect::<Vec<_>>();
    let most = Frame::Hello(Hello::new("shop", "app", 1).with_roles(roles(MAX_HELLO_ROLES)));
    let mut src = encode(&most);
    assert_eq!(FrameCodec::default().decode(&mut src), Ok(Some(most)));
    let over = Frame::Hello(Hello::new("shop", "app", 1).with_roles(roles(MAX_HELLO_ROLES + 1)));
    let mut dst = BytesMut::new();
    assert_eq!(
        FrameCodec::default().encode(&over, &mut dst),
        Err(WireError::Malformed {
            what: "hello role count"
        })
    );
    assert!(dst.is_empty());
    // a peer that sends more anyway: the count alone refuses it
    let mut body = encode(&Frame::Hello(Hello::new("shop", "app", 1)))[4..].to_vec();
    let last = body.len() - 1;
    body[last] = u8::try_from(MAX_HELLO_ROLES + 1).unwrap_or(u8::MAX);
    assert_eq!(
        decode_body(&body),
        Err(WireError::Malformed {
            what: "hello role count"
        })
    );
}

#[test]
fn a_hello_of_another_protocol_is_rejected_with_its_version() {
    let mut hello = Hello::new("shop", "app", 1);
    hello.protocol = PROTOCOL_VERSION + 1;
    let mut src = encode(&Frame::Hello(hello));
    assert_eq!(
        FrameCodec::default().decode(&mut src),
        Err(WireError::ProtocolVersion {
            got: PROTOCOL_VERSION + 1,
            supported: PROTOCOL_VERSION
        })
    );
    // Checked before anything else, even a body that is otherwise garbage.
    assert_eq!(
        decode_body(&[1, 0, 7]),
        Err(WireError::ProtocolVersion {
            got: 7,
            supported: PROTOCOL_VERSION
        })
    );
}

#[test]
fn errors_read_as_sentences() {
    assert_eq!(
        WireError::FrameTooLarge { len: 10, max: 5 }.to_string(),
        "frame body of 10 bytes exceeds the limit of 5 bytes"
    );
    assert_eq!(
        WireError::Truncated {
            what: "target node"
        }
        .to_string(),
        "frame body ends inside target node"
    );
}
