//! Syslog listeners: plain TCP (loopback) and TLS with client-certificate verification
//! (RFC 5425, the swarm port). Frames are RFC 6587 octet-counted or newline-terminated, the
//! framing decided per connection ([`FrameDecoder`]); junk, bad prefixes, oversize frames and
//! a frame cut short at the end are quarantined with reason `framing` and counted
//! (`frames_rejected`), and the connection goes on with the next frame.
//!
//! A third listener speaks RELP (`syslog_relp_bind`, optionally over the same TLS): each
//! message carries an [`Ack`] and is answered `200 OK` only once the ingester committed the
//! batch holding it ([`relp_session`]).
//!
//! Every frame becomes a [`RawLine`] sent to the ingester loop over a channel bounded by lines
//! **and** bytes ([`line_channel`]): a slow database applies back-pressure to the sockets, and
//! at most `channel_max_bytes` (default [`CHANNEL_MAX_BYTES`]) of received lines wait in
//! memory. Over TLS the peer
//! certificate's CN is recorded as `source_worker`; a peer without a CN is closed before
//! anything is read. No TLS 1.3 session tickets are sent: a forwarder that writes and closes
//! without reading would otherwise reset the connection over the unread tickets, and the
//! kernel would discard what decnetd had not read yet.
//!
//! The listeners run on their own thread and runtime ([`Listeners`]), so a restarted
//! ingester keeps the sockets and the channel of its predecessor. Each listener holds at most
//! `max_connections` connections (more are accepted and closed at once), closes connections
//! idle for `idle_timeout_s` and handshakes not done in `handshake_timeout_s`. On
//! [`Listeners::drain`] they stop accepting, read what every connection still delivers (until
//! its end, [`DRAIN_IDLE`] of silence, or the drain window given to `drain`), send it, and
//! end.

use std::io::BufReader;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Ack, IngestCounters, IngestError, RawLine};
use crate::config::IngestSettings;
use crate::domain::syslog::framing::{Frame, FrameDecoder, FrameError};
use crate::domain::syslog::relp::{self, Command, RelpDecoder};

/// Default of `channel_max_bytes`: most bytes of received lines waiting in the listener
/// channel (besides its line bound).
pub const CHANNEL_MAX_BYTES: usize = 8 << 20;
/// Per-line overhead counted against [`CHANNEL_MAX_BYTES`].
const LINE_OVERHEAD: usize = 64;
/// While draining, a connection silent this long is done.
pub const DRAIN_IDLE: Duration = Duration::from_millis(250);
/// File descriptors kept free for the database, the tailed file and the HTTP server when the
/// connection cap is fitted to the open-files limit.
const FD_RESERVE: u64 = 256;

/// Sending half of the listener channel (bounded by lines and bytes).
#[derive(Clone)]
pub struct LineSender {
    tx: mpsc::Sender<RawLine>,
    bytes: Arc<Semaphore>,
    max_cost: usize,
}

/// Receiving half of the listener channel.
pub struct LineReceiver {
    rx: mpsc::Receiver<RawLine>,
    bytes: Arc<Semaphore>,
    max_cost: usize,
}

fn cost(l: &RawLine, max: usize) -> u32 {
    u32::try_from((l.bytes.len() + LINE_OVERHEAD).min(max)).unwrap_or(u32::MAX)
}

/// A channel holding at most `lines` lines and about `bytes` bytes of them (never less than
/// one frame of `max_frame` bytes).
pub fn line_channel(lines: usize, bytes: usize, max_frame: usize) -> (LineSender, LineReceiver) {
    let (tx, rx) = mpsc::channel(lines.max(1));
    let max_cost = bytes.max(max_frame + LINE_OVERHEAD).min(u32::MAX as usize);
    let sem = Arc::new(Semaphore::new(max_cost));
    (
        LineSender {
            tx,
            bytes: sem.clone(),
            max_cost,
        },
        LineReceiver {
            rx,
            bytes: sem,
            max_cost,
        },
    )
}

