//! The admin endpoint over real TCP on loopback, read by hyper's client: every path, the
//! errors, readiness through a start and a stop, and metrics a Prometheus parser accepts.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use troupe_admin::{AdminServer, ProcessState, Readiness};
use troupe_runtime::{Mesh, Message, Node, NodeConfig, SupervisorSpec};
use troupe_testkit::{Cluster, T, fully_connected};

type Http = Client<HttpConnector, Empty<Bytes>>;

async fn fetch(http: &Http, method: Method, addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Empty::new())
        .expect("a valid request");
    let response = tokio::time::timeout(T, http.request(req))
        .await
        .expect("the admin endpoint answers in time")
        .expect("the admin endpoint answers");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a whole body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn every_path_answers_and_the_rest_say_what_is_served() {
    let mesh = Mesh::new();
    let node = Node::new("front", &mesh, NodeConfig::default()).unwrap();
    let root = node
        .start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    let readiness = Readiness::new();
    let admin = AdminServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        mesh.clone(),
        readiness.clone(),
    )
    .await
    .unwrap();
    let addr = admin.local_addr();
    let http: Http = Client::builder(TokioExecutor::new()).build_http();

    assert_eq!(
        fetch(&http, Method::GET, addr, "/health").await,
        (StatusCode::OK, "ok\n".into())
    );
    assert_eq!(
        fetch(&http, Method::GET, addr, "/ready").await,
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n".into())
    );
    readiness.set_ready();
    assert_eq!(
        fetch(&http, Method::GET, addr, "/ready").await,
        (StatusCode::OK, "ready\n".into())
    );

    // a counter recorded anywhere in the process shows, and the text parses as Prometheus's
    metrics::counter!("troupe_admin_test_total", "kind" => "probe").increment(3);
    let (status, text) = fetch(&http, Method::GET, addr, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == "troupe_admin_test_total")
        .unwrap_or_else(|| panic!("the counter is exported: {text}"));
    assert_eq!(sample.labels.get("kind"), Some("probe"));
    assert!(matches!(sample.value, prometheus_parse::Value::Counter(v) if v == 3.0));

    // the state names the node and what runs on it
    let counter = root
        .spawn(
            "echo",
            troupe_runtime::ChildOptions::permanent(),
            Counter::default,
        )
        .await
        .unwrap();
    // one of the four adds goes through a relay: a message its handler sends
    let to_counter = counter.clone();
    let relay = root
        .spawn(
            "relay",
            troupe_runtime::ChildOptions::permanent(),
            move || Relay(to_counter.clone()),
        )
        .await
        .unwrap();
    for _ in 0..3 {
        counter.cast(CountMsg::Add(1)).unwrap();
    }
    relay.cast(CountMsg::Add(1)).unwrap();
    troupe_testkit::eventually("the relayed add counted", T, async || {
        let n = counter
            .call(CountMsg::Get, T)
            .await
            .map_err(|e| e.to_string())?;
        (n == 4).then_some(()).ok_or(format!("{n}"))
    })
    .await;
    let (status, json) = fetch(&http, Method::GET, addr, "/state").await;
    assert_eq!(status, StatusCode::OK);
    let state: ProcessState = serde_json::from_str(&json).expect("the state is JSON");
    assert!(state.ready);
    assert_eq!(state.nodes.len(), 1);
    assert_eq!(state.nodes[0].name, "front");
    assert!(
        state.nodes[0]
            .actors
            .iter()
            .any(|a| a.name == "echo" && a.messages_received >= 5 && a.messages_sent == 0),
        "{json}"
    );
    assert!(
        state.nodes[0]
            .actors
            .iter()
            .any(|a| a.name == "relay" && a.messages_received == 1 && a.messages_sent == 1),
        "{json}"
    );
    assert_eq!(state.nodes[0].network, None);

    // each actor's own counters, labelled by node and actor
    let (_, text) = fetch(&http, Method::GET, addr, "/metrics").await;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text format");
    let received = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "troupe_actor_messages_received_total"
                && s.labels.get("node") == Some("front")
                && s.labels.get("actor") == Some("echo")
        })
        .unwrap_or_else(|| panic!("the actor's counter is exported: {text}"));
    assert!(matches!(received.value, prometheus_parse::Value::Counter(v) if v >= 5.0));
    let sent = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "troupe_actor_messages_sent_total" && s.labels.get("actor") == Some("relay")
        })
        .unwrap_or_else(|| panic!("the relay's sends are exported: {text}"));
    assert!(matches!(sent.value, prometheus_parse::Value::Counter(v) if v == 1.0));
    // handling times: the first message of each actor is timed, into a histogram
    assert!(
        text.contains(r#"troupe_actor_handling_seconds_count{node="front",actor="relay"} 1"#)
            && text.contains(
                r#"troupe_actor_handling_seconds_bucket{node="front",actor="relay",le="+Inf"} 1"#
            ),
        "{text}"
    );
    for family in [
        "troupe_actor_mailbox_depth",
        "troupe_actor_messages_dropped_total",
        "troupe_actor_messages_sent_total",
        "troupe_actor_restarts_total",
        "troupe_actor_parked_messages",
    ] {
        assert!(
            scrape.samples.iter().any(|s| s.metric == family),
            "{family} is exported: {text}"
        );
    }

    // anything else: what is served, and which methods
    let (status, body) = fetch(&http, Method::GET, addr, "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.contains("/metrics, /health, /ready, /state, /db, /queue"),
        "{body}"
    );
    let (status, body) = fetch(&http, Method::POST, addr, "/ready").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body.contains("use GET"), "{body}");
    let (status, body) = fetch(&http, Method::GET, addr, "/db/orders/promote").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body.contains("use POST"), "{body}");
    // no parts here: empty lists, and a change refused (no cluster CA to check operators by)
    assert_eq!(fetch(&http, Method::GET, addr, "/db").await.1.trim(), "[]");
    assert_eq!(
        fetch(&http, Method::GET, addr, "/queue").await.1.trim(),
        "[]"
    );
    let (status, body) = fetch(&http, Method::POST, addr, "/db/orders/promote").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("no cluster CA"), "{body}");

    // the live view: one page, nothing fetched from elsewhere, fed by /events
    let (status, page) = fetch(&http, Method::GET, addr, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.starts_with("<!doctype html>") && page.contains(r#"new EventSource("/events")"#),
        "{page}"
    );
    // (the SVG namespace is a name, not a download)
    let outside = page.replace("http://www.w3.org/2000/svg", "");
    assert!(
        !outside.contains("http://") && !outside.contains("https://"),
        "no download at run time"
    );

    readiness.set_stopping();
    assert_eq!(
        fetch(&http, Method::GET, addr, "/ready").await,
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n".into())
    );
    readiness.set_ready();
    assert!(
        !readiness.is_ready(),
        "a stopping process does not become ready again"
    );

    admin.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens after the stop"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn the_state_shows_the_members_a_node_sees() {
    let cluster = Cluster::new("admin");
    let mesh = Mesh::new();
    let a = Node::new("a", &mesh, NodeConfig::default()).unwrap();
    let b = Node::new("b", &Mesh::new(), NodeConfig::default()).unwrap();
    let (counter_spec, _) = b
        .child(
            "counter",
            troupe_runtime::ChildOptions::permanent()
                .reachable_from(troupe_runtime::Reach::cluster()),
            Counter::default,
        )
        .unwrap();
    b.start(SupervisorSpec::one_for_one(), vec![counter_spec])
        .await
        .unwrap();
    let a_net = cluster.join(&a, &[]).await;
    let b_net = cluster.join(&b, &[a_net.local_addr()]).await;
    fully_connected(&[&a_net, &b_net], T).await;
    // three calls from a to b's counter: three messages out, three replies in
    let counter = a.addr::<CountMsg>("b", "counter");
    for _ in 0..3 {
        counter
            .call(CountMsg::Get, T)
            .await
            .expect("b's counter answers");
    }

    let admin = AdminServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        mesh,
        Readiness::new(),
    )
    .await
    .unwrap();
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    let (_, json) = fetch(&http, Method::GET, admin.local_addr(), "/state").await;
    let state: ProcessState = serde_json::from_str(&json).unwrap();
    let net = state.nodes[0]
        .network
        .as_ref()
        .expect("a node on the network");
    assert_eq!(net.listen, a_net.local_addr().to_string());
    assert_eq!(net.incarnation, a_net.incarnation());
    let member = net
        .members
        .iter()
        .find(|m| m.name == "b")
        .unwrap_or_else(|| panic!("b is a member: {json}"));
    assert_eq!(member.status, "up");
    assert_eq!(member.incarnation, b_net.incarnation());

    // the link to b, as QUIC measures it
    let (_, text) = fetch(&http, Method::GET, admin.local_addr(), "/metrics").await;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text format");
    let link = |family: &str| {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == family
                    && s.labels.get("node") == Some("a")
                    && s.labels.get("peer") == Some("b")
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("{family} for a's link to b: {text}"))
    };
    assert!(link("troupe_peer_sent_bytes_total") > 0.0);
    assert!(link("troupe_peer_received_bytes_total") > 0.0);
    assert!(link("troupe_peer_rtt_seconds") > 0.0);
    assert_eq!(link("troupe_peer_connections_total"), 1.0);
    assert!(link("troupe_peer_lost_packets_total") >= 0.0);
    assert!(link("troupe_peer_sent_datagrams_total") > 0.0);
    // the lanes each side opened, and reads
    assert!(link("troupe_peer_open_streams_out") >= 1.0);
    assert!(link("troupe_peer_open_streams_in") >= 1.0);
    assert!(link("troupe_peer_sent_frames_total") >= 3.0);
    assert!(link("troupe_peer_received_frames_total") >= 3.0);

    // a port in use is a typed error, not a panic
    let taken = admin.local_addr();
    let err = AdminServer::start(taken, Mesh::new(), Readiness::new())
        .await
        .expect_err("the port is taken");
    assert!(
        matches!(err, troupe_admin::AdminError::Bind { addr, .. } if addr == taken),
        "{err}"
    );
    admin.stop().await;
    b_net.shutdown().await;
    a_net.shutdown().await;
}

