//! Authentication routes (spec/platform.md §3.4, tag "Authentication") and the Config page:
//! `GET /config`, user management (§3.11) and the two dashboard settings
//! (dashboard-contract.md §5).
//!
//! Login and change-password read the raw body so that the rate limiter counts *every*
//! attempt before validation (§3.9); every other handler takes its guard as the first argument.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::db::models::NewUser;
use crate::db::repo;
use crate::http::auth::{
    client_ip, hash_password, login_username_key, validate_new_password, verify_password, Admin,
    AnyUser, Bucket, Role, Viewer, MAX_PASSWORD_CHARS, TICKET_TTL,
};
use crate::http::error::{parse_json, ApiError, JsonBody};
use crate::http::state::AppState;

const MAX_USERNAME_CHARS: usize = 64;

// ---- schemas -------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    /// At most 72 characters.
    #[schema(max_length = 72)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// HS256 JWT.
    pub access_token: String,
    #[schema(example = "bearer")]
    pub token_type: &'static str,
    pub must_change_password: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(max_length = 72)]
    pub old_password: String,
    /// 12 to 72 characters.
    #[schema(min_length = 12, max_length = 72)]
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageResponse {
    pub message: String,
}

fn message(m: &str) -> HttpResponse {
    HttpResponse::Ok().json(MessageResponse {
        message: m.to_string(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketResponse {
    /// Single-use, opaque, URL-safe.
    pub ticket: String,
    #[schema(example = 60)]
    pub expires_in: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserRow {
    pub uuid: String,
    pub username: String,
    pub role: Role,
    pub must_change_password: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigResponse {
    /// The caller's role.
    pub role: Role,
    pub deployment_limit: u32,
    pub global_mutation_interval: String,
    /// Present for admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserRow>>,
    /// Present (true) for admins in developer mode only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub developer_mode: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 1..64 characters.
    #[schema(min_length = 1, max_length = 64)]
    pub username: String,
    /// 12 to 72 characters.
    #[schema(min_length = 12, max_length = 72)]
    pub password: String,
    /// `admin` or `viewer` (default `viewer`).
    #[serde(default)]
    #[schema(value_type = Option<Role>)]
    pub role: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    /// `admin` or `viewer`.
    #[schema(value_type = Role)]
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// 12 to 72 characters.
    #[schema(min_length = 12, max_length = 72)]
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentLimitRequest {
    /// 1..500.
    #[schema(minimum = 1, maximum = 500)]
    #[serde(deserialize_with = "integral_i64")]
    pub deployment_limit: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MutationIntervalRequest {
    /// `^[1-9]\d*[mdMyY]$`, e.g. `30m`.
    #[schema(pattern = r"^[1-9][0-9]*[mdMyY]$")]
    pub global_mutation_interval: String,
}

/// An integer field that also takes a zero-fraction number (`490.0`), which JSON Schema calls
/// an integer too.
fn integral_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        })
        .ok_or_else(|| serde::de::Error::custom(format!("invalid value: {n}, expected an integer")))
}

fn parse_role(field: &str, raw: &str) -> Result<Role, ApiError> {
    Role::parse(raw).ok_or_else(|| ApiError::invalid_field(field, "must be 'admin' or 'viewer'"))
}

// ---- dashboard settings (state table) -----------------------------------------------------

/// `state` key of the deployment limit (`{"value": 10}`).
pub const DEPLOYMENT_LIMIT_KEY: &str = "config.deployment_limit";
/// `state` key of the global mutation interval (`{"value": "30m"}`).
pub const MUTATION_INTERVAL_KEY: &str = "config.global_mutation_interval";
pub const DEFAULT_DEPLOYMENT_LIMIT: u32 = 10;
pub const DEFAULT_MUTATION_INTERVAL: &str = "30m";

/// `^[1-9]\d*[mdMyY]$` without a regex engine.
pub fn valid_mutation_interval(s: &str) -> bool {
    let Some(unit) = s.chars().last() else {
        return false;
    };
    let digits = &s[..s.len() - unit.len_utf8()];
    matches!(unit, 'm' | 'd' | 'M' | 'y' | 'Y')
        && !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
}

async fn deployment_limit(state: &AppState) -> Result<u32, ApiError> {
    Ok(repo::state::get(&state.db, DEPLOYMENT_LIMIT_KEY)
        .await?
        .and_then(|v| v.get("value").and_then(|n| n.as_u64()))
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(DEFAULT_DEPLOYMENT_LIMIT))
}

async fn mutation_interval(state: &AppState) -> Result<String, ApiError> {
    Ok(repo::state::get(&state.db, MUTATION_INTERVAL_KEY)
        .await?
        .and_then(|v| v.get("value").and_then(|s| s.as_str()).map(str::to_string))
        .filter(|s| valid_mutation_interval(s))
        .unwrap_or_else(|| DEFAULT_MUTATION_INTERVAL.to_string()))
}

// ---- /auth ---------------------------------------------------------------------------------

#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "Authentication",
    request_body = LoginRequest,
    security(()),
    responses(
        (status = 200, description = "Access token", body = LoginResponse),
        (status = 401, description = "Incorrect username or password"),
        (status = 429, description = "Rate limit exceeded: 10 per 5 minute (per IP and per username)"),
    )
)]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let limits = &state.auth.limits;
    limits.check(Bucket::LoginIp, &client_ip(&req))?;
    limits.check(Bucket::LoginUser, &login_username_key(&body))?;
    let body: LoginRequest = parse_json(&body)?;
    if body.password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(ApiError::invalid_field(
            "password",
            "must be at most 72 characters",
        ));
    }
    let user = repo::users::get_by_username(&state.db, &body.username).await?;
    let ok = verify_password(
        &body.password,
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await?;
    let Some(user) = user.filter(|_| ok) else {
        return Err(ApiError::Unauthorized(
            "Incorrect username or password".into(),
        ));
    };
    let (access_token, _) = state.auth.issue_token(&user.uuid)?;
    Ok(HttpResponse::Ok().json(LoginResponse {
        access_token,
        token_type: "bearer",
        must_change_password: user.must_change_password,
    }))
}

#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "Authentication",
    responses((status = 200, description = "This token is revoked", body = MessageResponse))
)]
pub async fn logout(user: AnyUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.auth.revoke(&state.db, &user).await?;
    Ok(message("Logged out"))
}

