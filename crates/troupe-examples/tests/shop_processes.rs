//! shop as three OS processes on loopback (`edge`, `app`, `data`; certificates from a real CA
//! directory, data in real files), driven by a real HTTP client through the gateway and a real
//! Redis client against the RESP port:
//!
//! - every endpoint of the HTTP API, and the cache over RESP;
//! - SIGKILL of `app`: requests get 504 until the node is reported down, 502/503 within 100 ms
//!   of that report, and 200 again once `app` is back;
//! - SIGKILL of `data` and a restart: no acknowledged write or order is lost, and the pending
//!   orders complete;
//! - shop as six processes (`--data-nodes 3`): SIGKILL of one data node while orders flow;
//!   they go on, and none acknowledged is lost; SIGKILL of `app-1` while clients read and
//!   write: the services, balancer, cache and workers move to `app-2` as one failover group,
//!   with no 5xx after the failover window, and stay there when `app-1` returns;
//! - the live view in headless Chromium, the `troupe` CLI against each process, and one
//!   request's spans exported from all three processes under one trace id.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::chromium::Browser;
use common::{Proc, succeeded, troupe_cli};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use serde_json::Value;
use troupe_testkit::eventually;

const PEER_DOWN_MS: u64 = 1500;
/// The gateway's timeout in the app-kill test: well under the peer-down timeout, so requests
/// caught between the kill and the report get 504
const SHORT_REQUEST_TIMEOUT_MS: u64 = 400;

/// The gateway's timeout elsewhere
const REQUEST_TIMEOUT_MS: u64 = 5000;
const T: Duration = Duration::from_secs(30);

type Http = Client<HttpConnector, Full<Bytes>>;

struct Shop {
    ca: PathBuf,
    data_dir: PathBuf,
    /// The nodes, in start order: the (first) data node, `app`, `edge`, then any other data
    /// nodes (see [`Shop::spread`])
    names: Vec<String>,
    /// `--data-nodes`: 0 for the three-node layout
    data_nodes: u8,
    procs: Vec<Option<Proc>>,
    /// Where each running node's QUIC endpoint listens
    nodes: Vec<Option<SocketAddr>>,
    http: Option<SocketAddr>,
    resp: Option<SocketAddr>,
    /// The cache's memcached front end
    memcached: Option<SocketAddr>,
    /// Where each running node's admin endpoint listens
    admin: Vec<Option<SocketAddr>>,
    request_timeout_ms: u64,
    /// Where the processes export their spans (OTLP/HTTP JSON), if anywhere
    otlp: Option<SocketAddr>,
}

/// The three-node layout's nodes, at their indexes in [`Shop`]
const NODES: [&str; 3] = ["data", "app", "edge"];
const DATA: usize = 0;
const APP: usize = 1;
const EDGE: usize = 2;

impl Shop {
    fn new(dir: &Path, request_timeout_ms: u64) -> Self {
        Self::exporting(dir, request_timeout_ms, None)
    }

    /// As [`new`](Self::new), each process exporting its spans to `otlp`, with its node's
    /// name as the resource attribute `troupe.process`
    fn exporting(dir: &Path, request_timeout_ms: u64, otlp: Option<SocketAddr>) -> Self {
        Self::start_all(dir, request_timeout_ms, otlp, 0)
    }

    /// The layout with `data_nodes` data nodes (`data-1` at index 0, the others after
    /// `edge`), each its own process with its own data directory, as on separate hosts
    fn spread(dir: &Path, request_timeout_ms: u64, data_nodes: u8) -> Self {
        Self::start_all(dir, request_timeout_ms, None, data_nodes)
    }

    fn start_all(
        dir: &Path,
        request_timeout_ms: u64,
        otlp: Option<SocketAddr>,
        data_nodes: u8,
    ) -> Self {
        let names: Vec<String> = match data_nodes {
            0 => NODES.iter().map(|n| n.to_string()).collect(),
            // `app-1` where `app` is in the three-node layout, `app-2` last
            n => ["data-1", "app-1", "edge"]
                .into_iter()
                .map(String::from)
                .chain((2..=n).map(|i| format!("data-{i}")))
                .chain(["app-2".to_string()])
                .collect(),
        };
        let ca = dir.join("ca");
        troupe_identity::init_ca(&ca, "shop").expect("ca init");
        for node in &names {
            troupe_identity::issue_node(&ca, node, &ca).expect("issue");
        }
        let count = names.len();
        let mut shop = Self {
            ca,
            data_dir: dir.join("data"),
            names,
            data_nodes,
            procs: (0..count).map(|_| None).collect(),
            nodes: vec![None; count],
            http: None,
            resp: None,
            memcached: None,
            admin: vec![None; count],
            request_timeout_ms,
            otlp,
        };
        for i in 0..count {
            shop.start(i);
        }
        // placed on `app-1` once every data node runs
        if let Some(app) = shop.names.iter().position(|n| n == "app-1") {
            shop.app_ports(app);
        }
        shop
    }

