//! `examples/gateway.rs` as a new user runs it: two demo apps as processes of their own and
//! the gateway in front (`--upstream` twice), driven by real clients (hyper, rustls,
//! tungstenite). Requests spread over both apps; 100 MiB go up and 100 MiB come down through
//! the gateway with its peak memory far below either; a WebSocket echoes; a killed app is
//! taken out while traffic goes on; and TLS works with a certificate the test makes.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::Proc;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_tungstenite::tungstenite::Message;
use troupe_testkit::{eventually, within};

const T: Duration = Duration::from_secs(30);

/// The body streamed each way.
const BIG: u64 = 100 << 20;

/// The gateway process's peak resident memory must stay under this while `BIG` bytes pass
/// each way: a gateway that gathered a body whole would need more than `BIG`.
const PEAK_RSS_LIMIT: u64 = 64 << 20;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

/// `gateway app --name NAME` on a port of its own; answers the process and its address.
fn app(name: &str) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.args(["app", "--name", name, "--listen", "127.0.0.1:0"]);
    let mut proc = Proc::spawn(cmd);
    let line = proc.wait_for("the app's address", T, |l| l.starts_with("app "));
    let addr = line
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("an address");
    (proc, addr)
}

/// The gateway in front of `upstreams`, with `extra` arguments.
fn gateway(upstreams: &[SocketAddr], extra: &[&str]) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.args(["--http", "127.0.0.1:0", "--no-admin"])
        .args(extra);
    for addr in upstreams {
        cmd.args(["--upstream", &format!("http://{addr}")]);
    }
    let mut proc = Proc::spawn(cmd);
    let addr = proc.listening();
    (proc, addr)
}

/// The process's peak resident set size (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmHWM")
}

async fn get(http: &Client<HttpConnector, Body>, url: String) -> (u16, String) {
    let request = http::Request::get(url).body(empty()).expect("a request");
    let response = within("an answer", T, http.request(request))
        .await
        .expect("answered");
    let status = response.status().as_u16();
    let body = within("its body", T, response.into_body().collect())
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_spreads_streams_tunnels_ejects_and_terminates_tls() {
    let (mut one, one_addr) = app("one");
    let (_two, two_addr) = app("two");
    let (gw, addr) = gateway(&[one_addr, two_addr], &[]);
    let http: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();

    // requests spread over both apps
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let (status, body) = get(&http, format!("http://{addr}/")).await;
        assert_eq!(status, 200, "{body}");
        names.insert(body.split(':').next().unwrap_or_default().to_string());
    }
    assert_eq!(names, ["one", "two"].map(String::from).into());

    // 100 MiB up, made as it is sent, never held whole by the client either
    let chunk = Bytes::from(vec![b'u'; 1 << 20]);
    let chunks = futures::stream::iter(
        (0..BIG >> 20).map(move |_| Ok::<_, BoxError>(Frame::data(chunk.clone()))),
    );
    let upload = http::Request::post(format!("http://{addr}/upload"))
        .body(BodyExt::boxed(StreamBody::new(chunks)))
        .expect("a request");
    let response = within("the upload's answer", T, http.request(upload))
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    let text = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    assert!(
        text.ends_with(format!("received {BIG} bytes\n").as_bytes()),
        "{text:?}"
    );

    // 100 MiB down, counted as it arrives
    let request = http::Request::get(format!("http://{addr}/download?bytes={BIG}"))
        .body(empty())
        .expect("a request");
    let response = within("the download's head", T, http.request(request))
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut got = 0u64;
    while let Some(frame) = within("a chunk of the download", T, body.frame()).await {
        got += frame
            .expect("the download goes on")
            .data_ref()
            .map_or(0, |d| d.len() as u64);
    }
    assert_eq!(got, BIG);
    let peak = peak_rss(gw.pid());
    assert!(
        peak < PEAK_RSS_LIMIT,
        "the gateway's peak RSS was {} MiB after {} MiB each way",
        peak >> 20,
        BIG >> 20
    );

    // a WebSocket echo through the gateway
    let (mut ws, response) = within(
        "the WebSocket handshake",
        T,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .expect("upgraded");
    assert_eq!(response.status(), 101);
    for i in 0..3 {
        ws.send(Message::text(format!("echo {i}")))
            .await
            .expect("sent");
        let back = within("the echo", T, ws.next())
            .await
            .expect("a message")
            .expect("a good one");
        assert_eq!(back, Message::text(format!("echo {i}")));
    }
    let _ = ws.close(None).await;

    // one app killed: its requests fail over, then health checks keep it out
    one.kill9();
    eventually(
        "twenty answers in a row, all from the live app",
        T,
        async || {
            for _ in 0..20 {
                let (status, body) = get(&http, format!("http://{addr}/")).await;
                if status != 200 || !body.starts_with("two:") {
                    return Err((status, body));
                }
            }
            Ok(())
        },
    )
    .await;
    drop(gw);

    // TLS at the edge, with a certificate this test made
    let dir = tempfile::tempdir().expect("a temporary directory");
    troupe_identity::init_ca(dir.path(), "gateway-test").expect("a CA");
    let issued = troupe_identity::issue_node(dir.path(), "gateway", dir.path()).expect("a cert");
    let (cert, key) = (
        issued.cert.display().to_string(),
        issued.key.display().to_string(),
    );
    let (_tls_gw, tls_addr) = gateway(&[two_addr], &["--tls-cert", &cert, "--tls-key", &key]);
    let body = https_get(dir.path(), tls_addr).await;
    assert!(body.starts_with("two: GET /secure"), "{body}");
}

/// `GET /secure` over HTTPS (HTTP/2 by ALPN) to `addr`, trusting only the CA in `dir`.
async fn https_get(dir: &std::path::Path, addr: SocketAddr) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(dir.join("ca.crt")).expect("the CA file") {
        roots.add(ca.expect("a CA cert")).expect("added");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connected");
    let name = ServerName::try_from("gateway").expect("a name");
    let tls = within("the TLS handshake", T, connector.connect(name, tcp))
        .await
        .expect("TLS");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("HTTP/2");
    tokio::spawn(conn);
    let request = http::Request::get("https://gateway/secure")
        .body(empty())
        .expect("a request");
    let response = within("the HTTPS answer", T, send.send_request(request))
        .await
        .expect("answered");
    assert_eq!(
        (response.status().as_u16(), response.version()),
        (200, http::Version::HTTP_2)
    );
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}
