//! The upstream nginx proxies to in the HTTP comparison: a minimal hyper 1 HTTP/1.1 server
//! (keep-alive) answering every request with the same 64-byte body and content type as
//! troupe-http's responders. hyper adds `date` and `content-length`, as it does behind
//! troupe's gateway.
//!
//!   upstream --listen 127.0.0.1:0
//!
//! Prints `listening ADDR` once bound; runs until SIGINT/SIGTERM.

use std::convert::Infallible;
use std::io::Write;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http_bench::{BODY, CONTENT_TYPE};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE as CONTENT_TYPE_HEADER, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Parser, Debug)]
#[command(about = "fixed-body hyper server for nginx to proxy to")]
struct Args {
    /// TCP address to listen on (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
}

async fn answer(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(CONTENT_TYPE));
    Ok(response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!("listening {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(ok) => ok,
                Err(err) => {
                    eprintln!("accept failed: {err}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
    Ok(())
}