#[utoipa::path(
    post, path = "/api/v1/auth/change-password", tag = "Authentication",
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Password changed; every earlier token of the user is revoked", body = MessageResponse),
        (status = 401, description = "Incorrect old password"),
        (status = 422, description = "A password longer than 72 characters"),
        (status = 429, description = "Rate limit exceeded: 5 per 1 minute (per IP)"),
    )
)]
pub async fn change_password(
    user: AnyUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .limits
        .check(Bucket::ChangePassword, &client_ip(&req))?;
    let body: ChangePasswordRequest = parse_json(&body)?;
    if body.old_password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(ApiError::invalid_field(
            "old_password",
            "must be at most 72 characters",
        ));
    }
    validate_new_password("new_password", &body.new_password)?;
    let row = repo::users::get_by_uuid(&state.db, &user.uuid)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if !verify_password(&body.old_password, Some(row.password_hash)).await? {
        return Err(ApiError::Unauthorized("Incorrect old password".into()));
    }
    let hash = hash_password(&body.new_password).await?;
    repo::users::update_password(&state.db, &user.uuid, &hash, false).await?;
    state.auth.revoke_all_of(&state.db, &user.uuid).await?;
    // the token in use dies too, whatever its issue time
    state.auth.revoke(&state.db, &user).await?;
    crate::app::forget_initial_password(&state.settings, &user.username);
    tracing::info!(user = %user.username, "password changed");
    Ok(message("Password updated successfully"))
}

#[utoipa::path(
    post, path = "/api/v1/auth/sse-ticket", tag = "Authentication",
    responses((status = 200, description = "Single-use SSE ticket valid 60 s", body = TicketResponse))
)]
pub async fn sse_ticket(viewer: Viewer, state: web::Data<AppState>) -> HttpResponse {
    let ticket = state.auth.tickets.mint(&viewer);
    HttpResponse::Ok().json(TicketResponse {
        ticket,
        expires_in: TICKET_TTL.as_secs(),
    })
}

// ---- /config -------------------------------------------------------------------------------

