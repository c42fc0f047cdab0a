//! Where the engine keeps its records and its lock: a small key-value store with one atomic
//! operation, create-if-absent.
//!
//! SSM Parameter Store is the implementation deployer uses ([`crate::ssm::SsmStore`]: no
//! infrastructure to provision); [`MemoryStore`] is the in-memory one for tests and for tools
//! that keep state elsewhere. The lock ([`crate::lock`]) needs exactly these five operations;
//! the records ([`crate::records`]) need `get_many` and `put`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;

/// A stored value and when it was last written (by the store's own clock, when it keeps one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The value.
    pub value: String,
    /// When the store last wrote it (SSM's `LastModifiedDate`), if known.
    pub modified: Option<SystemTime>,
}

/// A store call that failed (after the client's own retries), in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} {name} failed: {message}")]
pub struct StoreError {
    /// The operation, e.g. `PutParameter`.
    pub operation: &'static str,
    /// The name it was about.
    pub name: String,
    /// What failed, one line.
    pub message: String,
}

/// The store the engine's records and lock live in.
///
/// Every method is one remote call (or a few, for batches), already retried by the client;
/// an `Err` is final for that call.
#[async_trait]
pub trait Store: Send + Sync {
    /// The entry `name`, or `None` when it does not exist.
    async fn get(&self, name: &str) -> Result<Option<Entry>, StoreError>;

    /// The entries that exist among `names` (absent names are simply missing from the map).
    /// Implementations batch (SSM: 10 names per `GetParameters`).
    async fn get_many(&self, names: &[String]) -> Result<BTreeMap<String, Entry>, StoreError> {
        let mut found = BTreeMap::new();
        for name in names {
            if let Some(entry) = self.get(name).await? {
                found.insert(name.clone(), entry);
            }
        }
        Ok(found)
    }

    /// Writes `value`, replacing any earlier one.
    async fn put(&self, name: &str, value: &str) -> Result<(), StoreError>;

    /// Writes `value` only when `name` does not exist: `true` when this call created it,
    /// `false` when it already existed. Atomic: of two concurrent creates exactly one wins.
    ///
    /// A create whose answer was lost and retried by the client may report `false` although
    /// it did create the entry: callers recognise their own value (the lock compares ids).
    async fn create(&self, name: &str, value: &str) -> Result<bool, StoreError>;

    /// Deletes `name`: `true` when it existed.
    async fn delete(&self, name: &str) -> Result<bool, StoreError>;
}

/// A [`Store`] in memory. Its entries carry the time given by the clock it was built with.
pub struct MemoryStore {
    entries: Mutex<BTreeMap<String, Entry>>,
    now: Box<dyn Fn() -> SystemTime + Send + Sync>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.snapshot())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_clock(SystemTime::now)
    }
}

impl MemoryStore {
    /// An empty store whose `modified` times come from `now`.
    pub fn with_clock(now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        MemoryStore {
            entries: Mutex::new(BTreeMap::new()),
            now: Box::new(now),
        }
    }

    /// Every entry, by name.
    pub fn snapshot(&self) -> BTreeMap<String, Entry> {
        self.lock().clone()
    }

    /// The value of `name`, if any.
    pub fn value(&self, name: &str) -> Option<String> {
        self.lock().get(name).map(|entry| entry.value.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn entry(&self, value: &str) -> Entry {
        Entry {
            value: value.to_owned(),
            modified: Some((self.now)()),
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, name: &str) -> Result<Option<Entry>, StoreError> {
        Ok(self.lock().get(name).cloned())
    }

    async fn put(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let entry = self.entry(value);
        self.lock().insert(name.to_owned(), entry);
        Ok(())
    }

    async fn create(&self, name: &str, value: &str) -> Result<bool, StoreError> {
        let entry = self.entry(value);
        let mut entries = self.lock();
        if entries.contains_key(name) {
            return Ok(false);
        }
        entries.insert(name.to_owned(), entry);
        Ok(true)
    }

    async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.lock().remove(name).is_some())
    }
}
