//! Maintenance windows: set, removed and listed per installation and scope;
//! the rollout engine and `rollout status` read them (`common::window`).

use super::{actor, AdminApi};
use crate::grpc::ApiError;
use tierwise_common::window::{MaintenanceWindow, WindowScope};
use tierwise_proto::v1::{
    ListWindowsRequest, RemoveWindowRequest, SetWindowRequest, WindowList, WindowView,
};
use tierwise_runtime::clock::now_ms;
use tonic::{Request, Response, Status};

impl AdminApi {
    /// The windows of one installation (or all), as listed.
    async fn window_list(&self, installation: Option<&str>) -> Result<WindowList, ApiError> {
        let now = now_ms();
        let windows = self
            .store
            .windows(installation)
            .await?
            .into_iter()
            .map(|(installation, window)| {
                let next = window.occurrences(now).into_iter().next();
                WindowView {
                    installation,
                    scope: window.scope.to_string(),
                    days: window.days.to_string(),
                    from: window.from.to_string(),
                    to: window.to.to_string(),
                    time_zone: window.time_zone.clone(),
                    next_start_ms: next.map_or(0, |o| o.start_ms),
                    next_end_ms: next.map_or(0, |o| o.end_ms),
                    next_start_local: next.map_or_else(String::new, |o| window.local(o.start_ms)),
                    open_now: next.is_some_and(|o| o.start_ms <= now),
                }
            })
            .collect();
        Ok(WindowList { windows })
    }
}

pub(super) async fn set_window(
    api: &AdminApi,
    request: Request<SetWindowRequest>,
) -> Result<Response<WindowList>, Status> {
    let actor = actor(&request)?;
    let r = request.into_inner();
    api.known_installation(&r.installation).await?;
    let window = MaintenanceWindow::new(&r.scope, &r.days, &r.from, &r.to, &r.time_zone)
        .map_err(|e| ApiError::InvalidArgument(format!("{e}; nothing was changed")))?;
    // A window no step fits in would hold a rollout for ever.
    let limit = tierwise_common::rollout::RolloutOptions::default().step_timeout_ms / 60_000;
    if window.nominal_minutes() < limit {
        return Err(ApiError::InvalidArgument(format!(
            "the window is {} min long, shorter than a step's time limit ({limit} min): no step could ever start in it; nothing was changed",
            window.nominal_minutes()
        ))
        .into());
    }
    if !api
        .store
        .set_window(&r.installation, &window, &actor, now_ms())
        .await
        .map_err(ApiError::from)?
    {
        return Err(ApiError::NotFound(format!("no installation `{}`", r.installation)).into());
    }
    api.engine.wake();
    Ok(Response::new(api.window_list(Some(&r.installation)).await?))
}

pub(super) async fn remove_window(
    api: &AdminApi,
    request: Request<RemoveWindowRequest>,
) -> Result<Response<WindowList>, Status> {
    let actor = actor(&request)?;
    let r = request.into_inner();
    api.known_installation(&r.installation).await?;
    let scope: WindowScope = r.scope.parse().map_err(|_| {
        ApiError::InvalidArgument(format!(
            "unknown scope `{}`; expected server, app_servers, web or clients",
            r.scope
        ))
    })?;
    if !api
        .store
        .remove_window(&r.installation, scope.as_str(), &actor, now_ms())
        .await
        .map_err(ApiError::from)?
    {
        return Err(ApiError::NotFound(format!(
            "installation {} has no {scope} window; `tierwise windows list` shows them",
            r.installation
        ))
        .into());
    }
    api.engine.wake();
    Ok(Response::new(api.window_list(Some(&r.installation)).await?))
}

pub(super) async fn list_windows(
    api: &AdminApi,
    request: Request<ListWindowsRequest>,
) -> Result<Response<WindowList>, Status> {
    let r = request.into_inner();
    let installation = (!r.installation.is_empty()).then_some(r.installation.as_str());
    Ok(Response::new(api.window_list(installation).await?))
}
