//! Who may send what: names are local-only unless declared, a declared `Reach` admits exactly
//! the nodes it lists, a facet gives an actor a second protocol with a reach of its own, and
//! self-messages cannot cross the wire. Three nodes, each in its own mesh, over real QUIC on
//! loopback with mutual TLS.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe_runtime::remote::{NetConfig, NodeNet};
use troupe_runtime::{
    Actor, ActorError, Addr, CallError, ChildOptions, Ctx, Mesh, Message, Node, NodeConfig,
    NodeRoles, Reach, Reply, SupervisorSpec,
};
use troupe_testkit::{Cluster, T, eventually, fully_connected};

/// A client protocol with a peer protocol inside it and a self-message: the peer variant and
/// the tick are never encoded, so they cannot arrive through the client name.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "test.reach.Store")]
enum StoreMsg {
    Get(Reply<u64>),
    #[serde(skip)]
    Peer(PeerMsg),
    #[serde(skip)]
    Tick,
}

/// The peer protocol: reachable only through the facet.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "test.reach.Peer")]
enum PeerMsg {
    Set(u64, Reply<()>),
}

struct Store(u64);

impl Actor for Store {
    type Msg = StoreMsg;

    async fn handle(&mut self, msg: StoreMsg, _: &mut Ctx<StoreMsg>) -> Result<(), ActorError> {
        match msg {
            StoreMsg::Get(reply) => {
                reply.send(self.0);
            }
            StoreMsg::Peer(PeerMsg::Set(v, reply)) => {
                self.0 = v;
                reply.send(());
            }
            StoreMsg::Tick => self.0 += 1,
        }
        Ok(())
    }
}

struct Member {
    node: Node,
    net: NodeNet,
}

/// A started node `name` with no actors, joined to the cluster through `seed`.
async fn empty_member(cluster: &Cluster, name: &str, seed: std::net::SocketAddr) -> Member {
    let node = Node::new(name, &Mesh::new(), NodeConfig::default()).unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    let net = cluster.join(&node, &[seed]).await;
    Member { node, net }
}

/// Node `a` hosts `open` (any node), `private` (the default: local only), `only_b` (node `b`
/// only) and `open`'s facet `open.peer` (node `b` only); `b` and `c` host nothing.
async fn three_nodes() -> (Member, Member, Member) {
    let cluster = Cluster::new("reach");
    let a = Node::new("a", &Mesh::new(), NodeConfig::default()).unwrap();
    let store = || Store(7);
    let (open, _) = a
        .child(
            "open",
            ChildOptions::permanent().reachable_from(Reach::cluster()),
            store,
        )
        .unwrap();
    let (private, _) = a
        .child("private", ChildOptions::permanent(), store)
        .unwrap();
    let (only_b, _) = a
        .child(
            "only_b",
            ChildOptions::permanent().reachable_from(Reach::nodes(["b"])),
            store,
        )
        .unwrap();
    a.start(SupervisorSpec::one_for_one(), vec![open, private, only_b])
        .await
        .unwrap();
    a.facet("open.peer", "open", StoreMsg::Peer, Reach::nodes(["b"]))
        .unwrap();
    let a_net = cluster.join(&a, &[]).await;
    let b = empty_member(&cluster, "b", a_net.local_addr()).await;
    let c = empty_member(&cluster, "c", a_net.local_addr()).await;
    fully_connected(&[&a_net, &b.net, &c.net], T).await;
    let a = Member {
        node: a,
        net: a_net,
    };
    (a, b, c)
}