#[utoipa::path(
    get, path = "/api/v1/config", tag = "Config",
    responses((status = 200, description = "Caller's role and settings; admins also get the users", body = ConfigResponse))
)]
pub async fn get_config(
    viewer: Viewer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let deployment_limit = deployment_limit(&state).await?;
    let global_mutation_interval = mutation_interval(&state).await?;
    let (users, developer_mode) = if viewer.is_admin() {
        let users = repo::users::list(&state.db)
            .await?
            .into_iter()
            .map(|u| UserRow {
                role: Role::from_db(&u.role),
                uuid: u.uuid,
                username: u.username,
                must_change_password: u.must_change_password,
            })
            .collect();
        (Some(users), state.settings.developer.then_some(true))
    } else {
        (None, None)
    };
    Ok(HttpResponse::Ok().json(ConfigResponse {
        role: viewer.role,
        deployment_limit,
        global_mutation_interval,
        users,
        developer_mode,
    }))
}

#[utoipa::path(
    put, path = "/api/v1/config/deployment-limit", tag = "Config",
    request_body = DeploymentLimitRequest,
    responses((status = 200, description = "Saved", body = MessageResponse))
)]
pub async fn put_deployment_limit(
    _admin: Admin,
    state: web::Data<AppState>,
    body: JsonBody<DeploymentLimitRequest>,
) -> Result<HttpResponse, ApiError> {
    let v = body.deployment_limit;
    if !(1..=500).contains(&v) {
        return Err(ApiError::invalid_field(
            "deployment_limit",
            "must be between 1 and 500",
        ));
    }
    repo::state::set(&state.db, DEPLOYMENT_LIMIT_KEY, &json!({ "value": v })).await?;
    Ok(message("Deployment limit updated"))
}

#[utoipa::path(
    put, path = "/api/v1/config/global-mutation-interval", tag = "Config",
    request_body = MutationIntervalRequest,
    responses((status = 200, description = "Saved", body = MessageResponse))
)]
pub async fn put_mutation_interval(
    _admin: Admin,
    state: web::Data<AppState>,
    body: JsonBody<MutationIntervalRequest>,
) -> Result<HttpResponse, ApiError> {
    let v = body.into_inner().global_mutation_interval;
    if !valid_mutation_interval(&v) {
        return Err(ApiError::invalid_field(
            "global_mutation_interval",
            "must match ^[1-9]\\d*[mdMyY]$",
        ));
    }
    repo::state::set(&state.db, MUTATION_INTERVAL_KEY, &json!({ "value": v })).await?;
    Ok(message("Global mutation interval updated"))
}

#[utoipa::path(
    post, path = "/api/v1/config/users", tag = "Config",
    request_body = CreateUserRequest,
    responses(
        (status = 200, description = "Created with must_change_password", body = UserRow),
        (status = 409, description = "Username already exists"),
    )
)]
pub async fn create_user(
    _admin: Admin,
    state: web::Data<AppState>,
    body: JsonBody<CreateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let n = body.username.chars().count();
    if n == 0 {
        return Err(ApiError::structural("username", "must not be empty"));
    }
    if n > MAX_USERNAME_CHARS {
        return Err(ApiError::invalid_field(
            "username",
            "must be at most 64 characters",
        ));
    }
    validate_new_password("password", &body.password)?;
    let role = match body.role.as_deref() {
        None => Role::Viewer,
        Some(r) => parse_role("role", r)?,
    };
    let hash = hash_password(&body.password).await?;
    let created = repo::users::create(
        &state.db,
        NewUser::new(body.username, hash, role.as_str(), true),
    )
    .await
    .map_err(|e| {
        if e.is_unique_violation() {
            ApiError::conflict("Username already exists")
        } else {
            e.into()
        }
    })?;
    Ok(HttpResponse::Ok().json(UserRow {
        uuid: created.uuid,
        username: created.username,
        role: Role::from_db(&created.role),
        must_change_password: created.must_change_password,
    }))
}

#[utoipa::path(
    delete, path = "/api/v1/config/users/{user_uuid}", tag = "Config",
    params(("user_uuid" = String, Path)),
    responses((status = 200, description = "Deleted; the user's tokens die with it", body = MessageResponse))
)]
pub async fn delete_user(
    admin: Admin,
    state: web::Data<AppState>,
    user_uuid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let target = user_uuid.into_inner();
    if target == admin.uuid {
        return Err(ApiError::forbidden("Cannot delete your own account"));
    }
    let existed = repo::users::delete(&state.db, &target).await?;
    state.auth.invalidate_user(&target);
    if !existed {
        return Err(ApiError::not_found("User not found"));
    }
    Ok(message("User deleted"))
}

