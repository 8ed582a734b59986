//! `tierwise notify add|list|remove|test`: webhook subscriptions to rollout
//! events (admin). Each subcommand runs itself from its arguments.

use super::args::NotifyCommand;
use super::{status_error, table, AdminClient, Connection};
use anyhow::Context;
use std::path::Path;
use tierwise_common::notify::Subscription;
use tierwise_proto::v1::{
    AddNotificationRequest, ListNotificationsRequest, NotificationList, NotificationView,
    RemoveNotificationRequest, TestNotificationRequest,
};
use tierwise_runtime::clock::{rfc3339, shown};

/// Runs one `notify` subcommand and prints what it says.
pub async fn run(connection: &Connection, command: NotifyCommand) -> anyhow::Result<()> {
    // Bad input is refused before the controller is asked.
    let add = match &command {
        NotifyCommand::Add {
            name,
            url,
            events,
            format,
            secret_file,
        } => Some(checked(name, url, events, format, secret_file.as_deref())?),
        _ => None,
    };
    let mut client = super::connect(connection).await?;
    let output = match command {
        NotifyCommand::Add { name, .. } => {
            let list = call_add(&mut client, add.context("checked above")?).await?;
            format!("Added notification subscription {name}.\n{}", render(&list))
        }
        NotifyCommand::List { json } => {
            let list = client
                .list_notifications(ListNotificationsRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            if json {
                let items: Vec<_> = list.notifications.iter().map(to_json).collect();
                format!("{}\n", serde_json::to_string_pretty(&items)?)
            } else {
                render(&list)
            }
        }
        NotifyCommand::Remove { name } => {
            let list = client
                .remove_notification(RemoveNotificationRequest { name: name.clone() })
                .await
                .map_err(status_error)?
                .into_inner();
            format!(
                "Removed notification subscription {name}.\n{}",
                render(&list)
            )
        }
        NotifyCommand::Test { name } => {
            client
                .test_notification(TestNotificationRequest { name: name.clone() })
                .await
                .map_err(status_error)?;
            format!("Queued a test event for {name}; `tierwise notify list` shows when it was delivered.\n")
        }
    };
    print!("{output}");
    Ok(())
}

/// The subscription as asked for, checked here with the secret read.
fn checked(
    name: &str,
    url: &str,
    events: &[String],
    format: &str,
    secret_file: Option<&Path>,
) -> anyhow::Result<AddNotificationRequest> {
    let secret = match secret_file {
        None => String::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read the secret file {}; nothing was changed",
                    path.display()
                )
            })?;
            if text.trim().is_empty() {
                anyhow::bail!(
                    "the secret file {} is empty; put at least 16 characters in it (e.g. `openssl rand -hex 32 > {}`); nothing was changed",
                    path.display(),
                    path.display()
                );
            }
            text.trim().to_owned()
        }
    };
    let events = events.join(",");
    Subscription::new(name, url, &events, format, &secret)
        .map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))?;
    Ok(AddNotificationRequest {
        name: name.to_owned(),
        url: url.to_owned(),
        events,
        format: format.to_owned(),
        secret,
    })
}

async fn call_add(
    client: &mut AdminClient,
    request: AddNotificationRequest,
) -> anyhow::Result<NotificationList> {
    Ok(client
        .add_notification(request)
        .await
        .map_err(status_error)?
        .into_inner())
}

fn optional_time(ms: i64) -> Option<String> {
    (ms != 0).then(|| rfc3339(ms))
}

fn to_json(n: &NotificationView) -> serde_json::Value {
    serde_json::json!({
        "name": n.name,
        "url": n.url,
        "events": n.events,
        "format": n.format,
        "signed": n.signed,
        "created_by": n.created_by,
        "created_at": rfc3339(n.created_ms),
        "created_ms": n.created_ms,
        "pending": n.pending,
        "delivered": n.delivered,
        "given_up": n.given_up,
        "last_delivered_at": optional_time(n.last_delivered_ms),
        "last_error": (!n.last_error.is_empty()).then_some(&n.last_error),
        "last_error_at": optional_time(n.last_error_ms),
    })
}

/// One line per subscription: where, what, and how delivery goes.
fn render(list: &NotificationList) -> String {
    if list.notifications.is_empty() {
        return "No notification subscriptions; `tierwise notify add NAME --url URL` adds one.\n"
            .into();
    }
    let rows: Vec<Vec<String>> = list
        .notifications
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.url.clone(),
                n.events.clone(),
                n.format.clone(),
                if n.signed { "yes" } else { "no" }.into(),
                format!(
                    "{} pending, {} sent, {} given up",
                    n.pending, n.delivered, n.given_up
                ),
                if n.last_error.is_empty() {
                    "—".into()
                } else {
                    format!("{} ({})", n.last_error, shown(n.last_error_ms))
                },
            ]
        })
        .collect();
    table::render(
        &[
            "NAME",
            "URL",
            "EVENTS",
            "FORMAT",
            "SIGNED",
            "DELIVERY",
            "LAST ERROR",
        ],
        &rows,
    )
}
