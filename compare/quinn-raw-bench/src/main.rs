//! Raw quinn between two OS processes on 127.0.0.1: the practical limit for troupe's
//! `benches/remote_messaging.rs` (same quinn, rustls with ring, TLS 1.3, the same transport
//! windows as troupe's endpoints; no actors, no envelopes, no serialization).
//!
//! - throughput: the sender writes `N` frames (a `u32` length prefix and a 64-byte payload) on
//!   one unidirectional stream, gathered into batches of up to 64 KiB per write (as troupe's
//!   lane writers do); the receiver parses the prefixes, counts the frames and reports the time
//!   from the first to the last.
//! - round trip: `M` sequential 64-byte requests on one bidirectional stream, each answered
//!   with 4 bytes, timed with `Instant` (p50/p90/p99).
//!
//! `--hop` puts one task between the connection and the code on each side of the round trip,
//! the least any actor framework has: on the receiver a reader task hands each request to an
//! "actor" task over a bounded channel, and the actor writes the answer; on the sender the
//! caller writes its request and a reader task hands it the answer over a channel. troupe's
//! remote call has these hops and more, so this is the floor a mailbox design reaches on quinn.
//!
//! `N` defaults to 1,000,000 (env `TROUPE_REMOTE_N`), `M` to 20,000 (`TROUPE_REMOTE_M`);
//! `--smoke` runs N = 1,000, M = 100. `--tcp` runs the same workload over plain TCP
//! (`TCP_NODELAY`, no TLS): two connections, one for the frames, one for the round trips.
//! Every wait is bounded; children are killed on exit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const DEFAULT_N: u64 = 1_000_000;
const DEFAULT_M: usize = 20_000;
const PAYLOAD_LEN: usize = 64;
const FRAME_LEN: usize = 4 + PAYLOAD_LEN;
const BATCH_BYTES: usize = 64 * 1024;
const WARMUP_CALLS: usize = 1_000;
const ALPN: &[u8] = b"bench/1";

#[derive(Clone, Debug)]
struct Settings {
    n: u64,
    m: usize,
    dir: PathBuf,
    timeout: Duration,
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn parse_flag<T: std::str::FromStr>(args: &[String], name: &str) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    let value = flag(args, name).with_context(|| format!("missing {name}"))?;
    value
        .parse()
        .map_err(|e| anyhow::anyhow!("{name} {value}: {e}"))
}

fn env_number<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{name} must be a positive integer, not {v:?}")),
        Err(_) => Ok(None),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("build the tokio runtime")
}

fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(Duration::from_secs(3)).expect("3 s idle timeout"),
    ));
    t.keep_alive_interval(Some(Duration::from_millis(750)));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(1024));
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(16));
    t.stream_receive_window(quinn::VarInt::from_u32(4 * 1024 * 1024));
    t.receive_window(quinn::VarInt::from_u32(32 * 1024 * 1024));
    t.send_window(32 * 1024 * 1024);
    Arc::new(t)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load(dir: &Path) -> anyhow::Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let cert = std::fs::read(dir.join("cert.der")).context("read cert.der")?;
    let key = std::fs::read(dir.join("key.der")).context("read key.der")?;
    Ok((
        CertificateDer::from(cert),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
    ))
}

fn server_config(dir: &Path) -> anyhow::Result<quinn::ServerConfig> {
    let (cert, key) = load(dir)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport());
    Ok(config)
}

fn client_config(dir: &Path) -> anyhow::Result<quinn::ClientConfig> {
    let (cert, _) = load(dir)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport());
    Ok(config)
}

// ---------------------------------------------------------------- the receiver

async fn count_frames(mut recv: quinn::RecvStream, n: u64) -> anyhow::Result<(u64, Duration)> {
    let mut buf: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut count = 0u64;
    let mut first = None;
    let mut last = Instant::now();
    while count < n {
        let Some(chunk) = recv.read_chunk(256 * 1024, true).await? else {
            bail!("stream ended after {count} frames");
        };
        buf.extend_from_slice(&chunk.bytes);
        let mut at = 0;
        while buf.len() - at >= 4 {
            let len = u32::from_be_bytes(buf[at..at + 4].try_into()?) as usize;
            if buf.len() - at - 4 < len {
                break;
            }
            at += 4 + len;
            count += 1;
        }
        buf.drain(..at);
        let now = Instant::now();
        first.get_or_insert(now);
        last = now;
    }
    Ok((count, last - first.unwrap_or(last)))
}

