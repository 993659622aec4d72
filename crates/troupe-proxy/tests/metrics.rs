//! The proxy's counters reach the `metrics` facade: requests by status, latency, rate-limited.
//! (Its own test binary: the recorder is process-global.)

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use troupe_proxy::{HttpCall, HttpResponse, Proxy, ProxyMsg};
use troupe_runtime::{
    Actor, ActorError, ChildOptions, Ctx, Mesh, Node, NodeConfig, SupervisorSpec,
};

struct Ok200;

/// Drops every request without an answer.
struct Broken;

impl Actor for Broken {
    type Msg = HttpCall;
    async fn handle(&mut self, ask: HttpCall, _: &mut Ctx<HttpCall>) -> Result<(), ActorError> {
        drop(ask);
        Ok(())
    }
}

impl Actor for Ok200 {
    type Msg = HttpCall;
    async fn handle(&mut self, ask: HttpCall, _: &mut Ctx<HttpCall>) -> Result<(), ActorError> {
        ask.reply.send(HttpResponse::ok("fine"));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_latency_and_rate_limiting_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("first recorder in this process");

    let node = Node::new("m", &Mesh::new(), NodeConfig::default()).unwrap();
    let (svc_spec, svc) = node
        .child("svc", ChildOptions::permanent(), || Ok200)
        .unwrap();
    let (broken_spec, broken) = node
        .child("broken", ChildOptions::permanent(), || Broken)
        .unwrap();
    let proxy = Proxy::http("127.0.0.1:0")
        .route("/", svc)
        .route("/broken", broken)
        .rate_limit_per_ip(3);
    let (p_spec, p) = node
        .child("gateway", ChildOptions::permanent(), proxy.factory())
        .unwrap();
    node.start(
        SupervisorSpec::one_for_one(),
        vec![svc_spec, broken_spec, p_spec],
    )
    .await
    .unwrap();
    let addr = troupe_testkit::eventually("the proxy bound", troupe_testkit::T, async || {
        p.call(ProxyMsg::LocalAddr, Duration::from_secs(1))
            .await
            .ok()
            .flatten()
    })
    .await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let failed = client
        .get(format!("http://{addr}/broken").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(failed.status().as_u16(), 502);
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let resp = client
            .get(format!("http://{addr}/").parse().unwrap())
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count() as u64;
    let limited = statuses.iter().filter(|s| **s == 429).count() as u64;
    assert!(ok >= 2 && limited >= 1, "{statuses:?}");

    let mut by_status = std::collections::HashMap::new();
    let mut latencies = 0;
    let mut rate_limited = 0;
    let mut upstream_errors = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        match (key.name(), value) {
            ("troupe_proxy_requests_total", DebugValue::Counter(n)) => {
                let status = key
                    .labels()
                    .find(|l| l.key() == "status")
                    .map(|l| l.value().to_string())
                    .unwrap_or_default();
                let route = key
                    .labels()
                    .find(|l| l.key() == "route")
                    .map(|l| l.value().to_string())
                    .unwrap_or_default();
                by_status.insert(status, (n, route));
            }
            ("troupe_proxy_request_seconds", DebugValue::Histogram(samples)) => {
                latencies += samples.len();
            }
            ("troupe_proxy_rate_limited_total", DebugValue::Counter(n)) => rate_limited = n,
            ("troupe_proxy_upstream_errors_total", DebugValue::Counter(n)) => {
                let mut labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                labels.sort();
                upstream_errors.push((labels.join(","), n));
            }
            _ => {}
        }
    }
    // answered requests count under their route (the target's name), refused ones before
    // routing under "-"
    assert_eq!(by_status.get("200"), Some(&(ok, "svc".to_string())));
    assert_eq!(by_status.get("429"), Some(&(limited, "-".to_string())));
    assert_eq!(rate_limited, limited);
    assert_eq!(by_status.get("502"), Some(&(1, "broken".to_string())));
    assert_eq!(latencies as u64, ok + limited + 1);
    // the failed call, by what went wrong
    assert_eq!(
        upstream_errors,
        vec![("reason=failed,route=broken".to_string(), 1)]
    );
}
