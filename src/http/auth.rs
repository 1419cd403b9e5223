//! Authentication and authorization (spec/platform.md §3): JWT access tokens, bcrypt
//! passwords, SSE tickets, the per-user SSE cap, rate limiters, and the `Viewer` / `Admin` /
//! `AnyUser` / `StreamViewer` extractors.
//!
//! Token validation is async (user row, revocation list), while actix polls a handler's
//! extractors concurrently — a body extractor could then answer 400 before the guard answers
//! 403. So [`bearer_middleware`] validates the `Authorization` header *before* the handler runs
//! and leaves the outcome in the request extensions; the extractors only read it and are ready
//! on their first poll. Put the guard first in a handler's arguments and authorization always
//! wins over body validation (§3.6).

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use base64::Engine as _;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::Mutex;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::db::models::User;
use crate::db::{repo, Db};
use crate::http::error::{ApiError, INSUFFICIENT_PERMISSIONS, MUST_CHANGE_PASSWORD};
use crate::http::state::AppState;

/// JWT issuer claim.
pub const ISSUER: &str = "decnet";
/// JWT audience claim.
pub const AUDIENCE: &str = "decnet-dashboard";
/// JWT `typ` claim of access tokens.
pub const TOKEN_TYPE: &str = "access";
/// bcrypt cost (§3.2).
pub const BCRYPT_COST: u32 = 12;
/// bcrypt only looks at the first 72 bytes of its input; see [`bcrypt_input`].
pub const MAX_PASSWORD_BYTES: usize = 72;
/// Maximum length of any password (new or at login), in characters.
pub const MAX_PASSWORD_CHARS: usize = 72;
/// Minimum length of a new password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Lifetime of an SSE ticket.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

/// Errors building the auth state at boot.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("DECNET_JWT_SECRET is not set (it is generated at first boot before the API starts)")]
    MissingSecret,
}

// ---- roles and principals ------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// Parse a stored role; anything unknown is treated as the least privileged role.
    pub fn from_db(s: &str) -> Role {
        if s == "admin" {
            Role::Admin
        } else {
            Role::Viewer
        }
    }

    /// Parse a role sent by a client (exact lowercase words only).
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub uuid: String,
    pub username: String,
    pub role: Role,
    /// Token id; empty for a principal that came from an SSE ticket.
    pub jti: String,
    /// Expiry, epoch seconds.
    pub exp: i64,
    pub must_change_password: bool,
}

impl Principal {
    fn from_user(user: &User, jti: String, exp: i64) -> Principal {
        Principal {
            uuid: user.uuid.clone(),
            username: user.username.clone(),
            role: Role::from_db(&user.role),
            jti,
            exp,
            must_change_password: user.must_change_password,
        }
    }
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

// ---- JWT -----------------------------------------------------------------------------------

/// Access-token claims (§3.3). `jti` and `typ` are optional on decode so that a legacy token
/// without them fails with 401 in the pipeline instead of a parse error elsewhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub uuid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    pub iat: i64,
    /// Issue time in microseconds since the epoch: revocation cutoffs compare at this
    /// precision, so a token issued just before a password change dies even in the same second.
    /// Absent on tokens of earlier builds (their whole-second `iat` is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_us: Option<i64>,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
}

/// Why a password failed the write-path rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordProblem {
    TooShort,
    TooLong,
}

/// The length rules of §3.2 for a new password (create, reset, change): 12 to 72 characters.
/// Characters, not bytes, so that the rule is what the OpenAPI document can state
/// (`minLength`/`maxLength`); [`bcrypt_input`] keeps long multi-byte passwords whole.
pub fn check_new_password(pw: &str) -> Result<(), PasswordProblem> {
    let chars = pw.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordProblem::TooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(PasswordProblem::TooLong);
    }
    Ok(())
}

/// [`check_new_password`] as an API error naming `field` (400 too short, 422 too long).
pub fn validate_new_password(field: &str, pw: &str) -> Result<(), ApiError> {
    match check_new_password(pw) {
        Ok(()) => Ok(()),
        Err(PasswordProblem::TooShort) => Err(ApiError::structural(
            field,
            "must be at least 12 characters",
        )),
        Err(PasswordProblem::TooLong) => Err(ApiError::invalid_field(
            field,
            "must be at most 72 characters",
        )),
    }
}

