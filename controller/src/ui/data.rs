//! The dashboard's data: the admin API's own handlers, called in process
//! with the operator the session proved, and their answers turned into the
//! same domain views the CLI prints; the forms' changes go through the same
//! handlers as the CLI's commands. The one file of the dashboard that sees
//! protobuf types.

use super::session::Viewer;
use crate::grpc::auth::Principal;
use crate::rollout_view::{EtaView, RolloutStatus};
use tierwise_common::plan::Plan;
use tierwise_common::rollout::Command;
use tierwise_common::{HostRecord, Role};
use tierwise_proto::v1::admin_service_server::AdminService;
use tierwise_proto::v1::{
    ChangeRolloutRequest, GetRolloutRequest, ListHostsRequest, ListRolloutsRequest,
    ListWindowsRequest, PlanRolloutRequest, Role as WireRole, RolloutChange, StartRolloutRequest,
};
use tierwise_runtime::clock::rfc3339;
use tonic::Request;

/// Hosts listed at most, whatever the filter: a page stays usable.
pub const HOSTS_SHOWN: usize = 500;

/// A maintenance window as the dashboard shows it.
#[derive(Clone, Debug)]
pub struct Window {
    pub scope: String,
    pub when: String,
    pub open_now: bool,
    pub next: String,
}

fn request<T>(viewer: &Viewer, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.extensions_mut().insert(Principal::Operator {
        name: viewer.name.clone(),
        role: viewer.role,
    });
    request
}

fn failed(status: tonic::Status) -> String {
    status.message().to_owned()
}

/// Hosts of `installation` and `role` (all when `None`) that `keep`
/// accepts, at most `HOSTS_SHOWN`, and how many matched in all.
pub async fn hosts(
    api: &crate::grpc::admin::AdminApi,
    viewer: &Viewer,
    installation: Option<&str>,
    role: Option<Role>,
    keep: impl Fn(&HostRecord) -> bool,
) -> Result<(Vec<HostRecord>, usize), String> {
    let mut shown = Vec::new();
    let mut matched = 0;
    let mut page_token = String::new();
    loop {
        let page = api
            .list_hosts(request(
                viewer,
                ListHostsRequest {
                    installation: installation.unwrap_or_default().to_owned(),
                    role: role.map_or(WireRole::Unspecified, WireRole::from).into(),
                    page_size: 0,
                    page_token,
                },
            ))
            .await
            .map_err(failed)?
            .into_inner();
        for view in &page.hosts {
            let host = HostRecord::try_from(view)
                .map_err(|e| format!("host `{}` cannot be read: {e}", view.host_id))?;
            if keep(&host) {
                matched += 1;
                if shown.len() < HOSTS_SHOWN {
                    shown.push(host);
                }
            }
        }
        if page.next_page_token.is_empty() {
            return Ok((shown, matched));
        }
        page_token = page.next_page_token;
    }
}

pub async fn rollouts(
    api: &crate::grpc::admin::AdminApi,
    viewer: &Viewer,
) -> Result<Vec<RolloutStatus>, String> {
    let list = api
        .list_rollouts(request(viewer, ListRolloutsRequest {}))
        .await
        .map_err(failed)?
        .into_inner();
    list.rollouts
        .iter()
        .map(|r| RolloutStatus::try_from(r).map_err(|e| e.to_string()))
        .collect()
}

pub async fn rollout(
    api: &crate::grpc::admin::AdminApi,
    viewer: &Viewer,
    id: &str,
) -> Result<RolloutStatus, String> {
    let view = api
        .get_rollout(request(viewer, GetRolloutRequest { id: id.to_owned() }))
        .await
        .map_err(failed)?
        .into_inner();
    RolloutStatus::try_from(&view).map_err(|e| e.to_string())
}

pub async fn windows(
    api: &crate::grpc::admin::AdminApi,
    viewer: &Viewer,
    installation: &str,
) -> Result<Vec<Window>, String> {
    let list = api
        .list_windows(request(
            viewer,
            ListWindowsRequest {
                installation: installation.to_owned(),
            },
        ))
        .await
        .map_err(failed)?
        .into_inner();
    Ok(list
        .windows
        .iter()
        .map(|w| Window {
            scope: w.scope.clone(),
            when: format!("{} {}–{} {}", w.days, w.from, w.to, w.time_zone),
            open_now: w.open_now,
            next: if w.next_start_local.is_empty() {
                rfc3339(w.next_start_ms)
            } else {
                w.next_start_local.clone()
            },
        })
        .collect())
}

