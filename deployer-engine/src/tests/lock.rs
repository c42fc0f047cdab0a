//! The lock protocol against an in-memory store with scripted faults, on tokio's paused clock:
//! deadlines in every branch, stale take-over tokens, lost answers, renewals that fail.

use std::sync::Arc;
use std::time::Duration;

use deployer_core::Progress;
use tokio::time::Instant;

use super::fakes::{Fault, RunStore, SharedStore, Steps, VirtualClock, lock};
use crate::lock::{LockError, Locks};
use crate::store::Store;

const LOCK: &str = "/p/svc/lock";
const LEASE: Duration = Duration::from_secs(6);

struct Bed {
    shared: Arc<SharedStore>,
    clock: VirtualClock,
}

impl Bed {
    fn new() -> Self {
        let clock = VirtualClock::new(Instant::now(), 0);
        Bed {
            shared: SharedStore::new(clock.clone()),
            clock,
        }
    }

    fn store(
        &self,
        run: usize,
        faults: impl FnMut(&str, &str) -> Fault + Send + 'static,
    ) -> Arc<RunStore> {
        Arc::new(RunStore {
            shared: self.shared.clone(),
            run,
            faults: std::sync::Mutex::new(Box::new(faults)),
            steps: Steps::new(None, Vec::new()),
        })
    }

    fn locks(&self, store: Arc<RunStore>, holder: &str) -> Locks {
        Locks::new(store, Arc::new(self.clock.clone()), LEASE, holder)
    }

    fn now_ms(&self) -> u64 {
        self.clock.true_ms()
    }

    fn value(&self, name: &str) -> Option<String> {
        self.shared.memory.value(name)
    }
}

fn progress() -> Progress {
    Progress::discard("svc")
}

fn clean() -> impl FnMut(&str, &str) -> Fault + Send + 'static {
    |_, _| Fault::None
}

#[tokio::test(start_paused = true)]
async fn a_second_deploy_waits_for_the_first_and_gets_the_lock_after_release() {
    let bed = Bed::new();
    let first = bed.locks(bed.store(1, clean()), "first");
    let second = bed.locks(bed.store(2, clean()), "second");
    let held = first
        .acquire(LOCK, "svc", Duration::ZERO, &progress())
        .await
        .unwrap();
    let waiter = tokio::spawn(async move {
        second
            .acquire(LOCK, "svc", Duration::from_secs(60), &progress())
            .await
    });
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        held.check().is_ok(),
        "renewed meanwhile: still valid after 3 leases"
    );
    held.release().await.unwrap();
    let claim = waiter.await.unwrap().unwrap();
    assert!(bed.value(LOCK).unwrap().contains(claim.id()));
}

#[tokio::test(start_paused = true)]
async fn lock_wait_is_honoured_against_a_live_holder() {
    let bed = Bed::new();
    let _held = bed
        .locks(bed.store(1, clean()), "pid 1 on ci")
        .acquire(LOCK, "svc", Duration::ZERO, &progress())
        .await
        .unwrap();
    let start = Instant::now();
    let error = bed
        .locks(bed.store(2, clean()), "second")
        .acquire(LOCK, "svc", Duration::from_secs(5), &progress())
        .await
        .unwrap_err();
    assert!(
        start.elapsed() <= Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(&error, LockError::Held { holder, .. } if holder == "pid 1 on ci"),
        "{error}"
    );
}

