//! History that keeps every failure: `GetHostHistory` (a host's steps
//! across rollouts), and the step histories of a status, on the wire.

use super::AdminApi;
use crate::grpc::ApiError;
use crate::history_view::{
    AttemptView, HostHistoryView, HostStepView, StepHistoryView, HOST_HISTORY_DEFAULT,
    HOST_HISTORY_MAX,
};
use tierwise_common::rollout::Recovery;
use tierwise_common::validate_name;
use tierwise_proto::v1;
use tierwise_runtime::clock::{now_ms, rfc3339};
use tonic::{Request, Response, Status};

pub(super) async fn get_host_history(
    api: &AdminApi,
    request: Request<v1::GetHostHistoryRequest>,
) -> Result<Response<v1::HostHistory>, Status> {
    let request = request.into_inner();
    let host_id = request.host_id;
    validate_name("host id", &host_id).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
    let limit = match request.limit {
        0 => HOST_HISTORY_DEFAULT,
        n if n <= HOST_HISTORY_MAX => n,
        n => {
            return Err(ApiError::InvalidArgument(format!(
                "a history of {n} steps is more than the {HOST_HISTORY_MAX} shown at most; ask for fewer (--limit)"
            ))
            .into())
        }
    };
    if api
        .store
        .get_host(&host_id, now_ms())
        .await
        .map_err(ApiError::from)?
        .is_none()
    {
        return Err(ApiError::NotFound(format!(
            "no host `{host_id}`; `tierwise hosts list` shows the known hosts"
        ))
        .into());
    }
    let steps = api
        .store
        .host_history(&host_id, i64::from(limit))
        .await
        .map_err(ApiError::from)?;
    let view = HostHistoryView::new(&host_id, &steps);
    Ok(Response::new(v1::HostHistory {
        host_id: view.host_id.clone(),
        steps: view.steps.iter().map(host_step_to_wire).collect(),
    }))
}

fn attempt_to_wire(a: &AttemptView) -> v1::StepAttempt {
    v1::StepAttempt {
        attempt: a.attempt,
        result: a.result.clone(),
        outcome: a.outcome.clone(),
        exit_code: a.exit_code,
        output_tail: a.output_tail.clone(),
        reason: a.reason.clone(),
        started_ms: a.started_ms.unwrap_or(0),
        finished_ms: a.finished_ms,
    }
}

fn attempt_from_wire(a: &v1::StepAttempt) -> AttemptView {
    let started_ms = (a.started_ms > 0).then_some(a.started_ms);
    AttemptView {
        attempt: a.attempt,
        result: a.result.clone(),
        outcome: a.outcome.clone(),
        exit_code: a.exit_code,
        output_tail: a.output_tail.clone(),
        reason: a.reason.clone(),
        started_at: started_ms.map(rfc3339),
        started_ms,
        finished_at: rfc3339(a.finished_ms),
        finished_ms: a.finished_ms,
    }
}

/// A status's step history on the wire.
pub fn step_to_wire(s: &StepHistoryView) -> v1::StepHistory {
    v1::StepHistory {
        step_id: s.step_id.clone(),
        host_id: s.host_id.clone(),
        action: s.action.clone(),
        state: s.state.clone(),
        recovery: s
            .recovery
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
        attempts: s.attempts.iter().map(attempt_to_wire).collect(),
        ..Default::default()
    }
}

/// A step history from the wire (an unknown recovery reads as none).
pub fn step_from_wire(w: &v1::StepHistory) -> StepHistoryView {
    let recovery = Recovery::parse(&w.recovery);
    StepHistoryView {
        step_id: w.step_id.clone(),
        host_id: w.host_id.clone(),
        action: w.action.clone(),
        state: w.state.clone(),
        recovery,
        summary: recovery.map(|r| r.text().to_owned()).unwrap_or_default(),
        attempts: w.attempts.iter().map(attempt_from_wire).collect(),
    }
}

fn host_step_to_wire(h: &HostStepView) -> v1::StepHistory {
    v1::StepHistory {
        rollout_id: h.rollout_id.clone(),
        installation: h.installation.clone(),
        release: h.release.clone(),
        changed_ms: h.changed_ms,
        ..step_to_wire(&h.step)
    }
}

/// `hosts history` from the wire.
pub fn host_history_from_wire(w: &v1::HostHistory) -> HostHistoryView {
    HostHistoryView {
        host_id: w.host_id.clone(),
        steps: w
            .steps
            .iter()
            .map(|s| HostStepView {
                rollout_id: s.rollout_id.clone(),
                installation: s.installation.clone(),
                release: s.release.clone(),
                step: step_from_wire(s),
                changed_at: rfc3339(s.changed_ms),
                changed_ms: s.changed_ms,
            })
            .collect(),
    }
}
