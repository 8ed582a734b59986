//! Which installation a release must come through before it reaches
//! another (`installations set NAME --promote-from SRC --soak D`). What it
//! means is `tierwise_common::promotion`; here it is kept and read back.

use super::{audit_in, Store, StoreError};
use sqlx::Row;
use tierwise_common::promotion::{Promotion, SourceRollout};
use tierwise_common::rollout::RolloutState;
use tierwise_common::Version;

/// Why a promotion was not set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromotionError {
    #[error("no installation `{0}`: none of its hosts has reported yet")]
    Unknown(String),
    #[error("{0} would be promoted from itself, through {1}; releases must start somewhere")]
    Cycle(String, String),
}

impl Store {
    /// Sets (or with `None` clears) where `installation`'s releases come
    /// from, audited; refuses unknown installations and cycles.
    pub async fn set_promotion(
        &self,
        installation: &str,
        promotion: Option<&Promotion>,
        actor: &str,
        now_ms: i64,
    ) -> Result<Result<(), PromotionError>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Whether a cycle closes depends on every installation's source, so
        // the transaction starts by locking them all with a no-op write
        // (the pattern of `lock_installation`): two admins closing a cycle
        // from both ends at once are serialised, and the second reads what
        // the first wrote.
        sqlx::query("UPDATE installations SET created_ms = created_ms")
            .execute(&mut *tx)
            .await?;
        let mut sources = std::collections::BTreeMap::new();
        for row in sqlx::query("SELECT name, promote_from FROM installations")
            .fetch_all(&mut *tx)
            .await?
        {
            let name: String = row.try_get("name")?;
            let from: Option<String> = row.try_get("promote_from")?;
            sources.insert(name, from);
        }
        if !sources.contains_key(installation) {
            return Ok(Err(PromotionError::Unknown(installation.to_owned())));
        }
        if let Some(p) = promotion {
            if !sources.contains_key(&p.from) {
                return Ok(Err(PromotionError::Unknown(p.from.clone())));
            }
            // Follow the chain from the source: it must not come back.
            let mut chain = vec![p.from.clone()];
            let mut at = p.from.clone();
            while let Some(Some(next)) = sources.get(&at) {
                if chain.contains(next) {
                    break;
                }
                chain.push(next.clone());
                at = next.clone();
            }
            if p.from == installation || chain.iter().any(|c| c == installation) {
                return Ok(Err(PromotionError::Cycle(
                    installation.to_owned(),
                    chain.join(" ← "),
                )));
            }
        }
        sqlx::query("UPDATE installations SET promote_from = $1, soak_ms = $2 WHERE name = $3")
            .bind(promotion.map(|p| p.from.clone()))
            .bind(promotion.map(|p| p.soak_ms))
            .bind(installation)
            .execute(&mut *tx)
            .await?;
        let details = match promotion {
            Some(p) => format!(
                "promoted from {} after a soak of {} s",
                p.from,
                p.soak_ms / 1000
            ),
            None => "promoted from no installation".to_owned(),
        };
        audit_in(
            &mut tx,
            now_ms,
            actor,
            "installation set",
            installation,
            &details,
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Where `installation`'s releases come from; `Ok(None)` for none,
    /// `Err(Unknown)` inside for an installation never seen.
    pub async fn promotion(
        &self,
        installation: &str,
    ) -> Result<Result<Option<Promotion>, PromotionError>, StoreError> {
        let row = sqlx::query("SELECT promote_from, soak_ms FROM installations WHERE name = $1")
            .bind(installation)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(Err(PromotionError::Unknown(installation.to_owned())));
        };
        let from: Option<String> = row.try_get("promote_from")?;
        let soak_ms: Option<i64> = row.try_get("soak_ms")?;
        Ok(Ok(from.map(|from| Promotion {
            from,
            soak_ms: soak_ms.unwrap_or(0),
        })))
    }

    /// The rollouts of `installation` to `target`, as a promotion weighs
    /// them.
    pub async fn rollouts_to(
        &self,
        installation: &str,
        target: Version,
    ) -> Result<Vec<SourceRollout>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, state, created_ms, updated_ms FROM rollouts \
             WHERE installation = $1 AND target = $2 ORDER BY seq",
        )
        .bind(installation)
        .bind(target.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                Ok(SourceRollout {
                    id: row.try_get("id")?,
                    target,
                    state: RolloutState::parse(&state)
                        .ok_or_else(|| StoreError::Corrupt(format!("rollout state `{state}`")))?,
                    created_ms: row.try_get("created_ms")?,
                    updated_ms: row.try_get("updated_ms")?,
                })
            })
            .collect()
    }
}
