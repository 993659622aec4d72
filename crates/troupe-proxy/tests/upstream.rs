//! HTTP upstreams with real servers on loopback and a real client (hyper, tungstenite):
//! proxy headers and passive ejection, bodies streamed both ways within the limit, active
//! health checks, HTTP/2 upstreams and WebSocket pass-through.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_tungstenite::tungstenite::Message;
use troupe_proxy::upstream::HealthCheck;
use troupe_proxy::{Proxy, ProxyMsg, Upstream};
use troupe_runtime::{ChildOptions, Mesh, Node, NodeConfig, SupervisorSpec};
use troupe_testkit::{eventually, within};

const T: Duration = Duration::from_secs(5);

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ClientBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A plain HTTP server on loopback, as an application behind a reverse proxy would be.
struct AppServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    /// Whether `/healthz` answers 200 (else 503)
    healthy: Arc<AtomicBool>,
    /// Request body bytes `/upload` has read so far
    received: Arc<AtomicU64>,
    /// Lets `/download` send the rest of its body
    release: Arc<tokio::sync::Notify>,
    /// `/big` responses dropped before their last byte was taken
    aborted: Arc<AtomicU64>,
}

/// 64 MiB in 64 KiB chunks; counts itself in `aborted` if dropped before its end.
struct Big {
    left: usize,
    aborted: Arc<AtomicU64>,
}

impl hyper::body::Body for Big {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return std::task::Poll::Ready(None);
        }
        this.left -= 1;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(
            vec![b'b'; 64 << 10],
        )))))
    }
}

impl Drop for Big {
    fn drop(&mut self) {
        if self.left > 0 {
            self.aborted.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Starts an app server named `name`, speaking HTTP/2 (prior knowledge) if `h2`, else
/// HTTP/1.1 with upgrades. Paths: `/healthz`; `/upload` reads the body as it comes and
/// answers its length; `/download` sends `first`, waits for `release`, then `rest`; `/ws`
/// echoes WebSocket messages; anything else answers the name, the request and its proxy
/// headers.
async fn app_server(name: &'static str, h2: bool) -> AppServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let healthy = Arc::new(AtomicBool::new(true));
    let received = Arc::new(AtomicU64::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let aborted = Arc::new(AtomicU64::new(0));
    let (h, r, n, a) = (
        healthy.clone(),
        received.clone(),
        release.clone(),
        aborted.clone(),
    );
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let (healthy, received, release, aborted) =
                (h.clone(), r.clone(), n.clone(), a.clone());
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let (healthy, received, release, aborted) = (
                        healthy.clone(),
                        received.clone(),
                        release.clone(),
                        aborted.clone(),
                    );
                    async move {
                        if req.uri().path() == "/big" {
                            let big = Big {
                                left: 1024,
                                aborted,
                            };
                            return Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                big.boxed(),
                            ));
                        }
                        Ok::<_, std::convert::Infallible>(
                            answer(name, req, &healthy, &received, &release).await,
                        )
                    }
                });
                let io = TokioIo::new(stream);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .with_upgrades()
                        .await;
                }
            });
        }
    });
    AppServer {
        addr,
        task,
        healthy,
        received,
        release,
        aborted,
    }
}

async fn answer(
    name: &str,
    mut req: hyper::Request<Incoming>,
    healthy: &AtomicBool,
    received: &AtomicU64,
    release: &Arc<tokio::sync::Notify>,
) -> hyper::Response<ClientBody> {
    let text = |status: u16, body: String| {
        let mut response = hyper::Response::new(full(body));
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        response
    };
    match req.uri().path() {
        "/healthz" if healthy.load(Ordering::SeqCst) => text(200, "ok".into()),
        "/healthz" => text(503, "sick".into()),
        "/upload" => {
            let mut body = req.into_body();
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    received.fetch_add(data.len() as u64, Ordering::SeqCst);
                }
            }
            text(
                200,
                format!("{name} got {}", received.load(Ordering::SeqCst)),
            )
        }
        "/download" => {
            let (mut tx, body) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
            let release = release.clone();
            tokio::spawn(async move {
                let _ = tx.send_data(Bytes::from_static(b"first ")).await;
                release.notified().await;
                let _ = tx.send_data(Bytes::from_static(b"rest")).await;
            });
            hyper::Response::new(body.boxed())
        }
        "/ws" => {
            let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
                return text(400, "not a websocket handshake".into());
            };
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else { return };
                let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    tokio_tungstenite::tungstenite::protocol::Role::Server,
                    None,
                )
                .await;
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() || message.is_binary() {
                        if ws.send(message).await.is_err() {
                            return;
                        }
                    } else if message.is_close() {
                        return;
                    }
                }
            });
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            hyper::Response::builder()
                .status(101)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", accept)
                .body(full(String::new()))
                .unwrap()
        }
        _ => {
            let h = |n: &str| {
                req.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_string()
            };
            text(
                200,
                format!(
                    "{name} {} {} {:?} xff={} fwd={} via={} secret={}",
                    req.method(),
                    req.uri(),
                    req.version(),
                    h("x-forwarded-for"),
                    h("forwarded"),
                    h("via"),
                    h("x-secret"),
                ),
            )
        }
    }
}