/// The issue's first reproduction: an expired claim and the take-over token a killed taker
/// left behind. The wait ends at `--lock-wait`; once the token is older than a lease it is
/// removed and the take-over proceeds.
#[tokio::test(start_paused = true)]
async fn a_stale_takeover_token_never_outlasts_the_wait_and_expires_after_a_lease() {
    let bed = Bed::new();
    bed.shared
        .memory
        .put(
            LOCK,
            r#"{"id":"x","holder":"h","renewed_at":0,"lease_s":0}"#,
        )
        .await
        .unwrap();
    bed.shared
        .memory
        .put(&format!("{LOCK}-takeover-x"), "pid 9 on a runner that died")
        .await
        .unwrap();
    let locks = bed.locks(bed.store(1, clean()), "me");
    let start = Instant::now();
    let error = locks
        .acquire(LOCK, "svc", Duration::from_secs(5), &progress())
        .await
        .unwrap_err();
    assert!(
        start.elapsed() <= Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(error, LockError::TakeOver { .. }), "{error}");
    // The token is a lease old now: stale. The next try removes it and takes over.
    tokio::time::sleep(LEASE).await;
    let claim = locks
        .acquire(LOCK, "svc", Duration::from_secs(5), &progress())
        .await
        .unwrap();
    assert!(bed.value(LOCK).unwrap().contains(claim.id()));
    assert_eq!(bed.value(&format!("{LOCK}-takeover-x")), None);
    claim.release().await.unwrap();
    assert_eq!(bed.value(LOCK), None);
}

/// Item 10: the answer to the lock's create is lost; the client's retry is told it exists.
/// The claim is recognised as the run's own by its id.
#[tokio::test(start_paused = true)]
async fn a_create_whose_answer_was_lost_is_recognised_as_our_own() {
    let bed = Bed::new();
    let mut first = true;
    let store = bed.store(1, move |op, name| {
        if op == "create" && name == LOCK && std::mem::take(&mut first) {
            Fault::LostAnswer
        } else {
            Fault::None
        }
    });
    let start = Instant::now();
    let claim = bed
        .locks(store, "me")
        .acquire(LOCK, "svc", Duration::ZERO, &progress())
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(bed.value(LOCK).unwrap().contains(claim.id()));
}

/// Item 10: the take-over token's create answer is lost too: the token is ours, the take-over
/// proceeds (no loop on "already exists").
#[tokio::test(start_paused = true)]
async fn a_takeover_token_whose_answer_was_lost_is_ours() {
    let bed = Bed::new();
    let expired = format!(
        r#"{{"id":"old","holder":"h","renewed_at":{},"lease_s":6}}"#,
        bed.now_ms() / 1000 - 60
    );
    bed.shared.memory.put(LOCK, &expired).await.unwrap();
    let store = bed.store(1, |op, name| {
        if op == "create" && name.contains("-takeover-") {
            Fault::LostAnswer
        } else {
            Fault::None
        }
    });
    let start = Instant::now();
    let claim = bed
        .locks(store, "me")
        .acquire(LOCK, "svc", Duration::from_secs(2), &progress())
        .await
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(bed.value(LOCK).unwrap().contains(claim.id()));
    assert_eq!(bed.value(&format!("{LOCK}-takeover-old")), None);
}

/// Item 1: a renewal that fails is retried at the next tick; the claim stays valid.
#[tokio::test(start_paused = true)]
async fn one_failed_renewal_does_not_lose_the_lock() {
    let bed = Bed::new();
    let mut gets = 0;
    let store = bed.store(1, move |op, _| {
        if op == "get" {
            gets += 1;
            // the first renewal's read fails
            if gets == 1 {
                return Fault::Error;
            }
        }
        Fault::None
    });
    let claim = bed
        .locks(store, "me")
        .acquire(LOCK, "svc", Duration::ZERO, &progress())
        .await
        .unwrap();
    tokio::time::sleep(LEASE * 3).await;
    assert!(claim.check().is_ok());
    assert!(claim.verify().await.is_ok());
    // A second deploy cannot take it over.
    let error = bed
        .locks(bed.store(2, clean()), "second")
        .acquire(LOCK, "svc", Duration::ZERO, &progress())
        .await
        .unwrap_err();
    assert!(matches!(error, LockError::Held { .. }), "{error}");
}