impl LineSender {
    /// Send one line, waiting while the channel is full; `false` when the receiver is gone.
    pub async fn send(&self, l: RawLine) -> bool {
        let c = cost(&l, self.max_cost);
        match self.bytes.acquire_many(c).await {
            Ok(p) => p.forget(),
            Err(_) => return false,
        }
        self.tx.send(l).await.is_ok()
    }
}

impl LineReceiver {
    /// The next line; `None` once every sender is gone and the channel is empty.
    pub async fn recv(&mut self) -> Option<RawLine> {
        let l = self.rx.recv().await?;
        self.bytes.add_permits(cost(&l, self.max_cost) as usize);
        Some(l)
    }

    /// No line waiting.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Move the lines already waiting into `into` until it holds `up_to` lines, without
    /// waiting for more; how many were moved.
    pub fn drain_ready(&mut self, into: &mut Vec<RawLine>, up_to: usize) -> usize {
        let mut moved = 0;
        while into.len() < up_to {
            match self.rx.try_recv() {
                Ok(l) => {
                    self.bytes.add_permits(cost(&l, self.max_cost) as usize);
                    into.push(l);
                    moved += 1;
                }
                Err(_) => break,
            }
        }
        moved
    }
}

/// A connection's view of the listeners' stop: the token and the drain window.
struct Stop {
    token: CancellationToken,
    window: Arc<AtomicU64>,
}

/// Connection limits of one listener.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_frame: usize,
    idle: Duration,
    handshake: Duration,
}

/// The running listeners (their own thread). Dropping the handle drains them.
pub struct Listeners {
    stop: CancellationToken,
    /// Drain window in milliseconds, set by [`Listeners::drain`].
    window: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listeners {
    /// Stop accepting; every connection sends what it still receives (see the module doc),
    /// then the listeners end and their senders are dropped.
    pub fn drain(&self, within: Duration) {
        let ms = u64::try_from(within.as_millis()).unwrap_or(u64::MAX);
        self.window.store(ms, Ordering::Relaxed);
        self.stop.cancel();
    }

    /// Whether the listener thread has ended.
    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn bind(addr: &str) -> Result<std::net::TcpListener, IngestError> {
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| IngestError::Listener(format!("bind {addr}: {e}")))?;
    l.set_nonblocking(true)
        .map_err(|e| IngestError::Listener(format!("{addr}: {e}")))?;
    Ok(l)
}

/// Raise the open-files soft limit to the hard limit; the (new) soft limit.
#[cfg(unix)]
pub fn raise_nofile_limit() -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return None;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                tracing::info!(
                    from = r.rlim_cur,
                    to = r.rlim_max,
                    "open-files soft limit raised"
                );
                r = want;
            }
        }
    }
    Some(r.rlim_cur)
}

#[cfg(not(unix))]
pub fn raise_nofile_limit() -> Option<u64> {
    None
}

/// The per-listener connection cap: the configured one, lowered so that `listeners` full
/// listeners still leave [`FD_RESERVE`] descriptors under the open-files limit.
pub fn connection_cap(configured: usize, nofile: Option<u64>, listeners: usize) -> usize {
    let Some(limit) = nofile else {
        return configured.max(1);
    };
    let room = limit.saturating_sub(FD_RESERVE) / listeners.max(1) as u64;
    configured
        .min(usize::try_from(room).unwrap_or(usize::MAX))
        .max(1)
}

