//! Access: enrollment tokens, operators and who is asking.

use super::{actor, optional_name, AdminApi};
use crate::grpc::auth::{self, Role};
use crate::grpc::{printable, ApiError};
use crate::store::security::RemoveOperator;
use crate::wire::TokenView;
use tierwise_common::expiry;
use tierwise_common::validate_name;
use tierwise_proto::v1;
use tierwise_proto::v1::{
    AddOperatorRequest, AddOperatorResponse, CreateTokenRequest, CreateTokenResponse,
    ListOperatorsRequest, ListTokensRequest, RemoveOperatorRequest, RevokeTokenRequest,
    RotateOperatorRequest, WhoAmIRequest,
};
use tierwise_runtime::clock::now_ms;
use tonic::{Request, Response, Status};
use tracing::info;

/// Most uses one enrollment token may have (a Group Policy token for a whole
/// estate needs many).
const MAX_TOKEN_USES: u32 = 1_000_000;
/// Longest lifetime of an enrollment token: 90 days.
const MAX_TOKEN_SECONDS: u64 = 90 * 86_400;

pub(super) async fn create_token(
    api: &AdminApi,
    request: Request<CreateTokenRequest>,
) -> Result<Response<CreateTokenResponse>, Status> {
    let actor = actor(&request)?;
    let request = request.into_inner();
    let installation = optional_name("installation", &request.installation)?;
    if !(1..=MAX_TOKEN_USES).contains(&request.uses) {
        return Err(ApiError::InvalidArgument(format!(
            "uses must be between 1 and {MAX_TOKEN_USES}, not {}",
            request.uses
        ))
        .into());
    }
    if !(1..=MAX_TOKEN_SECONDS).contains(&request.expires_seconds) {
        return Err(ApiError::InvalidArgument(format!(
            "a token must expire between 1 second and {} days from now",
            MAX_TOKEN_SECONDS / 86_400
        ))
        .into());
    }
    let (id, secret, token) = auth::new_enrollment_token();
    let now = now_ms();
    let expires_ms = now + i64::try_from(request.expires_seconds * 1000).unwrap_or(i64::MAX);
    api.store
        .create_token(
            &crate::store::security::NewToken {
                id: &id,
                secret_sha256: &auth::token_digest(&secret),
                installation: installation.as_deref(),
                uses_allowed: i64::from(request.uses),
                expires_ms,
            },
            &actor,
            now,
        )
        .await
        .map_err(ApiError::from)?;
    info!(token = %id, %actor, uses = request.uses, "enrollment token created");
    Ok(Response::new(CreateTokenResponse {
        token,
        id,
        expires_at_ms: expires_ms,
    }))
}

pub(super) async fn list_tokens(
    api: &AdminApi,
    _request: Request<ListTokensRequest>,
) -> Result<Response<v1::TokenList>, Status> {
    let now = now_ms();
    let tokens = api
        .store
        .tokens()
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|t| v1::TokenView::from(&TokenView::new(t, now)))
        .collect();
    Ok(Response::new(v1::TokenList { tokens }))
}

pub(super) async fn revoke_token(
    api: &AdminApi,
    request: Request<RevokeTokenRequest>,
) -> Result<Response<v1::TokenView>, Status> {
    let actor = actor(&request)?;
    let id = request.into_inner().id;
    let token = api
        .store
        .revoke_token(id.trim(), &actor, now_ms())
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no enrollment token `{}`; `tierwise tokens list` shows them",
                printable(&id, 64)
            ))
        })?;
    info!(token = %token.id, %actor, "enrollment token revoked");
    Ok(Response::new(v1::TokenView::from(&TokenView::new(
        token,
        now_ms(),
    ))))
}

pub(super) async fn add_operator(
    api: &AdminApi,
    request: Request<AddOperatorRequest>,
) -> Result<Response<AddOperatorResponse>, Status> {
    let actor = actor(&request)?;
    let request = request.into_inner();
    validate_name("operator name", &request.name)
        .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
    let role: Role = request.role.parse().map_err(ApiError::InvalidArgument)?;
    let token = auth::new_operator_token();
    let now = now_ms();
    let added = api
        .store
        .add_operator(
            &request.name,
            role.as_str(),
            &auth::token_digest(&token),
            token_expiry(request.expires_seconds, request.never_expires, now)?,
            &actor,
            now,
        )
        .await
        .map_err(ApiError::from)?;
    if !added {
        return Err(ApiError::AlreadyExists(format!(
            "operator `{}` exists; remove it first to issue a new token",
            request.name
        ))
        .into());
    }
    info!(operator = %request.name, %role, %actor, "operator added");
    Ok(Response::new(AddOperatorResponse { token }))
}

