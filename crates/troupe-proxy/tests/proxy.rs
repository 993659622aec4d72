//! The proxy with a real HTTP client (hyper) against real actors: routing, keep-alive and
//! HTTP/2, every failure mapping, the body limit, malformed requests, the rate limiter,
//! graceful drain, and a crash under supervision.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use troupe_proxy::{HttpCall, HttpResponse, Proxy, ProxyMsg};
use troupe_runtime::{
    Actor, ActorError, Addr, Ask, ChildOptions, Ctx, Mesh, Node, NodeConfig, Reach, SupervisorSpec,
};
use troupe_testkit::{Cluster, eventually, within};

const T: Duration = Duration::from_secs(5);

/// Answers by path: `/slow` sleeps 1.5 s, `/panic` panics, anything else echoes who and what.
struct Service {
    name: &'static str,
    /// `/slow` requests taken so far (to know one is in flight)
    slow_started: Arc<AtomicUsize>,
}

impl Actor for Service {
    type Msg = HttpCall;

    async fn handle(
        &mut self,
        Ask {
            request: req,
            reply,
        }: HttpCall,
        _: &mut Ctx<HttpCall>,
    ) -> Result<(), ActorError> {
        if req.path().ends_with("/slow") {
            self.slow_started.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        if req.path().ends_with("/panic") {
            panic!("service asked to panic");
        }
        let body = format!(
            "{} {} {} {}",
            self.name,
            req.method,
            req.path(),
            String::from_utf8_lossy(&req.body)
        );
        reply.send(HttpResponse::ok(body));
        Ok(())
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: String,
    host: Option<&str>,
    body: Option<&'static str>,
) -> (u16, http::HeaderMap, String) {
    let mut req = http::Request::builder()
        .method(if body.is_some() { "POST" } else { "GET" })
        .uri(url);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or(""))))
        .unwrap();
    let resp = tokio::time::timeout(T, client.request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

struct Edge {
    node: Node,
    addr: SocketAddr,
    /// `/slow` requests the services have taken
    slow_started: Arc<AtomicUsize>,
}

/// A node with services `a` and `b` and a proxy configured by `configure`.
async fn edge(
    name: &str,
    configure: impl FnOnce(Proxy, Addr<HttpCall>, Addr<HttpCall>, Addr<HttpCall>) -> Proxy,
) -> Edge {
    let node = Node::new(name, &Mesh::new(), NodeConfig::default()).unwrap();
    let slow_started = Arc::new(AtomicUsize::new(0));
    let (a_slow, b_slow) = (slow_started.clone(), slow_started.clone());
    let (a_spec, a) = node
        .child("a", ChildOptions::permanent(), move || Service {
            name: "a",
            slow_started: a_slow.clone(),
        })
        .unwrap();
    let (b_spec, b) = node
        .child("b", ChildOptions::permanent(), move || Service {
            name: "b",
            slow_started: b_slow.clone(),
        })
        .unwrap();
    let missing = node.addr::<HttpCall>(name, "missing");
    let proxy = configure(
        Proxy::http("127.0.0.1:0").timeout(Duration::from_millis(500)),
        a,
        b,
        missing,
    );
    let (p_spec, p) = node
        .child("gateway", ChildOptions::permanent(), proxy.factory())
        .unwrap();
    node.start(
        SupervisorSpec::one_for_one().intensity(10, Duration::from_secs(10)),
        vec![a_spec, b_spec, p_spec],
    )
    .await
    .unwrap();
    let addr = local_addr(&p).await;
    Edge {
        node,
        addr,
        slow_started,
    }
}

async fn local_addr(p: &Addr<ProxyMsg>) -> SocketAddr {
    eventually("the proxy bound", T, async || {
        p.call(ProxyMsg::LocalAddr, T).await.ok().flatten()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_prefix_and_host_over_keep_alive_and_http2() {
    let e = edge("e", |p, a, b, _| {
        p.route("/", a.clone())
            .route("/b", b.clone())
            .route_host("admin.example", "/", b)
    })
    .await;
    let c = client();
    let base = format!("http://{}", e.addr);
    assert_eq!(
        get(&c, format!("{base}/x"), None, None).await.2,
        "a GET /x "
    );
    assert_eq!(
        get(&c, format!("{base}/b/y"), None, Some("hi")).await.2,
        "b POST /b/y hi"
    );
    assert_eq!(
        get(&c, format!("{base}/bz"), None, None).await.2,
        "a GET /bz "
    );
    assert_eq!(
        get(&c, format!("{base}/x"), Some("admin.example:80"), None)
            .await
            .2,
        "b GET /x "
    );
    // many requests on the pooled keep-alive connection
    for i in 0..20 {
        let (status, _, _) = get(&c, format!("{base}/k{i}"), None, None).await;
        assert_eq!(status, 200);
    }
    // HTTP/2 (prior knowledge, cleartext)
    let h2: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let (status, _, body) = get(&h2, format!("{base}/two"), None, None).await;
    assert_eq!((status, body.as_str()), (200, "a GET /two "));
}

// A timeout far above the crash's cost: with RUST_BACKTRACE set, the panic hook symbolizes a
// backtrace of a debug build, which can take longer than the other test's 500 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_crashing_on_the_request_is_502_and_the_next_request_is_served() {
    let e = edge("e", |p, a, _, _| {
        p.route("/", a).timeout(Duration::from_secs(5))
    })
    .await;
    let c = client();
    let base = format!("http://{}", e.addr);
    let (status, headers, body) = get(&c, format!("{base}/panic"), None, None).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    // the target is restarted by its supervisor and serves again
    eventually("200 from the restarted target", T, async || {
        let (status, _, body) = get(&c, format!("{base}/x"), None, None).await;
        if status == 200 {
            Ok(())
        } else {
            Err((status, body))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_map_to_statuses_with_a_text_body() {
    let e = edge("e", |p, a, _, missing| {
        p.route("/", a).route("/missing", missing).body_limit(16)
    })
    .await;
    let c = client();
    let base = format!("http://{}", e.addr);
    // timed out → 504
    let (status, headers, body) = get(&c, format!("{base}/slow"), None, None).await;
    assert_eq!(status, 504);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert!(!body.trim().is_empty());
    // target missing → 503
    let (status, _, body) = get(&c, format!("{base}/missing/x"), None, None).await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.trim().is_empty());
    // body over the limit → 413
    let (status, _, body) = get(&c, format!("{base}/x"), None, Some("0123456789abcdefXYZ")).await;
    assert_eq!(status, 413, "{body}");
    assert!(!body.trim().is_empty());
    // and the proxy keeps serving (once the slow request is done; until then, `a` is busy
    // and the proxy answers 504)
    eventually("200 once the slow request is done", T, async || {
        let (status, _, body) = get(&c, format!("{base}/x"), None, Some("small")).await;
        if status == 200 {
            Ok(())
        } else {
            Err((status, body))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_is_413_without_reading_it_all() {
    let e = edge("e", |p, a, _, _| p.route("/", a).body_limit(1024)).await;
    let mut s = tokio::net::TcpStream::connect(e.addr).await.unwrap();
    let mut req = b"POST /x HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        req.extend_from_slice(b"400\r\n");
        req.extend_from_slice(&[b'z'; 0x400]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&req).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(T, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_is_400_and_the_server_carries_on() {
    let e = edge("e", |p, a, _, _| p.route("/", a)).await;
    let mut s = tokio::net::TcpStream::connect(e.addr).await.unwrap();
    s.write_all(b"THIS IS NOT HTTP\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(T, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    assert!(
        !body.trim().is_empty(),
        "a 400 without a text body: {text:?}"
    );
    let (status, _, _) = get(&client(), format!("http://{}/ok", e.addr), None, None).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_gets_429_with_retry_after() {
    let e = edge("e", |p, a, _, _| p.route("/", a).rate_limit_per_ip(5)).await;
    let c = client();
    let mut limited = None;
    for i in 0..50 {
        let (status, headers, body) = get(&c, format!("http://{}/r{i}", e.addr), None, None).await;
        if status == 429 {
            limited = Some((headers, body));
            break;
        }
        assert_eq!(status, 200);
    }
    let (headers, body) = limited.expect("no 429 within 50 requests at 5/s");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert!(body.contains("too many requests"));
}

/// A connection to `to` from the loopback address `from` (all of 127.0.0.0/8 is loopback, so
/// 127.0.0.2 is a second client address).
async fn connect_from(from: &str, to: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    tokio::time::timeout(T, socket.connect(to))
        .await
        .unwrap()
        .unwrap()
}

/// One HTTP/1.1 GET on `stream`, keeping the connection open; the response head and body.
async fn get_on(stream: &mut tokio::net::TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut text = String::new();
    // the echo service's answers are short: one read of the head and body, or the close
    while !text.contains("\r\n\r\n") {
        let n = tokio::time::timeout(T, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_per_address_limit_is_503_and_others_are_served() {
    let e = edge("e", |p, a, _, _| {
        p.route("/", a).max_connections_per_address(2)
    })
    .await;
    let mut held = Vec::new();
    for i in 0..2 {
        let mut s = connect_from("127.0.0.1", e.addr).await;
        let answer = get_on(&mut s, &format!("/held{i}")).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(s);
    }
    // a third connection from 127.0.0.1 is answered 503 and closed
    let mut third = connect_from("127.0.0.1", e.addr).await;
    third
        .write_all(b"GET /third HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut refused = Vec::new();
    tokio::time::timeout(T, third.read_to_end(&mut refused))
        .await
        .expect("refused at once")
        .unwrap();
    let refused = String::from_utf8_lossy(&refused);
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("connection: close"), "{refused}");
    assert!(refused.contains("too many connections"), "{refused}");
    // another address is served, and so are the held connections
    let mut other = connect_from("127.0.0.2", e.addr).await;
    let answer = get_on(&mut other, "/other").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for (i, s) in held.iter_mut().enumerate() {
        let answer = get_on(s, &format!("/again{i}")).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    // a place frees up when a held connection closes
    drop(held.pop());
    eventually("a place free again after a close", T, async || {
        let mut s = connect_from("127.0.0.1", e.addr).await;
        get_on(&mut s, "/freed").await.starts_with("HTTP/1.1 200")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_crashed_under_supervision_serves_again_after_restart() {
    let e = edge("e", |p, a, _, _| p.route("/", a)).await;
    let c = client();
    assert_eq!(
        get(&c, format!("http://{}/x", e.addr), None, None).await.0,
        200
    );
    let mut reports = e.node.supervision_reports();
    assert!(e.node.kill("gateway"));
    let report = tokio::time::timeout(T, reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.child, "gateway");
    // the restarted instance binds the same address again
    let gateway = e.node.lookup::<ProxyMsg>("gateway").unwrap();
    eventually(
        "the proxy back on its address, answering 200",
        T,
        async || {
            let bound = gateway.call(ProxyMsg::LocalAddr, T).await;
            if bound != Ok(Some(e.addr)) {
                return Err(format!("bound: {bound:?}"));
            }
            let answer = tokio::time::timeout(
                Duration::from_secs(1),
                client().get(format!("http://{}/y", e.addr).parse().unwrap()),
            )
            .await;
            match answer {
                Ok(Ok(resp)) if resp.status() == 200 => Ok(()),
                Ok(Ok(resp)) => Err(format!("status {}", resp.status())),
                Ok(Err(err)) => Err(format!("request failed: {err}")),
                Err(_) => Err("no answer within 1 s".into()),
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests() {
    let e = edge("e", |p, a, _, _| {
        p.route("/", a).timeout(Duration::from_secs(5))
    })
    .await;
    let c = client();
    let url = format!("http://{}/slow", e.addr);
    let in_flight = tokio::spawn(async move { get(&c, url, None, None).await });
    eventually("the slow request in flight", T, async || {
        e.slow_started.load(Ordering::SeqCst) == 1
    })
    .await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), e.node.shutdown())
        .await
        .unwrap();
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // and no new connections are accepted afterwards
    assert!(tokio::net::TcpStream::connect(e.addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_on_a_node_that_goes_down_is_502_right_after_the_report() {
    use troupe_runtime::remote::NodeEvent;
    let cluster = Cluster::new("t");
    // the service on node "app", the proxy on node "edge", in separate meshes (as if separate
    // processes), over QUIC
    let app = Node::new("app", &Mesh::new(), NodeConfig::default()).unwrap();
    let slow_started = Arc::new(AtomicUsize::new(0));
    let app_slow = slow_started.clone();
    let (spec, _) = app
        .child(
            "svc",
            ChildOptions::permanent().reachable_from(Reach::nodes(["edge"])),
            move || Service {
                name: "app",
                slow_started: app_slow.clone(),
            },
        )
        .unwrap();
    app.start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    let app_net = cluster.join(&app, &[]).await;
    let edge = Node::new("edge", &Mesh::new(), NodeConfig::default()).unwrap();
    let proxy = Proxy::http("127.0.0.1:0")
        .route("/", edge.addr::<HttpCall>("app", "svc"))
        .timeout(Duration::from_secs(5));
    let (spec, p) = edge
        .child("gateway", ChildOptions::permanent(), proxy.factory())
        .unwrap();
    edge.start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    let edge_net = cluster.join(&edge, &[app_net.local_addr()]).await;
    troupe_testkit::fully_connected(&[&app_net, &edge_net], T).await;
    let addr = local_addr(&p).await;
    let c = client();
    assert_eq!(get(&c, format!("http://{addr}/x"), None, None).await.0, 200);

    let mut events = edge_net.events();
    let url = format!("http://{addr}/slow");
    let c2 = c.clone();
    let in_flight = tokio::spawn(async move {
        let r = get(&c2, url, None, None).await;
        (r, Instant::now())
    });
    eventually("the slow request in flight", T, async || {
        slow_started.load(Ordering::SeqCst) == 1
    })
    .await;
    app_net.shutdown().await;
    let reported = within("app reported left or down", T, async {
        loop {
            match events.recv().await.unwrap() {
                NodeEvent::Left { .. } | NodeEvent::Down { .. } => break Instant::now(),
                _ => continue,
            }
        }
    })
    .await;
    let ((status, _, body), answered) = in_flight.await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(
        answered.saturating_duration_since(reported) < Duration::from_millis(100),
        "answered {:?} after the report",
        answered.saturating_duration_since(reported)
    );
    // new requests fail fast too
    let t0 = Instant::now();
    let (status, _, _) = get(&c, format!("http://{addr}/x"), None, None).await;
    assert_eq!(status, 502);
    assert!(t0.elapsed() < Duration::from_millis(100));
}

/// Reads from `stream` until it closes (or `T` passes, which fails the test); what it got.
async fn read_to_close(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(T, stream.read_to_end(&mut got))
        .await
        .expect("the server closes the connection in time")
        .ok();
    String::from_utf8_lossy(&got).into_owned()
}

/// Three clients that hold a connection without finishing a request — one stalls in a head,
/// one idles on a keep-alive connection after a request, one trickles a body a byte every
/// 100 ms — are each cut off by the server's timeouts (`408` for the head it started, the
/// idle connection closed, `408` and `connection: close` for the body), and a fresh client is
/// answered `200` while they hang on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_heads_idle_connections_and_trickled_bodies_are_cut_off() {
    let edge = edge("edge", |p, a, _, _| {
        p.route("/", a)
            .header_timeout(Duration::from_millis(500))
            .body_timeout(Duration::from_millis(800))
    })
    .await;
    let url = format!("http://{}/fresh", edge.addr);
    let mut stalled = connect_from("127.0.0.1", edge.addr).await;
    stalled
        .write_all(b"GET /a HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut idle = connect_from("127.0.0.1", edge.addr).await;
    assert!(get_on(&mut idle, "/a").await.starts_with("HTTP/1.1 200"));
    let trickle = connect_from("127.0.0.1", edge.addr).await;
    let (mut answer, mut body) = trickle.into_split();
    body.write_all(b"POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n")
        .await
        .unwrap();
    let trickling = tokio::spawn(async move {
        for _ in 0..100 {
            if body.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert_eq!(get(&client(), url.clone(), None, None).await.0, 200);

    let head = read_to_close(&mut stalled).await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert_eq!(
        read_to_close(&mut idle).await,
        "",
        "the idle connection is closed"
    );
    let refused = read_to_close(&mut answer).await;
    assert!(refused.starts_with("HTTP/1.1 408"), "{refused}");
    assert!(
        refused.to_ascii_lowercase().contains("connection: close"),
        "{refused}"
    );
    trickling.abort();
    assert_eq!(get(&client(), url, None, None).await.0, 200);
    edge.node.shutdown().await;
}

/// Connections [`idle_connections_and_a_byte_a_second_body_leave_a_fresh_client_served`]
/// holds, from ten loopback addresses (a thousand each, within the per-address limit)
const IDLE: usize = 10_000;
const IDLE_SOURCES: usize = 10;

/// The child side of the test below: opens [`IDLE`] connections to the proxy at `addr`, each
/// after one request answered `200`, prints `held N` and holds them until it is killed (or
/// for two minutes at most)
async fn hold_idle_connections(addr: SocketAddr) {
    let mut sources = tokio::task::JoinSet::new();
    for source in 0..IDLE_SOURCES {
        sources.spawn(async move {
            let from = format!("127.0.0.{}", source + 1);
            let mut held = Vec::with_capacity(IDLE / IDLE_SOURCES);
            for _ in 0..IDLE / IDLE_SOURCES {
                let mut stream = connect_from(&from, addr).await;
                let answer = get_on(&mut stream, "/a").await;
                assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
                held.push(stream);
            }
            held
        });
    }
    let mut held = Vec::with_capacity(IDLE);
    while let Some(streams) = sources.join_next().await {
        held.extend(streams.expect("a source's connections"));
    }
    println!("held {}", held.len());
    tokio::time::sleep(Duration::from_secs(120)).await;
}

/// This process's soft limit on open files, from `/proc/self/limits` (`None` if unknown or
/// unlimited)
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Kills and reaps the child process on drop, the test's panics included
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Ten thousand keep-alive connections held idle by another process (after a request each) and
/// a body sent a byte a second: a fresh client still gets `200` within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_and_a_byte_a_second_body_leave_a_fresh_client_served() {
    if let Ok(addr) = std::env::var("TROUPE_PROXY_HOLD_IDLE") {
        hold_idle_connections(addr.parse().expect("an address")).await;
        return;
    }
    if let Some(limit) = open_file_limit().filter(|n| *n < IDLE as u64 + 1_000) {
        println!("skipped: {limit} open files allowed, {IDLE} connections need more (ulimit -n)");
        return;
    }
    // idle connections stay open for the length of the test
    let edge = edge("edge", |p, a, _, _| {
        p.route("/", a).header_timeout(Duration::from_secs(60))
    })
    .await;
    let exe = std::env::current_exe().expect("the test binary");
    let mut holder = Child(
        std::process::Command::new(exe)
            .args([
                "--exact",
                "idle_connections_and_a_byte_a_second_body_leave_a_fresh_client_served",
                "--nocapture",
            ])
            .env("TROUPE_PROXY_HOLD_IDLE", edge.addr.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the holder"),
    );
    let stdout = holder.0.stdout.take().expect("piped");
    let held = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("held ").map(str::to_string))
    });
    let held = tokio::time::timeout(Duration::from_secs(120), held)
        .await
        .expect("the holder opened its connections in time")
        .expect("the reader");
    assert_eq!(held, Some(IDLE.to_string()));

    let slow = connect_from("127.0.0.1", edge.addr).await;
    let (_answer, mut body) = slow.into_split();
    body.write_all(b"POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 30\r\n\r\n")
        .await
        .unwrap();
    let trickling = tokio::spawn(async move {
        for _ in 0..30 {
            if body.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let url = format!("http://{}/fresh", edge.addr);
    for _ in 0..3 {
        let http = client();
        let fresh = get(&http, url.clone(), None, None);
        let (status, _, _) = within("a fresh client's answer", Duration::from_secs(1), fresh).await;
        assert_eq!(status, 200);
    }
    trickling.abort();
    drop(holder);
    edge.node.shutdown().await;
}

/// The lines of `path` once it holds at least `n` (polled; the log is written by a task)
async fn log_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    eventually(&format!("{n} access-log lines"), T, async || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            Ok(lines)
        } else {
            Err(lines)
        }
    })
    .await
}

/// With an access log on, each request gets a line — routed or not, answered by a target or
/// by the gateway — in the combined log format, or as JSON lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_gets_an_access_log_line_combined_or_json() {
    use troupe_proxy::{AccessLog, AccessLogTo};
    let dir = tempfile::tempdir().unwrap();
    let (combined, json) = (
        dir.path().join("access.log"),
        dir.path().join("access.jsonl"),
    );
    let to = |path: &std::path::Path| AccessLogTo::File(path.to_path_buf());
    let plain = edge("plain", |p, a, _, missing| {
        p.route("/a", a)
            .route("/gone", missing)
            .access_log(AccessLog::combined(to(&combined)))
    })
    .await;
    let structured = edge("structured", |p, a, _, _| {
        p.route("/a", a).access_log(AccessLog::json(to(&json)))
    })
    .await;
    let http = client();
    let base = format!("http://{}", plain.addr);
    assert_eq!(
        get(&http, format!("{base}/a/x?q=1"), None, None).await.0,
        200
    );
    assert_eq!(
        get(&http, format!("{base}/nowhere"), None, None).await.0,
        404
    );
    assert_eq!(get(&http, format!("{base}/gone"), None, None).await.0, 503);
    let lines = log_lines(&combined, 3).await;
    let expect = [
        "\"GET /a/x?q=1 HTTP/1.1\" 200 ",
        "\"GET /nowhere HTTP/1.1\" 404 ",
        // a target that is not registered
        "\"GET /gone HTTP/1.1\" 503 ",
    ];
    for (line, request) in lines.iter().zip(expect) {
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        assert!(line.contains(" +0000] "), "{line}");
        assert!(line.contains(request), "{line}");
        assert!(line.ends_with(" \"-\" \"-\""), "{line}");
    }

    let url = format!("http://{}/a/y", structured.addr);
    assert_eq!(get(&http, url, None, Some("hello")).await.0, 200);
    let lines = log_lines(&json, 1).await;
    let line: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON line");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["target"], "/a/y");
    assert_eq!(line["protocol"], "HTTP/1.1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["route"], "a");
    assert!(line["bytes"].as_u64().is_some_and(|b| b > 0), "{line}");
    assert!(
        line["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{line}"
    );
    plain.node.shutdown().await;
    structured.node.shutdown().await;
}

/// HTTPS: TLS terminated at the gateway with a certificate the test makes (a node certificate
/// for the name `gateway`, from a CA of its own); HTTP/1.1 and HTTP/2 chosen by ALPN, each
/// answered by the routed service; plain HTTP sent to the TLS port gets no HTTP answer.
/// The leaf certificate `addr` presents in a TLS handshake, trusting the CA in `dir`.
async fn presented_cert(dir: &std::path::Path, addr: SocketAddr) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(dir.join("ca.crt")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("gateway").unwrap();
    let tls = within("a TLS handshake", T, connector.connect(name, tcp))
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn cert_der(path: &std::path::Path) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

/// A certificate renewed on disk is served to new connections without a restart; a broken
/// file written over it leaves the last good one in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_picked_up_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    troupe_identity::init_ca(dir.path(), "c").unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    let old = troupe_identity::issue_node(dir.path(), "gateway", &first).unwrap();
    let new = troupe_identity::issue_node(dir.path(), "gateway", &second).unwrap();
    let (cert, key) = (dir.path().join("live.crt"), dir.path().join("live.key"));
    std::fs::copy(&old.cert, &cert).unwrap();
    std::fs::copy(&old.key, &key).unwrap();
    let (c, k) = (cert.clone(), key.clone());
    let edge = edge("reload", move |p, a, _, _| {
        p.route("/", a)
            .tls(c, k)
            .tls_reload_every(Duration::from_millis(50))
    })
    .await;
    assert_eq!(
        presented_cert(dir.path(), edge.addr).await,
        cert_der(&old.cert)
    );

    std::fs::copy(&new.key, &key).unwrap();
    std::fs::copy(&new.cert, &cert).unwrap();
    let renewed = cert_der(&new.cert);
    eventually("the renewed certificate served", T, async || {
        presented_cert(dir.path(), edge.addr).await == renewed
    })
    .await;

    std::fs::write(&cert, "not a certificate").unwrap();
    // checked a few times over: the broken file never replaces the good certificate
    for _ in 0..5 {
        assert_eq!(presented_cert(dir.path(), edge.addr).await, renewed);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    edge.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_http1_and_http2_by_alpn_with_a_certificate_from_files() {
    use hyper_util::rt::TokioIo;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let dir = tempfile::tempdir().unwrap();
    troupe_identity::init_ca(dir.path(), "c").unwrap();
    let issued = troupe_identity::issue_node(dir.path(), "gateway", dir.path()).unwrap();
    let (cert, key) = (issued.cert.clone(), issued.key.clone());
    let edge = edge("tls", move |p, a, _, _| p.route("/", a).tls(cert, key)).await;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(dir.path().join("ca.crt")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    for (alpn, version) in [
        (&b"http/1.1"[..], http::Version::HTTP_11),
        (&b"h2"[..], http::Version::HTTP_2),
    ] {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
        let name = ServerName::try_from("gateway").unwrap();
        let io = TokioIo::new(
            within("a TLS handshake", T, connector.connect(name, tcp))
                .await
                .unwrap(),
        );
        let uri = if version == http::Version::HTTP_2 {
            "https://gateway/a/secure"
        } else {
            "/a/secure"
        };
        let req = http::Request::get(uri)
            .header("host", "gateway")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = if version == http::Version::HTTP_2 {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            within("an HTTP/2 answer", T, send.send_request(req))
                .await
                .unwrap()
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            within("an HTTP/1.1 answer", T, send.send_request(req))
                .await
                .unwrap()
        };
        assert_eq!((resp.status().as_u16(), resp.version()), (200, version));
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(body.starts_with(b"a GET /a/secure"), "{body:?}");
    }
    let mut plain = connect_from("127.0.0.1", edge.addr).await;
    plain
        .write_all(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut plain).await;
    assert!(!answer.starts_with("HTTP/"), "{answer}");
    edge.node.shutdown().await;
}