/// Start the configured listeners (plain TCP when `syslog_tcp_bind` is set, TLS when the
/// CA, certificate and key are all set) on their own thread; `Ok(None)` when none is set.
pub fn start_all(
    s: &IngestSettings,
    tx: LineSender,
    counters: Arc<IngestCounters>,
) -> Result<Option<Listeners>, IngestError> {
    let tcp = match &s.syslog_tcp_bind {
        Some(addr) => Some((addr.clone(), bind(addr)?)),
        None => None,
    };
    let tls = match (&s.tls_ca, &s.tls_cert, &s.tls_key) {
        (Some(ca), Some(cert), Some(key)) => {
            let cfg = tls_config(ca, cert, key)?;
            let addr = format!("{}:{}", s.syslog_tls_host, s.syslog_tls_port);
            let l = bind(&addr)?;
            Some((addr, l, cfg))
        }
        _ => None,
    };
    let relp = match &s.syslog_relp_bind {
        Some(addr) => {
            let tls = match (s.syslog_relp_tls, &s.tls_ca, &s.tls_cert, &s.tls_key) {
                (false, ..) => None,
                (true, Some(ca), Some(cert), Some(key)) => Some(tls_config(ca, cert, key)?),
                (true, ..) => return Err(IngestError::Listener(
                    "DECNET_SYSLOG_RELP_TLS needs DECNET_SYSLOG_TLS_CA, DECNET_SYSLOG_TLS_CERT \
                         and DECNET_SYSLOG_TLS_KEY"
                        .into(),
                )),
            };
            Some((addr.clone(), bind(addr)?, tls))
        }
        None => None,
    };
    let count =
        usize::from(tcp.is_some()) + usize::from(tls.is_some()) + usize::from(relp.is_some());
    if count == 0 {
        return Ok(None);
    }
    let cap = connection_cap(s.max_connections, raise_nofile_limit(), count);
    if cap < s.max_connections {
        tracing::warn!(
            configured = s.max_connections,
            cap,
            "syslog connection cap lowered to fit the open-files limit"
        );
    }
    let limits = Limits {
        max_frame: s.max_frame_bytes,
        idle: Duration::from_secs_f64(s.idle_timeout_s.max(0.001)),
        handshake: Duration::from_secs_f64(s.handshake_timeout_s.max(0.001)),
    };
    let stop = CancellationToken::new();
    let token = stop.clone();
    let window = Arc::new(AtomicU64::new(0));
    let drain_window = window.clone();
    let thread = std::thread::Builder::new()
        .name("syslog-listeners".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "syslog listeners: no runtime");
                    return;
                }
            };
            rt.block_on(async move {
                let mut loops = JoinSet::new();
                if let Some((addr, l)) = tcp {
                    match TcpListener::from_std(l) {
                        Ok(l) => {
                            tracing::info!(%addr, cap, "syslog TCP listener up");
                            loops.spawn(serve(
                                l,
                                (Proto::Syslog, None),
                                tx.clone(),
                                limits,
                                cap,
                                counters.clone(),
                                (token.clone(), drain_window.clone()),
                            ));
                        }
                        Err(e) => tracing::error!(%addr, error = %e, "syslog TCP listener"),
                    }
                }
                if let Some((addr, l, cfg)) = tls {
                    match TcpListener::from_std(l) {
                        Ok(l) => {
                            tracing::info!(%addr, cap, "syslog TLS listener up");
                            loops.spawn(serve(
                                l,
                                (Proto::Syslog, Some(tokio_rustls::TlsAcceptor::from(cfg))),
                                tx.clone(),
                                limits,
                                cap,
                                counters.clone(),
                                (token.clone(), drain_window.clone()),
                            ));
                        }
                        Err(e) => tracing::error!(%addr, error = %e, "syslog TLS listener"),
                    }
                }
                if let Some((addr, l, cfg)) = relp {
                    match TcpListener::from_std(l) {
                        Ok(l) => {
                            tracing::info!(%addr, cap, tls = cfg.is_some(), "RELP listener up");
                            loops.spawn(serve(
                                l,
                                (Proto::Relp, cfg.map(tokio_rustls::TlsAcceptor::from)),
                                tx.clone(),
                                limits,
                                cap,
                                counters.clone(),
                                (token.clone(), drain_window.clone()),
                            ));
                        }
                        Err(e) => tracing::error!(%addr, error = %e, "RELP listener"),
                    }
                }
                drop(tx);
                while loops.join_next().await.is_some() {}
                tracing::info!("syslog listeners drained");
            });
        })
        .map_err(|e| IngestError::Listener(format!("listener thread: {e}")))?;
    Ok(Some(Listeners {
        stop,
        window,
        thread: Some(thread),
    }))
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