/// When a token issued `now` expires: `never`, after `seconds`, or after
/// the default `OPERATOR_TOKEN_LIFETIME` (0 seconds); more than
/// `expiry::MAX_LIFETIME` ahead is refused.
fn token_expiry(seconds: u64, never: bool, now: i64) -> Result<Option<i64>, ApiError> {
    let lifetime = match (never, seconds) {
        (true, _) => None,
        (false, 0) => Some(OPERATOR_TOKEN_LIFETIME),
        (false, n) => Some(std::time::Duration::from_secs(n)),
    };
    expiry::expiry_at(lifetime, now).map_err(ApiError::InvalidArgument)
}

/// Operator tokens work this long unless told otherwise.
pub const OPERATOR_TOKEN_LIFETIME: std::time::Duration =
    std::time::Duration::from_secs(90 * 24 * 3600);

pub(super) async fn rotate_operator(
    api: &AdminApi,
    request: Request<RotateOperatorRequest>,
) -> Result<Response<AddOperatorResponse>, Status> {
    let actor = actor(&request)?;
    let caller_is_admin = matches!(
        auth::principal(&request)?,
        auth::Principal::Operator {
            role: Role::Admin,
            ..
        }
    );
    let request = request.into_inner();
    if request.name != actor && !caller_is_admin {
        return Err(ApiError::PermissionDenied(format!(
            "operator `{actor}` may rotate only their own token; an admin rotates `{}`'s",
            printable(&request.name, 64)
        ))
        .into());
    }
    // Their own token, not for longer: a leaked token must not become one
    // that never expires, nor work later than it was issued for (the new
    // token keeps the old expiry when that comes first). An admin may set
    // any expiry up to `expiry::MAX_LIFETIME`, as when adding an operator.
    let default_seconds = OPERATOR_TOKEN_LIFETIME.as_secs();
    if !caller_is_admin && (request.never_expires || request.expires_seconds > default_seconds) {
        return Err(ApiError::PermissionDenied(format!(
            "only an admin issues tokens that never expire or work longer than {} days",
            default_seconds / 86_400
        ))
        .into());
    }
    let now = now_ms();
    let mut expires_ms = token_expiry(request.expires_seconds, request.never_expires, now)?;
    if request.name == actor && !caller_is_admin {
        expires_ms = expiry::own_rotation(current_expiry(api, &actor).await?, expires_ms);
    }
    let token = auth::new_operator_token();
    let rotated = api
        .store
        .rotate_operator(
            &request.name,
            &auth::token_digest(&token),
            expires_ms,
            &actor,
            now,
        )
        .await
        .map_err(ApiError::from)?;
    if !rotated {
        return Err(ApiError::NotFound(format!(
            "no operator `{}`; `tierwise operators list` shows them",
            printable(&request.name, 64)
        ))
        .into());
    }
    info!(operator = %request.name, %actor, "operator token rotated");
    Ok(Response::new(AddOperatorResponse { token }))
}

/// When the token of operator `name` expires now (`None`: never, or no
/// such operator).
async fn current_expiry(api: &AdminApi, name: &str) -> Result<Option<i64>, ApiError> {
    let operators = api.store.operators().await.map_err(ApiError::from)?;
    Ok(operators
        .into_iter()
        .find(|o| o.name == name)
        .and_then(|o| o.expires_ms))
}

pub(super) async fn list_operators(
    api: &AdminApi,
    _request: Request<ListOperatorsRequest>,
) -> Result<Response<v1::OperatorList>, Status> {
    let operators = api.store.operators().await.map_err(ApiError::from)?;
    Ok(Response::new(v1::OperatorList {
        operators: operators.iter().map(v1::OperatorView::from).collect(),
    }))
}

pub(super) async fn remove_operator(
    api: &AdminApi,
    request: Request<RemoveOperatorRequest>,
) -> Result<Response<v1::OperatorView>, Status> {
    let actor = actor(&request)?;
    let name = request.into_inner().name;
    let target = match api
        .store
        .remove_operator(&name, &actor, now_ms())
        .await
        .map_err(ApiError::from)?
    {
        RemoveOperator::Removed(target) => target,
        RemoveOperator::NotFound => {
            return Err(ApiError::NotFound(format!(
                "no operator `{}`; `tierwise operators list` shows them",
                printable(&name, 64)
            ))
            .into())
        }
        RemoveOperator::LastAdmin => {
            return Err(ApiError::FailedPrecondition(format!(
                "`{name}` is the last admin; add another admin before removing it"
            ))
            .into())
        }
    };
    info!(operator = %name, %actor, "operator removed");
    Ok(Response::new(v1::OperatorView::from(&target)))
}

pub(super) async fn who_am_i(
    _api: &AdminApi,
    request: Request<WhoAmIRequest>,
) -> Result<Response<v1::WhoAmIResponse>, Status> {
    match auth::principal(&request)? {
        auth::Principal::Operator { name, role } => Ok(Response::new(v1::WhoAmIResponse {
            name: name.clone(),
            role: role.as_str().to_owned(),
        })),
        _ => Err(Status::permission_denied("this call is for operators")),
    }
}
