//! `tierwise installations map|unmap|maps`: which installation a Password
//! Secure server address belongs to, for clients whose agents say
//! `installation = "auto"`.

use super::{status_error, table, AdminClient};
use tierwise_proto::v1::{
    AddressMappings, ListAddressMappingsRequest, MapAddressRequest, UnmapAddressRequest,
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
                rfc3339(m.created_ms),
                m.created_by.clone(),
            ]
        })
        .collect();
    table::render(&["ADDRESS", "INSTALLATION", "MAPPED", "BY"], &rows)
}