async fn echo(mut send: quinn::SendStream, mut recv: quinn::RecvStream) -> anyhow::Result<()> {
    let mut req = [0u8; FRAME_LEN];
    loop {
        if recv.read_exact(&mut req).await.is_err() {
            return Ok(());
        }
        send.write_all(&(PAYLOAD_LEN as u32).to_be_bytes()).await?;
    }
}

/// [`echo`] with one task between the connection and the code that answers (`--hop`): the
/// reader hands each request to an actor task, which writes the answer
async fn echo_through_a_mailbox(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> anyhow::Result<()> {
    let (mailbox, mut inbox) = tokio::sync::mpsc::channel::<[u8; FRAME_LEN]>(1024);
    tokio::spawn(async move {
        while let Some(_request) = inbox.recv().await {
            if send
                .write_all(&(PAYLOAD_LEN as u32).to_be_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut req = [0u8; FRAME_LEN];
    while recv.read_exact(&mut req).await.is_ok() {
        if mailbox.send(req).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// The answers of a round-trip stream as a reader task hands them over (`--hop`): reading from
/// it waits for the reader task, not for the connection
struct HandedOver {
    answers: tokio::sync::mpsc::Receiver<[u8; 4]>,
    left: Vec<u8>,
}

impl HandedOver {
    fn new(mut recv: quinn::RecvStream) -> Self {
        let (tx, answers) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            let mut answer = [0u8; 4];
            while recv.read_exact(&mut answer).await.is_ok() {
                if tx.send(answer).await.is_err() {
                    return;
                }
            }
        });
        Self {
            answers,
            left: Vec::new(),
        }
    }
}

impl tokio::io::AsyncRead for HandedOver {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.left.is_empty() {
            match self.answers.poll_recv(cx) {
                std::task::Poll::Ready(Some(answer)) => self.left.extend_from_slice(&answer),
                // the reader ended: end of stream
                std::task::Poll::Ready(None) => return std::task::Poll::Ready(Ok(())),
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
        }
        let n = self.left.len().min(buf.remaining());
        buf.put_slice(&self.left[..n]);
        self.left.drain(..n);
        std::task::Poll::Ready(Ok(()))
    }
}

fn recv_role(s: &Settings, hop: bool) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let endpoint =
            quinn::Endpoint::server(server_config(&s.dir)?, "127.0.0.1:0".parse::<SocketAddr>()?)?;
        say(&format!("LISTENING {}", endpoint.local_addr()?));
        let conn = tokio::time::timeout(Duration::from_secs(30), endpoint.accept())
            .await
            .context("no connection in time")?
            .context("endpoint closed")?
            .await?;
        let (send, recv) = conn.accept_bi().await?;
        if hop {
            tokio::spawn(echo_through_a_mailbox(send, recv));
        } else {
            tokio::spawn(echo(send, recv));
        }
        let uni = conn.accept_uni().await?;
        let (count, elapsed) = tokio::time::timeout(s.timeout, count_frames(uni, s.n))
            .await
            .context("frames did not arrive in time")??;
        say(&format!(
            "RESULT role=recv count={count} elapsed_ns={}",
            elapsed.as_nanos()
        ));
        tokio::time::sleep(s.timeout).await;
        anyhow::Ok(())
    })
}

// ---------------------------------------------------------------- plain TCP (`--tcp`)

/// Counts `n` length-prefixed frames from `data`; the time from the first read to the last
async fn count_tcp_frames(
    data: &mut tokio::net::TcpStream,
    n: u64,
) -> anyhow::Result<(u64, Duration)> {
    use tokio::io::AsyncReadExt;
    let mut buf: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut chunk = vec![0u8; 256 * 1024];
    let (mut count, mut first, mut last) = (0u64, None, Instant::now());
    while count < n {
        let got = data.read(&mut chunk).await?;
        if got == 0 {
            bail!("stream ended after {count} frames");
        }
        buf.extend_from_slice(&chunk[..got]);
        let mut at = 0;
        while buf.len() - at >= 4 {
            let len = u32::from_be_bytes(buf[at..at + 4].try_into()?) as usize;
            if buf.len() - at - 4 < len {
                break;
            }
            at += 4 + len;
            count += 1;
        }
        buf.drain(..at);
        let now = Instant::now();
        first.get_or_insert(now);
        last = now;
    }
    Ok((count, last - first.unwrap_or(last)))
}

/// The receiver over plain TCP: the first connection is the round-trip stream (echoed), the
/// second carries the frames
fn recv_role_tcp(s: &Settings) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        say(&format!("LISTENING {}", listener.local_addr()?));
        let accept = || async {
            let (stream, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
                .await
                .context("no connection in time")??;
            stream.set_nodelay(true)?;
            anyhow::Ok(stream)
        };
        let rtt = accept().await?;
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut rd, mut wr) = rtt.into_split();
            let mut req = [0u8; FRAME_LEN];
            while rd.read_exact(&mut req).await.is_ok() {
                if wr
                    .write_all(&(PAYLOAD_LEN as u32).to_be_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        let mut data = accept().await?;
        let (count, elapsed) = tokio::time::timeout(s.timeout, count_tcp_frames(&mut data, s.n))
            .await
            .context("frames did not arrive in time")??;
        say(&format!(
            "RESULT role=recv count={count} elapsed_ns={}",
            elapsed.as_nanos()
        ));
        tokio::time::sleep(s.timeout).await;
        anyhow::Ok(())
    })
}

/// The sender over plain TCP: the same workload as [`send_role`]
fn send_role_tcp(s: &Settings, peer: SocketAddr) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let connect = || async {
            let stream = tokio::time::timeout(
                Duration::from_secs(30),
                tokio::net::TcpStream::connect(peer),
            )
            .await
            .context("connect timed out")??;
            stream.set_nodelay(true)?;
            anyhow::Ok(stream)
        };
        let mut rtt = connect().await?;
        let data = connect().await?;
        let settings = s.clone();
        let work = tokio::spawn(async move {
            let (rtt_rx, rtt_tx) = rtt.split();
            send_workload(&settings, rtt_tx, rtt_rx, || async { anyhow::Ok(data) }).await
        });
        let (send_secs, v) = tokio::time::timeout(s.timeout, work)
            .await
            .context("the sender timed out")???;
        report_sends(send_secs, &v);
        anyhow::Ok(())
    })
}

