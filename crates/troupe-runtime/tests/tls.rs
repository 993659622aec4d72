//! Real QUIC handshakes on 127.0.0.1 between identities of the same and of different CAs,
//! with the quinn configurations `troupe_runtime::remote` builds from them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{Connection, Endpoint, TransportConfig};
use troupe_identity::{
    ALPN, CLUSTER_SERVER_NAME, DevCa, IdentityError, NodeIdentity, init_ca, issue_node,
    verify_peer_name,
};
use troupe_runtime::remote::{
    peer_chain as peer_chain_from_quinn, quinn_client_config, quinn_server_config,
};

const LIMIT: Duration = Duration::from_secs(10);

fn transport() -> Arc<TransportConfig> {
    Arc::new(TransportConfig::default())
}

/// Identities `names` issued by a fresh on-disk CA, loaded back from disk.
fn disk_identities(dir: &std::path::Path, names: &[&str]) -> Vec<NodeIdentity> {
    init_ca(dir, "shop").unwrap();
    names
        .iter()
        .map(|name| {
            issue_node(dir, name, dir).unwrap();
            NodeIdentity::load(dir, name).unwrap()
        })
        .collect()
}

fn server(id: &NodeIdentity) -> (Endpoint, SocketAddr) {
    let config = quinn_server_config(id, transport()).unwrap();
    let endpoint = Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    (endpoint, addr)
}

fn client(id: &NodeIdentity) -> Endpoint {
    let mut endpoint = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn_client_config(id, transport()).unwrap());
    endpoint
}

/// Accepts one connection and echoes one bidirectional stream; returns the connection.
async fn accept_and_echo(endpoint: Endpoint) -> Result<Connection, quinn::ConnectionError> {
    let incoming = endpoint.accept().await.expect("endpoint open");
    let conn = incoming.await?;
    let (mut send, mut recv) = conn.accept_bi().await?;
    let data = recv.read_to_end(1024).await.expect("read request");
    send.write_all(&data).await.expect("write reply");
    send.finish().expect("finish");
    Ok(conn)
}

/// Dials `addr` as `server_name`, sends `ping` on a stream and reads the echo.
async fn dial_and_ping(
    endpoint: &Endpoint,
    addr: SocketAddr,
    server_name: &str,
) -> Result<Connection, String> {
    let conn = endpoint
        .connect(addr, server_name)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(b"ping").await.map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    let reply = recv.read_to_end(1024).await.map_err(|e| e.to_string())?;
    assert_eq!(reply, b"ping");
    Ok(conn)
}

/// Runs a full handshake + echo between `server_id` and `client_id`, then checks both sides see
/// the right peer chain and name.
async fn handshake_ok(server_id: &NodeIdentity, client_id: &NodeIdentity, server_name: &str) {
    let (server_ep, addr) = server(server_id);
    let client_ep = client(client_id);
    let accept = tokio::spawn(accept_and_echo(server_ep));
    let conn = tokio::time::timeout(LIMIT, dial_and_ping(&client_ep, addr, server_name))
        .await
        .expect("client within limit")
        .expect("client handshake and echo");
    let server_conn = tokio::time::timeout(LIMIT, accept)
        .await
        .expect("server within limit")
        .unwrap()
        .expect("server handshake");

    assert_eq!(
        conn.handshake_data()
            .and_then(|d| { d.downcast::<quinn::crypto::rustls::HandshakeData>().ok() })
            .and_then(|d| d.protocol),
        Some(ALPN.to_vec())
    );

    // The client sees the server's chain.
    let chain = peer_chain_from_quinn(&conn).expect("server chain");
    verify_peer_name(&chain, server_id.node()).unwrap();
    let err = verify_peer_name(&chain, client_id.node()).unwrap_err();
    assert!(matches!(err, IdentityError::NameMismatch { .. }), "{err}");
    assert!(verify_peer_name(&chain, CLUSTER_SERVER_NAME).is_err());

    // The server sees the client's chain.
    let chain = peer_chain_from_quinn(&server_conn).expect("client chain");
    verify_peer_name(&chain, client_id.node()).unwrap();
    let err = verify_peer_name(&chain, server_id.node()).unwrap_err();
    assert!(matches!(err, IdentityError::NameMismatch { .. }), "{err}");
    assert!(verify_peer_name(&chain, "someone-else").is_err());

    conn.close(0u32.into(), b"done");
    client_ep.wait_idle().await;
}

#[tokio::test]
async fn same_ca_handshake_with_cluster_server_name() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = disk_identities(tmp.path(), &["alpha", "beta"]);
    handshake_ok(&ids[0], &ids[1], CLUSTER_SERVER_NAME).await;
}

#[tokio::test]
async fn same_ca_handshake_with_node_name() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = disk_identities(tmp.path(), &["alpha", "beta"]);
    handshake_ok(&ids[0], &ids[1], "alpha").await;
    handshake_ok(&ids[1], &ids[0], "beta").await;
}

