//! One deploy per service at a time: a lock with a lease, kept in the [`Store`] next to the
//! service's records, so it needs no infrastructure of its own.
//!
//! # Protocol
//!
//! - **Claim**: `create(<lock>, {"id", "holder", "renewed_at", "renewed_at_ms", "lease_s"})`.
//!   The store's create-if-absent is atomic: of two deploys exactly one creates it. A run
//!   recognises its own claim by its `id`, so a create whose answer was lost (the client
//!   retried it and was told "already exists") is still the run's own.
//! - **Lease**: the holder renews its claim every sixth of the lease (re-reading it first: a
//!   claim that is not its own any more is lost for good). A failed renewal is tried again a
//!   quarter of that later. The holder may act until **two thirds of a lease** after the moment it *sent*
//!   its last successful renewal (client-go's "renew deadline shorter than the lease"); past
//!   that it has lost the lock and stops. Every mutating call of the run passes the claim's
//!   [`Fence`] first, and the engine re-reads the claim (its id, the fencing token) before
//!   each step that changes something, so a run that lost its claim — renewals failing,
//!   lease passed, claim replaced or deleted — stops before its next change.
//! - **Take-over** of an expired claim (`now > renewed_at + lease`, by the waiter's clock):
//!   the taker first creates `<lock>-takeover-<claim id>` (create-if-absent: one taker per
//!   expired claim wins), re-reads the lock and deletes it only if it still holds that expired
//!   claim, then deletes its token; then everyone competes again with the atomic create. A
//!   token has its own expiry: one older than a lease (its `created_at_ms`, else the store's
//!   modification time) belongs to a taker that died, and is removed.
//! - **Release**: the holder deletes the claim when done, only while it is still its own and
//!   valid; a failed delete is retried within its own time budget, and reported when it still
//!   fails (the claim then expires by itself after a lease).
//! - **Waits** (`--lock-wait`) have a deadline that every branch honours: waiting for a live
//!   holder, for a take-over in progress, or for a stale token to be cleared.
//!
//! # Clock assumption
//!
//! Claims carry wall-clock times, so the clocks of the machines that deploy the same service
//! must agree to within **a sixth of the lease** (10 s for the default 60 s lease; NTP keeps
//! them within milliseconds). Then a holder stops acting (2/3 of a lease after its last
//! renewal) before any waiter can see its claim expired (a full lease after it, minus the
//! skew), with a sixth of a lease to spare for a call sent just before the deadline to land.
//! Renewal calls are bounded by a sixth of the lease for the same reason.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deployer_core::{Fence, Phase, Progress};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::{Clock, millis};
use crate::store::{Entry, Store, StoreError};

/// The default lease.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// The shortest lease accepted (renewals every lease/6 must stay meaningful).
pub const MIN_LEASE: Duration = Duration::from_secs(2);
/// How long a release keeps retrying a failed delete.
const RELEASE_BUDGET: Duration = Duration::from_secs(30);

/// Why a lock could not be taken or kept.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LockError {
    /// Another deploy holds the lock and the wait ran out.
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
    /// Another deploy is taking over an expired claim and the wait ran out.
    #[error(
        "another deploy of `{service}` is taking over its expired deploy lock {parameter} ({holder}); retry with a longer --lock-wait, or delete {parameter}-takeover-* if no deploy runs"
    )]
    TakeOver {
        /// The service.
        service: String,
        /// Who is taking it over.
        holder: String,
        /// The lock parameter.
        parameter: String,
    },
    /// The run held the lock and cannot prove it still does.
    #[error("lost the deploy lock {parameter}: {reason}; stopped before the next change")]
    Lost {
        /// The lock parameter.
        parameter: String,
        /// Why, one line.
        reason: String,
    },
    /// The store failed.
    #[error("the deploy lock: {0}")]
    Store(#[from] StoreError),
}