/// What bcrypt is given for a password. bcrypt reads only 72 bytes, so a password of up to 72
/// bytes goes in as it is (hashes of the reference system and earlier builds still verify),
/// and a longer one (72 multi-byte characters can be 288 bytes) as the hex SHA-256 of all its
/// bytes, so two long passwords that share their first 72 bytes never verify for each other.
pub fn bcrypt_input(pw: &str) -> Vec<u8> {
    use sha2::Digest as _;
    if pw.len() <= MAX_PASSWORD_BYTES {
        pw.as_bytes().to_vec()
    } else {
        hex::encode(sha2::Sha256::digest(pw.as_bytes())).into_bytes()
    }
}

/// bcrypt hash at cost 12 (blocking: the CLI and boot call it on a blocking thread).
pub fn hash_password_blocking(pw: &str) -> Result<String, bcrypt::BcryptError> {
    bcrypt::hash(bcrypt_input(pw), BCRYPT_COST)
}

/// bcrypt hash at cost 12, off the async executor.
pub async fn hash_password(pw: &str) -> Result<String, ApiError> {
    let pw = pw.to_owned();
    tokio::task::spawn_blocking(move || hash_password_blocking(&pw))
        .await
        .map_err(|e| ApiError::internal(format!("hash task failed: {e}")))?
        .map_err(|e| ApiError::internal(format!("bcrypt hash failed: {e}")))
}

/// bcrypt verify off the executor. `None` hash = unknown user: verify against a dummy hash so
/// the timing does not reveal whether the user exists. A malformed stored hash verifies false.
pub async fn verify_password(pw: &str, hash: Option<String>) -> Result<bool, ApiError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let pw = bcrypt_input(pw);
    tokio::task::spawn_blocking(move || match hash {
        Some(h) => bcrypt::verify(&pw, &h).unwrap_or(false),
        None => {
            let dummy = DUMMY.get_or_init(|| {
                let mut raw = [0u8; 24];
                rand::thread_rng().fill_bytes(&mut raw);
                bcrypt::hash(raw, BCRYPT_COST).unwrap_or_default()
            });
            let _ = bcrypt::verify(&pw, dummy);
            false
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("verify task failed: {e}")))
}

// ---- small TTL cache -----------------------------------------------------------------------

struct TtlCache<V> {
    ttl: Duration,
    max: usize,
    map: Mutex<HashMap<String, (V, Instant)>>,
}

impl<V: Clone> TtlCache<V> {
    fn new(ttl: Duration, max: usize) -> Self {
        TtlCache {
            ttl,
            max,
            map: Mutex::new(HashMap::new()),
        }
    }
    fn get(&self, key: &str) -> Option<V> {
        let map = self.map.lock();
        map.get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(v, _)| v.clone())
    }
    fn insert(&self, key: &str, v: V) {
        let mut map = self.map.lock();
        if map.len() >= self.max {
            let ttl = self.ttl;
            map.retain(|_, (_, at)| at.elapsed() < ttl);
            if map.len() >= self.max {
                map.clear();
            }
        }
        map.insert(key.to_string(), (v, Instant::now()));
    }
    fn remove(&self, key: &str) {
        self.map.lock().remove(key);
    }
}

// ---- SSE tickets ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Ticket {
    uuid: String,
    username: String,
    role: Role,
    expires_at: Instant,
    exp_epoch: i64,
}

/// Single-use, 60 s, opaque tickets for EventSource clients (§3.7). In-process.
pub struct TicketStore {
    ttl: Duration,
    map: Mutex<HashMap<String, Ticket>>,
}