// ---------------------------------------------------------------- the sender

fn send_role(s: &Settings, peer: SocketAddr, hop: bool) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
        endpoint.set_default_client_config(client_config(&s.dir)?);
        let conn = tokio::time::timeout(
            Duration::from_secs(30),
            endpoint.connect(peer, "localhost")?,
        )
        .await
        .context("connect timed out")??;
        let settings = s.clone();
        let work = tokio::spawn(async move {
            let (bi_send, bi_recv) = conn.open_bi().await?;
            // throughput: batches of frames on one uni stream, opened after the warm-up
            let uni = || async { anyhow::Ok(conn.open_uni().await?) };
            if hop {
                send_workload(&settings, bi_send, HandedOver::new(bi_recv), uni).await
            } else {
                send_workload(&settings, bi_send, bi_recv, uni).await
            }
        });
        let (send_secs, v) = tokio::time::timeout(s.timeout, work)
            .await
            .context("the sender timed out")???;
        report_sends(send_secs, &v);
        anyhow::Ok(())
    })
}

/// The sender's workload on either transport: warm-up round trips on `rtt_tx`/`rtt_rx`, then
/// N frames in batches on the stream `data()` opens, then M timed round trips. Returns (seconds
/// to write all frames, round trips in nanoseconds, sorted).
async fn send_workload<T, R, D, Fut>(
    s: &Settings,
    mut rtt_tx: T,
    mut rtt_rx: R,
    data: impl FnOnce() -> Fut,
) -> anyhow::Result<(f64, Vec<u64>)>
where
    T: tokio::io::AsyncWrite + Unpin,
    R: tokio::io::AsyncRead + Unpin,
    D: tokio::io::AsyncWrite + Unpin,
    Fut: std::future::Future<Output = anyhow::Result<D>>,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut frame = Vec::with_capacity(FRAME_LEN);
    frame.extend_from_slice(&(PAYLOAD_LEN as u32).to_be_bytes());
    frame.extend_from_slice(&[0xA5u8; PAYLOAD_LEN]);
    let mut reply = [0u8; 4];
    for _ in 0..WARMUP_CALLS.min(s.m.max(10)) {
        rtt_tx.write_all(&frame).await?;
        rtt_rx.read_exact(&mut reply).await?;
    }

    let mut data = data().await?;
    let per_batch = (BATCH_BYTES / FRAME_LEN) as u64;
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < s.n {
        batch.clear();
        let k = per_batch.min(s.n - sent);
        for _ in 0..k {
            batch.extend_from_slice(&frame);
        }
        data.write_all(&batch).await?;
        sent += k;
    }
    let send_secs = start.elapsed().as_secs_f64();

    let mut calls_ns = Vec::with_capacity(s.m);
    for _ in 0..s.m {
        let t = Instant::now();
        rtt_tx.write_all(&frame).await?;
        rtt_rx.read_exact(&mut reply).await?;
        calls_ns.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    calls_ns.sort_unstable();
    Ok((send_secs, calls_ns))
}

