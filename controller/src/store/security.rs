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
    /// When a renewal replaced it.
    pub superseded_ms: Option<i64>,
}

/// A certificate's standing, as a call checks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateStatus {
    pub host_id: String,
    pub installation: String,
    pub not_after_ms: i64,
    pub revoked_ms: Option<i64>,
    pub superseded_ms: Option<i64>,
    /// When a call first came with it; `None`: not yet.
    pub first_used_ms: Option<i64>,
}

/// Why a certificate is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRefusal {
    /// Revoked by an administrator (the others: replaced or expired).
    pub revoked: bool,
    pub reason: String,
}

impl CertificateStatus {
    /// Why certificate `serial` may not be used at `now_ms`, if it may not.
    pub fn refusal(&self, serial: &str, now_ms: i64) -> Option<CertificateRefusal> {
        let rfc3339 = tierwise_runtime::clock::rfc3339;
        let (revoked, reason) = if let Some(at) = self.revoked_ms {
            (
                true,
                format!(
                "the certificate of host {} was revoked at {}; enroll it again with a new token",
                self.host_id,
                rfc3339(at)
            ),
            )
        } else if let Some(at) = self.superseded_ms {
            (false, format!(
                "certificate {serial} of host {} was replaced by a renewal at {}; use the newer certificate",
                self.host_id,
                rfc3339(at)
            ))
        } else if self.not_after_ms <= now_ms {
            (
                false,
                format!("certificate {serial} is expired or does not match its record"),
            )
        } else {
            return None;
        };
        Some(CertificateRefusal { revoked, reason })
    }
}

/// What an enrollment asks for, before anything is signed.
#[derive(Clone, Copy, Debug)]
pub struct EnrollmentAsk<'a> {
    pub token_id: &'a str,
    pub secret_sha256: &'a str,
    pub host_id: &'a str,
    pub installation: &'a str,
    /// SHA-256 of the public key in the agent's certificate request.
    pub public_key_sha256: &'a str,
}

/// What an enrollment asks for, with the certificate signed once the
/// checks passed.
#[derive(Clone, Debug)]
pub struct Enrollment<'a> {
    pub token_id: &'a str,
    pub secret_sha256: &'a str,
    pub host_id: &'a str,
    pub installation: &'a str,
    pub certificate: AgentCertificate,
}

impl Enrollment<'_> {
    pub fn ask(&self) -> EnrollmentAsk<'_> {
        EnrollmentAsk {
            token_id: self.token_id,
            secret_sha256: self.secret_sha256,
            host_id: self.host_id,
            installation: self.installation,
            public_key_sha256: &self.certificate.public_key_sha256,
        }
    }
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
    #[error("host {host} belongs to installation `{was}`; a token of `{asked}` does not move it. If the machine really moved, revoke it first (`tierwise hosts revoke {host}`), then enroll it with a token created after that")]
    OtherInstallation {
        host: String,
        was: String,
        asked: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for EnrollError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

/// Why a certificate was not renewed.
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("certificate {0} is not one this controller issued")]
    Unknown(String),
    #[error("certificate {0} was revoked; the host must be enrolled again with a new token")]
    Revoked(String),
    #[error("certificate {0} was renewed and the new one is in use; only the newer certificate is accepted")]
    Superseded(String),
    #[error("certificate {0} has expired; enroll the host again with a token")]
    Expired(String),
    #[error("certificate {serial} can be renewed from {at} on (half of its life); the agent renews then on its own")]
    TooEarly { serial: String, at: String },
    #[error("certificate {0} was renewed or revoked at the same moment; try again")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RenewError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

/// What `remove_operator` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoveOperator {
    Removed(OperatorRecord),
    NotFound,
    /// Refused: it is the only admin.
    LastAdmin,
}

/// An operator as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperatorRecord {
    pub name: String,
    pub role: String,
    pub created_ms: i64,
    pub created_by: String,
    /// When the token stops working; `None`: never.
    pub expires_ms: Option<i64>,
    /// The operator's last call, to the minute; `None`: none yet.
    pub last_used_ms: Option<i64>,
}

