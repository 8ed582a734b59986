//! Placement of clients whose agents say `installation = "auto"`: the store
//! loads what the pure decision (`tierwise_common::placement::place`) needs —
//! the client's profiles, the operator's address mappings and the server
//! hosts — and writes where each such host belongs, in the same transaction
//! as the change that made it move (a hello, an inventory, a mapping).

use super::{audit_in, Store, StoreError};
use sqlx::Row;
use std::collections::BTreeMap;
use tierwise_common::placement::{normalise_address, place, KnownServer};
use tierwise_common::{DatabaseProfile, Placement, AUTO_INSTALLATION};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// One address mapping, as `installations maps` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressMapping {
    pub address: String,
    pub installation: String,
    pub created_ms: i64,
    pub created_by: String,
}

/// Why a mapping was refused.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("no installation `{0}`; known: {1}")]
    UnknownInstallation(String, String),
    #[error("`auto` is not an installation; name the installation the address belongs to")]
    Auto,
    #[error("the address is empty")]
    EmptyAddress,
    #[error("the address must be at most {max} printable characters without spaces")]
    BadAddress { max: usize },
    #[error("no mapping for `{0}`")]
    NoMapping(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for MappingError {
    fn from(e: sqlx::Error) -> Self {
        MappingError::Store(StoreError::Sql(e))
    }
}

async fn mappings(tx: &mut Tx<'_>) -> Result<BTreeMap<String, String>, StoreError> {
    let rows = sqlx::query("SELECT address, installation FROM installation_maps")
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("address")?, row.try_get("installation")?)))
        .collect()
}

async fn servers(tx: &mut Tx<'_>) -> Result<Vec<KnownServer>, StoreError> {
    let rows = sqlx::query(
        "SELECT h.host_id, h.hostname, h.installation FROM hosts h \
         JOIN components c ON c.host_id = h.host_id \
         WHERE c.role = 'server' AND h.installation <> $1",
    )
    .bind(AUTO_INSTALLATION)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(KnownServer {
                host_id: row.try_get("host_id")?,
                hostname: row.try_get("hostname")?,
                installation: row.try_get("installation")?,
            })
        })
        .collect()
}

/// The profiles stored for a host's client component.
pub(super) fn profiles_from_json(text: Option<String>) -> Result<Vec<DatabaseProfile>, StoreError> {
    #[derive(serde::Deserialize)]
    struct Stored {
        host: String,
        database: String,
    }
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let stored: Vec<Stored> = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("client profiles: {e}")))?;
    Ok(stored
        .into_iter()
        .map(|s| DatabaseProfile {
            host: s.host,
            database: s.database,
        })
        .collect())
}

pub(super) fn profiles_to_json(profiles: &[DatabaseProfile]) -> String {
    serde_json::to_string(profiles).unwrap_or_else(|_| "[]".into())
}

async fn host_profiles(tx: &mut Tx<'_>, host_id: &str) -> Result<Vec<DatabaseProfile>, StoreError> {
    let row = sqlx::query(
        "SELECT client_profiles FROM components WHERE host_id = $1 AND role = 'client'",
    )
    .bind(host_id)
    .fetch_optional(&mut **tx)
    .await?;
    match row {
        None => Ok(Vec::new()),
        Some(row) => profiles_from_json(row.try_get("client_profiles")?),
    }
}

/// (installation, note) to store for a placement.
fn columns(placement: &Placement) -> (&str, &str) {
    match placement {
        Placement::Placed { installation, by } => (installation, by),
        Placement::Unassigned { reason } => (AUTO_INSTALLATION, reason),
    }
}

/// Places every host that claimed `auto` again (after a mapping changed or
/// a server host came, went or moved).
pub(super) async fn place_all(tx: &mut Tx<'_>) -> Result<(), StoreError> {
    let mappings = mappings(tx).await?;
    let servers = servers(tx).await?;
    let rows = sqlx::query(
        "SELECT host_id, installation, placement_note FROM hosts WHERE claimed_installation = $1",
    )
    .bind(AUTO_INSTALLATION)
    .fetch_all(&mut **tx)
    .await?;
    for row in rows {
        let host_id: String = row.try_get("host_id")?;
        let before: (String, Option<String>) =
            (row.try_get("installation")?, row.try_get("placement_note")?);
        let profiles = host_profiles(tx, &host_id).await?;
        if keeps_placement(&before.0, &profiles) {
            continue;
        }
        let placement = place(&profiles, &mappings, &servers);
        let (installation, note) = columns(&placement);
        if before.0 != installation || before.1.as_deref() != Some(note) {
            write(tx, &host_id, installation, note).await?;
        }
    }
    Ok(())
}

