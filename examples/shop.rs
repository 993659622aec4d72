//! shop: the seed talk's whole stack in one topology — a gateway proxy, a load balancer, a pool
//! of services, a read-through cache (also served over RESP), a replicated database and a
//! queue of orders worked off by background workers.
//!
//! ```text
//! cargo run --example shop                 # every node in this process
//! curl -X PUT localhost:8080/items/tea -d '{"name":"green tea","price":4}'
//! curl localhost:8080/items/tea
//! curl -X POST localhost:8080/orders -d '{"item":"tea","qty":2}'
//! curl localhost:8080/orders/<id from the answer>
//! redis-cli -p 6380 get item:tea
//! ```
//!
//! With `--memcached 127.0.0.1:11211`, memcached's clients read the same read-through cache
//! (`printf 'get item:tea\r\n' | nc -q1 127.0.0.1 11211`).
//!
//! The request path: `gateway` (node `edge`, HTTP) → `lb` (least outstanding) → `svc` (a
//! pool of four services) → the cache shards (read-through, write-through) → `db` (three
//! replicas: a leader and two followers, majority acknowledgement) — and for orders, the
//! `orders` queue (durable) and the `workers` that take orders off it and settle them.
//!
//! As three processes or hosts (`edge`: the gateway; `app`: balancer, services, cache, RESP
//! and workers; `data`: the database replicas and the queue):
//!
//! ```text
//! troupe ca init ca && for n in edge app data; do troupe ca issue ca $n; done
//! cargo run --example shop -- --node data --listen 127.0.0.1:7201 --ca ca
//! cargo run --example shop -- --node app  --listen 127.0.0.1:7202 --seed 127.0.0.1:7201 --ca ca
//! cargo run --example shop -- --node edge --listen 127.0.0.1:7203 --seed 127.0.0.1:7201 --ca ca
//! ```
//!
//! Kill the `app` process: the gateway answers 502 as soon as the node is reported down (504
//! for requests caught before that), and 200 again once it is back. Kill the `data` process
//! and start it again: every acknowledged write and order is still there, and pending orders
//! complete.
//!
//! As six, with one database replica on each of three data nodes (the queue on `data-3`, the
//! cluster's metadata group on all three) and the app on two nodes, every process given
//! `--data-nodes 3`: the balancer, services, cache and workers run as one failover group on
//! `app-1`, or on `app-2` while `app-1` is down:
//!
//! ```text
//! troupe ca init ca && for n in edge app-1 app-2 data-1 data-2 data-3; do troupe ca issue ca $n; done
//! cargo run --example shop -- --data-nodes 3 --node data-1 --listen 127.0.0.1:7201 --ca ca --data d1
//! cargo run --example shop -- --data-nodes 3 --node data-2 --listen 127.0.0.1:7204 --seed 127.0.0.1:7201 --ca ca --data d2
//! cargo run --example shop -- --data-nodes 3 --node data-3 --listen 127.0.0.1:7205 --seed 127.0.0.1:7201 --ca ca --data d3
//! cargo run --example shop -- --data-nodes 3 --node app-1 --listen 127.0.0.1:7202 --seed 127.0.0.1:7201 --ca ca
//! cargo run --example shop -- --data-nodes 3 --node app-2 --listen 127.0.0.1:7206 --seed 127.0.0.1:7201 --ca ca
//! cargo run --example shop -- --data-nodes 3 --node edge  --listen 127.0.0.1:7203 --seed 127.0.0.1:7201 --ca ca
//! ```
//!
//! Kill `app-1` (`kill -9`): once its lease has run out (about five seconds) the group runs on
//! `app-2` and requests succeed again, with no 5xx after that; `/health` names the node.
//! Kill any one data process: the other two replicas elect a leader (if the killed one led)
//! within about a second, and orders go on; start it again and it catches up.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use serde_json::{Map, Value, json};
use troupe::cache::{MemcacheServer, MemcacheServerMsg, RespServer, RespServerMsg};
use troupe::db::DbBacking;
use troupe::prelude::*;
use troupe::proxy::{AccessLog, AccessLogFormat, AccessLogTo, ProxyMsg};
use troupe::queue::Consumer;