impl TicketStore {
    pub fn new(ttl: Duration) -> Self {
        TicketStore {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn sweep(map: &mut HashMap<String, Ticket>, now: Instant) {
        map.retain(|_, t| t.expires_at > now);
    }

    /// Mint a ticket bound to the principal's uuid and role: 32 random bytes, URL-safe base64.
    pub fn mint(&self, p: &Principal) -> String {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        let ticket = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = Instant::now();
        let exp_epoch = chrono::Utc::now().timestamp() + self.ttl.as_secs() as i64;
        let mut map = self.map.lock();
        Self::sweep(&mut map, now);
        map.insert(
            ticket.clone(),
            Ticket {
                uuid: p.uuid.clone(),
                username: p.username.clone(),
                role: p.role,
                expires_at: now + self.ttl,
                exp_epoch,
            },
        );
        ticket
    }

    /// Redeem once: the entry is removed even when expired. `None` = unknown/expired/reused.
    pub fn redeem(&self, ticket: &str) -> Option<Principal> {
        let now = Instant::now();
        let mut map = self.map.lock();
        let entry = map.remove(ticket);
        Self::sweep(&mut map, now);
        let t = entry.filter(|t| t.expires_at > now)?;
        Some(Principal {
            uuid: t.uuid,
            username: t.username,
            role: t.role,
            jti: String::new(),
            exp: t.exp_epoch,
            must_change_password: false,
        })
    }

    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ---- per-user SSE cap ----------------------------------------------------------------------

/// Concurrent SSE streams per user (§3.8); check-and-increment is atomic under one lock.
#[derive(Clone)]
pub struct SseSlots {
    max: usize,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

/// One held SSE slot; released on drop (disconnect, error, shutdown).
pub struct SseSlot {
    uuid: String,
    counts: Arc<Mutex<HashMap<String, usize>>>,
    _open: crate::metrics::SseGuard,
}

impl Drop for SseSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(n) = counts.get_mut(&self.uuid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.uuid);
            }
        }
    }
}

impl SseSlots {
    pub fn new(max: usize) -> Self {
        SseSlots {
            max,
            counts: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Take a slot or fail with 429 `SSE connection limit (N) reached`.
    pub fn try_acquire(&self, uuid: &str) -> Result<SseSlot, ApiError> {
        let mut counts = self.counts.lock();
        let n = counts.entry(uuid.to_string()).or_insert(0);
        if *n >= self.max {
            return Err(ApiError::SseLimit(self.max));
        }
        *n += 1;
        Ok(SseSlot {
            _open: crate::metrics::sse_opened(),
            uuid: uuid.to_string(),
            counts: self.counts.clone(),
        })
    }

    /// Streams currently held by a user.
    pub fn in_use(&self, uuid: &str) -> usize {
        self.counts.lock().get(uuid).copied().unwrap_or(0)
    }
}

// ---- rate limits ---------------------------------------------------------------------------

/// The rate-limited buckets (§3.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// `POST /auth/login` per client IP: 10 per 5 minutes.
    LoginIp,
    /// `POST /auth/login` per claimed username: 10 per 5 minutes.
    LoginUser,
    /// `POST /auth/change-password` per client IP: 5 per minute.
    ChangePassword,
    /// `POST /webhooks/` per client IP: 20 per minute.
    WebhookCreate,
}

impl Bucket {
    /// (burst, window seconds, label as the reference prints it)
    fn spec(self) -> (u32, u64, &'static str) {
        match self {
            Bucket::LoginIp | Bucket::LoginUser => (10, 300, "10 per 5 minute"),
            Bucket::ChangePassword => (5, 60, "5 per 1 minute"),
            Bucket::WebhookCreate => (20, 60, "20 per 1 minute"),
        }
    }
    fn prefix(self) -> &'static str {
        match self {
            Bucket::LoginIp => "login-ip",
            Bucket::LoginUser => "login-user",
            Bucket::ChangePassword => "change-password-ip",
            Bucket::WebhookCreate => "webhook-create-ip",
        }
    }
    const ALL: [Bucket; 4] = [
        Bucket::LoginIp,
        Bucket::LoginUser,
        Bucket::ChangePassword,
        Bucket::WebhookCreate,
    ];
}