/// A claim on a service: the lock parameter's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClaimDoc {
    /// Unique per claim: the fencing token.
    pub(crate) id: String,
    /// Who holds it, for people: host, pid, CI run.
    pub(crate) holder: String,
    /// When the claim was written or last renewed (seconds since the epoch).
    pub(crate) renewed_at: u64,
    /// The same in milliseconds (absent in claims of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) renewed_at_ms: Option<u64>,
    /// How long it stays valid without renewal (seconds).
    pub(crate) lease_s: u64,
}

impl ClaimDoc {
    fn renewed_ms(&self) -> u64 {
        self.renewed_at_ms
            .unwrap_or(self.renewed_at.saturating_mul(1000))
    }

    fn expired(&self, now_ms: u64) -> bool {
        now_ms
            > self
                .renewed_ms()
                .saturating_add(self.lease_s.saturating_mul(1000))
    }

    /// The claim in `entry`; a value that is not a claim is an anonymous one that expires a
    /// lease after it was written (so that it can be taken over, but not at once).
    fn parse(entry: &Entry, lease: Duration) -> ClaimDoc {
        serde_json::from_str(&entry.value).unwrap_or_else(|_| {
            let modified = entry.modified.map(millis).unwrap_or(0);
            ClaimDoc {
                id: format!("unreadable-{:016x}", fnv(&entry.value)),
                holder: "an unreadable lock value".into(),
                renewed_at: modified / 1000,
                renewed_at_ms: Some(modified),
                lease_s: lease.as_secs(),
            }
        })
    }
}

/// A take-over token's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct TokenDoc {
    id: String,
    holder: String,
    created_at_ms: u64,
}

/// Takes and keeps deploy locks in one store.
#[derive(Clone)]
pub struct Locks {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    lease: Duration,
    holder: String,
}

