//! Notification subscriptions (admin): added, listed, removed and tested.
//! Input is checked by `common::notify::Subscription` before anything is
//! stored; the secret is stored for signing and never returned.

use super::{actor, AdminApi};
use crate::grpc::ApiError;
use crate::store::notifications::SubscriptionStatus;
use tierwise_common::notify::Subscription;
use tierwise_proto::v1::{
    AddNotificationRequest, ListNotificationsRequest, NotificationList, NotificationView,
    RemoveNotificationRequest, TestNotificationRequest,
};
use tierwise_runtime::clock::now_ms;
use tonic::{Request, Response, Status};

fn view(s: SubscriptionStatus) -> NotificationView {
    NotificationView {
        name: s.name,
        url: s.url,
        events: s.events,
        format: s.format,
        signed: s.signed,
        created_by: s.created_by,
        created_ms: s.created_ms,
        pending: s.pending,
        delivered: s.delivered,
        given_up: s.given_up,
        last_delivered_ms: s.last_delivered_ms.unwrap_or(0),
        last_error: s.last_error,
        last_error_ms: s.last_error_ms.unwrap_or(0),
    }
}

async fn list(api: &AdminApi) -> Result<NotificationList, ApiError> {
    Ok(NotificationList {
        notifications: api
            .store
            .subscriptions()
            .await?
            .into_iter()
            .map(view)
            .collect(),
    })
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no notification subscription `{name}`; `tierwise notify list` shows them"
    ))
}

pub(super) async fn add_notification(
    api: &AdminApi,
    request: Request<AddNotificationRequest>,
) -> Result<Response<NotificationList>, Status> {
    let actor = actor(&request)?;
    let r = request.into_inner();
    let format = if r.format.is_empty() {
        "json"
    } else {
        &r.format
    };
    let subscription = Subscription::new(&r.name, &r.url, &r.events, format, &r.secret)
        .map_err(|e| ApiError::InvalidArgument(format!("{e}; nothing was changed")))?;
    if !api
        .store
        .add_subscription(&subscription, &actor, now_ms())
        .await
        .map_err(ApiError::from)?
    {
        return Err(ApiError::AlreadyExists(format!(
            "a notification subscription `{}` exists already; remove it first (`tierwise notify remove {}`) or choose another name; nothing was changed",
            r.name, r.name
        ))
        .into());
    }
    Ok(Response::new(list(api).await?))
}

pub(super) async fn list_notifications(
    api: &AdminApi,
    _request: Request<ListNotificationsRequest>,
) -> Result<Response<NotificationList>, Status> {
    Ok(Response::new(list(api).await?))
}

pub(super) async fn remove_notification(
    api: &AdminApi,
    request: Request<RemoveNotificationRequest>,
) -> Result<Response<NotificationList>, Status> {
    let actor = actor(&request)?;
    let name = request.into_inner().name;
    if !api
        .store
        .remove_subscription(&name, &actor, now_ms())
        .await
        .map_err(ApiError::from)?
    {
        return Err(not_found(&name).into());
    }
    Ok(Response::new(list(api).await?))
}

pub(super) async fn test_notification(
    api: &AdminApi,
    request: Request<TestNotificationRequest>,
) -> Result<Response<NotificationList>, Status> {
    let actor = actor(&request)?;
    let name = request.into_inner().name;
    if !api
        .store
        .queue_test_notification(&name, &actor, now_ms())
        .await
        .map_err(ApiError::from)?
    {
        return Err(not_found(&name).into());
    }
    Ok(Response::new(list(api).await?))
}
