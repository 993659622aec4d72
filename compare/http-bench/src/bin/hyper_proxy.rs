//! The HTTP engine's own reverse proxy, without troupe: what hyper and hyper-util reach when
//! they proxy to the upstream and do nothing else — no routing, no balancer, no forwarding
//! headers, no timeouts, no metrics. The comparison runs it beside troupe's gateway and nginx
//! to tell the gateway's own cost from the engine's.
//!
//!   hyper-proxy --upstream HOST:PORT [--listen 127.0.0.1:0] [--client pooled|per-connection]
//!
//! `pooled` (the default) sends through hyper-util's pooled keep-alive client, as troupe's
//! gateway does: each upstream connection runs in a task of its own. `per-connection` gives
//! each client connection an upstream connection of its own, driven inside the client
//! connection's task (hyper's `client::conn`), so a proxied request never leaves that task.
//!
//! Prints `listening ADDR` once bound; runs until SIGINT/SIGTERM.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ClientKind {
    Pooled,
    PerConnection,
}

#[derive(Parser, Debug)]
#[command(about = "hyper + hyper-util reverse proxy, nothing else, for wrk")]
struct Args {
    /// TCP address to listen on (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// The upstream, as HOST:PORT.
    #[arg(long)]
    upstream: String,
    /// How upstream connections are kept.
    #[arg(long, value_enum, default_value_t = ClientKind::Pooled)]
    client: ClientKind,
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

fn bad_gateway() -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(b"upstream failed\n"))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

/// `req` as sent upstream: its method, path and headers, no body (the runs are GETs).
fn outgoing(req: Request<Incoming>, authority: Option<&str>) -> Option<Request<Empty<Bytes>>> {
    let (parts, _) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri = match authority {
        Some(authority) => format!("http://{authority}{path}").parse().ok()?,
        None => path.parse().ok()?,
    };
    let mut out = Request::new(Empty::new());
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    *out.headers_mut() = parts.headers;
    Some(out)
}

/// Serves `stream`, sending every request through hyper-util's pooled client.
async fn serve_pooled(
    stream: TcpStream,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    upstream: Arc<str>,
) {
    let service = service_fn(move |req: Request<Incoming>| {
        let client = client.clone();
        let upstream = upstream.clone();
        async move {
            let Some(out) = outgoing(req, Some(&upstream)) else {
                return Ok::<_, Infallible>(bad_gateway());
            };
            Ok(match client.request(out).await {
                Ok(response) => response.map(BodyExt::boxed),
                Err(_) => bad_gateway(),
            })
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Serves `stream` over an upstream connection of its own, driven in this task.
async fn serve_per_connection(stream: TcpStream, upstream: Arc<str>) {
    let Ok(to_upstream) = TcpStream::connect(&*upstream).await else {
        return;
    };
    let _ = to_upstream.set_nodelay(true);
    let Ok((sender, connection)) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(to_upstream)).await
    else {
        return;
    };
    // HTTP/1: one request at a time on the client connection, so one at a time upstream
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let service = service_fn(move |req: Request<Incoming>| {
        let sender = sender.clone();
        async move {
            let Some(out) = outgoing(req, None) else {
                return Ok::<_, Infallible>(bad_gateway());
            };
            let sent = {
                let mut sender = sender.lock().await;
                match sender.ready().await {
                    Ok(()) => Some(sender.send_request(out)),
                    Err(_) => None,
                }
            };
            Ok(match sent {
                Some(sent) => match sent.await {
                    Ok(response) => response.map(BodyExt::boxed),
                    Err(_) => bad_gateway(),
                },
                None => bad_gateway(),
            })
        }
    });
    let server =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(server, connection);
    tokio::select! {
        _ = &mut server => {}
        _ = &mut connection => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let upstream: Arc<str> = args.upstream.into();
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(connector);
    let kind = args.client;
    http_bench::accept_until_signalled(&args.listen, |stream| {
        let upstream = upstream.clone();
        match kind {
            ClientKind::Pooled => {
                tokio::spawn(serve_pooled(stream, client.clone(), upstream));
            }
            ClientKind::PerConnection => {
                tokio::spawn(serve_per_connection(stream, upstream));
            }
        }
    })
    .await
}