struct Limiter {
    bucket: Bucket,
    inner: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

/// In-memory GCRA limiters keyed by `<bucket>:<key>`; "N pass, N+1th rejected" holds because
/// the burst equals the limit and replenishment is one cell per window/N.
pub struct RateLimits {
    enabled: bool,
    clock: DefaultClock,
    limiters: Vec<Limiter>,
}

impl RateLimits {
    pub fn new(enabled: bool) -> Self {
        let limiters = Bucket::ALL
            .iter()
            .map(|&bucket| {
                let (burst, window, _) = bucket.spec();
                let per_cell = Duration::from_millis(window * 1000 / u64::from(burst));
                let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
                let quota = Quota::with_period(per_cell)
                    .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                    .allow_burst(burst);
                Limiter {
                    bucket,
                    inner: DefaultKeyedRateLimiter::keyed(quota),
                    checks: AtomicU64::new(0),
                }
            })
            .collect();
        RateLimits {
            enabled,
            clock: DefaultClock::default(),
            limiters,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Count one request against `bucket` for `key`; 429 with `Retry-After` when exhausted.
    pub fn check(&self, bucket: Bucket, key: &str) -> Result<(), ApiError> {
        if !self.enabled {
            return Ok(());
        }
        let Some(l) = self.limiters.iter().find(|l| l.bucket == bucket) else {
            return Ok(());
        };
        if l.checks.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
            l.inner.retain_recent();
        }
        let full_key = format!("{}:{key}", bucket.prefix());
        match l.inner.check_key(&full_key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(ApiError::RateLimited {
                    limit: bucket.spec().2.to_string(),
                    retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                })
            }
        }
    }
}

/// The username key of the per-username login bucket: the `username` string of a JSON object
/// body, else the shared `__unparseable__` bucket (§3.9).
pub fn login_username_key(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("username")
                .and_then(|u| u.as_str())
                .filter(|u| !u.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "__unparseable__".to_string())
}

/// The TCP peer address (X-Forwarded-For is deliberately not trusted).
pub fn client_ip(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

// ---- the auth state ------------------------------------------------------------------------

/// Everything auth keeps in process: keys, caches, tickets, SSE slots, limiters.
pub struct AuthState {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    exp_minutes: i64,
    users: TtlCache<User>,
    revoked: TtlCache<bool>,
    pub tickets: TicketStore,
    pub sse: SseSlots,
    pub limits: RateLimits,
}

impl AuthState {
    /// From the settings; fails when the JWT secret is unset or empty.
    pub fn new(settings: &Settings) -> Result<AuthState, AuthSetupError> {
        let secret = settings
            .auth
            .jwt_secret
            .as_ref()
            .filter(|s| !s.is_empty())
            .ok_or(AuthSetupError::MissingSecret)?;
        Ok(Self::with_secret(secret.expose().as_bytes(), settings))
    }

    /// With an explicit HS256 key (the rest from the settings).
    pub fn with_secret(secret: &[u8], settings: &Settings) -> AuthState {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = 0;
        AuthState {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            exp_minutes: settings.auth.jwt_exp_minutes,
            users: TtlCache::new(Duration::from_secs(10), 10_000),
            revoked: TtlCache::new(Duration::from_secs(10), 100_000),
            tickets: TicketStore::new(TICKET_TTL),
            sse: SseSlots::new(settings.auth.sse_max_per_user),
            limits: RateLimits::new(settings.auth.limiter_enabled),
        }
    }

    /// Issue an access token for a user (§3.3).
    pub fn issue_token(&self, user_uuid: &str) -> Result<(String, Claims), ApiError> {
        let now = chrono::Utc::now();
        let iat = now.timestamp();
        let claims = Claims {
            uuid: user_uuid.to_string(),
            jti: Some(uuid::Uuid::new_v4().simple().to_string()),
            iat,
            iat_us: Some(now.timestamp_micros()),
            exp: iat + self.exp_minutes * 60,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            typ: Some(TOKEN_TYPE.into()),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("jwt encode failed: {e}")))?;
        Ok((token, claims))
    }

    /// Step 1 of the pipeline: signature, expiry, issuer, audience, required claims, `typ`.
    pub fn decode(&self, token: &str) -> Option<Claims> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        (data.claims.typ.as_deref() == Some(TOKEN_TYPE)).then_some(data.claims)
    }

