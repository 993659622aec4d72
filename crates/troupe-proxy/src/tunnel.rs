//! Upgraded connections (WebSocket) passed through to an upstream: once both sides have
//! switched protocols, bytes are copied both ways until either side closes or neither sends
//! anything for the idle timeout. Each tunnel holds two 16 KiB buffers and stays within the
//! client connection it came from, so it counts against the connection limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::header::{self, HeaderMap};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// The tunnels of one client connection: they end with it (a dropped set aborts them).
pub(crate) type Tunnels = std::sync::Mutex<tokio::task::JoinSet<()>>;

/// Bytes read per copy, each way.
const BUFFER: usize = 16 << 10;

/// Whether `headers` ask to switch protocols (`connection: upgrade` and an `upgrade` header).
pub(crate) fn wants_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && headers.contains_key(header::UPGRADE)
}

/// Copies between the client's and the upstream's upgraded connections once both are ready,
/// until both directions have ended, or nothing moved either way for `idle`.
///
/// Cancelling closes both connections.
pub(crate) async fn run(client: OnUpgrade, upstream: OnUpgrade, idle: Duration, route: String) {
    let (client, upstream) = match tokio::join!(client, upstream) {
        (Ok(client), Ok(upstream)) => (client, upstream),
        (Err(err), _) | (_, Err(err)) => {
            tracing::debug!(cause = %err, %route, "an upgraded connection did not start");
            return;
        }
    };
    let open = metrics::gauge!("troupe_proxy_tunnels_open", "route" => route.clone());
    open.increment(1.0);
    let ended = copy_both_ways(io(client), io(upstream), idle).await;
    open.decrement(1.0);
    tracing::debug!(%route, ?ended, "tunnel closed");
}

fn io(upgraded: Upgraded) -> TokioIo<Upgraded> {
    TokioIo::new(upgraded)
}

/// How a tunnel ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Both sides closed their sending half
    Closed,
    /// Nothing moved for the idle timeout
    Idle,
}

/// Copies `a` to `b` and `b` to `a` at once; a side's end of stream shuts down the other's
/// sending half, so half-closed connections keep working.
pub(crate) async fn copy_both_ways<A, B>(a: A, b: B, idle: Duration) -> Ended
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let (a_read, a_write) = tokio::io::split(a);
    let (b_read, b_write) = tokio::io::split(b);
    let both = async {
        tokio::join!(
            pump(a_read, b_write, &last, start),
            pump(b_read, a_write, &last, start)
        )
    };
    let watchdog = async {
        loop {
            let deadline = start + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::select! {
        _ = both => Ended::Closed,
        () = watchdog => Ended::Idle,
    }
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    last: &AtomicU64,
    start: Instant,
) {
    let mut buffer = vec![0; BUFFER];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upgrade_needs_both_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, "websocket".parse().unwrap());
        assert!(!wants_upgrade(&headers));
        headers.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        assert!(wants_upgrade(&headers));
        headers.remove(header::UPGRADE);
        assert!(!wants_upgrade(&headers));
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_and_a_half_close_is_passed_on() {
        let (client, mut client_far) = tokio::io::duplex(64);
        let (upstream, mut upstream_far) = tokio::io::duplex(64);
        let tunnel = tokio::spawn(copy_both_ways(client, upstream, Duration::from_secs(5)));
        client_far.write_all(b"ping").await.unwrap();
        let mut got = [0; 4];
        upstream_far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        upstream_far.write_all(b"pong").await.unwrap();
        upstream_far.shutdown().await.unwrap();
        let mut back = Vec::new();
        client_far.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"pong");
        client_far.shutdown().await.unwrap();
        assert_eq!(tunnel.await.unwrap(), Ended::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tunnel_with_nothing_moving_is_closed_after_the_idle_timeout() {
        let (client, mut client_far) = tokio::io::duplex(64);
        let (upstream, _upstream_far) = tokio::io::duplex(64);
        let tunnel = tokio::spawn(copy_both_ways(client, upstream, Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_secs(6)).await;
        client_far.write_all(b"x").await.unwrap();
        // activity at 6 s moves the deadline to 16 s
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(!tunnel.is_finished());
        assert_eq!(tunnel.await.unwrap(), Ended::Idle);
    }
}