/// Server config requiring a client certificate signed by `ca` (TLS 1.2+), sending no
/// TLS 1.3 session tickets (see the module doc).
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
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| IngestError::Listener(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(cert)?, read_key(key)?)
        .map_err(|e| IngestError::Listener(format!("server certificate: {e}")))?;
    cfg.send_tls13_tickets = 0;
    Ok(Arc::new(cfg))
}

/// Accept connections until `stop`, then wait for every connection to drain.
async fn serve(
    l: TcpListener,
    (proto, tls): (Proto, Option<tokio_rustls::TlsAcceptor>),
    tx: LineSender,
    limits: Limits,
    cap: usize,
    counters: Arc<IngestCounters>,
    (stop, window): (CancellationToken, Arc<AtomicU64>),
) {
    let slots = Arc::new(Semaphore::new(cap));
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = l.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (sock, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: wait, never end the listener (or anything else).
                tracing::warn!(error = %e, "syslog accept failed");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            counters.connections_refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, cap, "syslog connection cap reached; closing");
            drop(sock);
            continue;
        };
        let (tx, counters, tls) = (tx.clone(), counters.clone(), tls.clone());
        let stop = Stop {
            token: stop.clone(),
            window: window.clone(),
        };
        conns.spawn(async move {
            match (proto, tls) {
                (Proto::Syslog, None) => {
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    let source: Arc<str> = Arc::from(format!("tcp:{peer}"));
                    read_frames(sock, source, None, &tx, limits, &counters, &stop).await;
                }
                (Proto::Syslog, Some(acceptor)) => {
                    if let Some((stream, cn)) =
                        tls_accept(acceptor, sock, peer, limits, &counters).await
                    {
                        let source: Arc<str> = Arc::from(format!("tls:{cn}@{peer}"));
                        read_frames(stream, source, Some(cn), &tx, limits, &counters, &stop).await;
                    }
                }
                (Proto::Relp, None) => {
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    let source: Arc<str> = Arc::from(format!("relp:{peer}"));
                    relp_session(sock, source, None, tx, limits, &counters, &stop).await;
                }
                (Proto::Relp, Some(acceptor)) => {
                    if let Some((stream, cn)) =
                        tls_accept(acceptor, sock, peer, limits, &counters).await
                    {
                        let source: Arc<str> = Arc::from(format!("relps:{cn}@{peer}"));
                        relp_session(stream, source, Some(cn), tx, limits, &counters, &stop).await;
                    }
                }
            }
            drop(slot);
        });
    }
    drop(l);
    // The connections hold their own senders: the channel closes when the last one ends.
    drop(tx);
    while conns.join_next().await.is_some() {}
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy)]
enum Proto {
    /// RFC 6587 / RFC 5425 syslog frames, never acknowledged.
    Syslog,
    /// RELP: every message acknowledged once committed.
    Relp,
}

/// The TLS handshake (bounded by the handshake timeout) and the peer certificate's CN; `None`
/// when the handshake fails or the certificate has no CN (the connection is closed).
async fn tls_accept(
    acceptor: tokio_rustls::TlsAcceptor,
    sock: TcpStream,
    peer: std::net::SocketAddr,
    limits: Limits,
    counters: &IngestCounters,
) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, String)> {
    let stream = match tokio::time::timeout(limits.handshake, acceptor.accept(sock)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "syslog TLS handshake refused");
            return None;
        }
        Err(_) => {
            counters.timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, "syslog TLS handshake timed out");
            return None;
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
        return None;
    };
    counters.connections.fetch_add(1, Ordering::Relaxed);
    Some((stream, cn))
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