    /// User row by uuid, cached 10 s (invalidated by every local write).
    pub async fn user_by_uuid(&self, db: &Db, uuid: &str) -> Result<Option<User>, ApiError> {
        if let Some(u) = self.users.get(uuid) {
            return Ok(Some(u));
        }
        let user = repo::users::get_by_uuid(db, uuid).await?;
        if let Some(u) = &user {
            self.users.insert(uuid, u.clone());
        }
        Ok(user)
    }

    async fn is_revoked(&self, db: &Db, jti: &str) -> Result<bool, ApiError> {
        if let Some(r) = self.revoked.get(jti) {
            return Ok(r);
        }
        let r = repo::tokens::is_revoked(db, jti).await?;
        self.revoked.insert(jti, r);
        Ok(r)
    }

    /// Forget a cached user row (after a password/role change or a delete).
    pub fn invalidate_user(&self, uuid: &str) {
        self.users.remove(uuid);
    }

    /// The full validation pipeline of §3.3 (steps 1–5). Must-change is *not* checked here.
    pub async fn authenticate_bearer(&self, db: &Db, token: &str) -> Result<Principal, ApiError> {
        let claims = self.decode(token).ok_or_else(ApiError::unauthorized)?;
        let user = self
            .user_by_uuid(db, &claims.uuid)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        let jti = claims
            .jti
            .clone()
            .filter(|j| !j.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        if let Some(cutoff) = user.tokens_valid_from {
            if issued_before(&claims, cutoff) {
                return Err(ApiError::unauthorized());
            }
        }
        if self.is_revoked(db, &jti).await? {
            return Err(ApiError::unauthorized());
        }
        Ok(Principal::from_user(&user, jti, claims.exp))
    }

    /// Denylist a token's jti until its expiry (logout); effective immediately in process.
    pub async fn revoke(&self, db: &Db, p: &Principal) -> Result<(), ApiError> {
        let expires_at = chrono::DateTime::from_timestamp(p.exp, 0)
            .map(|d| d.naive_utc())
            .unwrap_or_else(crate::db::now_utc);
        repo::tokens::revoke(db, &p.jti, &p.uuid, expires_at).await?;
        self.revoked.insert(&p.jti, true);
        Ok(())
    }

    /// Move a user's revocation cutoff to now (all earlier tokens die) and drop the cache.
    pub async fn revoke_all_of(&self, db: &Db, uuid: &str) -> Result<(), ApiError> {
        repo::users::set_tokens_valid_from(db, uuid, crate::db::now_utc()).await?;
        self.invalidate_user(uuid);
        Ok(())
    }
}

/// Whether a token was issued before a revocation cutoff, at microsecond precision (the
/// cutoff is stored truncated to microseconds); a token of an earlier build without `iat_us`
/// compares by its whole second.
pub fn issued_before(claims: &Claims, cutoff: chrono::NaiveDateTime) -> bool {
    let cutoff_us = cutoff.and_utc().timestamp_micros();
    match claims.iat_us {
        Some(us) => us < cutoff_us,
        None => claims.iat < cutoff_us.div_euclid(1_000_000),
    }
}

// ---- middleware + extractors ---------------------------------------------------------------

/// Outcome of validating the `Authorization` header, left in the request extensions.
#[derive(Clone)]
enum BearerOutcome {
    Valid(Principal),
    Invalid,
    Internal(String),
}

impl BearerOutcome {
    fn into_result(self) -> Result<Principal, ApiError> {
        match self {
            BearerOutcome::Valid(p) => Ok(p),
            BearerOutcome::Invalid => Err(ApiError::unauthorized()),
            BearerOutcome::Internal(e) => Err(ApiError::internal(e)),
        }
    }
}

/// Exact, case-sensitive `Bearer ` prefix (§3.3).
fn bearer_token(req: &HttpRequest) -> Option<Result<String, ()>> {
    let value = req.headers().get(header::AUTHORIZATION)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .ok_or(()),
    )
}