/// Passes what it is told to add on to a counter.
struct Relay(troupe_runtime::Addr<CountMsg>);

impl troupe_runtime::Actor for Relay {
    type Msg = CountMsg;
    async fn handle(
        &mut self,
        msg: CountMsg,
        _ctx: &mut troupe_runtime::Ctx<CountMsg>,
    ) -> Result<(), troupe_runtime::ActorError> {
        if let CountMsg::Add(n) = msg {
            self.0.cast(CountMsg::Add(n))?;
        }
        Ok(())
    }
}

/// Counts what it is told to add.
#[derive(serde::Serialize, serde::Deserialize, Message)]
#[message(name = "admin_test.Count")]
enum CountMsg {
    Add(u64),
    Get(troupe_runtime::Reply<u64>),
}

#[derive(Default)]
struct Counter(u64);

impl troupe_runtime::Actor for Counter {
    type Msg = CountMsg;
    async fn handle(
        &mut self,
        msg: CountMsg,
        _ctx: &mut troupe_runtime::Ctx<CountMsg>,
    ) -> Result<(), troupe_runtime::ActorError> {
        match msg {
            CountMsg::Add(n) => self.0 += n,
            CountMsg::Get(reply) => {
                reply.send(self.0);
            }
        }
        Ok(())
    }
}

