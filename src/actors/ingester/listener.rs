//! Syslog listeners: plain TCP (loopback) and TLS with client-certificate verification
//! (RFC 5425, the swarm port). Frames are RFC 6587 octet-counted or newline-terminated
//! ([`FrameDecoder`]); a bad length prefix or an oversize frame closes only that connection.
//! Every frame becomes a [`RawLine`] sent to the ingester loop (bounded channel: a slow
//! database applies back-pressure to the sockets). Over TLS the peer certificate's CN is
//! recorded as `source_worker`; a peer without a CN is closed before anything is read.

use std::io::BufReader;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{IngestCounters, IngestError, RawLine};
use crate::config::IngestSettings;
use crate::domain::syslog::framing::FrameDecoder;

fn bind(addr: &str) -> Result<TcpListener, IngestError> {
    let std_listener = std::net::TcpListener::bind(addr)
        .map_err(|e| IngestError::Listener(format!("bind {addr}: {e}")))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| IngestError::Listener(format!("{addr}: {e}")))?;
    TcpListener::from_std(std_listener).map_err(|e| IngestError::Listener(format!("{addr}: {e}")))
}

/// Start the configured listeners (plain TCP when `syslog_tcp_bind` is set, TLS when the
/// CA, certificate and key are all set). Must run inside a tokio runtime.
pub fn start_all(
    s: &IngestSettings,
    tx: mpsc::Sender<RawLine>,
    counters: Arc<IngestCounters>,
) -> Result<Vec<JoinHandle<()>>, IngestError> {
    let mut handles = Vec::new();
    if let Some(addr) = &s.syslog_tcp_bind {
        let l = bind(addr)?;
        tracing::info!(%addr, "syslog TCP listener up");
        handles.push(tokio::spawn(serve_tcp(
            l,
            tx.clone(),
            s.max_frame_bytes,
            counters.clone(),
        )));
    }
    if let (Some(ca), Some(cert), Some(key)) = (&s.tls_ca, &s.tls_cert, &s.tls_key) {
        let cfg = tls_config(ca, cert, key)?;
        let addr = format!("{}:{}", s.syslog_tls_host, s.syslog_tls_port);
        let l = bind(&addr)?;
        tracing::info!(%addr, "syslog TLS listener up");
        handles.push(tokio::spawn(serve_tls(
            l,
            cfg,
            tx,
            s.max_frame_bytes,
            counters,
        )));
    }
    Ok(handles)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, IngestError> {
    let f = std::fs::File::open(path)
        .map_err(|e| IngestError::Listener(format!("{}: {e}", path.display())))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut BufReader::new(f)).collect();
    let certs = certs.map_err(|e| IngestError::Listener(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(IngestError::Listener(format!(
            "{}: no certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, IngestError> {
    let f = std::fs::File::open(path)
        .map_err(|e| IngestError::Listener(format!("{}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut BufReader::new(f))
        .map_err(|e| IngestError::Listener(format!("{}: {e}", path.display())))?
        .ok_or_else(|| IngestError::Listener(format!("{}: no private key found", path.display())))
}

/// Server config requiring a client certificate signed by `ca` (TLS 1.2+).
pub fn tls_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, IngestError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(ca)? {
        roots
            .add(c)
            .map_err(|e| IngestError::Listener(format!("CA {}: {e}", ca.display())))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| IngestError::Listener(format!("client verifier: {e}")))?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| IngestError::Listener(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(cert)?, read_key(key)?)
        .map_err(|e| IngestError::Listener(format!("server certificate: {e}")))?;
    Ok(Arc::new(cfg))
}

/// Accept plain TCP connections forever.
pub async fn serve_tcp(
    l: TcpListener,
    tx: mpsc::Sender<RawLine>,
    max_frame: usize,
    counters: Arc<IngestCounters>,
) {
    loop {
        match l.accept().await {
            Ok((sock, peer)) => {
                counters.connections.fetch_add(1, Ordering::Relaxed);
                let source: Arc<str> = Arc::from(format!("tcp:{peer}"));
                tokio::spawn(read_frames(
                    sock,
                    source,
                    None,
                    tx.clone(),
                    max_frame,
                    counters.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "syslog TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// The first CN of a DER certificate's subject.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str()
        .ok()
        .map(str::to_owned)
        .filter(|s| !s.is_empty())
}

/// Accept TLS connections forever.
pub async fn serve_tls(
    l: TcpListener,
    cfg: Arc<rustls::ServerConfig>,
    tx: mpsc::Sender<RawLine>,
    max_frame: usize,
    counters: Arc<IngestCounters>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    loop {
        let (sock, peer) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "syslog TLS accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        let counters = counters.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(sock).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "syslog TLS handshake refused");
                    return;
                }
            };
            let cn = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| common_name(c.as_ref()));
            let Some(cn) = cn else {
                tracing::warn!(%peer, "syslog TLS peer certificate has no CN; closing");
                return;
            };
            counters.connections.fetch_add(1, Ordering::Relaxed);
            let source: Arc<str> = Arc::from(format!("tls:{cn}@{peer}"));
            read_frames(stream, source, Some(cn), tx, max_frame, counters).await;
        });
    }
}

/// Read frames from one connection until EOF or a framing error.
pub async fn read_frames<S: AsyncRead + Unpin>(
    mut s: S,
    source: Arc<str>,
    worker: Option<String>,
    tx: mpsc::Sender<RawLine>,
    max_frame: usize,
    counters: Arc<IngestCounters>,
) {
    let mut dec = FrameDecoder::new(max_frame);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(%source, error = %e, "syslog connection read failed");
                return;
            }
        };
        if n == 0 {
            // A final newline-less line at EOF is still a frame.
            if dec.buffered() > 0 {
                dec.push(b"\n");
                if let Ok(Some(f)) = dec.next_frame() {
                    let _ = send(&tx, f, &source, &worker).await;
                }
            }
            return;
        }
        dec.push(&buf[..n]);
        loop {
            match dec.next_frame() {
                Ok(Some(f)) => {
                    if !send(&tx, f, &source, &worker).await {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    counters.frames_rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%source, error = %e, "syslog framing error; closing the connection");
                    return;
                }
            }
        }
    }
}

async fn send(
    tx: &mpsc::Sender<RawLine>,
    bytes: Vec<u8>,
    source: &Arc<str>,
    worker: &Option<String>,
) -> bool {
    tx.send(RawLine::new(bytes, source.clone(), worker.clone()))
        .await
        .is_ok()
}

/// The local address of a listener (tests).
pub fn local_addr(l: &TcpListener) -> Option<SocketAddr> {
    l.local_addr().ok()
}
