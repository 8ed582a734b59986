//! An installation's settings: where its releases are promoted from, and
//! how long they must soak there (`tierwise installations set|show`).

use super::{actor, AdminApi};
use crate::grpc::ApiError;
use crate::store::promotion::PromotionError;
use tierwise_common::promotion::{Promotion, PromotionState};
use tierwise_common::validate_name;
use tierwise_proto::v1::{
    GetInstallationRequest, InstallationView, PromotionView, SetInstallationRequest,
};
use tierwise_runtime::clock::now_ms;
use tonic::{Request, Response, Status};

/// The longest soak accepted: a year.
const MAX_SOAK_SECONDS: i64 = 365 * 24 * 3600;

fn refused(error: PromotionError) -> ApiError {
    match error {
        PromotionError::Unknown(_) => ApiError::NotFound(error.to_string()),
        PromotionError::Cycle(..) => ApiError::InvalidArgument(error.to_string()),
    }
}

fn view(installation: &str, promotion: Option<&Promotion>) -> InstallationView {
    InstallationView {
        installation: installation.to_owned(),
        promote_from: promotion.map(|p| p.from.clone()).unwrap_or_default(),
        soak_seconds: promotion.map_or(0, |p| p.soak_ms / 1000),
    }
}

pub(super) async fn set_installation(
    api: &AdminApi,
    request: Request<SetInstallationRequest>,
) -> Result<Response<InstallationView>, Status> {
    let actor = actor(&request)?;
    let request = request.into_inner();
    validate_name("installation", &request.installation)
        .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
    let promotion = if request.promote_from.is_empty() {
        None
    } else {
        validate_name("installation promoted from", &request.promote_from)
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        if !(0..=MAX_SOAK_SECONDS).contains(&request.soak_seconds) {
            return Err(ApiError::InvalidArgument(format!(
                "the soak must be between 0 s and 365 days, not {} s",
                request.soak_seconds
            ))
            .into());
        }
        Some(Promotion {
            from: request.promote_from.clone(),
            soak_ms: request.soak_seconds * 1000,
        })
    };
    api.store
        .set_promotion(&request.installation, promotion.as_ref(), &actor, now_ms())
        .await
        .map_err(ApiError::from)?
        .map_err(refused)?;
    Ok(Response::new(view(
        &request.installation,
        promotion.as_ref(),
    )))
}

pub(super) async fn get_installation(
    api: &AdminApi,
    request: Request<GetInstallationRequest>,
) -> Result<Response<InstallationView>, Status> {
    let request = request.into_inner();
    validate_name("installation", &request.installation)
        .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
    let promotion = api
        .store
        .promotion(&request.installation)
        .await
        .map_err(ApiError::from)?
        .map_err(refused)?;
    Ok(Response::new(view(
        &request.installation,
        promotion.as_ref(),
    )))
}

/// A promotion's state as the plan answer carries it.
pub(super) fn promotion_view(
    promotion: Option<&Promotion>,
    state: &PromotionState,
    reason: String,
) -> PromotionView {
    let mut out = PromotionView {
        from: promotion.map(|p| p.from.clone()).unwrap_or_default(),
        soak_seconds: promotion.map_or(0, |p| p.soak_ms / 1000),
        reason,
        ..PromotionView::default()
    };
    out.state = match state {
        PromotionState::None => "none",
        PromotionState::Ready { .. } => "ready",
        PromotionState::Soaking { .. } => "soaking",
        PromotionState::NotRolledOut { .. } => "not_rolled_out",
        PromotionState::FailedThere { .. } => "failed_there",
    }
    .to_owned();
    match state {
        PromotionState::Ready {
            rollout,
            completed_ms,
            soak_ended_ms: ends_ms,
            ..
        }
        | PromotionState::Soaking {
            rollout,
            completed_ms,
            soak_ends_ms: ends_ms,
            ..
        } => {
            out.rollout = rollout.clone();
            out.completed_ms = *completed_ms;
            out.soak_ends_ms = *ends_ms;
        }
        PromotionState::FailedThere {
            rollout, failed_ms, ..
        } => {
            out.rollout = rollout.clone();
            out.failed_ms = *failed_ms;
        }
        PromotionState::None | PromotionState::NotRolledOut { .. } => {}
    }
    out
}