#[tokio::test]
async fn dialing_with_the_wrong_node_name_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = disk_identities(tmp.path(), &["alpha", "beta"]);
    let (server_ep, addr) = server(&ids[0]);
    let client_ep = client(&ids[1]);
    let accept = tokio::spawn(accept_and_echo(server_ep));
    // alpha's certificate is not valid for "beta".
    let result = tokio::time::timeout(LIMIT, dial_and_ping(&client_ep, addr, "beta"))
        .await
        .expect("client within limit");
    assert!(
        result.is_err(),
        "client must refuse a server with another name"
    );
    let server = tokio::time::timeout(LIMIT, accept)
        .await
        .expect("server within limit");
    assert!(server.unwrap().is_err());
}

#[tokio::test]
async fn client_of_another_ca_is_refused() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ours = disk_identities(a.path(), &["alpha"]);
    let theirs = disk_identities(b.path(), &["mallory"]);
    // Give the client a server chain it trusts: it trusts our CA, so it accepts our server; only
    // the server's check of the client certificate can refuse it.
    let mallory = trusting_client(&theirs[0], &b.path().join("mallory.key"), &ours[0]);

    let (server_ep, addr) = server(&ours[0]);
    let client_ep = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let accept = tokio::spawn(accept_and_echo(server_ep));
    let conn = client_ep
        .connect_with(mallory, addr, CLUSTER_SERVER_NAME)
        .unwrap();
    let result = tokio::time::timeout(LIMIT, async {
        let conn = conn.await.map_err(|e| e.to_string())?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(b"ping").await.map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())?;
        recv.read_to_end(1024).await.map_err(|e| e.to_string())
    })
    .await
    .expect("client within limit");
    assert!(
        result.is_err(),
        "client of another CA got through: {result:?}"
    );
    let server = tokio::time::timeout(LIMIT, accept)
        .await
        .expect("server within limit");
    let err = server.unwrap().expect_err("server must refuse the client");
    assert!(
        matches!(err, quinn::ConnectionError::TransportError(_)),
        "{err}"
    );
}

#[tokio::test]
async fn server_of_another_ca_is_refused() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ours = disk_identities(a.path(), &["alpha"]);
    let theirs = disk_identities(b.path(), &["mallory"]);
    let (server_ep, addr) = server(&theirs[0]);
    let client_ep = client(&ours[0]);
    let accept = tokio::spawn(accept_and_echo(server_ep));
    let result = tokio::time::timeout(LIMIT, dial_and_ping(&client_ep, addr, CLUSTER_SERVER_NAME))
        .await
        .expect("client within limit");
    assert!(result.is_err(), "server of another CA was accepted");
    let server = tokio::time::timeout(LIMIT, accept)
        .await
        .expect("server within limit");
    assert!(server.unwrap().is_err());
}

#[tokio::test]
async fn dev_ca_identities_handshake() {
    let ca = DevCa::new("dev").unwrap();
    assert_eq!(ca.cluster(), "dev");
    let a = ca.identity("a").unwrap();
    let b = ca.identity("b").unwrap();
    handshake_ok(&a, &b, CLUSTER_SERVER_NAME).await;
    handshake_ok(&b, &a, "b").await;
}

#[tokio::test]
async fn two_dev_cas_refuse_each_other() {
    let a = DevCa::new("dev").unwrap().identity("a").unwrap();
    let b = DevCa::new("dev").unwrap().identity("b").unwrap();
    let (server_ep, addr) = server(&a);
    let client_ep = client(&b);
    let accept = tokio::spawn(accept_and_echo(server_ep));
    let result = tokio::time::timeout(LIMIT, dial_and_ping(&client_ep, addr, CLUSTER_SERVER_NAME))
        .await
        .expect("client within limit");
    assert!(result.is_err());
    let server = tokio::time::timeout(LIMIT, accept)
        .await
        .expect("server within limit");
    assert!(server.unwrap().is_err());
}

/// A client config presenting `id`'s certificate but trusting `server`'s CA, so the handshake
/// gets as far as the server's verification of the client certificate.
fn trusting_client(
    id: &NodeIdentity,
    key_file: &std::path::Path,
    server: &NodeIdentity,
) -> quinn::ClientConfig {
    use quinn::crypto::rustls::QuicClientConfig;
    use quinn::rustls;
    use rustls::pki_types::{PrivateKeyDer, pem::PemObject};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in server.ca_certs() {
        roots.add(cert.clone()).unwrap();
    }
    let key = PrivateKeyDer::from_pem_file(key_file).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(id.cert_chain().to_vec(), key)
        .unwrap();
    config.alpn_protocols = vec![ALPN.to_vec()];
    let mut client =
        quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(config).unwrap()));
    client.transport_config(transport());
    client
}