impl std::fmt::Debug for Locks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locks")
            .field("lease", &self.lease)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl Locks {
    /// Locks in `store`, with claims of `lease` (at least [`MIN_LEASE`]) naming `holder`
    /// (host, pid, CI run: what the other deploy's message shows).
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        lease: Duration,
        holder: impl Into<String>,
    ) -> Self {
        Locks {
            store,
            clock,
            lease: lease.max(MIN_LEASE),
            holder: holder.into(),
        }
    }

    /// The lease.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    fn renew_every(&self) -> Duration {
        self.lease / 6
    }

    fn renew_deadline(&self) -> Duration {
        self.lease * 2 / 3
    }

    /// Takes the lock `parameter` for `service`, waiting up to `wait` for another holder (or a
    /// take-over in progress). The claim is renewed in the background until it is released or
    /// dropped.
    pub async fn acquire(
        &self,
        parameter: &str,
        service: &str,
        wait: Duration,
        progress: &Progress,
    ) -> Result<Claim, LockError> {
        let deadline = Instant::now() + wait;
        let id = new_id();
        let mut delay = Duration::from_millis(500);
        let mut announced = String::new();
        // Competing again at once after a release or a take-over, a few times in a row at most:
        // then it counts as waiting, with the deadline check.
        let mut at_once = 0;
        loop {
            let now_ms = self.clock.now_ms();
            let doc = ClaimDoc {
                id: id.clone(),
                holder: self.holder.clone(),
                renewed_at: now_ms / 1000,
                renewed_at_ms: Some(now_ms),
                lease_s: self.lease.as_secs(),
            };
            let sent = Instant::now();
            if self.store.create(parameter, &to_json(&doc)).await? {
                return Ok(self.hold(parameter, doc, sent));
            }
            // Someone holds it — or we do: a create whose answer was lost and retried.
            let Some(entry) = self.store.get(parameter).await? else {
                // Released meanwhile: compete again at once.
                if at_once < 3 {
                    at_once += 1;
                    continue;
                }
                if Instant::now() >= deadline {
                    return Err(LockError::Held {
                        service: service.to_owned(),
                        holder: "deploys that take and release it in turn".into(),
                        parameter: parameter.to_owned(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let current = ClaimDoc::parse(&entry, self.lease);
            if current.id == id {
                return Ok(self.hold(parameter, doc, sent));
            }
            let waiting = if current.expired(self.clock.now_ms()) {
                progress.emit(
                    Phase::Check,
                    format!(
                        "taking over the lock of {} (its lease expired)",
                        current.holder
                    ),
                );
                match self.take_over(parameter, &current).await? {
                    TakeOver::Done if at_once < 3 => {
                        at_once += 1;
                        continue;
                    }
                    TakeOver::Done => LockError::TakeOver {
                        service: service.to_owned(),
                        holder: current.holder,
                        parameter: parameter.to_owned(),
                    },
                    TakeOver::Busy(holder) => LockError::TakeOver {
                        service: service.to_owned(),
                        holder,
                        parameter: parameter.to_owned(),
                    },
                }
            } else {
                if announced != current.id {
                    progress.emit(
                        Phase::Check,
                        format!(
                            "waiting for another deploy of this service to finish: {}",
                            current.holder
                        ),
                    );
                    announced.clone_from(&current.id);
                }
                LockError::Held {
                    service: service.to_owned(),
                    holder: current.holder,
                    parameter: parameter.to_owned(),
                }
            };
            at_once = 0;
            let now = Instant::now();
            if now >= deadline {
                return Err(waiting);
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 3 / 2).min(Duration::from_secs(5));
        }
    }

    /// Removes the expired claim `expired` when this run wins its take-over token.
    async fn take_over(&self, parameter: &str, expired: &ClaimDoc) -> Result<TakeOver, LockError> {
        let token = token_name(parameter, &expired.id);
        let doc = TokenDoc {
            id: new_id(),
            holder: self.holder.clone(),
            created_at_ms: self.clock.now_ms(),
        };
        if !self.store.create(&token, &to_json(&doc)).await? {
            let Some(entry) = self.store.get(&token).await? else {
                return Ok(TakeOver::Done); // gone meanwhile: try again
            };
            let theirs = serde_json::from_str::<TokenDoc>(&entry.value).ok();
            if theirs.as_ref().is_none_or(|t| t.id != doc.id) {
                let created = theirs
                    .as_ref()
                    .map(|t| t.created_at_ms)
                    .or(entry.modified.map(millis))
                    .unwrap_or(0);
                let age_ms = self.clock.now_ms().saturating_sub(created);
                if u128::from(age_ms) <= self.lease.as_millis() {
                    let holder = theirs.map_or_else(|| "another deploy".to_owned(), |t| t.holder);
                    return Ok(TakeOver::Busy(holder));
                }
                // A taker that died between creating its token and deleting the claim: its
                // token is stale. Remove it (if it is still that one) and compete again.
                if self
                    .store
                    .get(&token)
                    .await?
                    .is_some_and(|again| again.value == entry.value)
                {
                    self.store.delete(&token).await?;
                }
                return Ok(TakeOver::Done);
            }
            // Our own token: its create's answer was lost.
        }
        if let Some(entry) = self.store.get(parameter).await?
            && ClaimDoc::parse(&entry, self.lease).id == expired.id
        {
            self.store.delete(parameter).await?;
        }
        self.store.delete(&token).await?;
        Ok(TakeOver::Done)
    }

    fn hold(&self, parameter: &str, doc: ClaimDoc, sent: Instant) -> Claim {
        let state = Arc::new(ClaimState {
            parameter: parameter.to_owned(),
            doc,
            valid_until: Mutex::new(sent + self.renew_deadline()),
            lost: Mutex::new(None),
            last_error: Mutex::new(None),
            writes: tokio::sync::Mutex::new(false),
        });
        let renewal = tokio::spawn(renew(self.clone(), state.clone()));
        Claim {
            locks: self.clone(),
            state,
            renewal,
        }
    }
}

enum TakeOver {
    /// The expired claim is gone (or was never ours to remove): compete again.
    Done,
    /// Another taker holds the token (who).
    Busy(String),
}

/// What a held claim knows about itself; shared with its renewal task.
#[derive(Debug)]
struct ClaimState {
    parameter: String,
    doc: ClaimDoc,
    /// The claim may be acted on until then (monotonic).
    valid_until: Mutex<Instant>,
    /// Set for good once the claim is known lost.
    lost: Mutex<Option<String>>,
    /// The last renewal failure, for the message when the claim lapses.
    last_error: Mutex<Option<String>>,
    /// Held by a renewal's read-and-write and by each release attempt's read-and-delete, so
    /// that they never interleave (a renewal's write landing after the release's delete would
    /// put the claim back); `true` once released: no renewal writes after that.
    writes: tokio::sync::Mutex<bool>,
}

impl ClaimState {
    fn lose(&self, reason: String) {
        let mut lost = lock(&self.lost);
        if lost.is_none() {
            *lost = Some(reason);
        }
    }

    fn problem(&self) -> Option<String> {
        if let Some(reason) = lock(&self.lost).clone() {
            return Some(reason);
        }
        if Instant::now() >= *lock(&self.valid_until) {
            let cause = lock(&self.last_error)
                .clone()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            return Some(format!("its lease could not be renewed in time{cause}"));
        }
        None
    }
}

impl Fence for ClaimState {
    fn check(&self) -> Result<(), String> {
        match self.problem() {
            None => Ok(()),
            Some(reason) => Err(format!("lost the deploy lock {}: {reason}", self.parameter)),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A held deploy lock. Renewed in the background until [`Claim::release`]; dropping it stops
/// the renewal and leaves the claim to expire (what a killed run leaves).
#[derive(Debug)]
pub struct Claim {
    locks: Locks,
    state: Arc<ClaimState>,
    renewal: JoinHandle<()>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

impl Claim {
    /// The claim's id (its fencing token).
    pub fn id(&self) -> &str {
        &self.state.doc.id
    }

    /// The lock parameter.
    pub fn parameter(&self) -> &str {
        &self.state.parameter
    }

    /// The fence every mutating call made under this claim passes.
    pub fn fence(&self) -> Arc<dyn Fence> {
        self.state.clone()
    }

    /// Whether the claim is still valid by this run's own account (no remote call).
    pub fn check(&self) -> Result<(), LockError> {
        match self.state.problem() {
            None => Ok(()),
            Some(reason) => Err(self.lost(reason)),
        }
    }

    /// Proves the claim before a step that changes something: valid by this run's account,
    /// and the lock still holds this claim's id. A failed read leaves the local proof standing
    /// (the lease covers it); an answer naming another claim, or none, loses the claim.
    pub async fn verify(&self) -> Result<(), LockError> {
        self.check()?;
        match self.locks.store.get(&self.state.parameter).await {
            Ok(Some(entry)) => {
                let current = ClaimDoc::parse(&entry, self.locks.lease);
                if current.id != self.state.doc.id {
                    let reason = format!("it is now held by {}", current.holder);
                    self.state.lose(reason.clone());
                    return Err(self.lost(reason));
                }
            }
            Ok(None) => {
                let reason = "the lock parameter was deleted".to_owned();
                self.state.lose(reason.clone());
                return Err(self.lost(reason));
            }
            Err(_) => {}
        }
        self.check()
    }

    fn lost(&self, reason: String) -> LockError {
        LockError::Lost {
            parameter: self.state.parameter.clone(),
            reason,
        }
    }

    /// Releases the lock: deletes the claim while it is still this run's and valid, retrying a
    /// failed delete for a while (the renewal goes on between the tries). Each try waits for a
    /// renewal in flight to finish, so that no renewal write lands after the delete and puts
    /// the claim back. `Err` says why the claim was left behind (it then expires after a
    /// lease).
    pub async fn release(self) -> Result<(), LockError> {
        let deadline = Instant::now() + RELEASE_BUDGET;
        let mut delay = Duration::from_millis(200);
        let result = loop {
            if let Err(error) = self.check() {
                break Err(error);
            }
            let attempt = async {
                let mut released = self.state.writes.lock().await;
                match self.locks.store.get(&self.state.parameter).await? {
                    Some(entry)
                        if ClaimDoc::parse(&entry, self.locks.lease).id == self.state.doc.id =>
                    {
                        self.locks.store.delete(&self.state.parameter).await?;
                    }
                    // Not ours any more (or gone): nothing of ours to release.
                    _ => {}
                }
                *released = true;
                Ok(())
            };
            match attempt.await {
                Ok(()) => break Ok(()),
                Err(error) if Instant::now() + delay >= deadline => {
                    break Err(LockError::Store(error));
                }
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(4));
                }
            }
        };
        self.renewal.abort();
        result
    }
}

/// Renews `state`'s claim every sixth of the lease until it is lost, the task is aborted, or
/// renewals have failed for longer than the renew deadline. A failed renewal is tried again
/// after a quarter of that interval, not a whole one.
async fn renew(locks: Locks, state: Arc<ClaimState>) {
    let every = locks.renew_every();
    let mut next = every;
    loop {
        tokio::time::sleep(next).await;
        next = every / 4;
        let started = Instant::now();
        if state.problem().is_some() {
            let reason = state
                .problem()
                .unwrap_or_else(|| "its lease could not be renewed in time".into());
            state.lose(reason);
            return;
        }
        // Never beside a release attempt: the claim it deleted stays deleted.
        let released = state.writes.lock().await;
        if *released {
            return;
        }
        // Bounded: a renewal that lands long after it was sent could revive a claim a taker
        // has replaced meanwhile (see the clock assumption).
        let outcome = tokio::time::timeout(every, renew_once(&locks, &state)).await;
        drop(released);
        match outcome {
            Ok(Ok(Renewal::Renewed)) => {
                *lock(&state.valid_until) = started + locks.renew_deadline();
                *lock(&state.last_error) = None;
                next = every;
            }
            Ok(Ok(Renewal::Lost(reason))) => {
                state.lose(reason);
                return;
            }
            Ok(Err(error)) => *lock(&state.last_error) = Some(error.to_string()),
            Err(_) => {
                *lock(&state.last_error) = Some(format!(
                    "a renewal had no answer within {}",
                    humantime::format_duration(every)
                ));
            }
        }
    }
}

enum Renewal {
    Renewed,
    Lost(String),
}

async fn renew_once(locks: &Locks, state: &ClaimState) -> Result<Renewal, StoreError> {
    match locks.store.get(&state.parameter).await? {
        Some(entry) => {
            let current = ClaimDoc::parse(&entry, locks.lease);
            if current.id != state.doc.id {
                return Ok(Renewal::Lost(format!(
                    "it is now held by {}",
                    current.holder
                )));
            }
        }
        None => return Ok(Renewal::Lost("the lock parameter was deleted".into())),
    }
    let now_ms = locks.clock.now_ms();
    let renewed = ClaimDoc {
        renewed_at: now_ms / 1000,
        renewed_at_ms: Some(now_ms),
        ..state.doc.clone()
    };
    locks
        .store
        .put(&state.parameter, &to_json(&renewed))
        .await?;
    Ok(Renewal::Renewed)
}

/// `<lock>-takeover-<claim id>`, with only characters SSM names allow.
fn token_name(parameter: &str, claim_id: &str) -> String {
    let id: String = claim_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!("{parameter}-takeover-{id}")
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Plain structs of strings and numbers always serialise.
    serde_json::to_string(value).unwrap_or_default()
}

/// A claim or token id unique across processes and within one: pid, time, counter.
fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}-{:x}-{n:x}", std::process::id(), nanos)
}

/// FNV-1a, for a stable id of an unreadable lock value.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