/// The next server-sent event of `body` named `name`, as its data; `None` once the stream ends.
async fn next_event(
    body: &mut hyper::body::Incoming,
    pending: &mut String,
    name: &str,
) -> Option<String> {
    loop {
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            let mut lines = event.lines();
            if lines.next() == Some(&format!("event: {name}")) {
                let data = lines.next().and_then(|l| l.strip_prefix("data: "));
                return Some(
                    data.expect("a data line after the event's name")
                        .to_string(),
                );
            }
        }
        let frame = tokio::time::timeout(T, body.frame())
            .await
            .expect("the stream sends within the deadline")?
            .expect("a readable stream");
        if let Ok(data) = frame.into_data() {
            pending.push_str(std::str::from_utf8(&data).expect("UTF-8 events"));
        }
    }
}

#[tokio::test]
async fn the_live_view_is_fed_by_events_until_the_endpoint_stops() {
    let mesh = Mesh::new();
    let node = Node::new("front", &mesh, NodeConfig::default()).unwrap();
    let root = node
        .start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    let readiness = Readiness::new();
    let admin = AdminServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        mesh.clone(),
        readiness.clone(),
    )
    .await
    .unwrap();
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    let req = Request::builder()
        .uri(format!("http://{}/events", admin.local_addr()))
        .body(Empty::new())
        .expect("a valid request");
    let response = tokio::time::timeout(T, http.request(req))
        .await
        .expect("answered in time")
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "server-sent events"
    );
    let mut body = response.into_body();
    let mut pending = String::new();

    // the state, then the parts, then the state again as it changes
    let first = next_event(&mut body, &mut pending, "state")
        .await
        .expect("a state event");
    let state: ProcessState = serde_json::from_str(&first).unwrap();
    assert!(!state.ready);
    assert_eq!(state.nodes[0].name, "front");
    readiness.set_ready();
    let mut ready = false;
    while !ready {
        let data = next_event(&mut body, &mut pending, "state")
            .await
            .expect("the stream goes on");
        ready = serde_json::from_str::<ProcessState>(&data).unwrap().ready;
    }
    let parts = next_event(&mut body, &mut pending, "parts")
        .await
        .expect("a parts event");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&parts).unwrap(),
        serde_json::json!({"dbs": [], "queues": []})
    );

    // a stop ends the stream rather than waiting on it
    let stopped = tokio::spawn(admin.stop());
    let mut after_stop = 0;
    while next_event(&mut body, &mut pending, "state").await.is_some() {
        after_stop += 1;
        assert!(after_stop < 3, "the stream ended with the endpoint");
    }
    tokio::time::timeout(T, stopped)
        .await
        .expect("the stop ends in time")
        .unwrap();
    drop(root);
    node.shutdown().await;
}