/// Item 1: renewals that keep failing: the holder stops acting before any waiter could see
/// its claim expired, and says it lost the lock.
#[tokio::test(start_paused = true)]
async fn renewals_failing_past_the_deadline_lose_the_lock_before_it_expires() {
    let bed = Bed::new();
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = failing.clone();
    let store = bed.store(1, move |op, _| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) && (op == "get" || op == "put") {
            Fault::Error
        } else {
            Fault::None
        }
    });
    let claim = bed
        .locks(store, "me")
        .acquire(LOCK, "svc", Duration::ZERO, &progress())
        .await
        .unwrap();
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let renewed_ms = serde_json::from_str::<serde_json::Value>(&bed.value(LOCK).unwrap()).unwrap()
        ["renewed_at_ms"]
        .as_u64()
        .unwrap();
    // Poll until the holder gives up; it must do so before the claim expires by the clock.
    loop {
        if claim.check().is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lost_at = bed.now_ms();
    assert!(
        lost_at < renewed_ms + u64::try_from(LEASE.as_millis()).unwrap(),
        "lost at {lost_at}, claim renewed at {renewed_ms}"
    );
    let error = claim.check().unwrap_err().to_string();
    assert!(error.contains("lost the deploy lock"), "{error}");
    let fenced = claim.fence().check().unwrap_err();
    assert!(fenced.contains("lost the deploy lock"), "{fenced}");
}

/// Item 1: a claim replaced by another (a taker that saw it expired) is lost at the next
/// renewal or verification, and never written back.
#[tokio::test(start_paused = true)]
async fn a_replaced_claim_is_lost_and_not_written_back() {
    let bed = Bed::new();
    let claim = bed
        .locks(bed.store(1, clean()), "me")
        .acquire(LOCK, "svc", Duration::ZERO, &progress())
        .await
        .unwrap();
    let other =
        r#"{"id":"other","holder":"someone else","renewed_at":0,"renewed_at_ms":0,"lease_s":600}"#;
    bed.shared.memory.put(LOCK, other).await.unwrap();
    let error = claim.verify().await.unwrap_err().to_string();
    assert!(
        error.contains("lost the deploy lock") && error.contains("someone else"),
        "{error}"
    );
    tokio::time::sleep(LEASE * 2).await;
    assert_eq!(bed.value(LOCK).as_deref(), Some(other), "never overwritten");
    claim.release().await.unwrap_err();
    assert_eq!(
        bed.value(LOCK).as_deref(),
        Some(other),
        "not released: not ours"
    );
}

