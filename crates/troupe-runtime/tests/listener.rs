//! The listener shell on real loopback sockets: per-address and total limits, refusal bytes,
//! drain letting an in-flight exchange finish and dropping stragglers at the deadline.

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use troupe_runtime::listener::{ListenerShell, Refused, ServerTask};
use troupe_testkit::eventually;

const T: Duration = Duration::from_secs(5);

/// A connection from `from` (a loopback address: 127.0.0.0/8 all reach the listener).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    tokio::time::timeout(T, socket.connect(to))
        .await
        .unwrap()
        .unwrap()
}

/// Sends one byte and reads what comes back until the server closes.
async fn exchange(stream: &mut TcpStream) -> Vec<u8> {
    let _ = stream.write_all(b"?").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, stream.read_to_end(&mut out))
        .await
        .expect("the server answers and closes in time");
    out
}

/// An echo-once server: reads one byte, waits for a permit from `gate` (or not, with `None`),
/// answers `ok` and closes.
async fn server(shell: ListenerShell, gate: Option<Arc<Semaphore>>) -> ServerTask {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    shell
        .spawn(listener, move |mut conn| {
            let gate = gate.clone();
            async move {
                let mut byte = [0u8; 1];
                if conn.stream.read_exact(&mut byte).await.is_err() {
                    return;
                }
                if let Some(gate) = gate {
                    let _permit = gate.acquire().await;
                }
                let _ = conn.stream.write_all(b"ok").await;
            }
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_per_address_limit_is_refused_while_another_address_is_served() {
    let gate = Arc::new(Semaphore::new(0));
    let task = server(
        ListenerShell::new("test")
            .max_connections_per_address(2)
            .refusal("busy"),
        Some(gate.clone()),
    )
    .await;
    let addr = task.local_addr();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect_from("127.0.0.1", addr).await;
        s.write_all(b"?").await.unwrap();
        held.push(s);
    }
    // the third from 127.0.0.1 is refused with the refusal bytes, at once
    let mut third = connect_from("127.0.0.1", addr).await;
    assert_eq!(exchange(&mut third).await, b"busy");
    assert_eq!(task.stats().refused(Refused::PerAddress), 1);
    assert_eq!(task.stats().refused(Refused::Total), 0);
    // another address is admitted
    let mut other = connect_from("127.0.0.2", addr).await;
    gate.add_permits(3);
    assert_eq!(exchange(&mut other).await, b"ok");
    for mut s in held {
        let mut out = Vec::new();
        tokio::time::timeout(T, s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out, b"ok");
    }
    assert_eq!(task.stats().accepted(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_total_limit_is_refused_from_any_address() {
    let gate = Arc::new(Semaphore::new(0));
    let task = server(
        ListenerShell::new("test")
            .max_connections(1)
            .refusal("full"),
        Some(gate.clone()),
    )
    .await;
    let addr = task.local_addr();
    let mut first = connect_from("127.0.0.1", addr).await;
    first.write_all(b"?").await.unwrap();
    let mut second = connect_from("127.0.0.2", addr).await;
    assert_eq!(exchange(&mut second).await, b"full");
    assert_eq!(task.stats().refused(Refused::Total), 1);
    gate.add_permits(1);
    let mut out = Vec::new();
    tokio::time::timeout(T, first.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, b"ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_lets_an_in_flight_exchange_finish_and_accepts_nothing_new() {
    let gate = Arc::new(Semaphore::new(0));
    let task = server(ListenerShell::new("test"), Some(gate.clone())).await;
    let addr = task.local_addr();
    let mut in_flight = connect_from("127.0.0.1", addr).await;
    in_flight.write_all(b"?").await.unwrap();
    let stats = task.stats().clone();
    // the exchange is in flight once the server has admitted it
    eventually("the connection admitted", T, async || stats.open() == 1).await;
    let stopping = tokio::spawn(task.stop());
    // stopped accepting: the listening socket closes
    eventually("the listening socket closed", T, async || {
        TcpStream::connect(addr).await.is_err()
    })
    .await;
    gate.add_permits(1);
    let mut out = Vec::new();
    tokio::time::timeout(T, in_flight.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, b"ok");
    assert!(stopping.await.unwrap(), "drained within the timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_drops_what_does_not_finish_by_the_deadline() {
    let gate = Arc::new(Semaphore::new(0));
    let task = server(
        ListenerShell::new("test").drain_timeout(Duration::from_millis(100)),
        Some(gate),
    )
    .await;
    let mut stuck = connect_from("127.0.0.1", task.local_addr()).await;
    stuck.write_all(b"?").await.unwrap();
    let stats = task.stats().clone();
    eventually("the connection admitted", T, async || stats.open() == 1).await;
    assert!(tokio::time::timeout(T, task.stop()).await.unwrap());
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, stuck.read_to_end(&mut out))
        .await
        .expect("dropped, so the client sees the close");
    assert!(out.is_empty());
    assert_eq!(stats.open(), 0);
}