#[derive(Debug, Parser)]
#[command(about = "The seed talk's stack: gateway, balancer, services, cache, database, queue")]
struct Args {
    #[command(flatten)]
    launch: LaunchArgs,
    /// The gateway's HTTP address
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: String,
    /// Require clients of the RESP port to authenticate with this password (Redis's
    /// `requirepass`; `redis-cli -a PASSWORD`); also read from TROUPE_REQUIREPASS.
    #[arg(long, env = "TROUPE_REQUIREPASS", hide_env_values = true)]
    requirepass: Option<String>,
    /// The cache's RESP address (redis-cli works against it)
    #[arg(long, default_value = "127.0.0.1:6380")]
    resp: String,
    /// Also serve the cache over memcached's text protocol on this address (the cache reads
    /// through the database: `get` and `gets` read through, `set` without flags or exptime
    /// writes through, `delete` deletes through, the rest is refused)
    #[arg(long)]
    memcached: Option<String>,
    /// Directory for the database's and the queue's files
    #[arg(long, default_value = "./troupe-data")]
    data: PathBuf,
    /// How long the gateway waits for a service's answer before 504
    #[arg(long, default_value_t = 5000)]
    request_timeout_ms: u64,
    /// Requests per second the gateway accepts from one client IP before 429 (0: no limit)
    #[arg(long, default_value_t = 10_000)]
    rate_limit_per_ip: u32,
    /// Write an access log line per request the gateway answers: to this file (appended), or
    /// to standard output with `-`
    #[arg(long)]
    access_log: Option<PathBuf>,
    /// The access log's format: `combined` (Apache's and nginx's) or `json` (one object per
    /// line)
    #[arg(long, default_value = "combined")]
    access_log_format: AccessLogFormat,
    /// Serve HTTPS with this certificate chain (PEM; needs --tls-key): TLS terminated at the
    /// gateway, HTTP/2 or HTTP/1.1 by ALPN
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Spread the data over this many nodes, `data-1` to `data-N`, one database replica on
    /// each (the queue on the last); 0 keeps the three replicas and the queue on `data`.
    /// Every process of one shop must be given the same number.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=9))]
    data_nodes: u8,
}

/// Longest accepted item or order id
const MAX_ID_LEN: usize = 128;

/// Largest accepted order quantity
const MAX_QTY: u64 = 1_000_000;

/// How long a service or worker waits for the cache, the database or the queue
const BACKEND_TIMEOUT: Duration = Duration::from_secs(3);

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::json(status, body.to_string())
}

fn error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    json_response(status, &json!({ "error": message.into() }))
}

/// A request the shop refuses with a `400`, and why.
struct BadRequest(String);

impl From<BadRequest> for HttpResponse {
    fn from(BadRequest(why): BadRequest) -> Self {
        error(StatusCode::BAD_REQUEST, why)
    }
}

/// An id from a path segment: 1..=128 characters of `A-Z a-z 0-9 - _ .`
fn parse_id(segment: &str) -> Result<&str, BadRequest> {
    let valid = !segment.is_empty()
        && segment.len() <= MAX_ID_LEN
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(segment)
    } else {
        Err(BadRequest(format!(
            "an id is 1 to {MAX_ID_LEN} characters of A-Z, a-z, 0-9, '-', '_' or '.'"
        )))
    }
}

fn item_key(id: &str) -> Bytes {
    Bytes::from(format!("item:{id}"))
}

fn order_key(id: &str) -> Bytes {
    Bytes::from(format!("order:{id}"))
}

/// `{"item": id, "qty": n}` → (item id, qty), or a 400 saying what is wrong
fn parse_order(body: &[u8]) -> Result<(String, u64), BadRequest> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| BadRequest(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(BadRequest("the body must be a JSON object".into()));
    };
    let item = match fields.get("item") {
        None => return Err(BadRequest("missing field `item`".into())),
        Some(Value::String(s)) => parse_id(s)?.to_string(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(_) => {
            return Err(BadRequest("field `item` must be a string id".into()));
        }
    };
    let qty = match fields.get("qty") {
        None => return Err(BadRequest("missing field `qty`".into())),
        Some(v) => v
            .as_u64()
            .filter(|q| (1..=MAX_QTY).contains(q))
            .ok_or_else(|| {
                BadRequest(format!(
                    "field `qty` must be an integer from 1 to {MAX_QTY}"
                ))
            })?,
    };
    Ok((item, qty))
}