/// Item 10: a release whose delete fails is retried; one that keeps failing is reported.
#[tokio::test(start_paused = true)]
async fn release_retries_and_reports_when_it_cannot() {
    let bed = Bed::new();
    let mut deletes = 0;
    let store = bed.store(1, move |op, _| {
        if op == "delete" {
            deletes += 1;
            if deletes <= 2 {
                return Fault::Error;
            }
        }
        Fault::None
    });
    let claim = bed
        .locks(store, "me")
        .acquire(LOCK, "svc", Duration::ZERO, &progress())
        .await
        .unwrap();
    claim.release().await.unwrap();
    assert_eq!(bed.value(LOCK), None, "released after two failed deletes");

    let store = bed.store(2, |op, _| {
        if op == "delete" {
            Fault::Error
        } else {
            Fault::None
        }
    });
    let claim = bed
        .locks(store, "me")
        .acquire(LOCK, "svc", Duration::ZERO, &progress())
        .await
        .unwrap();
    let start = Instant::now();
    let error = claim.release().await.unwrap_err();
    assert!(
        start.elapsed() <= Duration::from_secs(31),
        "{:?}",
        start.elapsed()
    );
    assert!(error.to_string().contains("DeleteParameter"), "{error}");
    assert!(bed.value(LOCK).is_some());
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_lock_value_expires_a_lease_after_it_was_written() {
    let bed = Bed::new();
    bed.shared.memory.put(LOCK, "garbage").await.unwrap();
    let locks = bed.locks(bed.store(1, clean()), "me");
    let error = locks
        .acquire(LOCK, "svc", Duration::from_secs(1), &progress())
        .await
        .unwrap_err();
    assert!(matches!(error, LockError::Held { .. }), "{error}");
    tokio::time::sleep(LEASE).await;
    let claim = locks
        .acquire(LOCK, "svc", Duration::ZERO, &progress())
        .await
        .unwrap();
    assert!(bed.value(LOCK).unwrap().contains(claim.id()));
    assert!(
        lock(&bed.shared.calls)
            .iter()
            .any(|c| c.name.contains("-takeover-unreadable-"))
    );
}

/// A store whose lock writes, once armed, wait at a gate — and take effect even when the
/// caller stops waiting (a request already sent is applied by SSM whether or not its answer is
/// read): the renewal's `PutParameter` in flight while the run releases the lock.
struct InFlightPuts {
    inner: Arc<super::fakes::RunStore>,
    armed: std::sync::atomic::AtomicBool,
    gate: Arc<tokio::sync::Notify>,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl Store for InFlightPuts {
    async fn get(&self, name: &str) -> Result<Option<crate::store::Entry>, crate::StoreError> {
        self.inner.get(name).await
    }

    async fn get_many(
        &self,
        names: &[String],
    ) -> Result<std::collections::BTreeMap<String, crate::store::Entry>, crate::StoreError> {
        self.inner.get_many(names).await
    }

    async fn put(&self, name: &str, value: &str) -> Result<(), crate::StoreError> {
        if !self.armed.load(std::sync::atomic::Ordering::SeqCst) {
            return self.inner.put(name, value).await;
        }
        let (inner, gate, waiting) = (self.inner.clone(), self.gate.clone(), self.waiting.clone());
        let (name, value) = (name.to_owned(), value.to_owned());
        // Detached: dropping this call's future does not take the request back.
        let sent = tokio::spawn(async move {
            waiting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            gate.notified().await;
            inner.put(&name, &value).await
        });
        sent.await.expect("the write task")
    }

    async fn create(&self, name: &str, value: &str) -> Result<bool, crate::StoreError> {
        self.inner.create(name, value).await
    }

    async fn delete(&self, name: &str) -> Result<bool, crate::StoreError> {
        self.inner.delete(name).await
    }
}

/// The release must not race the renewal: a renewal write still in flight when the claim is
/// deleted would put the claim back, and the lock would outlive a run that exited 0 (seen in
/// `tests/e2e/lock_trust.rs` under SSM throttling, where a renewal's retried write landed after
/// the release's delete). The release stops the renewal and waits for it first.
#[tokio::test(start_paused = true)]
async fn a_renewal_in_flight_cannot_put_the_claim_back_after_the_release() {
    let bed = Bed::new();
    let gate = Arc::new(tokio::sync::Notify::new());
    let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let store = Arc::new(InFlightPuts {
        inner: bed.store(1, clean()),
        armed: std::sync::atomic::AtomicBool::new(false),
        gate: gate.clone(),
        waiting: waiting.clone(),
    });
    let claim = Locks::new(store.clone(), Arc::new(bed.clock.clone()), LEASE, "me")
        .acquire(LOCK, "svc", Duration::ZERO, &progress())
        .await
        .unwrap();
    store.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    // The renewal (every sixth of the lease) reads the claim, then its write hangs in flight.
    tokio::time::sleep(LEASE / 6 + Duration::from_millis(100)).await;
    assert_eq!(
        waiting.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a renewal write is in flight"
    );

    let release = tokio::spawn(claim.release());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The write lands (SSM applies it whoever still waits for its answer).
    gate.notify_one();
    release.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        bed.value(LOCK),
        None,
        "the renewal's write put the released claim back"
    );
}