/// A topology's placement as a fake: one group on `b`, node `c` drained
struct FakePlacement {
    groups: Vec<troupe_admin::DeclaredGroup>,
    nodes: Vec<String>,
}

impl troupe_admin::PlacementAdmin for FakePlacement {
    fn groups(&self) -> &[troupe_admin::DeclaredGroup] {
        &self.groups
    }

    fn nodes(&self) -> &[String] {
        &self.nodes
    }

    fn state(&self) -> troupe_admin::PartFuture<'_, troupe_admin::PlacementState> {
        Box::pin(async {
            troupe_admin::PlacementState {
                groups: vec![troupe_admin::GroupPlacementState {
                    name: "counter.failover".into(),
                    order: vec!["b".into(), "c".into()],
                    directed: vec!["b".into()],
                    roles: Vec::new(),
                    takeover: false,
                    moved_to: None,
                    holder: Some("b".into()),
                    generation: 4,
                    draining: false,
                    released: false,
                    error: None,
                }],
                drained: vec!["c".into()],
                error: None,
            }
        })
    }

    fn move_group(
        &self,
        _: &str,
        _: Option<&str>,
    ) -> troupe_admin::PartFuture<'_, Result<(), troupe_admin::ActionError>> {
        unreachable!("no operator here")
    }

    fn drain(
        &self,
        _: &str,
        _: bool,
    ) -> troupe_admin::PartFuture<'_, Result<(), troupe_admin::ActionError>> {
        unreachable!("no operator here")
    }
}

#[tokio::test]
async fn the_placement_is_read_by_anyone_and_changed_only_by_operators() {
    let mesh = Mesh::new();
    let start = async |parts| {
        let options = troupe_admin::AdminOptions {
            parts,
            operator_tls: None,
            leave: Some(troupe_admin::Leave::new()),
        };
        AdminServer::start_with(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            mesh.clone(),
            Readiness::new(),
            options,
        )
        .await
        .unwrap()
    };
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    // no failover group: an empty placement
    let bare = start(troupe_admin::AdminParts::new()).await;
    let (status, body) = fetch(&http, Method::GET, bare.local_addr(), "/placement").await;
    assert_eq!(status, StatusCode::OK);
    let state: troupe_admin::PlacementState = serde_json::from_str(&body).unwrap();
    assert_eq!(state, troupe_admin::PlacementState::default());
    bare.stop().await;

    let mut parts = troupe_admin::AdminParts::new();
    parts.set_placement(FakePlacement {
        groups: vec![troupe_admin::DeclaredGroup {
            name: "counter.failover".into(),
            order: vec!["b".into(), "c".into()],
            roles: Vec::new(),
        }],
        nodes: vec!["a".into(), "b".into(), "c".into()],
    });
    let admin = start(parts).await;
    let addr = admin.local_addr();
    let (status, body) = fetch(&http, Method::GET, addr, "/placement").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let state: troupe_admin::PlacementState = serde_json::from_str(&body).unwrap();
    assert_eq!(state.groups[0].holder.as_deref(), Some("b"));
    assert_eq!(state.drained, ["c"]);
    // every change is a POST, refused without an operator (no cluster CA here)
    for path in [
        "/placement/counter.failover/move/c",
        "/placement/counter.failover/unmove",
        "/nodes/c/drain",
        "/nodes/c/undrain",
        "/leave",
    ] {
        let (status, body) = fetch(&http, Method::GET, addr, path).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}: {body}");
        let (status, body) = fetch(&http, Method::POST, addr, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(body.contains("no cluster CA"), "{body}");
    }
    let (status, _) = fetch(&http, Method::POST, addr, "/placement").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    admin.stop().await;
}

#[tokio::test]
async fn a_leave_request_is_seen_by_every_clone_now_and_later() {
    let leave = troupe_admin::Leave::new();
    let waiter = leave.clone();
    let waiting = tokio::spawn(async move { waiter.requested().await });
    assert!(!leave.is_requested());
    leave.request();
    tokio::time::timeout(T, waiting)
        .await
        .expect("the waiter wakes")
        .unwrap();
    tokio::time::timeout(T, leave.clone().requested())
        .await
        .expect("a later wait completes at once");
    assert!(leave.is_requested());
}