/// A placed client that reports no profile at all keeps its placement:
/// profiles kept in a user's hive are reported only while that user is
/// logged on, and a logoff must not take the client out of its
/// installation's rollouts.
fn keeps_placement(current: &str, profiles: &[DatabaseProfile]) -> bool {
    profiles.is_empty() && current != AUTO_INSTALLATION
}

/// Places one host that claimed `auto` (now in `current`) by the profiles
/// it just reported.
pub(super) async fn place_one(
    tx: &mut Tx<'_>,
    host_id: &str,
    current: &str,
    inventory: &tierwise_common::Inventory,
) -> Result<(), StoreError> {
    let profiles = match inventory
        .component(tierwise_common::Role::Client)
        .map(|c| &c.facts)
    {
        Some(tierwise_common::Facts::Client(client)) => client.profiles.as_slice(),
        _ => &[],
    };
    if keeps_placement(current, profiles) {
        return Ok(());
    }
    let placement = place(profiles, &mappings(tx).await?, &servers(tx).await?);
    let (installation, note) = columns(&placement);
    write(tx, host_id, installation, note).await
}

async fn write(
    tx: &mut Tx<'_>,
    host_id: &str,
    installation: &str,
    note: &str,
) -> Result<(), StoreError> {
    ensure_installation(tx, installation).await?;
    sqlx::query("UPDATE hosts SET installation = $2, placement_note = $3 WHERE host_id = $1")
        .bind(host_id)
        .bind(installation)
        .bind(note)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Hosts point at an installation row; an unassigned host at the `auto` one,
/// which is never listed as an installation.
pub(super) async fn ensure_installation(tx: &mut Tx<'_>, name: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO installations (name, created_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(tierwise_runtime::clock::now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether the host's hello or inventory could move other hosts: a server
/// host of a real installation.
pub(super) fn moves_others(installation: &str, inventory: &tierwise_common::Inventory) -> bool {
    installation != AUTO_INSTALLATION
        && inventory.component(tierwise_common::Role::Server).is_some()
}

/// Longest address a mapping takes (a DNS name).
pub const MAX_ADDRESS: usize = 253;

impl Store {
    /// Maps a server address to an installation: clients that claimed
    /// `auto` and name that server are placed there. Replaces an earlier
    /// mapping of the address; places every `auto` host again.
    pub async fn map_address(
        &self,
        address: &str,
        installation: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<(), MappingError> {
        let address = normalise_address(address);
        if address.is_empty() {
            return Err(MappingError::EmptyAddress);
        }
        if address.len() > MAX_ADDRESS
            || address.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(MappingError::BadAddress { max: MAX_ADDRESS });
        }
        if installation == AUTO_INSTALLATION {
            return Err(MappingError::Auto);
        }
        let known = self.installations().await?;
        if !known.iter().any(|i| i == installation) {
            let list = if known.is_empty() {
                "none yet".to_owned()
            } else {
                known.join(", ")
            };
            return Err(MappingError::UnknownInstallation(
                installation.to_owned(),
                list,
            ));
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO installation_maps (address, installation, created_ms, created_by) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (address) DO UPDATE SET \
             installation = excluded.installation, created_ms = excluded.created_ms, \
             created_by = excluded.created_by",
        )
        .bind(address.as_str())
        .bind(installation)
        .bind(now_ms)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        place_all(&mut tx).await?;
        audit_in(
            &mut tx,
            now_ms,
            actor,
            "installation map",
            &address,
            installation,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a mapping; places every `auto` host again.
    pub async fn unmap_address(
        &self,
        address: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<(), MappingError> {
        let address = normalise_address(address);
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query("DELETE FROM installation_maps WHERE address = $1")
            .bind(address.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            return Err(MappingError::NoMapping(address));
        }
        place_all(&mut tx).await?;
        audit_in(&mut tx, now_ms, actor, "installation unmap", &address, "").await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every mapping, by address.
    pub async fn address_mappings(&self) -> Result<Vec<AddressMapping>, StoreError> {
        let rows = sqlx::query(
            "SELECT address, installation, created_ms, created_by FROM installation_maps ORDER BY address",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AddressMapping {
                    address: row.try_get("address")?,
                    installation: row.try_get("installation")?,
                    created_ms: row.try_get("created_ms")?,
                    created_by: row.try_get("created_by")?,
                })
            })
            .collect()
    }
}