/// Read frames from one connection until its end, a read error (what arrived before it is
/// still framed and sent), `idle` of silence, or — after `stop` — the drain limits. Rejected
/// frames are sent too, to be quarantined.
async fn read_frames<S: AsyncRead + Unpin>(
    mut s: S,
    source: Arc<str>,
    worker: Option<String>,
    tx: &LineSender,
    limits: Limits,
    counters: &IngestCounters,
    stop: &Stop,
) {
    let mut dec = FrameDecoder::new(limits.max_frame);
    let mut buf = vec![0u8; 16 * 1024];
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        let wait = match drain_until {
            Some(end) => DRAIN_IDLE.min(end.saturating_duration_since(tokio::time::Instant::now())),
            None => limits.idle,
        };
        let read = tokio::select! {
            biased;
            _ = stop.token.cancelled(), if drain_until.is_none() => {
                let window = Duration::from_millis(stop.window.load(Ordering::Relaxed));
                drain_until = Some(tokio::time::Instant::now() + window);
                continue;
            }
            r = tokio::time::timeout(wait, s.read(&mut buf)) => r,
        };
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::debug!(%source, error = %e, "syslog connection read failed");
                0
            }
            Err(_) => {
                if drain_until.is_none() {
                    counters.timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%source, "syslog connection idle; closing");
                }
                0
            }
        };
        if n == 0 {
            dec.finish();
        } else {
            dec.push(&buf[..n]);
        }
        while let Some(f) = dec.next_frame() {
            if !send(tx, f, &source, &worker, counters).await {
                return;
            }
        }
        if n == 0 {
            return;
        }
    }
}

async fn send(
    tx: &LineSender,
    frame: Frame,
    source: &Arc<str>,
    worker: &Option<String>,
    counters: &IngestCounters,
) -> bool {
    let line = match frame {
        Frame::Line(bytes) => RawLine::new(bytes, source.clone(), worker.clone()),
        Frame::Rejected(bytes, why) => {
            counters.frames_rejected.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%source, error = %why, "syslog frame rejected; quarantined");
            RawLine::rejected(bytes, source.clone(), worker.clone(), &why)
        }
    };
    tx.send(line).await
}

/// Longest a RELP session waits for the acknowledgements it still owes before closing (after
/// the client's `close`, a protocol error, or a blocked write).
pub const RELP_ACK_WAIT: Duration = Duration::from_secs(10);