fn forbidden(result: Result<impl std::fmt::Debug, CallError>, target: &str) {
    match result {
        Err(CallError::Forbidden { target: t }) => assert!(t.contains(target), "{t}"),
        other => panic!("expected Forbidden for {target}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_declared_names_are_reachable_and_only_from_the_nodes_they_list() {
    let (a, b, c) = three_nodes().await;
    let from = |m: &Member, name: &str| m.node.addr::<StoreMsg>("a", name);

    // any node reaches `open`
    assert_eq!(from(&b, "open").call(StoreMsg::Get, T).await, Ok(7));
    assert_eq!(from(&c, "open").call(StoreMsg::Get, T).await, Ok(7));
    // nobody from outside reaches `private`, which node `a` itself still calls
    forbidden(
        from(&b, "private").call(StoreMsg::Get, T).await,
        "a/private",
    );
    forbidden(
        from(&c, "private").call(StoreMsg::Get, T).await,
        "a/private",
    );
    let local: Addr<StoreMsg> = a.node.lookup("private").unwrap();
    assert_eq!(local.call(StoreMsg::Get, T).await, Ok(7));
    // `only_b`: b yes, c no
    assert_eq!(from(&b, "only_b").call(StoreMsg::Get, T).await, Ok(7));
    forbidden(from(&c, "only_b").call(StoreMsg::Get, T).await, "a/only_b");
    // a name that is not registered at all is still `NotFound`
    assert!(matches!(
        from(&b, "nobody").call(StoreMsg::Get, T).await,
        Err(CallError::NotFound { .. })
    ));

    // a refused cast is counted on the receiver (its sender cannot be answered)
    let before = a.net.refused_messages();
    assert_eq!(before, 3, "three refused calls so far");
    from(&c, "private")
        .cast(StoreMsg::Get(Reply::none()))
        .unwrap();
    eventually("the refused cast counted", T, async || {
        a.net.refused_messages() == before + 1
    })
    .await;

    // only the names other nodes may reach are announced to them
    eventually("a's reachable names announced", T, async || {
        let seen: Vec<Vec<String>> = ["open", "only_b", "open.peer"]
            .iter()
            .map(|n| b.net.whereis(n))
            .collect();
        if seen.iter().all(|nodes| nodes == &["a"]) {
            Ok(())
        } else {
            Err(seen)
        }
    })
    .await;
    assert!(b.net.whereis("private").is_empty());
    for m in [a, b, c] {
        m.net.shutdown().await;
        m.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_facet_is_a_second_protocol_with_a_reach_of_its_own() {
    let (a, b, c) = three_nodes().await;
    let peer_from = |m: &Member| m.node.addr::<PeerMsg>("a", "open.peer");
    let open_from = |m: &Member| m.node.addr::<StoreMsg>("a", "open");

    // b speaks the peer protocol; the actor behind it changes
    peer_from(&b)
        .call(|r| PeerMsg::Set(41, r), T)
        .await
        .unwrap();
    assert_eq!(open_from(&c).call(StoreMsg::Get, T).await, Ok(41));
    // c may call `open` but not its peer protocol
    forbidden(
        peer_from(&c).call(|r| PeerMsg::Set(0, r), T).await,
        "a/open.peer",
    );
    assert_eq!(open_from(&c).call(StoreMsg::Get, T).await, Ok(41));
    // on its own node the facet is reached in memory, wrapped the same way
    let local: Addr<PeerMsg> = a.node.lookup("open.peer").unwrap();
    local.call(|r| PeerMsg::Set(42, r), T).await.unwrap();
    assert_eq!(open_from(&b).call(StoreMsg::Get, T).await, Ok(42));
    // the facet and the actor take different types
    assert!(matches!(
        a.node.lookup::<StoreMsg>("open.peer"),
        Err(CallError::WrongType { .. })
    ));

    // neither the peer variant nor the self-message can be sent through the client name:
    // they do not encode, so nothing leaves b
    for msg in [
        StoreMsg::Tick,
        StoreMsg::Peer(PeerMsg::Set(0, Reply::none())),
    ] {
        match open_from(&b).cast(msg) {
            Err(CallError::Decode(reason)) => {
                assert!(reason.contains("cannot be serialized"), "{reason}")
            }
            other => panic!("expected an encode refusal, got {other:?}"),
        }
    }
    assert_eq!(open_from(&b).call(StoreMsg::Get, T).await, Ok(42));

    for m in [a, b, c] {
        m.net.shutdown().await;
        m.node.shutdown().await;
    }
}

/// The declared reach of a child is kept across restarts of its actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_actor_keeps_its_reach() {
    let (a, b, c) = three_nodes().await;
    assert!(a.node.kill("only_b"));
    let only_b = b.node.addr::<StoreMsg>("a", "only_b");
    eventually("only_b back for b", T, async || {
        only_b.call(StoreMsg::Get, Duration::from_millis(500)).await
    })
    .await;
    forbidden(
        c.node
            .addr::<StoreMsg>("a", "only_b")
            .call(StoreMsg::Get, T)
            .await,
        "a/only_b",
    );
    for m in [a, b, c] {
        m.net.shutdown().await;
        m.node.shutdown().await;
    }
}

/// A reach by role admits the nodes the receiving node's own table says play it; what a peer
/// is called is proven by its certificate, and its roles come from that table only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reach_by_role_admits_the_nodes_the_table_gives_that_role() {
    let cluster = Cluster::new("roles");
    let roles: NodeRoles = Arc::new(BTreeMap::from([(
        "b".to_string(),
        BTreeSet::from(["ops".to_string()]),
    )]));
    let config = NodeConfig {
        node_roles: roles,
        ..NodeConfig::default()
    };
    let a = Node::new("a", &Mesh::new(), config).unwrap();
    let (ops_only, _) = a
        .child(
            "admin",
            ChildOptions::permanent().reachable_from(Reach::roles(["ops"])),
            || Store(1),
        )
        .unwrap();
    a.start(SupervisorSpec::one_for_one(), vec![ops_only])
        .await
        .unwrap();
    let a_net = cluster.join(&a, &[]).await;
    let others = [
        empty_member(&cluster, "b", a_net.local_addr()).await,
        empty_member(&cluster, "c", a_net.local_addr()).await,
    ];
    fully_connected(&[&a_net, &others[0].net, &others[1].net], T).await;
    let admin = |m: &Member| m.node.addr::<StoreMsg>("a", "admin");
    assert_eq!(admin(&others[0]).call(StoreMsg::Get, T).await, Ok(1));
    forbidden(admin(&others[1]).call(StoreMsg::Get, T).await, "a/admin");
    for m in others {
        m.net.shutdown().await;
        m.node.shutdown().await;
    }
    a_net.shutdown().await;
    a.shutdown().await;
}

/// A node no table lists plays the roles its certificate carries: it claims them in its
/// hello, the receiving node checks each against the certificate, and a reach by role then
/// admits it. A node claiming a role its certificate does not carry never gets that far.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_no_table_lists_plays_the_roles_its_certificate_proves() {
    let cluster = Cluster::new("roles");
    let a = Node::new("a", &Mesh::new(), NodeConfig::default()).unwrap();
    let (ops_only, _) = a
        .child(
            "admin",
            ChildOptions::permanent().reachable_from(Reach::roles(["ops"])),
            || Store(1),
        )
        .unwrap();
    a.start(SupervisorSpec::one_for_one(), vec![ops_only])
        .await
        .unwrap();
    let a_net = cluster.join(&a, &[]).await;

    let joined = Node::new("joined", &Mesh::new(), NodeConfig::default()).unwrap();
    joined
        .start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    let identity = cluster
        .ca()
        .identity_with_roles("joined", &["ops"])
        .expect("an identity with a role");
    let config = NetConfig::new(cluster.name(), identity).seeds([a_net.local_addr()]);
    let joined_net = cluster.bind(&joined, config).await;
    let plain = empty_member(&cluster, "plain", a_net.local_addr()).await;
    fully_connected(&[&a_net, &joined_net, &plain.net], T).await;

    assert_eq!(a.roles_of("joined"), BTreeSet::from(["ops".to_string()]));
    assert_eq!(
        joined.roles_of("joined"),
        BTreeSet::from(["ops".to_string()])
    );
    assert!(a.roles_of("plain").is_empty());
    let admin = |n: &Node| n.addr::<StoreMsg>("a", "admin");
    assert_eq!(admin(&joined).call(StoreMsg::Get, T).await, Ok(1));
    forbidden(admin(&plain.node).call(StoreMsg::Get, T).await, "a/admin");

    // an identity cannot even claim a role its certificate lacks
    let lacking = cluster.ca().identity("liar").expect("an identity");
    assert!(lacking.with_roles(&["ops"]).is_err());

    for (net, node) in [(joined_net, joined), (plain.net, plain.node), (a_net, a)] {
        net.shutdown().await;
        node.shutdown().await;
    }
}
