//! gateway: troupe's edge as a reverse proxy in front of plain HTTP servers, the job nginx's
//! `proxy_pass` does: requests spread over the servers, bodies streamed both ways, WebSockets
//! passed through, dead servers taken out by health checks, TLS terminated at the edge.
//!
//! ```text
//! cargo run --example gateway                    # on 127.0.0.1:8080, two demo apps it starts
//! cargo run --example gateway -- --http 127.0.0.1:0 --tls-cert cert.pem --tls-key key.pem
//! cargo run --example gateway -- --upstream http://127.0.0.1:3000 --upstream http://127.0.0.1:3001
//! cargo run --example gateway -- app --name one --listen 127.0.0.1:3000   # one demo app alone
//! ```
//!
//! The demo apps answer `/` with their name, `/healthz` with `ok`, `/upload` with the length
//! of the body they read, `/download?bytes=N` with N bytes, and echo WebSocket messages on
//! `/ws`.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use troupe::prelude::*;
use troupe::proxy::upstream::HealthCheck;
use troupe::proxy::{AccessLog, AccessLogFormat, AccessLogTo, ProxyMsg, Upstream};

#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    about = "A reverse proxy in front of plain HTTP servers (two demo apps by default)"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Where the gateway serves HTTP (port 0 picks one; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: String,
    /// An HTTP server to forward to, `http://host:port` (repeatable); without any, the
    /// gateway starts two demo apps on loopback and forwards to them.
    #[arg(long = "upstream")]
    upstreams: Vec<String>,
    /// Speak HTTP/2 (cleartext, prior knowledge) to the upstreams.
    #[arg(long)]
    upstream_http2: bool,
    /// Serve HTTPS with this certificate chain (PEM; needs --tls-key); HTTP/2 by ALPN.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Write an access log line per request to this file (`-` for standard output).
    #[arg(long)]
    access_log: Option<PathBuf>,
    /// The access log's format: `combined` (nginx's default) or `json`.
    #[arg(long, default_value = "combined")]
    access_log_format: AccessLogFormat,
    /// The largest request body passed on, in bytes (bodies stream; this is not held in memory).
    #[arg(long, default_value_t = 1 << 30)]
    body_limit: usize,
    /// Seconds a client gets to send a whole request body.
    #[arg(long, default_value_t = 120)]
    body_timeout: u64,
    #[command(flatten)]
    launch: LaunchArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one demo app (an upstream to put behind the gateway) and nothing else.
    App {
        /// The name it answers with.
        #[arg(long, default_value = "app")]
        name: String,
        /// Where it listens (port 0 picks one; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = troupe::telemetry::init("gateway");
    let args = Args::parse();
    if let Some(Command::App { name, listen }) = &args.command {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        print_line(&format!("app {name} listening {}", listener.local_addr()?))?;
        tokio::select! {
            () = serve_app(name.clone(), listener) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        return Ok(());
    }
    let mut upstreams = args.upstreams.clone();
    let mut apps = tokio::task::JoinSet::new();
    if upstreams.is_empty() {
        for name in ["app-1", "app-2"] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            print_line(&format!("app {name} listening {addr}"))?;
            upstreams.push(format!("http://{addr}"));
            apps.spawn(serve_app(name.to_string(), listener));
        }
    }
    let mut upstream = Upstream::http(upstreams.iter().cloned())
        .health_check(HealthCheck::get("/healthz").interval(Duration::from_secs(1)));
    if args.upstream_http2 {
        upstream = upstream.http2();
    }
    let mut proxy = Proxy::http(args.http.as_str())
        .route_upstream("/", upstream)
        .body_limit(args.body_limit)
        .body_timeout(Duration::from_secs(args.body_timeout));
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        proxy = proxy.tls(cert, key);
    }
    if let Some(path) = &args.access_log {
        proxy = proxy.access_log(AccessLog {
            format: args.access_log_format,
            to: AccessLogTo::from_flag(path),
        });
    }
    let mut t = Topology::new("gateway");
    let edge = t.node("edge");
    let gateway = t.add(edge, "gateway", proxy);
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let signal = troupe::shutdown_signal()?;
    let run = async move {
        match bound(&gateway).await {
            Some(addr) => {
                let _ = print_line(&hints(scheme, addr, &upstreams).join("\n"));
            }
            None => tracing::warn!("the gateway never reported its address"),
        }
        signal.await;
    };
    let outcome = launch_until(t, args.launch, run).await;
    apps.shutdown().await;
    telemetry.shutdown().await;
    Ok(outcome?)
}

