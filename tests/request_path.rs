//! The seed talk's request path as one topology: a gateway proxy on node `edge` routes to a
//! balancer on node `app`, which spreads requests over a pool of services — driven by a real
//! HTTP client, in one process and with the nodes talking over QUIC.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use troupe::prelude::*;
use troupe::proxy::ProxyMsg;

struct Service {
    index: usize,
}

impl Actor for Service {
    type Msg = HttpCall;

    async fn handle(&mut self, call: HttpCall, _: &mut Ctx<HttpCall>) -> Result<(), ActorError> {
        let path = call.request.path();
        call.reply
            .send(HttpResponse::ok(format!("svc {} {path}", self.index)));
        Ok(())
    }
}

fn request_path() -> (Topology, Addr<ProxyMsg>) {
    let mut t = Topology::new("request-path");
    let (edge, app) = (t.node("edge"), t.node("app"));
    let svc = t.pool(app, "svc", 3, |index| Service { index });
    // the gateway on `edge` calls the balancer on `app`: declared, or refused across nodes
    let lb = t.add(
        app,
        "lb",
        Balancer::round_robin(&svc).reachable_from(Reach::nodes(["edge"])),
    );
    let gateway = t.add(edge, "gateway", Proxy::http("127.0.0.1:0").route("/", lb));
    (t, gateway)
}

async fn gateway_addr(gateway: &Addr<ProxyMsg>) -> SocketAddr {
    troupe_testkit::eventually("the gateway bound", Duration::from_secs(10), async || {
        gateway
            .call(ProxyMsg::LocalAddr, Duration::from_secs(1))
            .await
            .ok()
            .flatten()
    })
    .await
}

async fn serve_through(args: LaunchArgs) {
    let (topology, gateway) = request_path();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(launch_until(topology, args, async move {
        let _ = stop_rx.await;
    }));
    let addr = gateway_addr(&gateway).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    // over QUIC the edge answers 502 until its link to `app` is up, as across hosts
    troupe_testkit::eventually(
        "a first 200 through the gateway",
        Duration::from_secs(10),
        async || {
            let uri = format!("http://{addr}/items/warm").parse().unwrap();
            match client.get(uri).await {
                Ok(resp) if resp.status() == 200 => Ok(()),
                Ok(resp) => Err(resp.status().to_string()),
                Err(err) => Err(err.to_string()),
            }
        },
    )
    .await;
    let mut seen = [0; 3];
    for i in 0..30 {
        let uri = format!("http://{addr}/items/{i}").parse().unwrap();
        let resp = client.get(uri).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        assert!(text.ends_with(&format!("/items/{i}")), "{text}");
        let index: usize = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        seen[index] += 1;
    }
    // the balancer spread the requests over the whole pool
    assert_eq!(seen, [10, 10, 10]);
    stop(stop_tx, running).await;
}

/// Stops a topology run by `launch_until` and waits (bounded) for it to end cleanly.
async fn stop(
    stop_tx: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<Result<(), troupe::LaunchError>>,
) {
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_balancer_pool_in_one_process() {
    serve_through(LaunchArgs::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_balancer_pool_over_quic() {
    serve_through(LaunchArgs {
        quic: true,
        ..LaunchArgs::default()
    })
    .await;
}

/// Answers with the length of the body it pulled.
struct Counter;

impl Actor for Counter {
    type Msg = HttpStreamCall;

    async fn handle(
        &mut self,
        call: HttpStreamCall,
        _: &mut Ctx<HttpStreamCall>,
    ) -> Result<(), ActorError> {
        let body = &call.request.body;
        let answer = match body.read_to_end(8 << 20, Duration::from_secs(5)).await {
            Ok(all) => HttpResponse::ok(format!("pulled {}", all.len())),
            Err(err) => HttpResponse::text(StatusCode::BAD_REQUEST, err.to_string()),
        };
        call.reply.send(HttpStreamResponse::whole(answer));
        Ok(())
    }
}

/// A streaming route declared in a topology gets its body service placed beside the gateway:
/// the target on `app` pulls a body sent to the gateway on `edge`.
async fn stream_through(args: LaunchArgs) {
    let mut t = Topology::new("streaming");
    let (edge, app) = (t.node("edge"), t.node("app"));
    let counter = t.add(
        app,
        "counter",
        (|| Counter).reachable_from(Reach::nodes(["edge"])),
    );
    let gateway = t.add(
        edge,
        "gateway",
        Proxy::http("127.0.0.1:0").route_streaming("/", counter),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(launch_until(t, args, async move {
        let _ = stop_rx.await;
    }));
    let addr = gateway_addr(&gateway).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<http_body_util::Full<Bytes>>();
    troupe_testkit::eventually(
        "a body pulled across nodes",
        Duration::from_secs(10),
        async || {
            let request = http::Request::post(format!("http://{addr}/count"))
                .body(http_body_util::Full::new(Bytes::from(vec![7u8; 300_000])))
                .unwrap();
            match client.request(request).await {
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                    match body {
                        Ok(b) if status == 200 && &b[..] == b"pulled 300000" => Ok(()),
                        other => Err(format!("{status} {other:?}")),
                    }
                }
                Err(err) => Err(err.to_string()),
            }
        },
    )
    .await;
    stop(stop_tx, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_route_in_one_process() {
    stream_through(LaunchArgs::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_route_over_quic() {
    stream_through(LaunchArgs {
        quic: true,
        ..LaunchArgs::default()
    })
    .await;
}
