//! How each of troupe's parts is placed by [`Topology::add`](crate::Topology::add): one
//! [`Part`] impl per part, each returning the handle or typed client users reach it through.

#[cfg(feature = "cache")]
use troupe_cache::{CacheClient, CacheSpec};
#[cfg(feature = "queue")]
use troupe_queue::{QueueClient, QueueSpec};
#[cfg(any(feature = "proxy", feature = "balancer"))]
use troupe_runtime::Addr;
#[cfg(any(feature = "proxy", feature = "balancer", feature = "queue"))]
use troupe_runtime::ChildOptions;

#[cfg(any(feature = "cache", feature = "db"))]
use troupe_runtime::Reach;

use crate::topology::{Part, Place, Topology};

/// The gateway: one actor serving HTTP on its address; the handle asks it for its bound
/// address (`ProxyMsg::LocalAddr`). A gateway with streaming routes also gets its body
/// service, `NAME.bodies`, beside it, reachable as the topology declares (the whole cluster
/// by default: streaming targets may run on any node, and each stream's id is a secret only
/// its target learns).
#[cfg(feature = "proxy")]
impl Part for troupe_proxy::Proxy {
    type Handle = Addr<troupe_proxy::ProxyMsg>;

    fn place(self, topology: &mut Topology, place: Place, name: &str) -> Self::Handle {
        let proxy = if self.has_streaming_routes() {
            let reach = topology
                .declared_reach()
                .cloned()
                .unwrap_or_else(troupe_runtime::Reach::cluster);
            let service = topology.add_with(
                place,
                &format!("{name}.bodies"),
                ChildOptions::permanent().reachable_from(reach),
                self.body_service(),
            );
            self.with_body_service(service)
        } else {
            self
        };
        topology.add_with(place, name, ChildOptions::permanent(), proxy.factory())
    }
}

/// A balancer stands where a member would: its handle takes the members' requests.
#[cfg(feature = "balancer")]
impl<Q: troupe_runtime::Request> Part for troupe_balancer::Balancer<Q> {
    type Handle = Addr<troupe_runtime::Ask<Q>>;

    fn place(self, topology: &mut Topology, place: Place, name: &str) -> Self::Handle {
        topology.add_with(place, name, ChildOptions::permanent(), self.factory())
    }
}

/// The queue: one actor (in memory or on a redb file); the client enqueues, takes, acks.
#[cfg(feature = "queue")]
impl Part for QueueSpec {
    type Handle = QueueClient;

    fn place(self, topology: &mut Topology, place: Place, name: &str) -> QueueClient {
        let client = QueueClient::new(topology.add_with(
            place,
            name,
            ChildOptions::permanent(),
            self.factory(),
        ));
        #[cfg(feature = "admin")]
        topology
            .admin_parts_mut()
            .add_queue(crate::admin_parts::QueuePart {
                name: name.to_string(),
                client: client.clone(),
            });
        client
    }
}

/// The cache: shards `name.0..` under a one-for-one supervisor `name`, with read-through if
/// the spec has a backing store and a RESP front end `name.resp` if it has an address; the
/// client routes each key to its shard.
#[cfg(feature = "cache")]
impl Part for CacheSpec {
    type Handle = CacheClient;

    fn place(self, topology: &mut Topology, place: Place, name: &str) -> CacheClient {
        let spec = match topology.declared_reach() {
            Some(reach) if *self.reach() == Reach::Local => self.reachable_from(reach.clone()),
            _ => self,
        };
        let shards = (0..spec.shard_count())
            .map(|i| topology.handle(place, &Self::shard_name(name, i)))
            .collect::<Vec<_>>();
        let client = spec.client(shards);
        let name = name.to_string();
        topology.declare_children(place, move |node| {
            spec.children(node, &name).map(|(children, _)| children)
        });
        client
    }
}

/// The replicated database: replica `i` (named `name.i`) on the node its spec names, or on
/// `place`'s node for replicas added with `DbSpec::replicas(n)`; the client follows the
/// leader.
#[cfg(feature = "db")]
impl Part for troupe_db::DbSpec {
    type Handle = troupe_db::DbClient;

    fn place(self, topology: &mut Topology, place: Place, name: &str) -> troupe_db::DbClient {
        let mut spec = self.placed(name, topology.place_node_name(place));
        if let Some(reach) = topology.declared_reach()
            && *spec.reach() == Reach::Local
        {
            spec = spec.reachable_from(reach.clone());
        }
        let mut replicas = Vec::with_capacity(spec.replica_count());
        #[cfg(feature = "admin")]
        let mut placed = Vec::with_capacity(spec.replica_count());
        for i in 0..spec.replica_count() {
            let node_name = spec.replica_node(i).unwrap_or_default().to_string();
            #[cfg(feature = "admin")]
            placed.push((spec.replica_name(i), node_name.clone()));
            let node = topology.node(&node_name);
            replicas.push(topology.handle(node, &spec.replica_name(i)));
            let spec = spec.clone();
            topology.declare_children(node.into(), move |node| {
                spec.child(node, i).map(|(child, _)| vec![child])
            });
        }
        let client = troupe_db::DbClient::new(replicas);
        #[cfg(feature = "admin")]
        topology
            .admin_parts_mut()
            .add_db(crate::admin_parts::DbPart {
                name: name.to_string(),
                client: client.clone(),
                replicas: placed,
            });
        client
    }
}
