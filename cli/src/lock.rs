//! One deploy per service at a time: a lock with a lease, kept in SSM next to the service's
//! other parameters, so it needs no infrastructure of its own.
//!
//! - **Acquire**: `PutParameter <prefix>/<service>/lock` *without* overwrite, a JSON claim
//!   (holder, run id, lease). SSM creates a parameter atomically: of two deploys, exactly one
//!   succeeds; the other reads the claim and waits (or, with `--lock-wait 0`, fails naming the
//!   holder).
//! - **Lease**: the holder renews its claim every third of the lease (default 60 s) while it
//!   works. A claim older than its lease belongs to a holder that died (killed, machine gone).
//! - **Take-over** of an expired claim: the taker first creates `<lock>-takeover-<claim id>`
//!   without overwrite — one taker per expired claim wins — and only the winner deletes the
//!   expired claim; then everyone competes again with the atomic create above. So a fresh claim
//!   is never deleted by a taker.
//! - **Release**: the holder deletes the lock when done, only while the claim is still its own
//!   and within its lease (nobody may take it over before then).
//!
//! Assumption: the clocks of machines deploying the same service differ by much less than the
//! lease. IAM: `ssm:PutParameter`, `ssm:GetParameter`, `ssm:DeleteParameter` on
//! `<prefix>/<service>/lock*` (`deployer iam-policy` includes them).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_ssm::operation::delete_parameter::DeleteParameterError;
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_sdk_ssm::operation::put_parameter::PutParameterError;
use aws_sdk_ssm::types::ParameterType;
use deployer_core::{Phase, Progress};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

/// The default lease; `DEPLOYER_LOCK_LEASE` (e.g. `5s`) overrides it.
const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// A claim on a service, the lock parameter's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    /// Unique per claim.
    id: String,
    /// Who holds it, for people: host, pid, CI run.
    holder: String,
    /// When the claim was written or last renewed (seconds since the epoch).
    renewed_at: u64,
    /// How long it stays valid without renewal (seconds).
    lease_s: u64,
}

impl Claim {
    fn expired(&self, now: u64) -> bool {
        now > self.renewed_at + self.lease_s
    }
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    /// Another deploy holds the lock.
    #[error(
        "another deploy of `{service}` is running: {holder} (lock {parameter}); wait for it, or retry with a longer --lock-wait"
    )]
    Held {
        /// The service.
        service: String,
        /// Who holds it.
        holder: String,
        /// The lock parameter.
        parameter: String,
    },
    /// SSM failed.
    #[error("the deploy lock {parameter}: {message}")]
    Ssm {
        /// The lock parameter.
        parameter: String,
        /// What failed.
        message: String,
    },
}

/// A held lock; renewed in the background until [`Held::release`] (or drop, which stops the
/// renewal and leaves the claim to expire).
pub(crate) struct Held {
    ssm: aws_sdk_ssm::Client,
    parameter: String,
    claim: Claim,
    renewal: JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn lease() -> Duration {
    std::env::var("DEPLOYER_LOCK_LEASE")
        .ok()
        .and_then(|text| humantime::parse_duration(&text).ok())
        .filter(|d| d.as_secs() >= 2)
        .unwrap_or(DEFAULT_LEASE)
}

/// Who we are, for the other deploy's message.
fn holder() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown host".into());
    let mut text = format!("pid {} on {host}", std::process::id());
    if let (Ok(server), Ok(repository), Ok(run)) = (
        std::env::var("GITHUB_SERVER_URL"),
        std::env::var("GITHUB_REPOSITORY"),
        std::env::var("GITHUB_RUN_ID"),
    ) {
        text.push_str(&format!(", {server}/{repository}/actions/runs/{run}"));
    }
    text
}

fn claim_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{:x}", std::process::id(), nanos)
}

