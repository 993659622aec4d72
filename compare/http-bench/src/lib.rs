//! What both sides of the HTTP comparison answer: the same 64-byte body with the same
//! content type, so wrk reads the same bytes from troupe's gateway and from nginx; and the
//! accept loop the plain hyper servers of the comparison share.

use std::io::Write;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};

/// The body every response carries: exactly 64 bytes (the array type checks it).
pub const BODY: &[u8; 64] = b"hello from the http comparison: 64 bytes of fixed text payload.\n";

/// The content type both servers send (`HttpResponse::ok`'s, so troupe needs no extra header).
pub const CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Binds `listen`, prints `listening ADDR`, and hands every accepted connection (with
/// `TCP_NODELAY` set) to `serve` until SIGINT or SIGTERM. A failed accept is logged and
/// retried after 10 ms.
///
/// # Errors
/// The address cannot be bound, or the signal handler cannot be installed.
pub async fn accept_until_signalled(
    listen: &str,
    mut serve: impl FnMut(TcpStream),
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
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
        serve(stream);
    }
    Ok(())
}