/// The sender's RESULT line (round trips `v` sorted).
fn report_sends(send_secs: f64, v: &[u64]) {
    let p = |q: f64| percentile(v, q);
    say(&format!(
        "RESULT role=send send_secs={send_secs} calls={} p50_ns={} p90_ns={} p99_ns={} \
         min_ns={} max_ns={} mean_ns={}",
        v.len(),
        p(0.50),
        p(0.90),
        p(0.99),
        v.first().copied().unwrap_or(0),
        v.last().copied().unwrap_or(0),
        v.iter().sum::<u64>() / v.len().max(1) as u64,
    ));
}

fn percentile(v: &[u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

// ---------------------------------------------------------------- the parent

struct Proc {
    role: &'static str,
    child: Child,
    lines: std_mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(role: &'static str, s: &Settings, extra: &[String]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args([
                "--role",
                role,
                "--n",
                &s.n.to_string(),
                "--m",
                &s.m.to_string(),
            ])
            .args(["--dir", &s.dir.display().to_string()])
            .args(["--timeout-secs", &s.timeout.as_secs().to_string()])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = std_mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { role, child, lines })
    }

    fn expect(&mut self, prefix: &str, deadline: Instant) -> anyhow::Result<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(other) => eprintln!("[{}] {other}", self.role),
                Err(_) => bail!("no {prefix:?} line from the {} process", self.role),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fields(line: &str) -> std::collections::HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn field<T: std::str::FromStr>(
    map: &std::collections::HashMap<String, String>,
    key: &str,
) -> anyhow::Result<T> {
    map.get(key)
        .with_context(|| format!("no {key}"))?
        .parse()
        .map_err(|_| anyhow::anyhow!("bad {key}"))
}