/// The gateway's bound address, once it has one (asked for up to 30 s).
async fn bound(gateway: &Addr<ProxyMsg>) -> Option<SocketAddr> {
    troupe::runtime::listener::bound_addr(gateway, ProxyMsg::LocalAddr, Duration::from_secs(30))
        .await
}

/// The `listening` line (tests and scripts read it) and what to try.
fn hints(scheme: &str, addr: SocketAddr, upstreams: &[String]) -> Vec<String> {
    let url = format!("{scheme}://{addr}");
    let k = if scheme == "https" { "-k " } else { "" };
    vec![
        format!("listening {addr}"),
        format!("gateway: {url} in front of {}", upstreams.join(", ")),
        "try:".to_string(),
        format!("  curl {k}{url}/                      # answered by each app in turn"),
        format!("  head -c 100M /dev/zero | curl {k}-T - {url}/upload   # streamed, not buffered"),
        format!("  curl {k}-o /dev/null {url}/download?bytes=104857600"),
        format!(
            "  websocat {}/ws                # echo",
            url.replacen("http", "ws", 1)
        ),
        "  stop one app (or kill its process): the health checks take it out, traffic goes on"
            .to_string(),
    ]
}

fn print_line(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

type AppBody = BoxBody<Bytes, std::io::Error>;

/// Serves the demo app named `name` on `listener` until cancelled.
async fn serve_app(name: String, listener: tokio::net::TcpListener) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let name = name.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let name = name.clone();
                async move { Ok::<_, Infallible>(app(&name, req).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
            if let Err(err) = served {
                tracing::debug!(cause = %err, "demo app connection ended");
            }
        });
        // forget finished connections
        while connections.try_join_next().is_some() {}
    }
}

fn text(status: u16, body: String) -> Response<AppBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    response
}

/// One demo app request.
async fn app(name: &str, mut req: Request<Incoming>) -> Response<AppBody> {
    match req.uri().path() {
        "/healthz" => text(200, "ok\n".into()),
        "/upload" => {
            let mut body = req.into_body();
            let mut read = 0u64;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => read += frame.data_ref().map_or(0, |d| d.len() as u64),
                    Err(err) => return text(400, format!("{name}: the body broke off: {err}\n")),
                }
            }
            text(200, format!("{name} received {read} bytes\n"))
        }
        "/download" => {
            let wanted = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("bytes="))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(1 << 20);
            let chunk = Bytes::from(vec![b'x'; 64 << 10]);
            let chunks = futures::stream::unfold(wanted, move |left| {
                let chunk = chunk.clone();
                async move {
                    (left > 0).then(|| {
                        let n = left.min(chunk.len() as u64);
                        (
                            Ok::<_, std::io::Error>(Frame::data(chunk.slice(..n as usize))),
                            left - n,
                        )
                    })
                }
            });
            let mut response = Response::new(BodyExt::boxed(StreamBody::new(chunks)));
            if let Ok(len) = http::HeaderValue::from_str(&wanted.to_string()) {
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_LENGTH, len);
            }
            response
        }
        "/ws" => {
            let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
                return text(400, "not a WebSocket handshake\n".into());
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
                    if message.is_close() {
                        break;
                    }
                    if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err()
                    {
                        break;
                    }
                }
            });
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            let mut response = text(101, String::new());
            let headers = response.headers_mut();
            headers.insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("upgrade"),
            );
            headers.insert(
                http::header::UPGRADE,
                http::HeaderValue::from_static("websocket"),
            );
            if let Ok(accept) = http::HeaderValue::from_str(&accept) {
                headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, accept);
            }
            response
        }
        path => text(200, format!("{name}: {} {path}\n", req.method())),
    }
}