fn full(body: impl Into<Bytes>) -> ClientBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A node running only a gateway configured by `configure`; answers the node and the port.
async fn gateway(configure: impl FnOnce(Proxy) -> Proxy) -> (Node, SocketAddr) {
    let node = Node::new("edge", &Mesh::new(), NodeConfig::default()).unwrap();
    let proxy = configure(Proxy::http("127.0.0.1:0"));
    let (spec, proxy) = node
        .child("gateway", ChildOptions::permanent(), proxy.factory())
        .unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    let addr = eventually("the gateway bound", T, async || {
        proxy.call(ProxyMsg::LocalAddr, T).await.ok().flatten()
    })
    .await;
    (node, addr)
}

fn client() -> Client<HttpConnector, ClientBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `request` and answers its status and whole body as text.
async fn send(
    http: &Client<HttpConnector, ClientBody>,
    request: http::Request<ClientBody>,
) -> (u16, String) {
    let response = within("an answer", T, http.request(request)).await.unwrap();
    let status = response.status().as_u16();
    let body = within("the whole body", T, response.into_body().collect())
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn get(http: &Client<HttpConnector, ClientBody>, url: String) -> (u16, String) {
    send(http, http::Request::get(url).body(full("")).unwrap()).await
}

/// Requests alternate between two servers, each with `x-forwarded-for`, `forwarded` and
/// `via` set and hop-by-hop headers removed (one named by `connection` included); once one
/// server is killed, it is skipped and every request is answered by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_upstream_gets_proxy_headers_and_a_killed_member_is_skipped() {
    let (one, two) = (
        app_server("one", false).await,
        app_server("two", false).await,
    );
    let upstream = Upstream::http([
        format!("http://{}", one.addr),
        format!("http://{}", two.addr),
    ])
    .connect_timeout(Duration::from_millis(500));
    let (node, addr) = gateway(|p| p.route_upstream("/", upstream)).await;
    let http = client();
    let ask = async || {
        let request = http::Request::get(format!("http://{addr}/page?q=1"))
            .header("connection", "x-secret")
            .header("x-secret", "1")
            .body(full(""))
            .unwrap();
        send(&http, request).await
    };
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let (status, body) = ask().await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains(" GET /page?q=1 HTTP/1.1 xff=127.0.0.1 "),
            "{body}"
        );
        assert!(body.contains(" fwd=for=127.0.0.1;proto=http"), "{body}");
        assert!(body.contains(" via=1.1 troupe secret=-"), "{body}");
        served.insert(body.split(' ').next().unwrap_or_default().to_string());
    }
    assert_eq!(served, ["one", "two"].map(String::from).into());

    one.task.abort();
    // requests caught on a connection the kill closed may fail; then the member is skipped
    eventually("ten answers in a row from the live member", T, async || {
        for _ in 0..10 {
            let (status, body) = ask().await;
            if status != 200 || !body.starts_with("two ") {
                return Err((status, body));
            }
        }
        Ok(())
    })
    .await;
    node.shutdown().await;
}

