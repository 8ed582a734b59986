//! Enrollment tokens, agent certificates and operators. Secrets are never
//! stored: tokens are kept as their SHA-256. Every change is one transaction
//! with its audit entry.

use super::{audit_in, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

/// An enrollment token as stored (without its secret).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TokenRecord {
    pub id: String,
    pub installation: Option<String>,
    pub uses_allowed: i64,
    pub uses: i64,
    pub expires_ms: i64,
    pub created_ms: i64,
    pub created_by: String,
    pub revoked_ms: Option<i64>,
}

/// Whether a token can still enroll, and if not, the first reason in the
/// order enrollment checks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum TokenState {
    Active,
    Revoked,
    Expired,
    UsedUp,
}

impl TokenState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl TokenRecord {
    pub fn state(&self, now_ms: i64) -> TokenState {
        if self.revoked_ms.is_some() {
            TokenState::Revoked
        } else if self.expires_ms <= now_ms {
            TokenState::Expired
        } else if self.uses >= self.uses_allowed {
            TokenState::UsedUp
        } else {
            TokenState::Active
        }
    }
}

/// A new token: its id, the SHA-256 of its secret and its limits.
#[derive(Clone, Debug)]
pub struct NewToken<'a> {
    pub id: &'a str,
    pub secret_sha256: &'a str,
    pub installation: Option<&'a str>,
    pub uses_allowed: i64,
    pub expires_ms: i64,
}

/// A certificate issued to an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentCertificate {
    pub serial: String,
    pub host_id: String,
    pub installation: String,
    pub public_key_sha256: String,
    pub certificate_pem: String,
    pub not_after_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// What an enrollment asks for, with the certificate already signed.
#[derive(Clone, Debug)]
pub struct Enrollment<'a> {
    pub token_id: &'a str,
    pub secret_sha256: &'a str,
    pub host_id: &'a str,
    pub installation: &'a str,
    pub certificate: AgentCertificate,
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// Deliberately the same for an unknown id and a wrong secret.
    #[error("the enrollment token is not valid; ask an administrator for one (`tierwise tokens create`)")]
    Invalid,
    #[error("enrollment token {0} has been revoked")]
    Revoked(String),
    #[error("enrollment token {id} expired at {at}")]
    Expired { id: String, at: String },
    #[error("enrollment token {id} has been used {uses} of {uses} time(s)")]
    UsedUp { id: String, uses: i64 },
    #[error("enrollment token {id} is for installation `{token}`, not `{asked}`")]
    WrongInstallation {
        id: String,
        token: String,
        asked: String,
    },
    #[error("host {0} is already enrolled with a valid certificate; if this is a new machine with the same name, revoke the old one first (`tierwise hosts revoke {0}`)")]
    AlreadyEnrolled(String),
    #[error("host {host} was revoked after enrollment token {token} was created; it needs a newer token")]
    RevokedHost { host: String, token: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for EnrollError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

/// An operator as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperatorRecord {
    pub name: String,
    pub role: String,
    pub created_ms: i64,
    pub created_by: String,
}

fn token_from_row(row: &AnyRow) -> Result<TokenRecord, sqlx::Error> {
    Ok(TokenRecord {
        id: row.try_get("id")?,
        installation: row.try_get("installation")?,
        uses_allowed: row.try_get("uses_allowed")?,
        uses: row.try_get("uses")?,
        expires_ms: row.try_get("expires_ms")?,
        created_ms: row.try_get("created_ms")?,
        created_by: row.try_get("created_by")?,
        revoked_ms: row.try_get("revoked_ms")?,
    })
}

fn certificate_from_row(row: &AnyRow) -> Result<AgentCertificate, sqlx::Error> {
    Ok(AgentCertificate {
        serial: row.try_get("serial")?,
        host_id: row.try_get("host_id")?,
        installation: row.try_get("installation")?,
        public_key_sha256: row.try_get("public_key_sha256")?,
        certificate_pem: row.try_get("certificate_pem")?,
        not_after_ms: row.try_get("not_after_ms")?,
        revoked_ms: row.try_get("revoked_ms")?,
    })
}