/// The plan of `installation` to `target`, what it is expected to take,
/// and its promotion line as the CLI prints it (none without a promotion).
pub async fn plan(
    api: &crate::grpc::admin::AdminApi,
    viewer: &Viewer,
    installation: &str,
    target: &str,
    waves: &str,
) -> Result<(Plan, EtaView, Option<String>), String> {
    let response = api
        .plan_rollout(request(
            viewer,
            PlanRolloutRequest {
                installation: installation.to_owned(),
                target: target.to_owned(),
                client_waves: waves.to_owned(),
            },
        ))
        .await
        .map_err(failed)?
        .into_inner();
    let plan = Plan::try_from(
        response
            .plan
            .as_ref()
            .ok_or("the controller made no plan")?,
    )
    .map_err(|e| e.to_string())?;
    let eta = response
        .eta
        .as_ref()
        .map(|e| crate::wire::eta_from_wire(e, false))
        .unwrap_or_default();
    let promotion = crate::cli::policy::promotion_line(response.promotion.as_ref());
    Ok((plan, eta, promotion))
}

/// Applies an operator's command to rollout `id` through `ChangeRollout`,
/// the handler `tierwise rollout approve|pause|…` calls (which checks the
/// state, applies it and audits it under the operator's name).
pub async fn change(
    api: &crate::grpc::admin::AdminApi,
    viewer: &Viewer,
    id: &str,
    command: &Command,
) -> Result<RolloutStatus, String> {
    let mut message = ChangeRolloutRequest {
        id: id.to_owned(),
        ..ChangeRolloutRequest::default()
    };
    let change = match command {
        Command::Pause => RolloutChange::Pause,
        Command::Resume => RolloutChange::Resume,
        Command::Abort => RolloutChange::Abort,
        Command::Approve => RolloutChange::Approve,
        Command::Skip { host_id } => {
            message.host_id = host_id.clone();
            RolloutChange::SkipHost
        }
        Command::Done { task, note } => {
            message.task = task.clone();
            message.note = note.clone();
            RolloutChange::Done
        }
    };
    message.change = change.into();
    let view = api
        .change_rollout(request(viewer, message))
        .await
        .map_err(failed)?
        .into_inner();
    RolloutStatus::try_from(&view).map_err(|e| e.to_string())
}

/// What the start form asks for, as `tierwise rollout start` takes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StartChoice {
    pub installation: String,
    pub target: String,
    pub client_waves: String,
    /// Acknowledgements by name (`--ack NAME`).
    pub acks: Vec<String>,
    pub approve_phases: bool,
    pub error_threshold: String,
    pub restarts: Vec<String>,
    pub verify_timeouts: Vec<String>,
    pub task_timeout: String,
    pub max_backup_age: String,
}

/// Starts a rollout through `StartRollout`, the handler `tierwise rollout
/// start` calls (admission, acknowledgements, audit).
pub async fn start(
    api: &crate::grpc::admin::AdminApi,
    viewer: &Viewer,
    choice: &StartChoice,
) -> Result<RolloutStatus, String> {
    let view = api
        .start_rollout(request(
            viewer,
            StartRolloutRequest {
                installation: choice.installation.clone(),
                target: choice.target.clone(),
                client_waves: choice.client_waves.clone(),
                error_threshold: choice.error_threshold.clone(),
                approve_phases: choice.approve_phases,
                ack_breaking: false,
                ack_server_manager_password: false,
                acks: choice.acks.clone(),
                verify_timeouts: choice.verify_timeouts.clone(),
                restarts: choice.restarts.clone(),
                task_timeout: choice.task_timeout.clone(),
                max_backup_age: choice.max_backup_age.clone(),
            },
        ))
        .await
        .map_err(failed)?
        .into_inner();
    RolloutStatus::try_from(&view).map_err(|e| e.to_string())
}

/// One host as its agent reports it; `None` when there is no such host
/// (or the id cannot name one).
pub async fn host(
    api: &crate::grpc::admin::AdminApi,
    viewer: &Viewer,
    host_id: &str,
) -> Result<Option<HostRecord>, String> {
    let view = match api
        .get_host(request(
            viewer,
            tierwise_proto::v1::GetHostRequest {
                host_id: host_id.to_owned(),
            },
        ))
        .await
    {
        Ok(view) => view.into_inner(),
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::NotFound | tonic::Code::InvalidArgument
            ) =>
        {
            return Ok(None)
        }
        Err(status) => return Err(failed(status)),
    };
    HostRecord::try_from(&view)
        .map(Some)
        .map_err(|e| format!("host `{host_id}` cannot be read: {e}"))
}

/// A host's steps across rollouts, newest first, with their attempts.
pub async fn host_history(
    api: &crate::grpc::admin::AdminApi,
    viewer: &Viewer,
    host_id: &str,
    limit: u32,
) -> Result<crate::history_view::HostHistoryView, String> {
    let history = api
        .get_host_history(request(
            viewer,
            tierwise_proto::v1::GetHostHistoryRequest {
                host_id: host_id.to_owned(),
                limit,
            },
        ))
        .await
        .map_err(failed)?
        .into_inner();
    Ok(crate::grpc::admin::history::host_history_from_wire(
        &history,
    ))
}
