//! Why one service's flow failed.

use deployer_core::DeployError;

use crate::lock::LockError;
use crate::ports::External;
use crate::store::StoreError;

/// Why one service's flow failed. Messages say what failed and what to do, in one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The target (read, update, wait).
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// The records.
    #[error("records: {0}")]
    Store(#[from] StoreError),
    /// The deploy lock.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Something the caller provides (a build, a push, a deployer it cannot build).
    #[error(transparent)]
    External(#[from] External),
    /// The smoke check failed.
    #[error("{0}")]
    Smoke(String),
    /// Nothing to act on (no earlier deploy recorded to roll back to, …): exit code 2.
    #[error("{0}")]
    Usage(String),
    /// The artifact a rollback goes back to no longer exists (an image removed from its
    /// registry, a deleted Lambda version): found before anything was changed; exit code 1.
    #[error("cannot roll back to {artifact}: {why}; nothing was changed")]
    Gone {
        /// The artifact (its deploy id).
        artifact: String,
        /// What removed it, as far as the registry or service says.
        why: String,
    },
    /// A service it depends on did not deploy.
    #[error("skipped: the service it depends on, `{0}`, did not deploy")]
    Skipped(String),
    /// The flow's task ended without a result (it panicked): a bug.
    #[error("internal error: {0}; nothing was recorded for it")]
    Internal(String),
    /// A failure, and what happened next (`rolled back to …`).
    #[error("{context}: {source}")]
    Context {
        /// What happened.
        context: String,
        /// The failure.
        #[source]
        source: Box<EngineError>,
    },
}

impl EngineError {
    /// `self`, prefixed with what happened.
    pub fn context(self, context: impl Into<String>) -> Self {
        EngineError::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// Whether this is a usage or configuration problem (exit code 2) rather than a deploy
    /// that ran and failed (exit code 1).
    pub fn is_usage(&self) -> bool {
        match self {
            EngineError::Deploy(error) => error.is_config(),
            EngineError::External(error) => error.usage,
            EngineError::Usage(_) => true,
            EngineError::Context { source, .. } => source.is_usage(),
            _ => false,
        }
    }

    /// Whether the target's wait ran out of time (the rollout may still finish).
    pub fn is_timeout(&self) -> bool {
        match self {
            EngineError::Deploy(DeployError::Timeout { .. }) => true,
            EngineError::Context { source, .. } => source.is_timeout(),
            _ => false,
        }
    }
}
