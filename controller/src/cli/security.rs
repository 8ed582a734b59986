//! `tokens`, `operators`, `hosts revoke`, `whoami` and `pki show`.

use super::args::Expiry;
use super::{status_error, table, AdminClient};
use crate::wire::TokenView;
use std::path::Path;
use std::time::Duration;
use tierwise_proto::v1::{
    AddOperatorRequest, CreateTokenRequest, ListOperatorsRequest, ListTokensRequest,
    RemoveOperatorRequest, RevokeHostRequest, RevokeTokenRequest, RotateOperatorRequest,
    WhoAmIRequest,
};
use tierwise_runtime::clock::{rfc3339, shown};
use tierwise_transport::{files, Fingerprint};

/// What `tokens create` asks for.
#[derive(Debug)]
pub struct NewToken {
    pub installation: Option<String>,
    pub uses: u32,
    pub expires: Duration,
}

/// Creates an enrollment token. The token goes to stdout alone (it is shown
/// only now); what it allows is printed to stderr.
pub async fn token_create(
    client: &mut AdminClient,
    token: NewToken,
    json: bool,
) -> anyhow::Result<String> {
    let created = client
        .create_token(CreateTokenRequest {
            installation: token.installation.clone().unwrap_or_default(),
            uses: token.uses,
            expires_seconds: token.expires.as_secs(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if json {
        return Ok(serde_json::to_string_pretty(&serde_json::json!({
            "id": created.id,
            "token": created.token,
            "installation": token.installation,
            "uses": token.uses,
            "expires": rfc3339(created.expires_at_ms),
        }))? + "\n");
    }
    eprintln!(
        "Enrollment token {} for {}: {} use(s), expires {}. It is shown only now; \
         put it in the agents' configuration (enrollment_token) with the CA fingerprint (`tierwise pki show`).",
        created.id,
        token
            .installation
            .as_deref()
            .map_or_else(|| "any installation".to_owned(), |i| format!("installation {i}")),
        token.uses,
        shown(created.expires_at_ms)
    );
    Ok(format!("{}\n", created.token))
}

pub async fn token_list(client: &mut AdminClient, json: bool) -> anyhow::Result<String> {
    let list = client
        .list_tokens(ListTokensRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    let tokens = list
        .tokens
        .iter()
        .map(TokenView::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    if json {
        return super::sorted_json(&super::with_time_twins(
            serde_json::to_value(&tokens)?,
            &["created_ms", "expires_ms", "revoked_ms"],
        ));
    }
    if tokens.is_empty() {
        return Ok("No enrollment tokens. Create one with `tierwise tokens create`.\n".into());
    }
    let rows: Vec<Vec<String>> = tokens
        .into_iter()
        .map(|TokenView { token: t, state }| {
            vec![
                t.id,
                t.installation.unwrap_or_else(|| "any".into()),
                format!("{}/{}", t.uses, t.uses_allowed),
                shown(t.expires_ms),
                state.as_str().to_owned(),
                t.created_by,
            ]
        })
        .collect();
    Ok(table::render(
        &[
            "ID",
            "INSTALLATION",
            "USED",
            "EXPIRES",
            "STATE",
            "CREATED BY",
        ],
        &rows,
    ))
}

pub async fn token_revoke(client: &mut AdminClient, id: &str) -> anyhow::Result<String> {
    client
        .revoke_token(RevokeTokenRequest { id: id.to_owned() })
        .await
        .map_err(status_error)?;
    Ok(format!(
        "Enrollment token {id} revoked; agents that enrolled with it keep their certificates.\n"
    ))
}

/// (expires_seconds, never_expires) as the requests carry them.
fn expiry_fields(expires: Expiry) -> (u64, bool) {
    match expires {
        Expiry::Never => (0, true),
        Expiry::After(lifetime) => (lifetime.as_secs().max(1), false),
    }
}

pub async fn operator_add(
    client: &mut AdminClient,
    name: &str,
    role: &str,
    expires: Expiry,
) -> anyhow::Result<String> {
    let (expires_seconds, never_expires) = expiry_fields(expires);
    let added = client
        .add_operator(AddOperatorRequest {
            name: name.to_owned(),
            role: role.to_owned(),
            expires_seconds,
            never_expires,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    eprintln!(
        "Operator {name} added with the role {role}. The token is shown only now; \
         give it to them to use as TIERWISE_TOKEN or in a --token-file."
    );
    Ok(format!("{}\n", added.token))
}

pub async fn operator_rotate(
    client: &mut AdminClient,
    name: &str,
    expires: Expiry,
) -> anyhow::Result<String> {
    let (expires_seconds, never_expires) = expiry_fields(expires);
    let rotated = client
        .rotate_operator(RotateOperatorRequest {
            name: name.to_owned(),
            expires_seconds,
            never_expires,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    eprintln!("Operator {name} has a new token, shown only now; the old one no longer works.");
    Ok(format!("{}\n", rotated.token))
}

pub async fn operator_list(client: &mut AdminClient, json: bool) -> anyhow::Result<String> {
    let list = client
        .list_operators(ListOperatorsRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    let operators: Vec<crate::store::security::OperatorRecord> =
        list.operators.iter().map(Into::into).collect();
    if json {
        return super::sorted_json(&super::with_time_twins(
            serde_json::to_value(&operators)?,
            &["created_ms", "expires_ms", "last_used_ms"],
        ));
    }
    let rows: Vec<Vec<String>> = operators
        .into_iter()
        .map(|o| {
            vec![
                o.name,
                o.role,
                shown(o.created_ms),
                o.created_by,
                o.expires_ms.map_or_else(|| "never".to_owned(), shown),
                o.last_used_ms.map_or_else(|| "never".to_owned(), shown),
            ]
        })
        .collect();
    Ok(table::render(
        &["NAME", "ROLE", "ADDED", "ADDED BY", "EXPIRES", "LAST USED"],
        &rows,
    ))
}

pub async fn operator_remove(client: &mut AdminClient, name: &str) -> anyhow::Result<String> {
    client
        .remove_operator(RemoveOperatorRequest {
            name: name.to_owned(),
        })
        .await
        .map_err(status_error)?;
    Ok(format!(
        "Operator {name} removed; their token no longer works.\n"
    ))
}

pub async fn host_revoke(client: &mut AdminClient, host_id: &str) -> anyhow::Result<String> {
    let revoked = client
        .revoke_host(RevokeHostRequest {
            host_id: host_id.to_owned(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let (closed, revoked) = (revoked.session_closed, revoked.certificates_revoked);
    Ok(format!(
        "Host {host_id}: {revoked} certificate(s) revoked{}. It can enroll again only with a new token.\n",
        if closed { "; its session was closed" } else { "" }
    ))
}

/// `whoami`: `NAME (ROLE)`, or with `--json` `{"name": …, "role": …}`.
pub async fn whoami(client: &mut AdminClient, json: bool) -> anyhow::Result<String> {
    let me = client
        .who_am_i(WhoAmIRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if json {
        return super::sorted_json(&serde_json::json!({ "name": me.name, "role": me.role }));
    }
    Ok(format!("{} ({})\n", me.name, me.role))
}

/// The CA certificate and its fingerprint, read from the controller's files.
pub fn pki_show(ca_cert: &Path, fingerprint_only: bool) -> anyhow::Result<String> {
    let certificates = files::read_certificates(ca_cert).map_err(|e| {
        if ca_cert.exists() {
            anyhow::Error::new(e)
        } else {
            anyhow::anyhow!(
                "no CA certificate at {}: `tierwise serve` creates it on its first start \
                 (pass --data-dir or --ca-cert if the controller keeps it elsewhere)",
                ca_cert.display()
            )
        }
    })?;
    let pem = files::read(ca_cert)?;
    let fingerprint = Fingerprint::of(&certificates[0]);
    if fingerprint_only {
        return Ok(format!("{fingerprint}\n"));
    }
    Ok(format!(
        "CA certificate: {}\nSHA-256 fingerprint: {fingerprint}\n\n{}",
        ca_cert.display(),
        pem.trim_end().to_owned() + "\n"
    ))
}