async fn validate_header(req: &HttpRequest) -> Option<BearerOutcome> {
    let token = bearer_token(req)?;
    let Ok(token) = token else {
        return Some(BearerOutcome::Invalid);
    };
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Some(BearerOutcome::Internal("AppState is not registered".into()));
    };
    Some(
        match state.auth.authenticate_bearer(&state.db, &token).await {
            Ok(p) => BearerOutcome::Valid(p),
            Err(ApiError::Unauthorized(_)) => BearerOutcome::Invalid,
            Err(e) => BearerOutcome::Internal(e.to_string()),
        },
    )
}

/// Validate the `Authorization` header before the handler runs (see the module docs).
pub async fn bearer_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(outcome) = validate_header(req.request()).await {
        req.extensions_mut().insert(outcome);
    }
    next.call(req).await
}

/// The header outcome, computed by the middleware or (if a route was mounted outside it) now.
async fn header_outcome(req: &HttpRequest) -> Option<BearerOutcome> {
    if let Some(o) = req.extensions().get::<BearerOutcome>().cloned() {
        return Some(o);
    }
    validate_header(req).await
}

type ExtractFuture<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

fn enforce_must_change(p: Principal) -> Result<Principal, ApiError> {
    if p.must_change_password {
        Err(ApiError::forbidden(MUST_CHANGE_PASSWORD))
    } else {
        Ok(p)
    }
}

fn enforce_admin(p: Principal) -> Result<Principal, ApiError> {
    if p.is_admin() {
        Ok(p)
    } else {
        Err(ApiError::forbidden(INSUFFICIENT_PERMISSIONS))
    }
}

macro_rules! principal_extractor {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Principal);

        impl Deref for $name {
            type Target = Principal;
            fn deref(&self) -> &Principal {
                &self.0
            }
        }

        impl FromRequest for $name {
            type Error = ApiError;
            type Future = ExtractFuture<Self>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                let req = req.clone();
                Box::pin(async move {
                    let p = header_outcome(&req)
                        .await
                        .ok_or_else(ApiError::unauthorized)?
                        .into_result()?;
                    let check: fn(Principal) -> Result<Principal, ApiError> = $check;
                    check(p).map($name)
                })
            }
        }
    };
}

principal_extractor!(
    /// Any valid token, must-change NOT enforced (logout, change-password).
    AnyUser,
    Ok
);
principal_extractor!(
    /// A viewer or admin whose password is final.
    Viewer,
    enforce_must_change
);
principal_extractor!(
    /// An admin whose password is final.
    Admin,
    |p| enforce_must_change(p).and_then(enforce_admin)
);

/// SSE gate (§3.7): `Authorization: Bearer` (full pipeline + must-change) or `?ticket=`.
/// A raw JWT in `?token=` is not accepted.
#[derive(Debug, Clone)]
pub struct StreamViewer(pub Principal);

