//! The ClickHouse HTTP client when `CLICKHOUSE_CA_FILE` is set: HTTPS trusting the CA
//! certificates of that PEM bundle (a private CA, e.g. cert-manager's in a cluster) instead of the
//! public web PKI roots the clickhouse crate's default client trusts. Plain `http://` URLs keep
//! working through the same client.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// Below ClickHouse's HTTP keep-alive (3 s on old servers), as the crate's default client does.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading CLICKHOUSE_CA_FILE {path}: {error}")]
    Read {
        path: PathBuf,
        error: rustls::pki_types::pem::Error,
    },
    #[error("CLICKHOUSE_CA_FILE {0} holds no PEM certificate")]
    Empty(PathBuf),
    #[error("CLICKHOUSE_CA_FILE {path}: certificate not usable as a trust anchor: {error}")]
    Anchor { path: PathBuf, error: rustls::Error },
}

/// Root store made of the certificates in a PEM file.
pub fn root_store(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let read = |error| TlsError::Read {
        path: path.to_owned(),
        error,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(TlsError::Empty(path.to_owned()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|error| TlsError::Anchor {
            path: path.to_owned(),
            error,
        })?;
    }
    Ok(roots)
}

/// A clickhouse client whose HTTPS trusts exactly the CAs in `ca_file`.
pub fn client_with_ca(ca_file: &Path) -> Result<clickhouse::Client, TlsError> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| TlsError::Anchor {
        path: ca_file.to_owned(),
        error,
    })?
    .with_root_certificates(root_store(ca_file)?)
    .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let hyper = HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector);
    Ok(clickhouse::Client::with_http_client(hyper))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::PrivateKeyDer;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    /// An HTTPS server with a certificate of the test CA (fixtures, valid until 2126) answering
    /// every request with the RowBinary of one `UInt8` 1, as ClickHouse would for `SELECT 1`.
    async fn fake_clickhouse() -> std::net::SocketAddr {
        let certs = CertificateDer::pem_file_iter(fixture("server.pem"))
            .expect("server.pem")
            .collect::<Result<Vec<_>, _>>()
            .expect("server.pem certificates");
        let key = PrivateKeyDer::from_pem_file(fixture("server.key")).expect("server.key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that does not trust the CA aborts the handshake here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !request_complete(&request) {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n\x01")
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        addr
    }

    /// Headers received and the body complete (Content-Length or the last chunk).
    fn request_complete(req: &[u8]) -> bool {
        let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
        let body = &req[end + 4..];
        if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            return body.len() >= len;
        }
        if head.contains("transfer-encoding: chunked") {
            return body.ends_with(b"0\r\n\r\n");
        }
        true
    }

    #[tokio::test]
    async fn https_with_the_private_ca_works_and_without_it_fails() {
        let addr = fake_clickhouse().await;
        let url = format!("https://localhost:{}", addr.port());

        let trusted = client_with_ca(&fixture("ca.pem"))
            .expect("client")
            .with_url(&url)
            .with_validation(false)
            .with_compression(clickhouse::Compression::None);
        let one: u8 = trusted
            .query("SELECT 1")
            .fetch_one()
            .await
            .expect("query over TLS with the private CA");
        assert_eq!(one, 1);

        // The crate's default client (public roots) must refuse the same server.
        let untrusted = clickhouse::Client::default()
            .with_url(&url)
            .with_validation(false)
            .with_compression(clickhouse::Compression::None);
        let err = untrusted
            .query("SELECT 1")
            .fetch_one::<u8>()
            .await
            .expect_err("a certificate of an unknown CA must be refused");
        assert!(
            format!("{err:?}").to_lowercase().contains("certificate"),
            "{err:?}"
        );
    }

    #[test]
    fn unusable_ca_files_are_clear_errors() {
        let missing = fixture("no-such-ca.pem");
        let err = root_store(&missing).expect_err("missing file");
        assert!(err.to_string().contains("no-such-ca.pem"), "{err}");
        // A PEM file without a certificate (the server's private key).
        assert!(matches!(
            root_store(&fixture("server.key")),
            Err(TlsError::Empty(_))
        ));
        assert_eq!(root_store(&fixture("ca.pem")).expect("ca.pem").len(), 1);
    }
}
