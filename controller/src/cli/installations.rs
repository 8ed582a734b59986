//! `tierwise installations map|unmap|maps`: which installation a Password
//! Secure server address belongs to, for clients whose agents say
//! `installation = "auto"`; `installations set|show`: where an
//! installation's releases are promoted from.

use super::{status_error, table, AdminClient};
use tierwise_proto::v1::{
    AddressMappings, GetInstallationRequest, InstallationView, ListAddressMappingsRequest,
    MapAddressRequest, SetInstallationRequest, UnmapAddressRequest,
};
use tierwise_runtime::clock::rfc3339;

pub async fn map(
    client: &mut AdminClient,
    address: &str,
    installation: &str,
) -> anyhow::Result<String> {
    let mappings = client
        .map_address(MapAddressRequest {
            address: address.to_owned(),
            installation: installation.to_owned(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    eprintln!(
        "Clients of the server `{}` are placed in {installation} from now on.",
        address.trim().to_ascii_lowercase()
    );
    Ok(render(&mappings, false))
}

pub async fn unmap(client: &mut AdminClient, address: &str) -> anyhow::Result<String> {
    let mappings = client
        .unmap_address(UnmapAddressRequest {
            address: address.to_owned(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    eprintln!(
        "Mapping of `{}` removed; its clients are placed again.",
        address.trim().to_ascii_lowercase()
    );
    Ok(render(&mappings, false))
}

pub async fn maps(client: &mut AdminClient, json: bool) -> anyhow::Result<String> {
    let mappings = client
        .list_address_mappings(ListAddressMappingsRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    Ok(render(&mappings, json))
}

fn render(mappings: &AddressMappings, json: bool) -> String {
    if json {
        let list: Vec<serde_json::Value> = mappings
            .mappings
            .iter()
            .map(|m| {
                serde_json::json!({
                    "address": m.address,
                    "installation": m.installation,
                    "created": rfc3339(m.created_ms),
                    "created_by": m.created_by,
                })
            })
            .collect();
        return format!(
            "{}\n",
            serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".into())
        );
    }
    if mappings.mappings.is_empty() {
        return "No address mappings. Clients of agents with installation \"auto\" are placed by their server's host alone.\n".into();
    }
    let rows: Vec<Vec<String>> = mappings
        .mappings
        .iter()
        .map(|m| {
            vec![
                m.address.clone(),
                m.installation.clone(),
                tierwise_runtime::clock::shown(m.created_ms),
                m.created_by.clone(),
            ]
        })
        .collect();
    table::render(&["ADDRESS", "INSTALLATION", "MAPPED", "BY"], &rows)
}

pub async fn set(
    client: &mut AdminClient,
    name: &str,
    promote_from: &str,
    soak: Option<std::time::Duration>,
) -> anyhow::Result<String> {
    let clear = promote_from == "none";
    let soak_seconds = match (clear, soak) {
        (true, None) => 0,
        (true, Some(_)) => anyhow::bail!(
            "--soak has no meaning with --promote-from none (no promotion, nothing to soak); leave it out"
        ),
        (false, Some(soak)) => i64::try_from(soak.as_secs()).unwrap_or(i64::MAX),
        (false, None) => anyhow::bail!(
            "--soak is needed with --promote-from: how long a release must have run on {promote_from}, completed (e.g. --soak 3d; 0s for none)"
        ),
    };
    let view = client
        .set_installation(SetInstallationRequest {
            installation: name.to_owned(),
            promote_from: if clear {
                String::new()
            } else {
                promote_from.to_owned()
            },
            soak_seconds,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    Ok(render_installation(&view, false))
}

pub async fn show(client: &mut AdminClient, name: &str, json: bool) -> anyhow::Result<String> {
    let view = client
        .get_installation(GetInstallationRequest {
            installation: name.to_owned(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    Ok(render_installation(&view, json))
}

/// `3 days`, `1 h 30 m`, `0 s`: humantime's spelling with a space before
/// each unit.
fn soak_text(seconds: i64) -> String {
    let text = humantime::format_duration(std::time::Duration::from_secs(
        u64::try_from(seconds).unwrap_or(0),
    ))
    .to_string();
    let mut out = String::with_capacity(text.len() + 4);
    let mut previous = ' ';
    for c in text.chars() {
        if previous.is_ascii_digit() && c.is_alphabetic() {
            out.push(' ');
        }
        out.push(c);
        previous = c;
    }
    out
}

fn render_installation(view: &InstallationView, json: bool) -> String {
    if json {
        let value = serde_json::json!({
            "installation": view.installation,
            "promote_from": (!view.promote_from.is_empty()).then_some(&view.promote_from),
            "soak_seconds": view.soak_seconds,
        });
        return serde_json::to_string_pretty(&value).unwrap_or_default() + "\n";
    }
    if view.promote_from.is_empty() {
        format!(
            "{}: promoted from no installation; its rollouts wait for none.\n",
            view.installation
        )
    } else {
        format!(
            "{}: promoted from {} after a soak of {}: a release reaches {} once {} completed a rollout to it at least that long ago, with no failure there since.\n",
            view.installation,
            view.promote_from,
            soak_text(view.soak_seconds),
            view.installation,
            view.promote_from
        )
    }
}

#[cfg(test)]
mod tests {
    use super::soak_text;

    #[test]
    fn a_soak_reads_with_a_space_before_each_unit() {
        assert_eq!(soak_text(3 * 86_400), "3 days");
        assert_eq!(soak_text(5_400), "1 h 30 m");
        assert_eq!(soak_text(0), "0 s");
    }
}