/// One RELP session: `open` is answered with the server's offers; each `syslog` message is
/// sent to the ingester carrying an [`Ack`], and its `200 OK` is written only when the
/// ingester reports the batch committed; `close` is answered once every message before it
/// is acknowledged. A grammar error, the client's end or a stop ends the session: messages
/// not acknowledged by then are resent by the client on its next session (the line-hash key
/// absorbs the duplicates). On a stop the session stops reading, gives up its sender (so
/// the ingester's drain is not held), writes the acknowledgements of what is committed
/// within the drain window, then `serverclose`.
async fn relp_session<S: AsyncRead + AsyncWrite + Unpin>(
    s: S,
    source: Arc<str>,
    worker: Option<String>,
    tx: LineSender,
    limits: Limits,
    counters: &IngestCounters,
    stop: &Stop,
) {
    let (mut rd, mut wr) = tokio::io::split(s);
    let mut dec = RelpDecoder::new(limits.max_frame);
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<u64>();
    let mut tx = Some(tx);
    let mut buf = vec![0u8; 16 * 1024];
    let mut out: Vec<u8> = Vec::new();
    // Messages handed to the ingester and not yet acknowledged.
    let mut owed: u64 = 0;
    // The client's `close` (answered once nothing is owed).
    let mut closing: Option<u64> = None;
    let mut reading = true;
    // When reading stopped: how long acknowledgements may still be awaited.
    let mut until: Option<tokio::time::Instant> = None;
    loop {
        if !out.is_empty() {
            match tokio::time::timeout(RELP_ACK_WAIT, wr.write_all(&out)).await {
                Ok(Ok(())) => out.clear(),
                _ => {
                    tracing::debug!(%source, "RELP write failed; closing");
                    return;
                }
            }
        }
        if !reading && owed == 0 {
            let last = match closing {
                Some(txnr) => relp::rsp(txnr, b""),
                None => relp::SERVERCLOSE.to_vec(),
            };
            let _ = tokio::time::timeout(RELP_ACK_WAIT, async {
                wr.write_all(&last).await?;
                wr.shutdown().await
            })
            .await;
            return;
        }
        let deadline = until.unwrap_or_else(|| tokio::time::Instant::now() + limits.idle);
        tokio::select! {
            biased;
            Some(txnr) = ack_rx.recv() => {
                owed = owed.saturating_sub(1);
                out.extend_from_slice(&relp::ok(txnr));
                let mut n = 1;
                while let Ok(txnr) = ack_rx.try_recv() {
                    owed = owed.saturating_sub(1);
                    out.extend_from_slice(&relp::ok(txnr));
                    n += 1;
                }
                counters.relp_acks.fetch_add(n, Ordering::Relaxed);
            }
            _ = stop.token.cancelled(), if until.is_none() => {
                let window = Duration::from_millis(stop.window.load(Ordering::Relaxed));
                until = Some(tokio::time::Instant::now() + window);
                reading = false;
                tx = None;
            }
            _ = tokio::time::sleep_until(deadline), if !reading => {
                tracing::info!(%source, owed, "RELP session closing with acknowledgements owed (the client resends)");
                owed = 0;
            }
            r = tokio::time::timeout(limits.idle, rd.read(&mut buf)), if reading => {
                let n = match r {
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => {
                        tracing::debug!(%source, error = %e, "RELP read failed");
                        return;
                    }
                    Err(_) => {
                        counters.timeouts.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%source, "RELP session idle; closing");
                        0
                    }
                };
                if n == 0 {
                    // The client is gone: what it sent is committed, what was not
                    // acknowledged it resends next time.
                    dec.finish();
                    if let Some(Err(e)) = dec.next_frame() {
                        counters.frames_rejected.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(%source, error = %e, "RELP stream cut short");
                    }
                    return;
                }
                dec.push(&buf[..n]);
                while let Some(f) = dec.next_frame() {
                    let f = match f {
                        Ok(f) => f,
                        Err(e) => {
                            counters.frames_rejected.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(%source, error = %e, "RELP protocol error; closing the session");
                            reading = false;
                            break;
                        }
                    };
                    match f.command {
                        Command::Open if relp::offers_syslog(&f.data) => {
                            out.extend_from_slice(&relp::open_ok(f.txnr));
                        }
                        Command::Open => {
                            out.extend_from_slice(&relp::error(f.txnr, "only the syslog command is offered"));
                            reading = false;
                        }
                        Command::Syslog => {
                            let Some(sender) = &tx else { break };
                            let line = match f.oversize {
                                Some(len) => {
                                    counters.frames_rejected.fetch_add(1, Ordering::Relaxed);
                                    let why = FrameError::Oversize { len, max: limits.max_frame };
                                    tracing::info!(%source, error = %why, "RELP message rejected; quarantined");
                                    RawLine::rejected(f.data, source.clone(), worker.clone(), &why)
                                }
                                None => RawLine::new(f.message().to_vec(), source.clone(), worker.clone()),
                            };
                            owed += 1;
                            if !sender.send(line.with_ack(Ack { txnr: f.txnr, to: ack_tx.clone() })).await {
                                return;
                            }
                        }
                        Command::Close => {
                            closing = Some(f.txnr);
                            reading = false;
                        }
                        Command::Other(c) => {
                            out.extend_from_slice(&relp::error(f.txnr, &format!("unknown command {c}")));
                        }
                    }
                    if !reading {
                        break;
                    }
                }
                if !reading {
                    // Nothing more is read: the ingester's drain need not wait for us.
                    tx = None;
                    until = Some(tokio::time::Instant::now() + RELP_ACK_WAIT);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_open_files_limit() {
        assert_eq!(connection_cap(512, None, 2), 512);
        assert_eq!(connection_cap(512, Some(1024), 2), 384);
        assert_eq!(connection_cap(512, Some(1 << 20), 2), 512);
        assert_eq!(connection_cap(512, Some(100), 1), 1);
    }
}