const TOKEN_COLUMNS: &str =
    "id, installation, uses_allowed, uses, expires_ms, created_ms, created_by, revoked_ms";
const CERTIFICATE_COLUMNS: &str =
    "serial, host_id, installation, public_key_sha256, certificate_pem, not_after_ms, revoked_ms";

/// Compares two hex digests in time independent of where they differ.
fn same_digest(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Store {
    pub async fn create_token(
        &self,
        token: &NewToken<'_>,
        actor: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO enrollment_tokens (id, secret_sha256, installation, uses_allowed, uses, expires_ms, created_ms, created_by) \
             VALUES ($1, $2, $3, $4, 0, $5, $6, $7)",
        )
        .bind(token.id)
        .bind(token.secret_sha256)
        .bind(token.installation)
        .bind(token.uses_allowed)
        .bind(token.expires_ms)
        .bind(now_ms)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        let details = format!(
            "installation {}, {} use(s), expires {}",
            token.installation.unwrap_or("any"),
            token.uses_allowed,
            tierwise_runtime::clock::rfc3339(token.expires_ms)
        );
        audit_in(&mut *tx, now_ms, actor, "token create", token.id, &details).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM enrollment_tokens ORDER BY created_ms, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(token_from_row).collect::<Result<_, _>>()?)
    }

    /// Revokes a token; `None` when there is no such token.
    pub async fn revoke_token(
        &self,
        id: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE enrollment_tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
        )
        .bind(id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM enrollment_tokens WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        audit_in(&mut *tx, now_ms, actor, "token revoke", id, "").await?;
        tx.commit().await?;
        Ok(Some(token_from_row(&row)?))
    }

    /// Checks the token and records the certificate, in one transaction:
    /// a use is counted only with a certificate stored. The same key
    /// enrolling again with the same token (an agent that lost the answer)
    /// gets the certificate it was issued, without using the token again.
    pub async fn enroll(
        &self,
        enrollment: &Enrollment<'_>,
        now_ms: i64,
    ) -> Result<AgentCertificate, EnrollError> {
        let mut tx = self.pool.begin().await?;
        // A no-op write first: concurrent enrollments with one token queue
        // here instead of both counting the last use.
        sqlx::query("UPDATE enrollment_tokens SET uses = uses WHERE id = $1")
            .bind(enrollment.token_id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS}, secret_sha256 FROM enrollment_tokens WHERE id = $1"
        ))
        .bind(enrollment.token_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(EnrollError::Invalid);
        };
        let stored_secret: String = row.try_get("secret_sha256")?;
        if !same_digest(&stored_secret, enrollment.secret_sha256) {
            return Err(EnrollError::Invalid);
        }
        let token = token_from_row(&row)?;
        let retried = sqlx::query(&format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM agent_certificates \
             WHERE token_id = $1 AND host_id = $2 AND public_key_sha256 = $3 AND revoked_ms IS NULL AND not_after_ms > $4"
        ))
        .bind(enrollment.token_id)
        .bind(enrollment.host_id)
        .bind(&enrollment.certificate.public_key_sha256)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = retried {
            return Ok(certificate_from_row(&row)?);
        }
        match token.state(now_ms) {
            TokenState::Revoked => return Err(EnrollError::Revoked(token.id)),
            TokenState::Expired => {
                return Err(EnrollError::Expired {
                    at: tierwise_runtime::clock::rfc3339(token.expires_ms),
                    id: token.id,
                })
            }
            TokenState::UsedUp => {
                return Err(EnrollError::UsedUp {
                    id: token.id,
                    uses: token.uses_allowed,
                })
            }
            TokenState::Active => {}
        }
        if let Some(bound) = &token.installation {
            if bound != enrollment.installation {
                return Err(EnrollError::WrongInstallation {
                    id: token.id,
                    token: bound.clone(),
                    asked: enrollment.installation.to_owned(),
                });
            }
        }
        // A host revoked after this token was made needs a newer token: a
        // standing Group Policy token must not bring it straight back.
        let revoked_since: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM agent_certificates WHERE host_id = $1 AND revoked_ms IS NOT NULL AND revoked_ms >= $2",
        )
        .bind(enrollment.host_id)
        .bind(token.created_ms)
        .fetch_one(&mut *tx)
        .await?;
        if revoked_since > 0 {
            return Err(EnrollError::RevokedHost {
                host: enrollment.host_id.to_owned(),
                token: token.id,
            });
        }
        let active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM agent_certificates WHERE host_id = $1 AND revoked_ms IS NULL AND not_after_ms > $2",
        )
        .bind(enrollment.host_id)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        if active > 0 {
            return Err(EnrollError::AlreadyEnrolled(enrollment.host_id.to_owned()));
        }
        sqlx::query("UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = $1")
            .bind(enrollment.token_id)
            .execute(&mut *tx)
            .await?;
        insert_certificate(
            &mut tx,
            &enrollment.certificate,
            Some(enrollment.token_id),
            now_ms,
        )
        .await?;
        audit_in(
            &mut *tx,
            now_ms,
            &format!("token {}", enrollment.token_id),
            "host enroll",
            enrollment.host_id,
            &format!(
                "installation {}, certificate {}",
                enrollment.installation, enrollment.certificate.serial
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(enrollment.certificate.clone())
    }

    /// Records a renewed certificate of an enrolled host.
    pub async fn record_renewal(
        &self,
        certificate: &AgentCertificate,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_certificate(&mut tx, certificate, None, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The certificate with this serial, if this controller issued it.
    pub async fn agent_certificate(
        &self,
        serial: &str,
    ) -> Result<Option<AgentCertificate>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM agent_certificates WHERE serial = $1"
        ))
        .bind(serial)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(certificate_from_row).transpose()?)
    }

    /// Revokes every certificate of the host; returns how many were valid.
    pub async fn revoke_host(
        &self,
        host_id: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revoked = sqlx::query(
            "UPDATE agent_certificates SET revoked_ms = $2 WHERE host_id = $1 AND revoked_ms IS NULL",
        )
        .bind(host_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        audit_in(
            &mut *tx,
            now_ms,
            actor,
            "host revoke",
            host_id,
            &format!("{revoked} certificate(s) revoked"),
        )
        .await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// Adds an operator; `false` when the name is taken.
    pub async fn add_operator(
        &self,
        name: &str,
        role: &str,
        token_sha256: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let added = sqlx::query(
            "INSERT INTO operators (name, role, token_sha256, created_ms, created_by) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(role)
        .bind(token_sha256)
        .bind(now_ms)
        .bind(actor)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if added == 0 {
            return Ok(false);
        }
        audit_in(
            &mut *tx,
            now_ms,
            actor,
            "operator add",
            name,
            &format!("role {role}"),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes an operator (their token stops working at once); `false`
    /// when there is no such operator.
    pub async fn remove_operator(
        &self,
        name: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query("DELETE FROM operators WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            return Ok(false);
        }
        audit_in(&mut *tx, now_ms, actor, "operator remove", name, "").await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT name, role, created_ms, created_by FROM operators ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|row| {
                Ok(OperatorRecord {
                    name: row.try_get("name")?,
                    role: row.try_get("role")?,
                    created_ms: row.try_get("created_ms")?,
                    created_by: row.try_get("created_by")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// The operator whose token has this SHA-256: (name, role).
    pub async fn operator_by_token(
        &self,
        token_sha256: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query("SELECT name, role FROM operators WHERE token_sha256 = $1")
            .bind(token_sha256)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some((row.try_get("name")?, row.try_get("role")?)),
            None => None,
        })
    }
}

async fn insert_certificate(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    certificate: &AgentCertificate,
    token_id: Option<&str>,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO agent_certificates (serial, host_id, installation, public_key_sha256, token_id, certificate_pem, issued_ms, not_after_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&certificate.serial)
    .bind(&certificate.host_id)
    .bind(&certificate.installation)
    .bind(&certificate.public_key_sha256)
    .bind(token_id)
    .bind(&certificate.certificate_pem)
    .bind(now_ms)
    .bind(certificate.not_after_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
