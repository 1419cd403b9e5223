//! A webhook receiver on loopback for tests and benchmarks: records every request (time,
//! status answered, headers, body) and answers a scripted status sequence, then a default.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use parking_lot::Mutex;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Instant,
    /// Status the receiver answered.
    pub status: u16,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct RecvState {
    hits: Vec<Hit>,
    script: VecDeque<u16>,
    default: u16,
    keep_bodies: bool,
}

/// A running receiver (stops with the actix System, or with [`Receiver::stop`]).
#[derive(Clone)]
pub struct Receiver {
    state: Arc<Mutex<RecvState>>,
    /// `http://127.0.0.1:PORT/hook`
    pub url: String,
    server: actix_web::dev::ServerHandle,
}

async fn recv(
    req: HttpRequest,
    body: web::Bytes,
    st: web::Data<Arc<Mutex<RecvState>>>,
) -> HttpResponse {
    let mut s = st.lock();
    let status = s.script.pop_front().unwrap_or(s.default);
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let body = if s.keep_bodies {
        body.to_vec()
    } else {
        Vec::new()
    };
    s.hits.push(Hit {
        at: Instant::now(),
        status,
        headers,
        body,
    });
    let code = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = HttpResponse::build(code);
    if (300..400).contains(&status) {
        res.insert_header(("Location", "http://127.0.0.1:9/elsewhere"));
    }
    res.body("ok")
}

impl Receiver {
    /// Start on `127.0.0.1:<ephemeral>` answering `default`. Call inside an actix System.
    pub fn start(default: u16) -> std::io::Result<Receiver> {
        Self::start_with(default, true)
    }

    /// Same, optionally dropping bodies (benchmarks).
    pub fn start_with(default: u16, keep_bodies: bool) -> std::io::Result<Receiver> {
        let state = Arc::new(Mutex::new(RecvState {
            default,
            keep_bodies,
            ..RecvState::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let data = web::Data::new(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(recv))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Ok(Receiver {
            state,
            url: format!("http://{addr}/hook"),
            server: handle,
        })
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.state.lock().hits.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().hits.len()
    }

    /// Answer these statuses first, in order.
    pub fn script(&self, codes: &[u16]) {
        self.state.lock().script.extend(codes.iter().copied());
    }

    pub fn set_default(&self, code: u16) {
        self.state.lock().default = code;
    }

    /// Event ids acknowledged with a 2xx, with how often each was acknowledged.
    pub fn acked(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for h in self
            .state
            .lock()
            .hits
            .iter()
            .filter(|h| (200..300).contains(&h.status))
        {
            *out.entry(
                h.headers
                    .get("x-decnet-event-id")
                    .cloned()
                    .unwrap_or_default(),
            )
            .or_insert(0) += 1;
        }
        out
    }

    pub async fn stop(&self) {
        self.server.stop(false).await;
    }
}
