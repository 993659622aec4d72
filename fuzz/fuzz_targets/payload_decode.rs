//! Feeds arbitrary bytes, as the payload of each real message type of troupe's parts, to the
//! decoder a node runs on every message from another node (`codec::decode_message`, with its
//! version window and the reply-port and `Addr` context).
//!
//! Checks "never panics": every malformed payload is a typed `CallError::Decode`. The parts'
//! self-messages and peer variants are `#[serde(skip)]`, so no input may decode into one.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use troupe_runtime::codec::{decode_message, message_type};
use troupe_runtime::{Mesh, Message, Node, NodeConfig};

fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| Node::new("fuzz", &Mesh::new(), NodeConfig::default()).expect("a node"))
}

fn decode<M: Message>(data: &[u8]) {
    let _ = decode_message::<M>(node(), &message_type::<M>(), data);
}

fuzz_target!(|data: &[u8]| {
    decode::<troupe_db::DbMsg>(data);
    decode::<troupe_db::DbPeerMsg>(data);
    decode::<troupe_cache::ShardMsg>(data);
    decode::<troupe_queue::actor::QueueMsg>(data);
    decode::<troupe_proxy::HttpCall>(data);
    decode::<troupe_proxy::ProxyMsg>(data);
    if let Ok(msg) = decode_message::<troupe_db::DbMsg>(node(), &message_type::<troupe_db::DbMsg>(), data) {
        assert!(!matches!(msg, troupe_db::DbMsg::Peer(_)), "a skipped variant decoded");
    }
});