impl Deref for StreamViewer {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

/// The `ticket` query parameter, if any.
fn ticket_param(query: &str) -> Option<String> {
    web::Query::<HashMap<String, String>>::from_query(query)
        .ok()?
        .into_inner()
        .remove("ticket")
}

impl FromRequest for StreamViewer {
    type Error = ApiError;
    type Future = ExtractFuture<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if let Some(outcome) = header_outcome(&req).await {
                return enforce_must_change(outcome.into_result()?).map(StreamViewer);
            }
            let ticket = ticket_param(req.query_string()).ok_or_else(ApiError::unauthorized)?;
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| ApiError::internal("AppState is not registered"))?;
            let p = state
                .auth
                .tickets
                .redeem(&ticket)
                .ok_or_else(ApiError::unauthorized)?;
            // a deleted user's ticket dies with it
            if state.auth.user_by_uuid(&state.db, &p.uuid).await?.is_none() {
                return Err(ApiError::unauthorized());
            }
            Ok(StreamViewer(p))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role) -> Principal {
        Principal {
            uuid: "u-1".into(),
            username: "alice".into(),
            role,
            jti: "j".into(),
            exp: 0,
            must_change_password: false,
        }
    }

    fn auth_state(secret: &str) -> AuthState {
        let mut s = Settings::default();
        s.auth.jwt_secret = Some(crate::config::Secret::new(secret));
        AuthState::new(&s).unwrap()
    }

    #[test]
    fn missing_secret_is_an_error() {
        assert!(AuthState::new(&Settings::default()).is_err());
    }

    #[test]
    fn token_roundtrip_and_claims() {
        let a = auth_state("0123456789abcdef0123456789abcdef");
        let (tok, claims) = a.issue_token("user-1").unwrap();
        assert_eq!(tok.split('.').count(), 3);
        let back = a.decode(&tok).unwrap();
        assert_eq!(back.uuid, "user-1");
        assert_eq!(back.iss, ISSUER);
        assert_eq!(back.aud, AUDIENCE);
        assert_eq!(back.typ.as_deref(), Some("access"));
        assert_eq!(back.exp - back.iat, 240 * 60);
        let jti = back.jti.unwrap();
        assert_eq!(jti.len(), 32);
        assert_eq!(Some(jti), claims.jti);
    }

    #[test]
    fn foreign_or_tampered_tokens_fail() {
        let a = auth_state("0123456789abcdef0123456789abcdef");
        let b = auth_state("another-secret-another-secret-xx");
        let (tok, _) = b.issue_token("user-1").unwrap();
        assert!(a.decode(&tok).is_none(), "other key");
        assert!(a.decode("not.a.jwt").is_none());

        let enc = |c: &serde_json::Value| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                c,
                &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
            )
            .unwrap()
        };
        let now = chrono::Utc::now().timestamp();
        let good = serde_json::json!({"uuid":"u","jti":"j","iat":now,"exp":now+60,
            "iss":ISSUER,"aud":AUDIENCE,"typ":"access"});
        assert!(a.decode(&enc(&good)).is_some());
        for (k, v) in [
            ("typ", serde_json::json!("refresh")),
            ("iss", serde_json::json!("other")),
            ("aud", serde_json::json!("other")),
            ("exp", serde_json::json!(now - 1)),
        ] {
            let mut c = good.clone();
            c[k] = v;
            assert!(a.decode(&enc(&c)).is_none(), "{k}");
        }
        for k in ["typ", "iat", "uuid", "exp"] {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove(k);
            assert!(a.decode(&enc(&c)).is_none(), "missing {k}");
        }
        // a legacy token without jti decodes; the pipeline rejects it after the user lookup
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove("jti");
        assert!(a.decode(&enc(&c)).unwrap().jti.is_none());
    }

    #[test]
    fn long_passwords_are_prehashed_whole() {
        let short = "a".repeat(72);
        assert_eq!(bcrypt_input(&short), short.as_bytes());
        // two 30-character passwords of 90 bytes that share their first 72 bytes
        let a = format!("{}{}", "€".repeat(24), "aaaaaa");
        let b = format!("{}{}", "€".repeat(24), "bbbbbb");
        assert_eq!(&a.as_bytes()[..72], &b.as_bytes()[..72]);
        assert_ne!(bcrypt_input(&a), bcrypt_input(&b));
        assert!(bcrypt_input(&a).len() <= MAX_PASSWORD_BYTES);
        let h = bcrypt::hash(bcrypt_input(&a), 4).unwrap();
        assert!(bcrypt::verify(bcrypt_input(&a), &h).unwrap());
        assert!(!bcrypt::verify(bcrypt_input(&b), &h).unwrap());
    }

    #[test]
    fn password_rules() {
        assert_eq!(
            check_new_password("elevenchars"),
            Err(PasswordProblem::TooShort)
        );
        assert!(check_new_password("twelve-chars").is_ok());
        assert!(check_new_password(&"a".repeat(72)).is_ok());
        assert_eq!(
            check_new_password(&"a".repeat(73)),
            Err(PasswordProblem::TooLong)
        );
        // characters, not bytes: 72 × 3-byte chars = 216 bytes is fine, 73 is not
        assert!(check_new_password(&"€".repeat(72)).is_ok());
        assert_eq!(
            check_new_password(&"€".repeat(73)),
            Err(PasswordProblem::TooLong)
        );
        assert!(validate_new_password("new_password", "short")
            .unwrap_err()
            .to_string()
            .contains("new_password"));
    }

    #[tokio::test]
    async fn bcrypt_hash_and_verify() {
        let h = hash_password("correct horse battery").await.unwrap();
        assert!(h.starts_with("$2b$12$"));
        assert!(verify_password("correct horse battery", Some(h.clone()))
            .await
            .unwrap());
        assert!(!verify_password("wrong", Some(h)).await.unwrap());
        assert!(!verify_password("x", None).await.unwrap());
        assert!(!verify_password("x", Some("garbage".into())).await.unwrap());
    }

    #[test]
    fn tickets_are_single_use_opaque_and_expire() {
        let store = TicketStore::new(Duration::from_secs(60));
        let t = store.mint(&principal(Role::Viewer));
        assert!(!t.contains('.'));
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&t)
                .unwrap()
                .len(),
            32
        );
        let p = store.redeem(&t).unwrap();
        assert_eq!((p.uuid.as_str(), p.role), ("u-1", Role::Viewer));
        assert!(store.redeem(&t).is_none(), "reuse");
        assert!(store.redeem("unknown").is_none());

        let short = TicketStore::new(Duration::from_millis(1));
        let t = short.mint(&principal(Role::Admin));
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.redeem(&t).is_none(), "expired");
        assert!(short.is_empty(), "expired entry removed");
        // sweep on mint
        let _ = short.mint(&principal(Role::Admin));
        std::thread::sleep(Duration::from_millis(5));
        let _ = short.mint(&principal(Role::Admin));
        assert_eq!(short.len(), 1);
    }

    #[test]
    fn sse_slots_cap_per_user_and_release_on_drop() {
        let slots = SseSlots::new(2);
        let a = slots.try_acquire("a").unwrap();
        let b = slots.try_acquire("a").unwrap();
        let err = slots.try_acquire("a").err().unwrap();
        assert_eq!(err.to_string(), "SSE connection limit (2) reached");
        let _other = slots.try_acquire("b").unwrap();
        drop(a);
        assert_eq!(slots.in_use("a"), 1);
        let _c = slots.try_acquire("a").unwrap();
        drop(b);
        assert_eq!(slots.in_use("a"), 1);
    }

    #[test]
    fn login_limits_ten_then_429() {
        let limits = RateLimits::new(true);
        for _ in 0..10 {
            limits.check(Bucket::LoginIp, "1.2.3.4").unwrap();
        }
        match limits.check(Bucket::LoginIp, "1.2.3.4") {
            Err(ApiError::RateLimited {
                limit,
                retry_after_secs,
            }) => {
                assert_eq!(limit, "10 per 5 minute");
                assert!((1..=30).contains(&retry_after_secs));
            }
            other => panic!("expected 429, got {other:?}"),
        }
        // other keys and other buckets are independent
        limits.check(Bucket::LoginIp, "5.6.7.8").unwrap();
        limits.check(Bucket::LoginUser, "1.2.3.4").unwrap();
        for _ in 0..5 {
            limits.check(Bucket::ChangePassword, "ip").unwrap();
        }
        assert!(limits.check(Bucket::ChangePassword, "ip").is_err());
        let off = RateLimits::new(false);
        for _ in 0..50 {
            off.check(Bucket::LoginIp, "x").unwrap();
        }
    }

    #[test]
    fn username_keys() {
        assert_eq!(
            login_username_key(br#"{"username":"alice","password":"x"}"#),
            "alice"
        );
        for body in [
            &b"nope"[..],
            b"{}",
            br#"{"username":""}"#,
            br#"{"username":5}"#,
            b"[]",
        ] {
            assert_eq!(login_username_key(body), "__unparseable__");
        }
    }

    #[test]
    fn ticket_param_parsing() {
        assert_eq!(ticket_param("ticket=abc&x=1").as_deref(), Some("abc"));
        assert_eq!(
            ticket_param("search=&ticket=a-b_c").as_deref(),
            Some("a-b_c")
        );
        assert_eq!(ticket_param("token=eyJ.x.y"), None);
    }
}