fn parent(n: u64, m: usize, timeout: Duration, tcp: bool, hop: bool) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("quinn-raw-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    std::fs::write(dir.join("cert.der"), cert.cert.der())?;
    std::fs::write(dir.join("key.der"), cert.signing_key.serialize_der())?;
    let s = Settings {
        n,
        m,
        dir: dir.clone(),
        timeout,
    };
    let result = (|| {
        let deadline = Instant::now() + timeout;
        let transport: Vec<String> = match (tcp, hop) {
            (true, _) => vec!["--tcp".into()],
            (false, true) => vec!["--hop".into()],
            (false, false) => Vec::new(),
        };
        let mut recv = Proc::spawn("recv", &s, &transport)?;
        let addr = recv
            .expect("LISTENING ", Instant::now() + Duration::from_secs(30))?
            .trim_start_matches("LISTENING ")
            .to_string();
        let mut extra = transport.clone();
        extra.extend(["--peer".to_string(), addr]);
        let mut send = Proc::spawn("send", &s, &extra)?;
        let r = fields(&recv.expect("RESULT ", deadline)?);
        let w = fields(&send.expect("RESULT ", deadline)?);
        anyhow::Ok((r, w))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let (r, w) = result?;
    let count: u64 = field(&r, "count")?;
    let secs = field::<u64>(&r, "elapsed_ns")? as f64 / 1e9;
    let per_sec = count as f64 / secs.max(1e-9);
    let us = |k: &str| -> anyhow::Result<f64> { Ok(field::<u64>(&w, k)? as f64 / 1e3) };
    let (p50, p90, p99, mean) = (us("p50_ns")?, us("p90_ns")?, us("p99_ns")?, us("mean_ns")?);
    println!();
    let (title, system) = match (tcp, hop) {
        (true, _) => (
            "raw TCP, 2 processes on 127.0.0.1, no TLS, TCP_NODELAY, 2 tokio workers each",
            "tcp_raw",
        ),
        (false, true) => (
            "raw quinn with one task hop per side, 2 processes on 127.0.0.1, TLS 1.3 (ring), \
             2 tokio workers each",
            "quinn_raw_hop",
        ),
        (false, false) => (
            "raw quinn, 2 processes on 127.0.0.1, TLS 1.3 (ring), 2 tokio workers each",
            "quinn_raw",
        ),
    };
    println!("{title}");
    println!(
        "{:<44} {:>16}",
        "frames (4 + 64 bytes), batched 64 KiB", count
    );
    println!("{:<44} {:>16.4}", "first-to-last at the receiver (s)", secs);
    println!("{:<44} {:>16.0}", "frames/s at the receiver", per_sec);
    println!(
        "{:<44} {:>16}",
        "round trip p50 / p90 / p99 (us)",
        format!("{p50:.1} / {p90:.1} / {p99:.1}")
    );
    println!("{:<44} {:>16.1}", "round trip mean (us)", mean);
    println!(
        "{{\"bench\":\"remote_messaging\",\"system\":\"{system}\",\"n\":{count},\"m\":{m},\
         \"frames_per_sec\":{per_sec:.1},\"recv_secs\":{secs:.6},\"rtt_p50_us\":{p50:.2},\
         \"rtt_p90_us\":{p90:.2},\"rtt_p99_us\":{p99:.2},\"rtt_mean_us\":{mean:.2}}}"
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(role) = flag(&args, "--role") {
        exit_when_stdin_closes();
        let s = Settings {
            n: parse_flag(&args, "--n")?,
            m: parse_flag(&args, "--m")?,
            dir: PathBuf::from(flag(&args, "--dir").context("missing --dir")?),
            timeout: Duration::from_secs(parse_flag(&args, "--timeout-secs")?),
        };
        let tcp = args.iter().any(|a| a == "--tcp");
        let hop = args.iter().any(|a| a == "--hop");
        return match role {
            "recv" if tcp => recv_role_tcp(&s),
            "send" if tcp => send_role_tcp(&s, parse_flag(&args, "--peer")?),
            "recv" => recv_role(&s, hop),
            "send" => send_role(&s, parse_flag(&args, "--peer")?, hop),
            other => bail!("unknown role {other:?}"),
        };
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    let n = env_number::<u64>("TROUPE_REMOTE_N")?.unwrap_or(if smoke { 1_000 } else { DEFAULT_N });
    let m = env_number::<usize>("TROUPE_REMOTE_M")?.unwrap_or(if smoke { 100 } else { DEFAULT_M });
    let timeout = Duration::from_secs(env_number("TROUPE_REMOTE_TIMEOUT_SECS")?.unwrap_or(300));
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--tcp") && has("--hop") {
        bail!("--hop is for QUIC only");
    }
    parent(n, m, timeout, has("--tcp"), has("--hop"))
}