impl OperatorRecord {
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_ms.is_some_and(|at| at <= now_ms)
    }
}

const OPERATOR_COLUMNS: &str = "name, role, created_ms, created_by, expires_ms, last_used_ms";

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

fn operator_from_row(row: &AnyRow) -> Result<OperatorRecord, sqlx::Error> {
    Ok(OperatorRecord {
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        created_ms: row.try_get("created_ms")?,
        created_by: row.try_get("created_by")?,
        expires_ms: row.try_get("expires_ms")?,
        last_used_ms: row.try_get("last_used_ms")?,
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
        superseded_ms: row.try_get("superseded_ms")?,
    })
}

const TOKEN_COLUMNS: &str =
    "id, installation, uses_allowed, uses, expires_ms, created_ms, created_by, revoked_ms";
const CERTIFICATE_COLUMNS: &str =
    "serial, host_id, installation, public_key_sha256, certificate_pem, not_after_ms, revoked_ms, superseded_ms";

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
        audit_in(&mut tx, now_ms, actor, "token create", token.id, &details).await?;
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
        audit_in(&mut tx, now_ms, actor, "token revoke", id, "").await?;
        tx.commit().await?;
        Ok(Some(token_from_row(&row)?))
    }

    /// Checks an enrollment without writing anything, before a certificate
    /// is signed for it: a refused attempt costs a few reads, no signature
    /// and no write. `Some` is the certificate already issued to this key
    /// with this token (an agent that lost the answer). `enroll` checks
    /// again in its transaction.
    pub async fn check_enrollment(
        &self,
        ask: &EnrollmentAsk<'_>,
        now_ms: i64,
    ) -> Result<Option<AgentCertificate>, EnrollError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        check_enrollment_in(&mut conn, ask, now_ms).await
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
        // Enrollments and revocations of one host name queue here
        // (PostgreSQL): each sees what the other committed.
        lock_host_name(&mut tx, self.backend(), enrollment.host_id).await?;
        if self.backend() == super::Backend::Sqlite {
            // A write first: SQLite's one writer's lock, so that no other
            // write can make this transaction's reads stale.
            sqlx::query("UPDATE enrollment_tokens SET uses = uses WHERE id = $1")
                .bind(enrollment.token_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(issued) = check_enrollment_in(&mut tx, &enrollment.ask(), now_ms).await? {
            return Ok(issued);
        }
        insert_certificate(
            &mut tx,
            &enrollment.certificate,
            Some(enrollment.token_id),
            now_ms,
        )
        .await?;
        // The use is counted last, by a statement that checks the token
        // again under its row's lock: concurrent enrollments with one token
        // queue for that lock over this statement, the audit entry and the
        // commit only (the whole enrollment, before: 146 a second over
        // seven replicas), and never count more uses than it allows.
        if !count_use(&mut tx, enrollment.token_id, now_ms).await? {
            tx.rollback().await?;
            // Used up, revoked or expired since the check: say which.
            return Err(self
                .check_enrollment(&enrollment.ask(), now_ms)
                .await
                .err()
                .unwrap_or(EnrollError::Invalid));
        }
        audit_in(
            &mut tx,
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

    /// Checks, without writing, that certificate `serial` may be renewed
    /// now: before a new one is signed for it. `renew` checks again.
    pub async fn check_renewal(&self, serial: &str, now_ms: i64) -> Result<(), RenewError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        renewable_in(&mut conn, serial, now_ms).await
    }

    /// Issues `certificate` as the successor of `old_serial`, in one
    /// transaction: audited; the old one is superseded (refused from then
    /// on) when the new one is first used (`first_use`), so an agent that
    /// lost this answer keeps working with the old one and renews again (a
    /// successor never used is then discarded). Refused unless the old one
    /// is valid, not revoked, not superseded and past half of its life. The
    /// statement that checks it locks its row, which `revoke_host` writes
    /// too: a renewal and a revocation of one host cannot both win.
    pub async fn renew(
        &self,
        old_serial: &str,
        certificate: &AgentCertificate,
        now_ms: i64,
    ) -> Result<(), RenewError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE agent_certificates SET renewed_to = renewed_to \
             WHERE serial = $1 AND host_id = $3 AND revoked_ms IS NULL AND superseded_ms IS NULL \
             AND not_after_ms > $2 AND issued_ms + (not_after_ms - issued_ms) / 2 <= $2 \
             RETURNING renewed_to",
        )
        .bind(old_serial)
        .bind(now_ms)
        .bind(&certificate.host_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            renewable_in(&mut tx, old_serial, now_ms).await?;
            // Renewable now but not a moment ago: the same refusal as a
            // race lost.
            return Err(RenewError::Conflict(old_serial.to_owned()));
        };
        // An earlier successor its agent never used (the answer was lost)
        // is discarded.
        if let Some(unused) = row.try_get::<Option<String>, _>("renewed_to")? {
            sqlx::query(
                "UPDATE agent_certificates SET superseded_ms = $2 \
                 WHERE serial = $1 AND first_used_ms IS NULL AND superseded_ms IS NULL",
            )
            .bind(unused)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE agent_certificates SET renewed_to = $2 WHERE serial = $1")
            .bind(old_serial)
            .bind(&certificate.serial)
            .execute(&mut *tx)
            .await?;
        insert_certificate(&mut tx, certificate, None, now_ms).await?;
        audit_in(
            &mut tx,
            now_ms,
            &format!("host {}", certificate.host_id),
            "host renew",
            &certificate.host_id,
            &format!(
                "certificate {old_serial} replaced by {}",
                certificate.serial
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the first use of certificate `serial` and supersedes the
    /// certificate it renewed: from now on only the new one is accepted.
    pub async fn first_use(&self, serial: &str, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let first = sqlx::query(
            "UPDATE agent_certificates SET first_used_ms = $2 WHERE serial = $1 AND first_used_ms IS NULL",
        )
        .bind(serial)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if first > 0 {
            sqlx::query(
                "UPDATE agent_certificates SET superseded_ms = $2 WHERE renewed_to = $1 AND superseded_ms IS NULL",
            )
            .bind(serial)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Why certificate `serial` may not be used now (revoked, replaced by a
    /// renewal, expired or unknown), or `None` when it may: checked again
    /// whenever the controller acts for a host on a stream opened earlier.
    pub async fn certificate_refusal(
        &self,
        serial: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(match self.certificate_status(serial).await? {
            None => Some(format!(
                "certificate {serial} is not one this controller issued to an agent"
            )),
            Some(status) => status.refusal(serial, now_ms).map(|r| r.reason),
        })
    }

    /// What a call checks of the certificate it came with (everything but
    /// the PEM): on every agent call and hello, so kept small.
    pub async fn certificate_status(
        &self,
        serial: &str,
    ) -> Result<Option<CertificateStatus>, StoreError> {
        let row = sqlx::query(
            "SELECT host_id, installation, not_after_ms, revoked_ms, superseded_ms, first_used_ms \
             FROM agent_certificates WHERE serial = $1",
        )
        .bind(serial)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(CertificateStatus {
            host_id: row.try_get("host_id")?,
            installation: row.try_get("installation")?,
            not_after_ms: row.try_get("not_after_ms")?,
            revoked_ms: row.try_get("revoked_ms")?,
            superseded_ms: row.try_get("superseded_ms")?,
            first_used_ms: row.try_get("first_used_ms")?,
        }))
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
        lock_host_name(&mut tx, self.backend(), host_id).await?;
        let valid: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM agent_certificates WHERE host_id = $1 AND revoked_ms IS NULL \
             AND superseded_ms IS NULL AND not_after_ms > $2",
        )
        .bind(host_id)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        let revoked = u64::try_from(valid).unwrap_or(0);
        // Twice: a renewal that committed while the first statement waited
        // for its row lock inserted a certificate that statement could not
        // see (PostgreSQL, read committed); the second sees it. A renewal
        // that comes after finds its old certificate revoked and fails.
        for _ in 0..2 {
            sqlx::query(
                "UPDATE agent_certificates SET revoked_ms = $2 WHERE host_id = $1 AND revoked_ms IS NULL",
            )
            .bind(host_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        audit_in(
            &mut tx,
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

    /// Adds an operator whose token expires at `expires_ms` (`None`:
    /// never); `false` when the name is taken.
    pub async fn add_operator(
        &self,
        name: &str,
        role: &str,
        token_sha256: &str,
        expires_ms: Option<i64>,
        actor: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let added = sqlx::query(
            "INSERT INTO operators (name, role, token_sha256, created_ms, created_by, expires_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(role)
        .bind(token_sha256)
        .bind(now_ms)
        .bind(actor)
        .bind(expires_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if added == 0 {
            return Ok(false);
        }
        audit_in(
            &mut tx,
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

    /// Removes an operator (their token stops working at once), unless it
    /// is the last admin. The check and the removal are one transaction
    /// that first locks every admin row (a no-op update), so two admins
    /// removing each other at once cannot both succeed.
    pub async fn remove_operator(
        &self,
        name: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<RemoveOperator, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE operators SET role = role WHERE role = 'admin'")
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(&format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(RemoveOperator::NotFound);
        };
        let operator = operator_from_row(&row)?;
        if operator.role == "admin" {
            let admins: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM operators WHERE role = 'admin'")
                    .fetch_one(&mut *tx)
                    .await?;
            if admins <= 1 {
                return Ok(RemoveOperator::LastAdmin);
            }
        }
        sqlx::query("DELETE FROM operators WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        audit_in(&mut tx, now_ms, actor, "operator remove", name, "").await?;
        tx.commit().await?;
        Ok(RemoveOperator::Removed(operator))
    }

    pub async fn operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(operator_from_row)
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// The operator whose token has this SHA-256.
    pub async fn operator_by_token(
        &self,
        token_sha256: &str,
    ) -> Result<Option<OperatorRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators WHERE token_sha256 = $1"
        ))
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(operator_from_row).transpose()?)
    }

    /// Gives an operator a new token (the old one stops working at once)
    /// that expires at `expires_ms`; audited. `false` when there is no such
    /// operator.
    pub async fn rotate_operator(
        &self,
        name: &str,
        token_sha256: &str,
        expires_ms: Option<i64>,
        actor: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rotated =
            sqlx::query("UPDATE operators SET token_sha256 = $2, expires_ms = $3 WHERE name = $1")
                .bind(name)
                .bind(token_sha256)
                .bind(expires_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if rotated == 0 {
            return Ok(false);
        }
        let until = expires_ms.map_or_else(
            || "never expires".to_owned(),
            |at| format!("expires {}", tierwise_runtime::clock::rfc3339(at)),
        );
        audit_in(&mut tx, now_ms, actor, "operator rotate", name, &until).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records an operator's call (callers write at most once a minute).
    pub async fn touch_operator(&self, name: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE operators SET last_used_ms = $2 WHERE name = $1")
            .bind(name)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Serialises the transactions about one host name that may create or
/// revoke its certificates, even when it has no row anywhere yet: a
/// transaction-scoped advisory lock on PostgreSQL; SQLite has one writer.
async fn lock_host_name(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: super::Backend,
    host_id: &str,
) -> Result<(), sqlx::Error> {
    if backend == super::Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))::text")
            .bind(host_id)
            .fetch_one(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Counts one use of token `id` if it still has one and is neither revoked
/// nor expired at `now_ms`; false when it has none.
async fn count_use(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let counted = sqlx::query(
        "UPDATE enrollment_tokens SET uses = uses + 1 \
         WHERE id = $1 AND uses < uses_allowed AND revoked_ms IS NULL AND expires_ms > $2",
    )
    .bind(id)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(counted == 1)
}

/// Why certificate `serial` cannot be renewed now, if it cannot.
async fn renewable_in(
    conn: &mut sqlx::AnyConnection,
    serial: &str,
    now_ms: i64,
) -> Result<(), RenewError> {
    let row = sqlx::query(
        "SELECT issued_ms, not_after_ms, revoked_ms, superseded_ms FROM agent_certificates WHERE serial = $1",
    )
    .bind(serial)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| RenewError::Unknown(serial.to_owned()))?;
    let issued: i64 = row.try_get("issued_ms")?;
    let not_after: i64 = row.try_get("not_after_ms")?;
    let revoked: Option<i64> = row.try_get("revoked_ms")?;
    let superseded: Option<i64> = row.try_get("superseded_ms")?;
    let half = issued + (not_after - issued) / 2;
    if revoked.is_some() {
        Err(RenewError::Revoked(serial.to_owned()))
    } else if superseded.is_some() {
        Err(RenewError::Superseded(serial.to_owned()))
    } else if not_after <= now_ms {
        Err(RenewError::Expired(serial.to_owned()))
    } else if now_ms < half {
        Err(RenewError::TooEarly {
            serial: serial.to_owned(),
            at: tierwise_runtime::clock::rfc3339(half),
        })
    } else {
        Ok(())
    }
}

/// What `check_enrollment` and `enroll` check, on one connection (the
/// latter's inside its transaction).
async fn check_enrollment_in(
    conn: &mut sqlx::AnyConnection,
    ask: &EnrollmentAsk<'_>,
    now_ms: i64,
) -> Result<Option<AgentCertificate>, EnrollError> {
    let row = sqlx::query(&format!(
        "SELECT {TOKEN_COLUMNS}, secret_sha256 FROM enrollment_tokens WHERE id = $1"
    ))
    .bind(ask.token_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Err(EnrollError::Invalid);
    };
    let stored_secret: String = row.try_get("secret_sha256")?;
    if !same_digest(&stored_secret, ask.secret_sha256) {
        return Err(EnrollError::Invalid);
    }
    let token = token_from_row(&row)?;
    let retried = sqlx::query(&format!(
        "SELECT {CERTIFICATE_COLUMNS} FROM agent_certificates \
         WHERE token_id = $1 AND host_id = $2 AND public_key_sha256 = $3 AND revoked_ms IS NULL \
         AND superseded_ms IS NULL AND not_after_ms > $4"
    ))
    .bind(ask.token_id)
    .bind(ask.host_id)
    .bind(ask.public_key_sha256)
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = retried {
        return Ok(Some(certificate_from_row(&row)?));
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
        if bound != ask.installation {
            return Err(EnrollError::WrongInstallation {
                id: token.id,
                token: bound.clone(),
                asked: ask.installation.to_owned(),
            });
        }
    }
    // A host revoked after this token was made needs a newer token: a
    // standing Group Policy token must not bring it straight back.
    let revoked_since: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM agent_certificates WHERE host_id = $1 AND revoked_ms IS NOT NULL AND revoked_ms >= $2",
    )
    .bind(ask.host_id)
    .bind(token.created_ms)
    .fetch_one(&mut *conn)
    .await?;
    if revoked_since > 0 {
        return Err(EnrollError::RevokedHost {
            host: ask.host_id.to_owned(),
            token: token.id,
        });
    }
    let active: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM agent_certificates WHERE host_id = $1 AND revoked_ms IS NULL \
         AND superseded_ms IS NULL AND not_after_ms > $2",
    )
    .bind(ask.host_id)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    if active > 0 {
        return Err(EnrollError::AlreadyEnrolled(ask.host_id.to_owned()));
    }
    // A host stays in its installation: an expired certificate and a token
    // of another installation do not move it. Revoking it first is the
    // administrator's decision that it may go.
    let latest = sqlx::query(
        "SELECT installation, revoked_ms FROM agent_certificates WHERE host_id = $1 \
         ORDER BY issued_ms DESC LIMIT 1",
    )
    .bind(ask.host_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(latest) = latest {
        let was: String = latest.try_get("installation")?;
        let revoked: Option<i64> = latest.try_get("revoked_ms")?;
        if revoked.is_none() && was != ask.installation {
            return Err(EnrollError::OtherInstallation {
                host: ask.host_id.to_owned(),
                was,
                asked: ask.installation.to_owned(),
            });
        }
    }
    Ok(None)
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