/// The upstream reads the request body while the client is still sending it, and the client
/// reads the response body while the upstream is still writing it: neither is gathered whole
/// first (both waits would hang if it were).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_through_both_ways_without_waiting_for_their_ends() {
    let app = app_server("app", false).await;
    let upstream = Upstream::http([format!("http://{}", app.addr)]);
    let (node, addr) = gateway(|p| p.route_upstream("/", upstream).body_limit(8 << 20)).await;
    let http = client();

    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, BoxError>::new(4);
    let request = http::Request::post(format!("http://{addr}/upload"))
        .body(body.boxed())
        .unwrap();
    let sent = tokio::spawn({
        let http = http.clone();
        async move { send(&http, request).await }
    });
    tx.send_data(Bytes::from(vec![1; 100_000])).await.unwrap();
    eventually("the first chunk reached the upstream", T, async || {
        app.received.load(Ordering::SeqCst) >= 100_000
    })
    .await;
    for _ in 0..39 {
        tx.send_data(Bytes::from(vec![1; 100_000])).await.unwrap();
    }
    drop(tx);
    let (status, body) = within("the upload's answer", T, sent).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "app got 4000000"));

    let response = within(
        "the download's head",
        T,
        http.request(
            http::Request::get(format!("http://{addr}/download"))
                .body(full(""))
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = within("the first chunk, before the rest is sent", T, body.frame())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().ok().as_deref(), Some(&b"first "[..]));
    app.release.notify_one();
    let rest = within("the rest", T, body.collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&rest[..], b"rest");
    node.shutdown().await;
}

/// A body sent chunked, with no length up front, is cut off as it passes the limit: the
/// client gets `413` and the upstream never reads much past the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_over_the_limit_is_413_and_stops_at_the_limit() {
    let app = app_server("app", false).await;
    let upstream = Upstream::http([format!("http://{}", app.addr)]);
    let (node, addr) = gateway(|p| p.route_upstream("/", upstream).body_limit(1 << 20)).await;
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
    let request = http::Request::post(format!("http://{addr}/upload"))
        .body(body.boxed())
        .unwrap();
    let feeder = tokio::spawn(async move {
        // 3 MiB offered; sends fail once the gateway has given up on the body
        for _ in 0..48 {
            if tx.send_data(Bytes::from(vec![2; 64 << 10])).await.is_err() {
                break;
            }
        }
    });
    match within("an answer", T, client().request(request)).await {
        Ok(response) => assert_eq!(response.status().as_u16(), 413),
        // the gateway answered 413 and closed while this client was still writing the body:
        // HTTP/1.1's client may then see its write fail before it reads the answer
        Err(error) => assert!(format!("{error:?}").contains("BodyWrite"), "{error:?}"),
    }
    let _ = within("the feeder to stop", T, feeder).await;
    let read = app.received.load(Ordering::SeqCst);
    assert!(
        read <= (1 << 20) + (64 << 10),
        "the upstream read {read} bytes"
    );
    node.shutdown().await;
}

/// A member failing its health checks gets no requests until it passes them again, though
/// nothing else (no failed request) told the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_failing_health_checks_is_taken_out_until_it_passes_again() {
    let (one, two) = (
        app_server("one", false).await,
        app_server("two", false).await,
    );
    let check = HealthCheck::get("/healthz")
        .interval(Duration::from_millis(50))
        .rise(2)
        .fall(2);
    let upstream = Upstream::http([
        format!("http://{}", one.addr),
        format!("http://{}", two.addr),
    ])
    .health_check(check);
    let (node, addr) = gateway(|p| p.route_upstream("/", upstream)).await;
    let http = client();
    let answered_by = async || {
        let mut names = std::collections::BTreeSet::new();
        for _ in 0..6 {
            let (status, body) = get(&http, format!("http://{addr}/x")).await;
            assert_eq!(status, 200, "{body}");
            names.insert(body.split(' ').next().unwrap_or_default().to_string());
        }
        names
    };
    assert_eq!(answered_by().await.len(), 2);
    one.healthy.store(false, Ordering::SeqCst);
    eventually("only the healthy member answers", T, async || {
        answered_by().await == ["two".to_string()].into()
    })
    .await;
    one.healthy.store(true, Ordering::SeqCst);
    eventually("both members answer again", T, async || {
        answered_by().await.len() == 2
    })
    .await;
    node.shutdown().await;
}

/// An HTTP/2 upstream is spoken to over HTTP/2 (prior knowledge) whatever the client speaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_upstream_is_reached_over_http2() {
    let app = app_server("h2app", true).await;
    let upstream = Upstream::http([format!("http://{}", app.addr)]).http2();
    let (node, addr) = gateway(|p| p.route_upstream("/", upstream)).await;
    let (status, body) = get(&client(), format!("http://{addr}/over")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("h2app GET "), "{body}");
    assert!(body.contains(" HTTP/2.0 xff=127.0.0.1 "), "{body}");
    node.shutdown().await;
}