    fn start(&mut self, i: usize) {
        let node = self.names[i].clone();
        // one directory per data node where they are spread, as on separate hosts
        let data_dir = match self.data_nodes {
            0 => self.data_dir.clone(),
            _ => self.data_dir.join(&node),
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shop"));
        cmd.args(["--node", &node, "--listen", "127.0.0.1:0"])
            .args(["--data-nodes", &self.data_nodes.to_string()])
            .args(["--http", "127.0.0.1:0", "--resp", "127.0.0.1:0"])
            .args(["--memcached", "127.0.0.1:0"])
            .args(["--admin", "127.0.0.1:0"])
            .args(["--peer-down-ms", &PEER_DOWN_MS.to_string()])
            .args(["--request-timeout-ms", &self.request_timeout_ms.to_string()])
            .arg("--ca")
            .arg(&self.ca)
            .arg("--data")
            .arg(&data_dir);
        if let Some(otlp) = self.otlp {
            cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
                .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
                .env("OTEL_BSP_SCHEDULE_DELAY", "100")
                .env("OTEL_RESOURCE_ATTRIBUTES", format!("troupe.process={node}"));
        }
        // Join through any node that runs (a restarted one listens on a new port).
        if let Some(seed) = self.nodes.iter().flatten().next() {
            cmd.args(["--seed", &seed.to_string()]);
        }
        let mut proc = Proc::spawn(cmd);
        self.nodes[i] = Some(proc.listening());
        self.admin[i] = Some(proc.admin());
        match node.as_str() {
            // `app-1` and `app-2` report the cache's ports only where their failover group
            // runs, once the metadata group places it: read by `start_all`
            "app" => {
                self.procs[i] = Some(proc);
                self.app_ports(i);
                return;
            }
            "edge" => {
                let line = proc.wait_for("http listening", T, |l| l.starts_with("http listening "));
                self.http = Some(line["http listening ".len()..].parse().expect("an address"));
            }
            _ => {}
        }
        self.procs[i] = Some(proc);
    }

    /// Reads the cache's RESP and memcached addresses from app node `i`'s output
    fn app_ports(&mut self, i: usize) {
        let proc = self.procs[i].as_mut().expect("the app node runs");
        let line = proc.wait_for("resp listening", T, |l| l.starts_with("resp listening "));
        self.resp = Some(line["resp listening ".len()..].parse().expect("an address"));
        let line = proc.wait_for("memcached listening", T, |l| {
            l.starts_with("memcached listening ")
        });
        let addr = line["memcached listening ".len()..].parse();
        self.memcached = Some(addr.expect("an address"));
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut proc) = self.procs[i].take() {
            proc.kill9();
        }
        self.nodes[i] = None;
    }

    fn edge(&mut self) -> &mut Proc {
        self.procs[EDGE].as_mut().expect("edge runs")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http.expect("edge runs"))
    }
}

fn http_client() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn request(http: &Http, method: &str, url: &str, body: &str) -> (u16, String) {
    request_with(http, method, url, &[], body).await
}

