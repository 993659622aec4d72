//! Shards placed on another node: the RESP front end on node `edge` reaches the cache shards
//! on node `data` over QUIC, through the same client code as in one process.

use std::num::NonZeroUsize;
use std::time::Duration;

use troupe_cache::{CacheClient, CacheShard, RespServer, RespServerMsg, ShardMsg};
use troupe_runtime::{Addr, ChildOptions, Mesh, Node, NodeConfig, Pool, Reach, SupervisorSpec};
use troupe_testkit::{Cluster, fully_connected};

const T: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_end_serves_from_shards_on_another_node() {
    let cluster = Cluster::new("c");

    let data = Node::new("data", &Mesh::new(), NodeConfig::default()).unwrap();
    let entries = NonZeroUsize::new(1_000).unwrap();
    let (spec, _) = data
        .pool_child(
            "cache",
            2,
            ChildOptions::permanent().reachable_from(Reach::nodes(["edge"])),
            move |_| CacheShard::new(entries, 1 << 20),
        )
        .unwrap();
    data.start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    let data_net = cluster.join(&data, &[]).await;

    let edge = Node::new("edge", &Mesh::new(), NodeConfig::default()).unwrap();
    let shards: Vec<Addr<ShardMsg>> = (0..2)
        .map(|i| edge.addr::<ShardMsg>("data", &Pool::<ShardMsg>::member_name("cache", i)))
        .collect();
    let server = RespServer::new("127.0.0.1:0");
    let (spec, server_addr) = edge
        .child(
            "resp",
            ChildOptions::permanent(),
            server.factory(CacheClient::new(shards)),
        )
        .unwrap();
    edge.start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    let edge_net = cluster.join(&edge, &[data_net.local_addr()]).await;
    fully_connected(&[&data_net, &edge_net], T).await;

    let addr = server_addr
        .call(RespServerMsg::LocalAddr, T)
        .await
        .unwrap()
        .expect("bound");
    let mut con = redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for i in 0..20 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(format!("v{i}"))
            .query_async(&mut con)
            .await
            .unwrap();
    }
    for i in 0..20 {
        let v: String = redis::cmd("GET")
            .arg(format!("k{i}"))
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(v, format!("v{i}"));
    }
    let n: i64 = redis::cmd("DBSIZE").query_async(&mut con).await.unwrap();
    assert_eq!(n, 20);
}