/// A WebSocket handshake through the gateway reaches the upstream, and messages then go both
/// ways over the tunnel; the gateway keeps serving plain requests meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_passes_through_to_the_upstream() {
    let app = app_server("app", false).await;
    let upstream = Upstream::http([format!("http://{}", app.addr)]);
    let (node, addr) = gateway(|p| p.route_upstream("/", upstream)).await;
    let (mut ws, response) = within(
        "the websocket handshake",
        T,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 101);
    for i in 0..3 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        let echoed = within("the echo", T, ws.next()).await.unwrap().unwrap();
        assert_eq!(echoed, Message::text(format!("hello {i}")));
    }
    ws.send(Message::binary(vec![9u8; 100_000])).await.unwrap();
    let echoed = within("the binary echo", T, ws.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoed.into_data().len(), 100_000);
    let (status, _) = get(&client(), format!("http://{addr}/plain")).await;
    assert_eq!(status, 200);
    ws.close(None).await.unwrap();
    node.shutdown().await;
}

/// Answers every request with its method, path and body, as an actor member.
struct ActorMember;

impl troupe_runtime::Actor for ActorMember {
    type Msg = troupe_proxy::HttpCall;

    async fn handle(
        &mut self,
        call: troupe_proxy::HttpCall,
        _: &mut troupe_runtime::Ctx<troupe_proxy::HttpCall>,
    ) -> Result<(), troupe_runtime::ActorError> {
        let r = &call.request;
        let text = format!(
            "actor {} {} {}",
            r.method,
            r.path(),
            String::from_utf8_lossy(&r.body)
        );
        call.reply.send(troupe_proxy::HttpResponse::ok(text));
        Ok(())
    }
}

/// One pool of an HTTP server and an actor: requests alternate between them (the actor gets
/// the body), and with the server killed, the actor answers everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_server_and_an_actor_share_one_pool() {
    let app = app_server("one", false).await;
    let node = Node::new("edge", &Mesh::new(), NodeConfig::default()).unwrap();
    let (actor_spec, actor) = node
        .child("member", ChildOptions::permanent(), || ActorMember)
        .unwrap();
    let upstream = Upstream::http([format!("http://{}", app.addr)])
        .actor(actor)
        .connect_timeout(Duration::from_millis(500));
    let proxy = Proxy::http("127.0.0.1:0").route_upstream("/", upstream);
    let (spec, proxy) = node
        .child("gateway", ChildOptions::permanent(), proxy.factory())
        .unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![actor_spec, spec])
        .await
        .unwrap();
    let addr = eventually("the gateway bound", T, async || {
        proxy.call(ProxyMsg::LocalAddr, T).await.ok().flatten()
    })
    .await;
    let http = client();
    let post = async || {
        let request = http::Request::post(format!("http://{addr}/items?x=1"))
            .body(full("tea"))
            .unwrap();
        send(&http, request).await
    };
    let mut answers = Vec::new();
    for _ in 0..4 {
        let (status, body) = post().await;
        assert_eq!(status, 200, "{body}");
        answers.push(body);
    }
    assert!(
        answers.iter().any(|b| b.starts_with("one POST /items?x=1")),
        "{answers:?}"
    );
    assert!(
        answers.iter().any(|b| b == "actor POST /items tea"),
        "{answers:?}"
    );
    app.task.abort();
    eventually("the actor answers everything", T, async || {
        for _ in 0..6 {
            let (status, body) = get(&http, format!("http://{addr}/x")).await;
            if status != 200 || !body.starts_with("actor ") {
                return Err((status, body));
            }
        }
        Ok(())
    })
    .await;
    node.shutdown().await;
}

/// A client that asks for 64 MiB and then reads nothing is cut off after the send timeout:
/// the gateway closes its connection and drops the upstream's response, instead of holding
/// both for as long as the client likes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_after_the_send_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = app_server("app", false).await;
    let upstream = Upstream::http([format!("http://{}", app.addr)]);
    let (node, addr) = gateway(|p| {
        p.route_upstream("/", upstream)
            .send_timeout(Duration::from_millis(300))
    })
    .await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    eventually(
        "the upstream's response dropped unfinished",
        T,
        async || app.aborted.load(Ordering::SeqCst) == 1,
    )
    .await;
    // what the sockets held arrives, then the end: far from the 64 MiB asked for
    let mut got = 0usize;
    let mut buf = vec![0; 64 << 10];
    loop {
        match within("the cut-off connection's end", T, stream.read(&mut buf)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got < 32 << 20, "read {got} bytes after the cut-off");
    node.shutdown().await;
}
