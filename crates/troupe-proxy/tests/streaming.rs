//! Streaming routes with a real client (hyper) and real actors, on the gateway's node and on
//! another node over QUIC: the target pulls the request body while the client still sends it,
//! a target that stops pulling stops the client, and a pushed response reaches the client
//! chunk by chunk.

use http::{HeaderMap, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use troupe_proxy::{HttpStreamCall, HttpStreamResponse, Proxy, ProxyMsg};
use troupe_runtime::{
    Actor, ActorError, Addr, Ask, ChildOptions, Ctx, Mesh, Node, NodeConfig, Reach, SupervisorSpec,
};
use troupe_testkit::{Cluster, eventually, within};

const T: Duration = Duration::from_secs(10);

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ClientBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// What the target has seen and when it may go on.
#[derive(Default)]
struct Shared {
    /// Request body bytes pulled so far
    pulled: AtomicU64,
    /// Lets `/download` push the rest, and `/stall` pull the rest; `/twice` signals with it
    release: tokio::sync::Notify,
    /// What `/twice` saw
    verdicts: std::sync::Mutex<Option<String>>,
}

/// `/upload` pulls the whole body and answers its length; `/stall` pulls one chunk, waits
/// for `release`, then pulls the rest; `/download` answers a streamed response, pushes
/// `first `, waits for `release`, pushes `rest` and finishes.
struct Target {
    shared: Arc<Shared>,
}

impl Actor for Target {
    type Msg = HttpStreamCall;

    async fn handle(
        &mut self,
        Ask { request, reply }: HttpStreamCall,
        _: &mut Ctx<HttpStreamCall>,
    ) -> Result<(), ActorError> {
        let shared = self.shared.clone();
        // off the mailbox, as a target serving several streams at once would
        tokio::spawn(async move {
            match request.path() {
                "/twice" => {
                    // pull until the body fails, then once more: it must fail again
                    let first = loop {
                        match request.body.next(T).await {
                            Ok(Some(chunk)) => {
                                shared
                                    .pulled
                                    .fetch_add(chunk.len() as u64, Ordering::SeqCst);
                            }
                            other => break other,
                        }
                    };
                    let again = request.body.next(T).await;
                    *shared.verdicts.lock().unwrap() = Some(format!("{first:?} then {again:?}"));
                    shared.release.notify_one();
                    reply.send(HttpStreamResponse::whole(troupe_proxy::HttpResponse::ok(
                        "",
                    )));
                }
                "/download" => {
                    reply.send(HttpStreamResponse::streamed(
                        StatusCode::OK,
                        HeaderMap::new(),
                    ));
                    let sink = request.response;
                    if sink.send(b"first ".to_vec(), T).await.is_err() {
                        return;
                    }
                    shared.release.notified().await;
                    let _ = sink.send(b"rest".to_vec(), T).await;
                    let _ = sink.finish(T).await;
                }
                path => {
                    let mut first = true;
                    loop {
                        match request.body.next(T).await {
                            Ok(Some(chunk)) => {
                                shared
                                    .pulled
                                    .fetch_add(chunk.len() as u64, Ordering::SeqCst);
                            }
                            Ok(None) => break,
                            Err(err) => {
                                reply.send(HttpStreamResponse::whole(
                                    troupe_proxy::HttpResponse::text(
                                        StatusCode::BAD_REQUEST,
                                        err.to_string(),
                                    ),
                                ));
                                return;
                            }
                        }
                        if path == "/stall" && first {
                            first = false;
                            shared.release.notified().await;
                        }
                    }
                    let got = shared.pulled.load(Ordering::SeqCst);
                    reply.send(HttpStreamResponse::whole(troupe_proxy::HttpResponse::ok(
                        format!("got {got}"),
                    )));
                }
            }
        });
        Ok(())
    }
}

/// The gateway and its body service on `node`, routing `/` to `target`; the service
/// reachable from `reach`. Answers the gateway's address once bound.
async fn gateway(
    node: &Node,
    target: Addr<HttpStreamCall>,
    reach: Reach,
    mut children: Vec<troupe_runtime::ChildSpec>,
) -> SocketAddr {
    let proxy = Proxy::http("127.0.0.1:0")
        .route_streaming("/", target)
        .body_limit(256 << 20)
        .timeout(T);
    let (service_spec, service) = node
        .child(
            "gateway.bodies",
            ChildOptions::permanent().reachable_from(reach),
            proxy.body_service(),
        )
        .unwrap();
    let proxy = proxy.with_body_service(service);
    let (spec, gateway) = node
        .child("gateway", ChildOptions::permanent(), proxy.factory())
        .unwrap();
    children.extend([service_spec, spec]);
    node.start(SupervisorSpec::one_for_one(), children)
        .await
        .unwrap();
    local_addr(&gateway).await
}

/// The gateway, its body service and the target on one node.
async fn on_one_node() -> (Node, Arc<Shared>, SocketAddr) {
    let node = Node::new("edge", &Mesh::new(), NodeConfig::default()).unwrap();
    let shared = Arc::new(Shared::default());
    let s = shared.clone();
    let (spec, target) = node
        .child("target", ChildOptions::permanent(), move || Target {
            shared: s.clone(),
        })
        .unwrap();
    let addr = gateway(&node, target, Reach::local(), vec![spec]).await;
    (node, shared, addr)
}

async fn local_addr(gateway: &Addr<ProxyMsg>) -> SocketAddr {
    eventually("the gateway bound", T, async || {
        gateway.call(ProxyMsg::LocalAddr, T).await.ok().flatten()
    })
    .await
}

fn client() -> Client<HttpConnector, ClientBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn empty() -> ClientBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

/// Uploads 4 MB in 100 kB chunks, checking the target pulled the first before the rest is
/// sent; then downloads a pushed body, checking the first chunk arrives before the rest is
/// pushed.
async fn streams_both_ways(addr: SocketAddr, shared: &Shared) {
    let http = client();
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, BoxError>::new(2);
    let request = http::Request::post(format!("http://{addr}/upload"))
        .body(body.boxed())
        .unwrap();
    let answer = tokio::spawn({
        let http = http.clone();
        async move {
            let response = http.request(request).await.unwrap();
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    });
    tx.send_data(Bytes::from(vec![1; 100_000])).await.unwrap();
    eventually("the target pulled the first chunk", T, async || {
        shared.pulled.load(Ordering::SeqCst) >= 100_000
    })
    .await;
    for _ in 0..39 {
        tx.send_data(Bytes::from(vec![1; 100_000])).await.unwrap();
    }
    drop(tx);
    let (status, text) = within("the upload's answer", T, answer).await.unwrap();
    assert_eq!((status, text.as_str()), (200, "got 4000000"));

    let request = http::Request::get(format!("http://{addr}/download"))
        .body(empty())
        .unwrap();
    let response = within("the download's head", T, http.request(request))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = within("the first pushed chunk", T, body.frame())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().ok().as_deref(), Some(&b"first "[..]));
    shared.release.notify_one();
    let rest = within("the rest", T, body.collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&rest[..], b"rest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_target_pulls_and_pushes_bodies_chunk_by_chunk() {
    let (node, shared, addr) = on_one_node().await;
    streams_both_ways(addr, &shared).await;
    node.shutdown().await;
}

/// A target that stops pulling stops the client: with the target waiting after its first
/// chunk, a client offering 64 MiB gets no further than what the sockets buffer, and finishes
/// once the target pulls again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_stops_pulling_holds_the_client_back() {
    let (node, shared, addr) = on_one_node().await;
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
    let request = http::Request::post(format!("http://{addr}/stall"))
        .body(body.boxed())
        .unwrap();
    let http = client();
    let answer = tokio::spawn(async move {
        let response = http.request(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    });
    const OFFERED: u64 = 64 << 20;
    let sent = Arc::new(AtomicU64::new(0));
    let feeder = tokio::spawn({
        let sent = sent.clone();
        async move {
            for _ in 0..OFFERED >> 20 {
                if tx.send_data(Bytes::from(vec![3; 1 << 20])).await.is_err() {
                    return;
                }
                sent.fetch_add(1 << 20, Ordering::SeqCst);
            }
        }
    });
    // the client is held back: what it sent stops growing, far below what it offers
    let mut last = u64::MAX;
    let held = eventually("the client held back", T, async || {
        let now = sent.load(Ordering::SeqCst);
        let steady = now == last;
        last = now;
        tokio::time::sleep(Duration::from_millis(200)).await;
        steady.then_some(now)
    })
    .await;
    assert!(
        held < OFFERED / 2,
        "the client sent {held} bytes to a stalled target"
    );
    shared.release.notify_one();
    within("the feeder to finish", T, feeder).await.unwrap();
    let text = within("the answer", T, answer).await.unwrap();
    assert_eq!(text, format!("got {OFFERED}"));
    node.shutdown().await;
}

/// The same streams with the target on another node, over QUIC: the target's node reaches the
/// body service through its handles in the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_on_another_node_pulls_and_pushes_bodies() {
    let cluster = Cluster::new("s");
    let app = Node::new("app", &Mesh::new(), NodeConfig::default()).unwrap();
    let shared = Arc::new(Shared::default());
    let s = shared.clone();
    let (spec, _) = app
        .child(
            "target",
            ChildOptions::permanent().reachable_from(Reach::nodes(["edge"])),
            move || Target { shared: s.clone() },
        )
        .unwrap();
    app.start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    let app_net = cluster.join(&app, &[]).await;
    let edge = Node::new("edge", &Mesh::new(), NodeConfig::default()).unwrap();
    let target = edge.addr::<HttpStreamCall>("app", "target");
    let addr = gateway(&edge, target, Reach::nodes(["app"]), vec![]).await;
    let edge_net = cluster.join(&edge, &[app_net.local_addr()]).await;
    troupe_testkit::fully_connected(&[&app_net, &edge_net], T).await;
    streams_both_ways(addr, &shared).await;
    edge.shutdown().await;
    app.shutdown().await;
}

/// A body that broke off stays broken: pulling again after the error is the error again,
/// never a clean end that would pass a truncated body as whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_broke_off_is_never_a_clean_end() {
    let (node, shared, addr) = on_one_node().await;
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
    let request = http::Request::post(format!("http://{addr}/twice"))
        .body(body.boxed())
        .unwrap();
    let http = client();
    let sent = tokio::spawn(async move { http.request(request).await });
    tx.send_data(Bytes::from(vec![1; 10_000])).await.unwrap();
    eventually("the target pulled the first chunk", T, async || {
        shared.pulled.load(Ordering::SeqCst) >= 10_000
    })
    .await;
    // the client gives up mid-body: its connection is aborted
    tx.abort("the client gave up".into());
    let _ = within("the client's request to end", T, sent).await;
    within("the target's two pulls", T, shared.release.notified()).await;
    let seen = shared.verdicts.lock().unwrap().clone().unwrap_or_default();
    assert!(
        seen.starts_with("Err(") && seen.contains(" then Err("),
        "{seen}"
    );
    node.shutdown().await;
}