#[utoipa::path(
    put, path = "/api/v1/config/users/{user_uuid}/role", tag = "Config",
    params(("user_uuid" = String, Path)),
    request_body = RoleRequest,
    responses((status = 200, description = "Role changed; the target's tokens are revoked", body = MessageResponse))
)]
pub async fn update_role(
    admin: Admin,
    state: web::Data<AppState>,
    user_uuid: web::Path<String>,
    body: JsonBody<RoleRequest>,
) -> Result<HttpResponse, ApiError> {
    let target = user_uuid.into_inner();
    if target == admin.uuid {
        return Err(ApiError::forbidden("Cannot change your own role"));
    }
    let role = parse_role("role", &body.role)?;
    if repo::users::get_by_uuid(&state.db, &target)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("User not found"));
    }
    repo::users::update_role(&state.db, &target, role.as_str()).await?;
    state.auth.revoke_all_of(&state.db, &target).await?;
    Ok(message("User role updated"))
}

#[utoipa::path(
    put, path = "/api/v1/config/users/{user_uuid}/reset-password", tag = "Config",
    params(("user_uuid" = String, Path)),
    request_body = ResetPasswordRequest,
    responses((status = 200, description = "Password reset; must change at next login; tokens revoked", body = MessageResponse))
)]
pub async fn reset_password(
    _admin: Admin,
    state: web::Data<AppState>,
    user_uuid: web::Path<String>,
    body: JsonBody<ResetPasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let target = user_uuid.into_inner();
    validate_new_password("new_password", &body.new_password)?;
    let Some(row) = repo::users::get_by_uuid(&state.db, &target).await? else {
        return Err(ApiError::not_found("User not found"));
    };
    let hash = hash_password(&body.new_password).await?;
    repo::users::update_password(&state.db, &target, &hash, true).await?;
    state.auth.revoke_all_of(&state.db, &target).await?;
    crate::app::forget_initial_password(&state.settings, &row.username);
    Ok(message("Password reset successfully"))
}

#[utoipa::path(
    delete, path = "/api/v1/config/reinit", tag = "Config",
    responses(
        (status = 403, description = "Developer mode is not enabled"),
        (status = 404, description = "Developer mode: not available in this build (the purge needs the intake tables)"),
    )
)]
pub async fn reinit(_admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !state.settings.developer {
        return Err(ApiError::forbidden("Developer mode is not enabled"));
    }
    Err(ApiError::not_found("Not available in this build"))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/login", web::post().to(login))
        .route("/auth/logout", web::post().to(logout))
        .route("/auth/change-password", web::post().to(change_password))
        .route("/auth/sse-ticket", web::post().to(sse_ticket))
        .route("/config", web::get().to(get_config))
        .route(
            "/config/deployment-limit",
            web::put().to(put_deployment_limit),
        )
        .route(
            "/config/global-mutation-interval",
            web::put().to(put_mutation_interval),
        )
        .route("/config/reinit", web::delete().to(reinit))
        .route("/config/users", web::post().to(create_user))
        .route("/config/users/{user_uuid}", web::delete().to(delete_user))
        .route("/config/users/{user_uuid}/role", web::put().to(update_role))
        .route(
            "/config/users/{user_uuid}/reset-password",
            web::put().to(reset_password),
        );
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        login,
        logout,
        change_password,
        sse_ticket,
        get_config,
        put_deployment_limit,
        put_mutation_interval,
        create_user,
        delete_user,
        update_role,
        reset_password,
        reinit
    ),
    components(schemas(
        LoginRequest,
        LoginResponse,
        ChangePasswordRequest,
        MessageResponse,
        TicketResponse,
        UserRow,
        ConfigResponse,
        CreateUserRequest,
        RoleRequest,
        ResetPasswordRequest,
        DeploymentLimitRequest,
        MutationIntervalRequest,
        Role
    ))
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutation_interval_pattern() {
        for ok in ["30m", "1d", "12M", "2y", "7Y", "100m"] {
            assert!(valid_mutation_interval(ok), "{ok}");
        }
        for bad in ["", "m", "0m", "05m", "30", "30h", "3 m", "-1m", "1é"] {
            assert!(!valid_mutation_interval(bad), "{bad}");
        }
    }
}