/// Takes the lock `parameter` for `service`, waiting up to `wait` for another holder.
pub(crate) async fn acquire(
    ssm: &aws_sdk_ssm::Client,
    service: &str,
    parameter: &str,
    wait: Duration,
    progress: &Progress,
) -> Result<Held, LockError> {
    let lease = lease();
    let deadline = tokio::time::Instant::now() + wait;
    let error = |message: String| LockError::Ssm {
        parameter: parameter.to_owned(),
        message,
    };
    let mut announced = String::new();
    loop {
        let claim = Claim {
            id: claim_id(),
            holder: holder(),
            renewed_at: now(),
            lease_s: lease.as_secs(),
        };
        let value = serde_json::to_string(&claim).map_err(|e| error(e.to_string()))?;
        let created = ssm
            .put_parameter()
            .name(parameter)
            .value(&value)
            .r#type(ParameterType::String)
            .overwrite(false)
            .send()
            .await;
        match created {
            Ok(_) => {
                let renewal = tokio::spawn(renew(
                    ssm.clone(),
                    parameter.to_owned(),
                    claim.clone(),
                    lease,
                ));
                return Ok(Held {
                    ssm: ssm.clone(),
                    parameter: parameter.to_owned(),
                    claim,
                    renewal,
                });
            }
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutParameterError::ParameterAlreadyExists(_))
                ) => {}
            Err(e) => {
                return Err(error(crate::aws::sdk_message(&e)));
            }
        }
        // Someone holds it (or held it and died).
        let Some(current) = read(ssm, parameter).await.map_err(error)? else {
            continue; // released meanwhile: try again at once
        };
        if current.expired(now()) {
            progress.emit(
                Phase::Check,
                format!(
                    "taking over the lock of {} (its lease expired)",
                    current.holder
                ),
            );
            take_over(ssm, parameter, &current).await.map_err(error)?;
            continue;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(LockError::Held {
                service: service.to_owned(),
                holder: current.holder,
                parameter: parameter.to_owned(),
            });
        }
        if announced != current.id {
            progress.emit(
                Phase::Check,
                format!(
                    "waiting for another deploy of this service to finish: {}",
                    current.holder
                ),
            );
            announced = current.id.clone();
        }
        tokio::time::sleep(
            Duration::from_secs(1)
                .min(deadline - tokio::time::Instant::now())
                .max(Duration::from_millis(100)),
        )
        .await;
    }
}

/// The current claim, or `None` when there is no lock.
async fn read(ssm: &aws_sdk_ssm::Client, parameter: &str) -> Result<Option<Claim>, String> {
    match ssm.get_parameter().name(parameter).send().await {
        Ok(output) => {
            let value = output
                .parameter()
                .and_then(|p| p.value())
                .unwrap_or_default();
            // A value we cannot read is treated as an expired claim, so it can be taken over.
            Ok(Some(serde_json::from_str(value).unwrap_or(Claim {
                id: format!("unreadable-{}", value.len()),
                holder: "an unreadable lock".into(),
                renewed_at: 0,
                lease_s: 0,
            })))
        }
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(GetParameterError::ParameterNotFound(_))
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(crate::aws::sdk_message(&e)),
    }
}

/// Removes an expired claim: only the taker that creates the claim's take-over token deletes it.
async fn take_over(
    ssm: &aws_sdk_ssm::Client,
    parameter: &str,
    expired: &Claim,
) -> Result<(), String> {
    let token = format!(
        "{parameter}-takeover-{}",
        expired
            .id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>()
    );
    let won = ssm
        .put_parameter()
        .name(&token)
        .value(holder())
        .r#type(ParameterType::String)
        .overwrite(false)
        .send()
        .await;
    match won {
        Ok(_) => {
            // Still that expired claim? (It cannot have been renewed: its holder is gone.)
            if read(ssm, parameter)
                .await?
                .is_some_and(|c| c.id == expired.id)
            {
                delete(ssm, parameter).await?;
            }
            let _ = delete(ssm, &token).await;
            Ok(())
        }
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(PutParameterError::ParameterAlreadyExists(_))
            ) =>
        {
            // Another taker is on it; give it a moment.
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(())
        }
        Err(e) => Err(crate::aws::sdk_message(&e)),
    }
}

async fn delete(ssm: &aws_sdk_ssm::Client, parameter: &str) -> Result<(), String> {
    match ssm.delete_parameter().name(parameter).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(DeleteParameterError::ParameterNotFound(_))
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(crate::aws::sdk_message(&e)),
    }
}

/// Renews the claim every third of the lease while it is still ours.
async fn renew(ssm: aws_sdk_ssm::Client, parameter: String, claim: Claim, lease: Duration) {
    let claim = Arc::new(claim);
    loop {
        tokio::time::sleep(lease / 3).await;
        match read(&ssm, &parameter).await {
            Ok(Some(current)) if current.id == claim.id => {}
            _ => return, // lost (should not happen within the lease): stop renewing
        }
        let renewed = Claim {
            renewed_at: now(),
            ..(*claim).clone()
        };
        let Ok(value) = serde_json::to_string(&renewed) else {
            return;
        };
        let _ = ssm
            .put_parameter()
            .name(&parameter)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await;
    }
}

impl Held {
    /// Releases the lock (when still ours and within the lease).
    pub(crate) async fn release(self) {
        self.renewal.abort();
        if let Ok(Some(current)) = read(&self.ssm, &self.parameter).await
            && current.id == self.claim.id
            && !current.expired(now())
            && let Err(error) = delete(&self.ssm, &self.parameter).await
        {
            tracing::warn!("cannot release the deploy lock {}: {error}", self.parameter);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_expire_after_their_lease() {
        let claim = Claim {
            id: "a".into(),
            holder: "h".into(),
            renewed_at: 100,
            lease_s: 60,
        };
        assert!(!claim.expired(160));
        assert!(claim.expired(161));
    }
}