async fn request_with(
    http: &Http,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a request");
    let resp = tokio::time::timeout(T, http.request(req))
        .await
        .expect("an answer in time")
        .expect("an HTTP response");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("a body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Polls `GET /orders/{id}` until its status is no longer pending
async fn settled(shop: &Shop, http: &Http, id: &str) -> Value {
    eventually(&format!("order {id} settled"), T, async || {
        let (status, body) = request(http, "GET", &shop.url(&format!("/orders/{id}")), "").await;
        if status == 200 {
            let order = json(&body);
            if order["status"] != "pending" {
                return Ok(order);
            }
        }
        Err((status, body))
    })
    .await
}

/// Waits until `GET /items/{name}` answers `body` (a 5xx meanwhile is retried; a 404 means the
/// item was lost and fails the test)
async fn read_back(shop: &Shop, http: &Http, name: &str, body: &str) {
    eventually(&format!("item {name} read back"), T, async || {
        let (status, got) = request(http, "GET", &shop.url(&format!("/items/{name}")), "").await;
        assert_ne!(status, 404, "item {name} lost: {got}");
        if status == 200 {
            assert_eq!(got, body, "item {name}");
            Ok(())
        } else {
            Err((status, got))
        }
    })
    .await;
}

async fn redis(addr: SocketAddr) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}/"))
        .expect("a redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("a RESP connection")
}

/// Waits until a `GET /health` through the gateway answers 200
/// Sends `request` over a memcached connection and reads `len` bytes of reply.
async fn memcached(conn: &mut tokio::net::TcpStream, request: &str, len: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut reply = vec![0; len];
    tokio::time::timeout(T, conn.read_exact(&mut reply))
        .await
        .expect("a memcached reply in time")
        .unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}

async fn healthy(shop: &Shop, http: &Http) {
    eventually("the shop healthy", T, async || {
        let (status, body) = request(http, "GET", &shop.url("/health"), "").await;
        if status == 200 {
            Ok(())
        } else {
            Err((status, body))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_through_the_gateway_and_the_cache_over_resp() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop::new(dir.path(), REQUEST_TIMEOUT_MS);
    let http = http_client();
    healthy(&shop, &http).await;
    let (status, body) = request(&http, "GET", &shop.url("/health"), "").await;
    assert_eq!((status, json(&body)["status"].as_str()), (200, Some("ok")));

    // Items: stored as given, read back, deleted.
    let tea = r#"{"name":"green tea","price":4,"tags":["hot"]}"#;
    let (status, body) = request(&http, "PUT", &shop.url("/items/tea"), tea).await;
    assert_eq!((status, body.as_str()), (200, tea));
    assert_eq!(
        request(&http, "GET", &shop.url("/items/tea"), "").await,
        (200, tea.to_string())
    );
    let (status, body) = request(&http, "GET", &shop.url("/items/coffee"), "").await;
    assert_eq!(status, 404, "{body}");
    assert!(json(&body)["error"].as_str().is_some());
    request(&http, "PUT", &shop.url("/items/gone"), "{}").await;
    assert_eq!(
        request(&http, "DELETE", &shop.url("/items/gone"), "")
            .await
            .0,
        204
    );
    assert_eq!(
        request(&http, "GET", &shop.url("/items/gone"), "").await.0,
        404
    );
    assert_eq!(
        request(&http, "DELETE", &shop.url("/items/gone"), "")
            .await
            .0,
        404
    );

    // Bad input: 400 with a message saying what is wrong.
    for (method, path, body, says) in [
        ("PUT", "/items/tea", "{not json", "JSON object"),
        ("PUT", "/items/tea", "[1,2]", "JSON object"),
        (
            "POST",
            "/orders",
            "{\"item\":\"tea\"}",
            "missing field `qty`",
        ),
        ("POST", "/orders", "{\"qty\":1}", "missing field `item`"),
        ("POST", "/orders", "{\"item\":\"tea\",\"qty\":0}", "`qty`"),
        ("POST", "/orders", "nope", "not valid JSON"),
        ("GET", "/items/bad%20id", "", "an id is"),
    ] {
        let (status, answer) = request(&http, method, &shop.url(path), body).await;
        assert_eq!(status, 400, "{method} {path} {body}: {answer}");
        let message = json(&answer)["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(message.contains(says), "{method} {path} {body}: {message}");
    }

    // Orders: accepted at once, settled by the workers through the queue.
    let (status, body) = request(
        &http,
        "POST",
        &shop.url("/orders"),
        r#"{"item":"tea","qty":2}"#,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = json(&body)["id"].as_str().expect("an order id").to_string();
    let order = settled(&shop, &http, &id).await;
    assert_eq!(order["status"], "done");
    assert_eq!(order["qty"], 2);
    let (status, body) = request(
        &http,
        "POST",
        &shop.url("/orders"),
        r#"{"item":"coffee","qty":1}"#,
    )
    .await;
    assert_eq!(status, 202);
    let failed = settled(&shop, &http, json(&body)["id"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["reason"].as_str().unwrap().contains("coffee"),
        "{failed}"
    );
    assert_eq!(
        request(&http, "GET", &shop.url("/orders/nosuch"), "")
            .await
            .0,
        404
    );

    // The cache over RESP: what HTTP wrote is there, and what RESP writes goes through to
    // the database and back out over HTTP.
    let mut resp = redis(shop.resp.unwrap()).await;
    let cached: Option<String> = redis::cmd("GET")
        .arg("item:tea")
        .query_async(&mut resp)
        .await
        .unwrap();
    assert_eq!(cached.as_deref(), Some(tea));
    let _: () = redis::cmd("SET")
        .arg("item:mug")
        .arg(r#"{"name":"mug"}"#)
        .query_async(&mut resp)
        .await
        .unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut resp).await.unwrap();
    assert_eq!(
        request(&http, "GET", &shop.url("/items/mug"), "").await,
        (200, r#"{"name":"mug"}"#.to_string())
    );

    // The same cache over memcached's text protocol: reads and plain writes go through the
    // database, the rest is refused.
    let mut mc = tokio::net::TcpStream::connect(shop.memcached.unwrap())
        .await
        .unwrap();
    let want = format!("VALUE item:tea 0 {}\r\n{tea}\r\nEND\r\n", tea.len());
    assert_eq!(
        memcached(&mut mc, "get item:tea\r\n", want.len()).await,
        want
    );
    let cup = r#"{"name":"cup"}"#;
    let set = format!("set item:cup 0 0 {}\r\n{cup}\r\n", cup.len());
    assert_eq!(memcached(&mut mc, &set, 8).await, "STORED\r\n");
    assert_eq!(
        request(&http, "GET", &shop.url("/items/cup"), "").await,
        (200, cup.to_string())
    );
    let refused = "SERVER_ERROR touch is not supported on a read-through cache\r\n";
    assert_eq!(
        memcached(&mut mc, "touch item:cup 10\r\n", refused.len()).await,
        refused
    );

    // Every process's admin endpoint: ready, its node in the state with the other two up, and
    // metrics a Prometheus parser accepts; the gateway's request counter on the edge.
    for (i, node) in NODES.iter().enumerate() {
        let admin = shop.admin[i].expect("every node serves its admin endpoint");
        let base = format!("http://{admin}");
        assert_eq!(
            request(&http, "GET", &format!("{base}/ready"), "").await,
            (200, "ready\n".to_string()),
            "{node}"
        );
        let (status, body) = request(&http, "GET", &format!("{base}/state"), "").await;
        assert_eq!(status, 200, "{node}: {body}");
        let state = json(&body);
        assert_eq!(state["nodes"][0]["name"].as_str(), Some(*node), "{body}");
        let members = state["nodes"][0]["network"]["members"]
            .as_array()
            .unwrap_or_else(|| panic!("{node} lists its members: {body}"));
        for other in NODES.iter().filter(|n| *n != node) {
            assert!(
                members
                    .iter()
                    .any(|m| m["name"] == *other && m["status"] == "up"),
                "{node} sees {other} up: {body}"
            );
        }
        // what each process runs shows: every actor's counters and handling times, every
        // link's, and its parts' own (the parts publish once per tick: poll for them)
        let mut wanted = vec![
            "troupe_actor_messages_received_total",
            "troupe_actor_messages_sent_total",
            "troupe_actor_mailbox_depth",
            "troupe_actor_restarts_total",
            "troupe_actor_handling_seconds",
            "troupe_peer_rtt_seconds",
            "troupe_peer_sent_bytes_total",
            "troupe_peer_received_datagrams_total",
            "troupe_peer_connections_total",
        ];
        wanted.extend(match *node {
            "edge" => &[
                "troupe_proxy_requests_total",
                "troupe_proxy_request_seconds",
            ][..],
            "app" => &[
                "troupe_balancer_picks_total",
                "troupe_balancer_member_ejected",
                "troupe_cache_keys",
            ][..],
            _ => &[
                "troupe_db_leader",
                "troupe_db_applied_index",
                "troupe_db_follower_lag_entries",
                "troupe_queue_ready_items",
            ][..],
        });
        let url = format!("{base}/metrics");
        eventually(&format!("{node}'s metrics"), T, async || {
            let (status, text) = request(&http, "GET", &url, "").await;
            let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
                .map_err(|e| format!("{status}: not the text format: {e}"))?;
            let missing: Vec<&str> = wanted
                .iter()
                .copied()
                .filter(|family| !scrape.samples.iter().any(|s| s.metric == *family))
                .collect();
            missing
                .is_empty()
                .then_some(())
                .ok_or(format!("{status}: missing {missing:?}"))
        })
        .await;
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// One request of the load: when it was sent and answered (unix ms), and its status
#[derive(Debug, Clone, Copy)]
struct Sample {
    sent: u128,
    done: u128,
    status: u16,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_app_node_gives_504_then_502_then_200_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut shop = Shop::new(dir.path(), SHORT_REQUEST_TIMEOUT_MS);
    let http = http_client();
    healthy(&shop, &http).await;
    let tea = r#"{"name":"tea"}"#;
    // The first write may outlast the short timeout while the database warms up.
    eventually("the item stored", T, async || {
        let (status, body) = request(&http, "PUT", &shop.url("/items/tea"), tea).await;
        if status == 200 {
            Ok(())
        } else {
            Err((status, body))
        }
    })
    .await;

    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let url = shop.url("/items/tea");
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (http, url, samples, stop) =
                (http.clone(), url.clone(), samples.clone(), stop.clone());
            tokio::spawn(async move {
                // Bounded in count and time.
                for _ in 0..100_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let sent = now_ms();
                    let (status, _) = request(&http, "GET", &url, "").await;
                    samples.lock().push(Sample {
                        sent,
                        done: now_ms(),
                        status,
                    });
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    eventually("the load served before the kill", T, async || {
        let served = samples.lock().iter().filter(|s| s.status == 200).count();
        if served >= 20 { Ok(()) } else { Err(served) }
    })
    .await;

    let killed = now_ms();
    shop.kill9(APP);
    let line = shop.edge().wait_for("the edge reporting app down", T, |l| {
        l.starts_with("node down app")
    });
    let down: u128 = line
        .rsplit("at_ms=")
        .next()
        .and_then(|ms| ms.parse().ok())
        .expect("a timestamp");
    // Let the gateway answer with the node down (502/503 after the report), then bring it
    // back.
    eventually("502 or 503 after the report", T, async || {
        samples
            .lock()
            .iter()
            .any(|s| s.sent >= down && matches!(s.status, 502 | 503))
    })
    .await;
    let restarted = now_ms();
    shop.start(APP);
    eventually("5 times 200 after the restart", T, async || {
        let back = samples
            .lock()
            .iter()
            .filter(|s| s.sent > restarted && s.status == 200)
            .count();
        if back >= 5 { Ok(()) } else { Err(back) }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let samples = samples.lock().clone();

    // Before the kill, everything was served.
    assert!(
        samples
            .iter()
            .filter(|s| s.done < killed)
            .all(|s| s.status == 200)
    );
    // Between the kill and the report, requests time out at the gateway: 504.
    assert!(
        samples
            .iter()
            .any(|s| s.sent > killed && s.done < down && s.status == 504),
        "no 504 before the node was reported down"
    );
    // From the report on, until the restart: 502/503 — requests caught in flight are
    // answered within 100 ms of the report, new ones at once.
    let after_report: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.done >= down && s.sent < restarted)
        .collect();
    assert!(!after_report.is_empty());
    for s in &after_report {
        if s.sent >= down {
            assert!(matches!(s.status, 502 | 503), "after the report: {s:?}");
        } else if matches!(s.status, 502 | 503) {
            assert!(
                s.done <= down + 100,
                "answered too late after the report: {s:?}"
            );
        } else {
            // A 504 whose timeout ran out right at the report.
            assert_eq!(s.status, 504, "{s:?}");
            assert!(s.done <= down + 100, "{s:?}");
        }
    }
    assert!(after_report.iter().any(|s| matches!(s.status, 502 | 503)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_data_node_loses_no_acknowledged_write_or_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut shop = Shop::new(dir.path(), REQUEST_TIMEOUT_MS);
    let http = http_client();
    healthy(&shop, &http).await;
    let mut items = Vec::new();
    for i in 0..40 {
        let body = format!(r#"{{"n":{i}}}"#);
        if request(&http, "PUT", &shop.url(&format!("/items/i{i}")), &body)
            .await
            .0
            == 200
        {
            items.push((i, body));
        }
    }
    assert_eq!(items.len(), 40);
    let mut orders = Vec::new();
    for i in 0..30 {
        let order = format!(r#"{{"item":"i{i}","qty":1}}"#);
        let (status, body) = request(&http, "POST", &shop.url("/orders"), &order).await;
        assert_eq!(status, 202, "{body}");
        orders.push(json(&body)["id"].as_str().unwrap().to_string());
    }
    // Some orders are still pending when the data node dies.
    shop.kill9(DATA);
    let (status, _) = request(
        &http,
        "POST",
        &shop.url("/orders"),
        r#"{"item":"i1","qty":1}"#,
    )
    .await;
    assert!((502..=504).contains(&status), "{status}");
    shop.start(DATA);
    healthy(&shop, &http).await;

    // Every acknowledged item is in the database: drop the cached copies and read through.
    let mut resp = redis(shop.resp.unwrap()).await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut resp).await.unwrap();
    for (i, body) in &items {
        read_back(&shop, &http, &format!("i{i}"), body).await;
    }
    // Every accepted order completes.
    for id in &orders {
        assert_eq!(
            settled(&shop, &http, id).await["status"],
            "done",
            "order {id}"
        );
    }
}

/// What a load of writes and orders got acknowledged: items (name, body) and order ids
#[derive(Default)]
struct Acked {
    items: Vec<(String, String)>,
    orders: Vec<String>,
}

/// Until `stop` (or 5,000 rounds): writes a new item, and orders it once the write is
/// acknowledged, recording what was; answers the rounds it ran
async fn write_and_order(
    http: Http,
    base: String,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<AtomicBool>,
) -> usize {
    let mut rounds = 0;
    while rounds < 5_000 && !stop.load(Ordering::Relaxed) {
        rounds += 1;
        let (name, body) = (format!("w{rounds}"), format!(r#"{{"n":{rounds}}}"#));
        let url = format!("{base}/items/{name}");
        if request(&http, "PUT", &url, &body).await.0 != 200 {
            continue;
        }
        acked.lock().items.push((name.clone(), body));
        let order = format!(r#"{{"item":"{name}","qty":1}}"#);
        let (status, answer) = request(&http, "POST", &format!("{base}/orders"), &order).await;
        if status == 202 {
            let id = json(&answer)["id"].as_str().map(String::from);
            acked.lock().orders.push(id.expect("an order id"));
        }
    }
    rounds
}

/// shop as five processes, one database replica on each of `data-1..3` and the queue on
/// `data-3`: SIGKILL of the database leader's node (`data-1` if the leader shares `data-3`
/// with the queue) while items are written and ordered. Writes and orders go on once the
/// other two replicas have a leader; after the node is back every acknowledged item reads
/// back through the database and every acknowledged order completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_three_data_nodes_while_orders_flow_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut shop = Shop::spread(dir.path(), REQUEST_TIMEOUT_MS, 3);
    let http = http_client();
    healthy(&shop, &http).await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(write_and_order(
        http.clone(),
        shop.url(""),
        acked.clone(),
        stop.clone(),
    ));
    let orders_reach = async |what: &str, n: usize| {
        eventually(what, T, async || {
            let placed = acked.lock().orders.len();
            if placed >= n { Ok(()) } else { Err(placed) }
        })
        .await
    };
    orders_reach("orders placed before the kill", 20).await;
    // the leader's node, unless it also holds the queue (then data-1, a follower's)
    let admin = shop.admin[APP].expect("app's admin endpoint");
    let leader = async || {
        let (_, body) = request(&http, "GET", &format!("http://{admin}/db"), "").await;
        let dbs: Vec<troupe::admin::DbState> = serde_json::from_str(&body).expect("GET /db");
        let leader = dbs[0]
            .replicas
            .iter()
            .find(|r| r.role.as_deref() == Some("leader"));
        leader.map(|r| (r.node.clone(), r.epoch))
    };
    let (led_by, term) = leader().await.expect("the database has a leader");
    let victim = if led_by == "data-3" {
        "data-1"
    } else {
        led_by.as_str()
    };
    let victim = shop
        .names
        .iter()
        .position(|n| n == victim)
        .expect("a data node");
    shop.kill9(victim);
    let at_kill = acked.lock().orders.len();
    orders_reach("orders placed with a data node down", at_kill + 20).await;
    if shop.names[victim] == led_by {
        let (now_by, now_term) = leader().await.expect("a new leader");
        assert!(
            now_by != led_by && now_term > term,
            "{now_by} at {now_term}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = load.await.expect("the load ran");
    shop.start(victim);
    healthy(&shop, &http).await;

    let Acked { items, orders } = std::mem::take(&mut *acked.lock());
    assert!(orders.len() >= at_kill + 20 && rounds >= items.len());
    // Every acknowledged item is in the database: drop the cached copies and read through.
    let mut resp = redis(shop.resp.expect("app runs")).await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut resp).await.unwrap();
    for (name, body) in &items {
        read_back(&shop, &http, name, body).await;
    }
    for id in &orders {
        assert_eq!(
            settled(&shop, &http, id).await["status"],
            "done",
            "order {id}"
        );
    }
}

/// Which app node serves `GET /health` now, if it answers 200
async fn served_by(shop: &Shop, http: &Http) -> Option<String> {
    let (status, body) = request(http, "GET", &shop.url("/health"), "").await;
    (status == 200).then(|| json(&body)["node"].as_str().unwrap_or_default().to_string())
}

/// Reads and writes through the gateway until `stop`, recording each request's status with
/// the time it was sent (bounded: 20,000 requests)
async fn traffic(
    http: Http,
    base: String,
    statuses: Arc<Mutex<Vec<(std::time::Instant, u16)>>>,
    stop: Arc<AtomicBool>,
) {
    for i in 0..20_000u32 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let sent = std::time::Instant::now();
        let (method, path, body) = match i % 3 {
            0 => (
                "PUT",
                format!("/items/t{}", i % 50),
                format!("{{\"name\":\"t{i}\",\"price\":{i}}}"),
            ),
            1 => ("GET", format!("/items/t{}", i % 50), String::new()),
            _ => ("GET", "/health".to_string(), String::new()),
        };
        let (status, _) = request(&http, method, &format!("{base}{path}"), &body).await;
        statuses.lock().push((sent, status));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_app_node_moves_the_services_with_no_5xx_after_the_failover_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut shop = Shop::spread(dir.path(), REQUEST_TIMEOUT_MS, 3);
    let http = http_client();
    healthy(&shop, &http).await;
    assert_eq!(served_by(&shop, &http).await.as_deref(), Some("app-1"));
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(traffic(
        http.clone(),
        shop.url(""),
        statuses.clone(),
        stop.clone(),
    ));
    eventually("traffic before the kill", T, async || {
        let n = statuses.lock().len();
        if n >= 30 { Ok(()) } else { Err(n) }
    })
    .await;

    let app1 = shop.names.iter().position(|n| n == "app-1").expect("app-1");
    shop.kill9(app1);
    let killed = std::time::Instant::now();
    eventually("the services answer from app-2", T, async || {
        served_by(&shop, &http)
            .await
            .filter(|n| n == "app-2")
            .ok_or(())
    })
    .await;
    let moved = std::time::Instant::now();
    eventually("traffic after the failover", T, async || {
        let after = statuses.lock().iter().filter(|(at, _)| *at > moved).count();
        if after >= 100 { Ok(()) } else { Err(after) }
    })
    .await;

    // app-1 comes back: nothing moves (no takeover), nothing fails
    shop.start(app1);
    let back = std::time::Instant::now();
    eventually("traffic with app-1 back", T, async || {
        let after = statuses.lock().iter().filter(|(at, _)| *at > back).count();
        if after >= 100 { Ok(()) } else { Err(after) }
    })
    .await;
    assert_eq!(served_by(&shop, &http).await.as_deref(), Some("app-2"));
    stop.store(true, Ordering::Relaxed);
    load.await.expect("the traffic ran");

    let statuses = statuses.lock();
    let in_window: Vec<u16> = statuses
        .iter()
        .filter(|(at, s)| *at >= killed && *at <= moved && *s >= 500)
        .map(|(_, s)| *s)
        .collect();
    let after: Vec<u16> = statuses
        .iter()
        .filter(|(at, s)| *at > moved && *s >= 500)
        .map(|(_, s)| *s)
        .collect();
    eprintln!(
        "failover window {:?}: {} requests, {} 5xx in it ({in_window:?}), {} 5xx after",
        moved - killed,
        statuses.len(),
        in_window.len(),
        after.len()
    );
    assert!(after.is_empty(), "5xx after the failover window: {after:?}");
    assert!(
        statuses
            .iter()
            .all(|(_, s)| *s < 500 || *s == 502 || *s == 503 || *s == 504),
        "only the gateway's own 5xx in the window"
    );
}

/// Waits until the page `browser` has open shows every one of `needles`, then saves its
/// screenshot as `png` under the test's target directory.
async fn page_shows(browser: &mut Browser, what: &str, needles: &[&str], png: &str) {
    eventually(what, T, async || {
        let dom = browser.dom().await;
        needles
            .iter()
            .all(|needle| dom.contains(needle))
            .then_some(())
            .ok_or(dom)
    })
    .await;
    browser
        .screenshot(&Path::new(env!("CARGO_TARGET_TMPDIR")).join(png))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_shows_every_actor_and_a_node_going_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut shop = Shop::new(dir.path(), REQUEST_TIMEOUT_MS);
    let http = http_client();
    healthy(&shop, &http).await;
    // the edge's view: its node, its actors, the other two up, fed by /events
    let edge = format!(
        "http://{}/",
        shop.admin[EDGE].expect("edge serves its admin endpoint")
    );
    let Some(mut edge_page) = Browser::open(&edge).await else {
        return;
    };
    page_shows(
        &mut edge_page,
        "the edge's page",
        &[
            r#"data-node="edge""#,
            r#"data-actor="edge/gateway""#,
            r#"class="member up" data-member="app""#,
            r#"class="member up" data-member="data""#,
            r#"class="up" data-link="edge-app""#,
            r#"class="up" data-link="edge-data""#,
            " actor(s) · live ",
        ],
        "dashboard-edge.png",
    )
    .await;
    // app's view: the database's leader and the queue, read through app (their client)
    let app = format!(
        "http://{}/",
        shop.admin[APP].expect("app serves its admin endpoint")
    );
    let mut app_page = Browser::open(&app).await.expect("chromium ran once");
    page_shows(
        &mut app_page,
        "the database's leader and the queue on app's page",
        &[
            r#"class="leader" data-replica="db."#,
            r#"data-queue="orders""#,
        ],
        "dashboard-app.png",
    )
    .await;
    // an actor killed by an operator: its restart shows on the page already open, which is
    // not reloaded: what it shows comes from its live feed
    troupe_identity::issue_operator(&shop.ca, "alice", &shop.ca).expect("issue");
    let ca = shop.ca.to_str().expect("a UTF-8 path").to_string();
    let app_admin = shop.admin[APP].expect("app's admin").to_string();
    let killed = troupe_cli(&[
        "kill",
        "app/svc.0",
        "--admin",
        &app_admin,
        "--ca",
        &ca,
        "--operator",
        "alice",
    ])
    .await;
    assert!(succeeded(&killed).contains("killed app/svc.0"));
    page_shows(
        &mut app_page,
        "the restart shown",
        &[r#"class="restarted " data-actor="app/svc.0""#],
        "dashboard.png",
    )
    .await;
    // the app node killed: the edge's open page shows it down once it is reported down
    shop.kill9(APP);
    page_shows(
        &mut edge_page,
        "app shown down",
        &[
            r#"class="member down" data-member="app""#,
            r#"class="down" data-link="edge-app""#,
        ],
        "dashboard-app-down.png",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_every_process_and_an_operator_fails_the_database_over() {
    use troupe::admin::{DbState, QueueState};
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop::new(dir.path(), REQUEST_TIMEOUT_MS);
    let http = http_client();
    healthy(&shop, &http).await;
    troupe_identity::issue_operator(&shop.ca, "alice", &shop.ca).expect("issue");
    let ca = shop.ca.to_str().expect("a UTF-8 path").to_string();
    let [data, app, edge] =
        [DATA, APP, EDGE].map(|i| shop.admin[i].expect("an admin endpoint").to_string());

    // status, top and graph, each against another process
    let status = succeeded(&troupe_cli(&["status", "--admin", &edge]).await);
    let row = status
        .lines()
        .find(|l| l.starts_with("edge "))
        .unwrap_or_else(|| panic!("a row for edge: {status}"));
    assert!(row.contains("app up") && row.contains("data up"), "{row}");
    let top = succeeded(
        &troupe_cli(&[
            "top",
            "--admin",
            &app,
            "--interval-ms",
            "100",
            "--count",
            "1",
        ])
        .await,
    );
    assert!(
        top.lines()
            .any(|l| l.starts_with("app ") && l.contains("workers.0")),
        "{top}"
    );
    let graph = succeeded(&troupe_cli(&["graph", "--admin", &data]).await);
    assert!(graph.starts_with("digraph"), "{graph}");
    assert!(graph.contains("db.0"), "{graph}");

    // the database from the node it runs on: one leader of three, none behind once settled
    let replicas = async || -> DbState {
        let out = troupe_cli(&["db", "status", "--admin", &data, "--json"]).await;
        let mut dbs: Vec<DbState> = serde_json::from_str(&succeeded(&out)).expect("JSON");
        dbs.remove(0)
    };
    let before = replicas().await;
    assert_eq!(before.name, "db");
    let leader = |db: &DbState| {
        db.replicas
            .iter()
            .find(|r| r.role.as_deref() == Some("leader"))
            .map(|r| (r.name.clone(), r.epoch))
    };
    let (old_leader, old_epoch) = leader(&before).expect("a leader");
    assert!(
        before.replicas.iter().all(|r| r.node == "data"),
        "{before:?}"
    );

    // app is the database's client: it may read and write, not fail the database over
    let out = troupe_cli(&[
        "db",
        "promote",
        "--admin",
        &app,
        "--ca",
        &ca,
        "--operator",
        "alice",
    ])
    .await;
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("only the database's own nodes"), "{said}");
    // an operator fails it over through the endpoint of the process that runs the replicas
    let out = troupe_cli(&[
        "db",
        "promote",
        "--admin",
        &data,
        "--ca",
        &ca,
        "--operator",
        "alice",
    ])
    .await;
    let said = succeeded(&out);
    assert!(said.starts_with("database db: db."), "{said}");
    let after = replicas().await;
    let (new_leader, new_epoch) = leader(&after).expect("a leader");
    assert_ne!(new_leader, old_leader);
    assert!(new_epoch > old_epoch, "{after:?}");
    // and the shop keeps taking writes
    let (status, body) = request(
        &http,
        "PUT",
        &shop.url("/items/tea"),
        r#"{"name":"green tea","price":4}"#,
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {body}");

    // the queue: its counts, and no dead letter; replaying one that is not is a typed refusal
    let out = troupe_cli(&["queue", "stats", "--admin", &data, "--json"]).await;
    let queues: Vec<QueueState> = serde_json::from_str(&succeeded(&out)).expect("JSON");
    assert_eq!(queues[0].name, "orders");
    assert_eq!(queues[0].error, None);
    let letters = succeeded(&troupe_cli(&["queue", "dead-letters", "--admin", &data]).await);
    assert!(letters.contains("no dead letter"), "{letters}");
    let out = troupe_cli(&[
        "queue",
        "replay",
        "7",
        "--admin",
        &data,
        "--ca",
        &ca,
        "--operator",
        "alice",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        why.contains("(404)") && why.contains("not a dead letter"),
        "{why}"
    );
}

/// A stand-in OpenTelemetry collector on loopback: takes OTLP/HTTP JSON exports and keeps,
/// for each span, the process that sent it (`troupe.process`), its trace id and its name.
struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<(String, String, String)>>>,
    _server: tokio::task::JoinHandle<()>,
}

impl Collector {
    async fn start() -> Self {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
        let keep = spans.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let keep = keep.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let keep = keep.clone();
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            if let Ok(export) = serde_json::from_slice::<Value>(&body) {
                                keep.lock().extend(spans_of(&export));
                            }
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"{}"),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            spans,
            _server: server,
        }
    }
}

/// (process, trace id, span name) of every span in one OTLP JSON export
fn spans_of(export: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for resource in export["resourceSpans"].as_array().into_iter().flatten() {
        let process = resource["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "troupe.process")
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap_or("?")
            .to_string();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                out.push((
                    process.clone(),
                    span["traceId"].as_str().unwrap_or("").to_string(),
                    span["name"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_across_the_three_processes() {
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop::exporting(dir.path(), REQUEST_TIMEOUT_MS, Some(collector.addr));
    let http = http_client();
    healthy(&shop, &http).await;
    // the client starts the trace: its id is the one to find on every process
    let trace_id = format!("{:032x}", rand::random::<u128>() | 1);
    let traceparent = format!("00-{trace_id}-{:016x}-01", rand::random::<u64>() | 1);
    let (status, body) = request_with(
        &http,
        "PUT",
        &shop.url("/items/tea"),
        &[("traceparent", &traceparent)],
        r#"{"name":"green tea","price":4}"#,
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    // a client's trace its sampler dropped is not recorded anywhere
    let dropped_id = format!("{:032x}", rand::random::<u128>() | 1);
    let dropped = format!("00-{dropped_id}-{:016x}-00", rand::random::<u64>() | 1);
    let (status, body) = request_with(
        &http,
        "PUT",
        &shop.url("/items/mate"),
        &[("traceparent", &dropped)],
        r#"{"name":"mate","price":5}"#,
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    // a request with no trace of its own starts one (the default sampler keeps them all)
    let (status, body) = request(
        &http,
        "PUT",
        &shop.url("/items/coffee"),
        r#"{"name":"coffee","price":3}"#,
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    eventually(
        "the request's spans from edge, app and data",
        T,
        async || {
            let spans = collector.spans.lock().clone();
            let mut processes: Vec<&str> = spans
                .iter()
                .filter(|(_, id, _)| *id == trace_id)
                .map(|(process, _, _)| process.as_str())
                .collect();
            processes.sort_unstable();
            processes.dedup();
            (processes == ["app", "data", "edge"])
                .then_some(())
                .ok_or_else(|| format!("{processes:?} of {} spans", spans.len()))
        },
    )
    .await;
    let spans = collector.spans.lock().clone();
    let of_trace: Vec<_> = spans.iter().filter(|(_, id, _)| *id == trace_id).collect();
    assert!(
        of_trace
            .iter()
            .any(|(p, _, name)| p == "edge" && name == "http.request"),
        "{of_trace:?}"
    );
    assert!(
        of_trace
            .iter()
            .any(|(p, _, name)| p == "data" && name == "troupe.handle"),
        "{of_trace:?}"
    );
    // the trace the gateway started for the request without one crosses all three too
    eventually("a trace the gateway started, on all three", T, async || {
        let spans = collector.spans.lock().clone();
        let started = spans.iter().filter(|(p, id, name)| {
            p == "edge" && name == "http.request" && *id != trace_id && *id != dropped_id
        });
        started
            .clone()
            .any(|(_, id, _)| {
                ["app", "data"]
                    .iter()
                    .all(|process| spans.iter().any(|(p, i, _)| p == process && i == id))
            })
            .then_some(())
            .ok_or_else(|| format!("{} traces started at edge", started.count()))
    })
    .await;
    let spans = collector.spans.lock().clone();
    assert!(
        spans.iter().all(|(_, id, _)| *id != dropped_id),
        "a dropped trace recorded: {spans:?}"
    );
}

/// `shop --requirepass` (here from `TROUPE_REQUIREPASS`, as a deployment would pass it): its
/// RESP port refuses writes without the password (`NOAUTH`) and takes them with it, the way
/// `redis-cli -a PASSWORD` sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_port_of_shop_requires_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shop"));
    cmd.args([
        "--http",
        "127.0.0.1:0",
        "--resp",
        "127.0.0.1:0",
        "--no-admin",
    ])
    .arg("--data")
    .arg(dir.path().join("data"))
    .env("TROUPE_REQUIREPASS", "open sesame");
    let mut proc = Proc::spawn(cmd);
    let line = proc.wait_for("resp listening", T, |l| l.starts_with("resp listening "));
    let addr: SocketAddr = line["resp listening ".len()..].parse().expect("an address");
    let mut anonymous = redis(addr).await;
    let refused = redis::cmd("SET")
        .arg("item:x")
        .arg("1")
        .query_async::<()>(&mut anonymous)
        .await
        .expect_err("refused without the password");
    assert_eq!(refused.code(), Some("NOAUTH"), "{refused}");
    let mut with_password = redis::Client::open(format!("redis://:open%20sesame@{addr}/"))
        .expect("a redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("authenticated");
    let pong: String = redis::cmd("PING")
        .query_async(&mut with_password)
        .await
        .expect("a PONG");
    assert_eq!(pong, "PONG");
}
