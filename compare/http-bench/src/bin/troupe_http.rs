//! troupe's side of the HTTP comparison, in one process: the gateway `Proxy::http(--listen)`
//! routes every path to a balancer, which spreads the requests over a pool of `--pool`
//! responder actors, each answering the fixed 64-byte body. The gateway and the balancer +
//! pool sit on two nodes (`edge`, `app`) of one topology, so messages between them are handed
//! over in memory, as in the README's request path.
//!
//!   troupe-http --listen 127.0.0.1:0 --pool 4 [--strategy round-robin|least-outstanding]
//!               [--in-place] [--observed] [--upstream http://HOST:PORT]
//!               [--tls-cert F --tls-key F]
//!
//! With `--in-place`, the responders answer in place (`Ctx::answer_in_place`): the gateway's
//! task runs their answer after the balancer's pick, without a message.
//! With `--upstream`, the gateway is a reverse proxy instead: every path goes to that HTTP
//! server through `Upstream::http` (no balancer, no actors), as nginx's `proxy_pass` does.
//! With `--tls-cert/--tls-key`, it serves HTTPS (rustls, HTTP/1.1 or h2 by ALPN).
//!
//! Without `--observed`, nothing watches it: no admin endpoint (so no metrics recorder) and no
//! `tracing` subscriber. With it, what a launched troupe program exporting traces runs with:
//! the admin endpoint on a free loopback port (its Prometheus recorder takes every metric) and
//! `troupe::telemetry::init`, which exports spans where `OTEL_EXPORTER_OTLP_ENDPOINT` says
//! (`scripts/http_compare.sh` points it at the `upstream` binary, which answers 200): every
//! request is then a trace of three spans (the gateway's, the balancer's, the responder's).
//!
//! Prints `http listening ADDR` once the gateway is bound; runs until SIGINT/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use http_bench::{BODY, CONTENT_TYPE};
use troupe::prelude::*;
use troupe::proxy::ProxyMsg;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Strategy {
    RoundRobin,
    LeastOutstanding,
}

#[derive(Parser, Debug)]
#[command(about = "troupe gateway -> balancer -> responder pool, for wrk")]
struct Args {
    /// TCP address the gateway listens on (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Responder actors behind the balancer.
    #[arg(long, default_value_t = 4)]
    pool: usize,
    /// How the balancer picks a responder.
    #[arg(long, value_enum, default_value_t = Strategy::RoundRobin)]
    strategy: Strategy,
    /// Metrics and traces on (see the module docs).
    #[arg(long)]
    observed: bool,
    /// The responders answer in place (`Ctx::answer_in_place`): on the gateway's task, without
    /// a message.
    #[arg(long)]
    in_place: bool,
    /// Forward every request to this HTTP server instead of the actors.
    #[arg(long)]
    upstream: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

/// Answers every request with the fixed body: as messages, or (`in_place`) on the gateway's
/// own task for callers in this process.
struct Responder {
    in_place: bool,
}

fn answer() -> HttpResponse {
    HttpResponse::new(StatusCode::OK, &BODY[..]).with_header(
        troupe::proxy::http::header::CONTENT_TYPE,
        troupe::proxy::http::HeaderValue::from_static(CONTENT_TYPE),
    )
}

impl Actor for Responder {
    type Msg = HttpCall;

    #[allow(
        clippy::result_large_err,
        reason = "the answer in place hands the request back by value"
    )]
    async fn started(&mut self, ctx: &mut Ctx<HttpCall>) -> Result<(), ActorError> {
        if self.in_place {
            ctx.answer_in_place(|_| Ok(answer()));
        }
        Ok(())
    }

    async fn handle(&mut self, call: HttpCall, _: &mut Ctx<HttpCall>) -> Result<(), ActorError> {
        call.reply.send(answer());
        Ok(())
    }
}

async fn gateway_addr(gateway: &Addr<ProxyMsg>) -> anyhow::Result<SocketAddr> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(addr)) = gateway
            .call(ProxyMsg::LocalAddr, Duration::from_secs(1))
            .await
        {
            return Ok(addr);
        }
        if Instant::now() > deadline {
            bail!("the gateway did not bind within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let telemetry = args.observed.then(|| troupe::telemetry::init("http-bench"));
    let admin: &[&str] = if args.observed {
        &["--admin", "127.0.0.1:0"]
    } else {
        &["--no-admin"]
    };
    let launch_args =
        LaunchArgs::try_parse_from(std::iter::once("troupe-http").chain(admin.iter().copied()))
            .context("launch arguments")?;
    let mut t = Topology::new("http-bench");
    let (edge, app) = (t.node("edge"), t.node("app"));
    let mut proxy = Proxy::http(args.listen.clone());
    if let Some(url) = &args.upstream {
        // as large as nginx's default (client_max_body_size is unlimited here too)
        proxy = proxy
            .route_upstream("/", troupe::proxy::Upstream::http([url.clone()]))
            .body_limit(usize::MAX);
    } else {
        let in_place = args.in_place;
        let pool = t.pool(app, "responder", args.pool.max(1), move |_| Responder {
            in_place,
        });
        let balancer = match args.strategy {
            Strategy::RoundRobin => Balancer::round_robin(&pool),
            Strategy::LeastOutstanding => Balancer::least_outstanding(&pool),
        };
        let lb = t.add(app, "lb", balancer.factory());
        proxy = proxy.route("/", lb);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        proxy = proxy.tls(cert, key);
    }
    let gateway = t.add(edge, "gateway", proxy.factory());
    let stop = troupe::shutdown_signal().context("installing the signal handlers")?;
    let mut running = tokio::spawn(launch_until(t, launch_args, stop));
    // a topology that fails to start (say the address is taken) ends `running` early
    let addr = tokio::select! {
        addr = gateway_addr(&gateway) => addr?,
        ended = &mut running => {
            ended.context("the topology task panicked")??;
            bail!("the topology stopped before the gateway bound");
        }
    };
    println!("http listening {addr}");
    std::io::stdout().flush()?;
    let outcome = running.await.context("the topology task panicked")?;
    if let Some(telemetry) = telemetry {
        telemetry.shutdown().await;
    }
    Ok(outcome?)
}