/// One service of the pool: answers the HTTP API from the cache, the database and the queue
#[derive(Clone)]
struct ShopService {
    node: String,
    cache: CacheClient,
    db: DbClient,
    orders: QueueClient,
}

impl ShopService {
    async fn route(&self, req: &HttpRequest) -> HttpResponse {
        let segments: Vec<&str> = req.path().trim_start_matches('/').split('/').collect();
        match (req.method.as_str(), segments.as_slice()) {
            ("GET", ["health"]) => self.health().await,
            (method, ["items", id]) => match parse_id(id) {
                Ok(id) => match method {
                    "GET" => self.get_item(id).await,
                    "PUT" => self.put_item(id, &req.body).await,
                    "DELETE" => self.delete_item(id).await,
                    _ => error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "items take GET, PUT and DELETE",
                    ),
                },
                Err(bad) => bad.into(),
            },
            ("POST", ["orders"]) => self.place_order(&req.body).await,
            (_, ["orders"]) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "orders are placed with POST",
            ),
            ("GET", ["orders", id]) => match parse_id(id) {
                Ok(id) => self.get_order(id).await,
                Err(bad) => bad.into(),
            },
            _ => error(
                StatusCode::NOT_FOUND,
                format!("no route for {} {}", req.method, req.path()),
            ),
        }
    }

    /// 200 when the database has a leader and the order queue answers, else 503 saying which
    async fn health(&self) -> HttpResponse {
        let quick = Duration::from_secs(1);
        let db = match self.db.with_timeout(quick).get("health").await {
            Ok(_) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        let queue = match self.orders.with_timeout(quick).stats().await {
            Ok(_) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        let ok = db == "ok" && queue == "ok";
        let body = json!({
            "status": if ok { "ok" } else { "degraded" },
            "node": self.node,
            "db": db,
            "queue": queue,
        });
        let status = if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_response(status, &body)
    }

    async fn get_item(&self, id: &str) -> HttpResponse {
        match self.cache.get(item_key(id)).await {
            Ok(Some(body)) => HttpResponse::json(StatusCode::OK, body),
            Ok(None) => error(StatusCode::NOT_FOUND, format!("no item {id}")),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }

    async fn put_item(&self, id: &str, body: &Bytes) -> HttpResponse {
        if let Err(e) = serde_json::from_slice::<Map<String, Value>>(body) {
            return error(
                StatusCode::BAD_REQUEST,
                format!("an item must be a JSON object: {e}"),
            );
        }
        match self.cache.set(item_key(id), body.clone()).await {
            Ok(_) => HttpResponse::json(StatusCode::OK, body.clone()),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }

    async fn delete_item(&self, id: &str) -> HttpResponse {
        match self.cache.get(item_key(id)).await {
            Ok(None) => return error(StatusCode::NOT_FOUND, format!("no item {id}")),
            Ok(Some(_)) => {}
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
        match self.cache.del([item_key(id)]).await {
            Ok(_) => HttpResponse::new(StatusCode::NO_CONTENT, Bytes::new()),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }

    async fn place_order(&self, body: &[u8]) -> HttpResponse {
        let (item, qty) = match parse_order(body) {
            Ok(order) => order,
            Err(bad) => return bad.into(),
        };
        let id = format!("{:016x}", rand::random::<u64>());
        let order = json!({ "id": id, "item": item, "qty": qty, "status": "pending" });
        // The record first: a worker that takes the order always finds it.
        if let Err(e) = self.db.put(order_key(&id), order.to_string()).await {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("order not stored: {e}"),
            );
        }
        match self.orders.enqueue(id).await {
            Ok(_) => json_response(StatusCode::ACCEPTED, &order),
            Err(e) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("order not queued: {e}"),
            ),
        }
    }

    async fn get_order(&self, id: &str) -> HttpResponse {
        match self.db.get(order_key(id)).await {
            Ok(Some(body)) => HttpResponse::json(StatusCode::OK, body),
            Ok(None) => error(StatusCode::NOT_FOUND, format!("no order {id}")),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }
}

impl Actor for ShopService {
    type Msg = HttpCall;

    async fn started(&mut self, ctx: &mut Ctx<HttpCall>) -> Result<(), ActorError> {
        // `app-1` or `app-2` in the larger layout: wherever its failover group runs now
        self.node = ctx.node().name().to_string();
        Ok(())
    }

    async fn handle(&mut self, call: HttpCall, _ctx: &mut Ctx<HttpCall>) -> Result<(), ActorError> {
        call.reply.send(self.route(&call.request).await);
        Ok(())
    }
}

/// What an order worker handles: only its own polling
#[derive(Debug, serde::Serialize, serde::Deserialize, Message)]
#[message(name = "shop.OrderWorker")]
enum WorkerMsg {
    /// Take orders until the queue is empty, then poll again later (a self-message)
    Poll,
}

/// Takes orders off the queue and settles them: `done` if the item exists, `failed` with a
/// reason if not. Idempotent: an order already settled is only acknowledged again.
struct OrderWorker {
    consumer: Consumer,
    orders: QueueClient,
    db: DbClient,
    cache: CacheClient,
}

impl OrderWorker {
    /// Settles order `id`; `Err` leaves it in the queue for another attempt
    async fn settle(&self, id: &str) -> Result<(), String> {
        let Some(record) = self
            .db
            .get(order_key(id))
            .await
            .map_err(|e| e.to_string())?
        else {
            tracing::warn!(order = id, "queued order has no record; dropping it");
            return Ok(());
        };
        let mut order: Map<String, Value> =
            serde_json::from_slice(&record).map_err(|e| format!("order {id} record: {e}"))?;
        if order.get("status").and_then(Value::as_str) != Some("pending") {
            return Ok(());
        }
        let item = order
            .get("item")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let exists = self
            .cache
            .get(item_key(&item))
            .await
            .map_err(|e| e.to_string())?
            .is_some();
        if exists {
            order.insert("status".into(), "done".into());
        } else {
            order.insert("status".into(), "failed".into());
            order.insert("reason".into(), format!("no item {item}").into());
        }
        let settled = Value::Object(order).to_string();
        self.db
            .put(order_key(id), settled)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl Actor for OrderWorker {
    type Msg = WorkerMsg;

    async fn started(&mut self, ctx: &mut Ctx<WorkerMsg>) -> Result<(), ActorError> {
        ctx.myself().cast(WorkerMsg::Poll)?;
        Ok(())
    }

    async fn handle(
        &mut self,
        _msg: WorkerMsg,
        ctx: &mut Ctx<WorkerMsg>,
    ) -> Result<(), ActorError> {
        // A bounded batch per message, so the mailbox stays responsive.
        for _ in 0..32 {
            let lease = match self
                .orders
                .take_with_lease(&self.consumer, Duration::from_secs(30))
                .await
            {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    ctx.send_after(Duration::from_millis(50), WorkerMsg::Poll);
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(%e, "order queue unreachable; retrying");
                    ctx.send_after(Duration::from_millis(250), WorkerMsg::Poll);
                    return Ok(());
                }
            };
            let id = String::from_utf8_lossy(&lease.payload).into_owned();
            // If the ack or nack fails, the lease expires and the order comes back: settling
            // is idempotent.
            match self.settle(&id).await {
                Ok(()) => {
                    let _ = self.orders.ack(&self.consumer, lease.item).await;
                }
                Err(why) => {
                    tracing::warn!(order = %id, %why, "order not settled; it will be retried");
                    let _ = self
                        .orders
                        .nack_with_error(&self.consumer, lease.item, why)
                        .await;
                }
            }
        }
        ctx.myself().cast(WorkerMsg::Poll)?;
        Ok(())
    }
}

/// Prints the cluster events its node sees (`node down app at_ms=...`), so a person (or a
/// test) can line up what the gateway answered with when a node was reported down
struct EventPrinter;

impl Actor for EventPrinter {
    type Msg = NoMessages;

    async fn started(&mut self, ctx: &mut Ctx<NoMessages>) -> Result<(), ActorError> {
        use troupe::runtime::remote::NodeEvent;
        let mut events = ctx.node().cluster_events();
        ctx.spawn(async move {
            while let Ok(event) = events.recv().await {
                let at_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                let line = match event {
                    NodeEvent::Up { node, .. } => format!("node up {node} at_ms={at_ms}"),
                    NodeEvent::Down { node, .. } => format!("node down {node} at_ms={at_ms}"),
                    NodeEvent::Left { node } => format!("node left {node} at_ms={at_ms}"),
                    _ => continue,
                };
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            Ok(())
        });
        Ok(())
    }
}

/// The whole stack and the handles of its two listeners; see the module docs
/// The topology, and the handles of the listeners it announces: the gateway, the cache's RESP
/// server and, with `--memcached`, its memcached server
type Shop = (
    Topology,
    Addr<ProxyMsg>,
    Addr<RespServerMsg>,
    Option<Addr<MemcacheServerMsg>>,
);

fn shop(args: &Args) -> Shop {
    let mut t = Topology::new("shop");
    let edge = t.node("edge");
    let data_nodes: Vec<String> = match args.data_nodes {
        0 => vec!["data".into()],
        n => (1..=n).map(|i| format!("data-{i}")).collect(),
    };
    // the app's nodes: `app`, or `app-1` and `app-2` where the data is spread
    let app_nodes: Vec<String> = match args.data_nodes {
        0 => vec!["app".into()],
        _ => vec!["app-1".into(), "app-2".into()],
    };
    let apps: Vec<NodeId> = app_nodes.iter().map(|n| t.node(n)).collect();
    let data: Vec<NodeId> = data_nodes.iter().map(|n| t.node(n)).collect();
    t.add(edge, "events.edge", || EventPrinter);
    for (node, name) in apps
        .iter()
        .chain(&data)
        .zip(app_nodes.iter().chain(&data_nodes))
    {
        t.add(*node, &format!("events.{name}"), || EventPrinter);
    }
    // Where the services, balancer, cache and workers run: on `app`; or, in the larger
    // layout, as one failover group on `app-1`, moved to `app-2` while `app-1` is down (the
    // metadata group that places it on up to three of the data nodes)
    // Every app node plays role `app`; in the larger layout a node the topology does not
    // name can join with it (`--node app-3 --role app`, its certificate issued with the role)
    // and take the group over after app-1 and app-2
    for &node in &apps {
        t.role(node, "app");
    }
    let app: Place = match args.data_nodes {
        0 => apps[0].into(),
        _ => {
            t.metadata(data.iter().take(3).copied(), args.data.join("meta"));
            let group = t.failover_group("app", apps.clone(), SupervisorSpec::one_for_one());
            t.failover_role(group, "app");
            group.into()
        }
    };
    let app_reach = || Reach::roles(["app"]);

    // a Raft group (the default): elected by vote, linearizable reads; three replicas on
    // `data`, or one on each data node
    let mut db = DbSpec::in_dir(&args.data);
    db = match args.data_nodes {
        0 => db.replicas(3),
        _ => data_nodes.iter().fold(db, |db, node| db.replica(node)),
    };
    // every part is added the same way, and hands back its typed client or handle
    let db = t
        .add(
            data[0],
            "db",
            // the services and workers on the app's nodes are its clients
            db.reachable_from(app_reach()),
        )
        .with_timeout(BACKEND_TIMEOUT);
    // on the last data node: the first replica usually leads a fresh database, so killing
    // `data-1` shows a failover without stopping the orders
    let orders = t.add(
        data[data.len() - 1],
        "orders",
        QueueSpec::durable(args.data.join("orders.redb"))
            .capacity(1_000_000)
            .max_attempts(10)
            .lease(Duration::from_secs(30))
            .max_item_bytes(256)
            .dead_letter_capacity(10_000)
            .reachable_from(app_reach()),
    );
    let mut cache = CacheSpec::lru(100_000)
        .shards(2)
        .max_bytes(128 << 20)
        .read_through(DbBacking::new(db.clone()))
        .resp(
            RespServer::new(args.resp.as_str())
                .requirepass(args.requirepass.as_deref().unwrap_or_default()),
        )
        .call_timeout(BACKEND_TIMEOUT);
    if let Some(addr) = &args.memcached {
        cache = cache.memcached(MemcacheServer::new(addr.as_str()));
    }
    let cache = t.add(app, "cache", cache);
    let resp = t.handle(app, &CacheSpec::resp_name("cache"));
    let memcached = args
        .memcached
        .is_some()
        .then(|| t.handle(app, &CacheSpec::memcached_name("cache")));

    let service = ShopService {
        node: String::new(),
        cache: cache.clone(),
        db: db.clone(),
        orders: orders.clone(),
    };
    let svc = t.pool(app, "svc", 4, move |_| service.clone());
    let incarnation = rand::random::<u32>() as u64;
    t.pool(app, "workers", 2, move |i| OrderWorker {
        consumer: Consumer::new("app", (incarnation << 8) | i as u64),
        orders: orders.clone(),
        db: db.clone(),
        cache: cache.clone(),
    });
    // the gateway on `edge` is the only caller from another node
    let lb = t.add(
        app,
        "lb",
        Balancer::least_outstanding(&svc).reachable_from(Reach::nodes(["edge"])),
    );
    let mut proxy = Proxy::http(&args.http)
        .route("/", lb)
        .timeout(Duration::from_millis(args.request_timeout_ms));
    if args.rate_limit_per_ip > 0 {
        proxy = proxy.rate_limit_per_ip(args.rate_limit_per_ip);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        proxy = proxy.tls(cert, key);
    }
    if let Some(path) = &args.access_log {
        proxy = proxy.access_log(AccessLog {
            format: args.access_log_format,
            to: AccessLogTo::from_flag(path),
        });
    }
    let gateway = t.add(edge, "gateway", proxy);
    (t, gateway, resp, memcached)
}

/// Prints `{what} listening ADDR` once the listener behind `ask` is bound (scripts and tests
/// read it when they pass port 0), then what to try against it; waits up to 30 s
async fn announce<M: Message>(
    what: &str,
    listener: &Addr<M>,
    ask: impl Fn(Reply<Option<std::net::SocketAddr>>) -> M,
    hints: impl Fn(u16) -> Vec<String>,
) {
    let Some(addr) =
        troupe::runtime::listener::bound_addr(listener, ask, Duration::from_secs(30)).await
    else {
        tracing::warn!(what, "listener never reported its address");
        return;
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{what} listening {addr}");
    for line in hints(addr.port()) {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

/// What to try against the gateway on port `p`
fn http_hints(p: u16) -> Vec<String> {
    vec![
        format!("shop: HTTP on http://localhost:{p} — try:"),
        format!(
            "  curl -X PUT localhost:{p}/items/tea -d '{{\"name\":\"green tea\",\"price\":4}}'"
        ),
        format!("  curl localhost:{p}/items/tea"),
        format!("  curl -X POST localhost:{p}/orders -d '{{\"item\":\"tea\",\"qty\":2}}'"),
        format!("  curl localhost:{p}/orders/ID    (ID from the answer above)"),
        format!("  curl -X DELETE localhost:{p}/items/tea"),
        format!("  curl localhost:{p}/health"),
    ]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // logs to stderr; spans to an OTLP collector too where OTEL_EXPORTER_OTLP_ENDPOINT says
    let telemetry = troupe::telemetry::init("shop");
    let args = Args::parse();
    let here = &args.launch.nodes;
    if here.is_empty() || here.iter().any(|n| n.starts_with("data")) {
        let mut out = std::io::stdout().lock();
        writeln!(out, "shop: data under {}", args.data.display())?;
        out.flush()?;
    }
    let (topology, gateway, resp, memcached) = shop(&args);
    let (edge_here, app_here) = (
        here.is_empty() || here.iter().any(|n| n == "edge"),
        here.is_empty() || here.iter().any(|n| n.starts_with("app")),
    );
    let signal = troupe::shutdown_signal()?;
    let run = async move {
        // printed once bound, with the ports actually bound (port 0 picks one)
        if edge_here {
            announce("http", &gateway, ProxyMsg::LocalAddr, http_hints).await;
        }
        if app_here {
            announce("resp", &resp, RespServerMsg::LocalAddr, |p| {
                vec![format!(
                    "shop: the cache over RESP on port {p} — try: redis-cli -p {p} get item:tea"
                )]
            })
            .await;
            if let Some(memcached) = &memcached {
                announce("memcached", memcached, MemcacheServerMsg::LocalAddr, |p| {
                    vec![format!(
                        "shop: the cache over memcached on port {p} — try: \
                         printf 'get item:tea\\r\\n' | nc -q1 127.0.0.1 {p}"
                    )]
                })
                .await;
            }
        }
        signal.await;
    };
    let outcome = launch_until(topology, args.launch, run).await;
    telemetry.shutdown().await;
    Ok(outcome?)
}
