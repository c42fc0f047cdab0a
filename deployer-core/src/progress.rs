//! Progress events: how library code reports what it is doing without printing.
//!
//! A [`Progress`] is bound to one service and forwards [`ProgressEvent`]s to a
//! [`ProgressSink`] chosen by the caller (the cli renders them on stderr; tests collect them).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

/// The phase of one service's deploy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Computing the content hash.
    Hash,
    /// Checking the registry or the live service.
    Check,
    /// Building the artifact.
    Build,
    /// Pushing or uploading the artifact.
    Push,
    /// Reading the live state.
    Read,
    /// Calling the update API.
    Apply,
    /// Waiting for the rollout to settle.
    Wait,
    /// Recording the live tag.
    Record,
    /// Finished (successfully or not).
    Done,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Hash => "hash",
            Phase::Check => "check",
            Phase::Build => "build",
            Phase::Push => "push",
            Phase::Read => "read",
            Phase::Apply => "apply",
            Phase::Wait => "wait",
            Phase::Record => "record",
            Phase::Done => "done",
        })
    }
}

/// One progress report.
#[derive(Clone, Debug, Serialize)]
pub struct ProgressEvent {
    /// The service the event is about.
    pub service: Arc<str>,
    /// The phase the service is in.
    pub phase: Phase,
    /// What happened, in one line. Never contains secret values.
    pub message: String,
    /// Whether this is a detail (a builder's output line, a poll's state) rather than a step.
    /// Renderers may hide details unless asked to be verbose.
    pub detail: bool,
    /// When it happened.
    #[serde(skip)]
    pub at: SystemTime,
}

/// Receives progress events. Implementations must be cheap and must not block.
pub trait ProgressSink: Send + Sync {
    /// Handles one event.
    fn event(&self, event: ProgressEvent);
}

/// A sink that drops every event.
#[derive(Debug, Default)]
pub struct Discard;

impl ProgressSink for Discard {
    fn event(&self, _event: ProgressEvent) {}
}

/// A sink that keeps every event, for tests and summaries.
#[derive(Debug, Default)]
pub struct Collect(Mutex<Vec<ProgressEvent>>);

impl Collect {
    /// The events received so far.
    pub fn events(&self) -> Vec<ProgressEvent> {
        self.0
            .lock()
            .map(|events| events.clone())
            .unwrap_or_default()
    }
}

impl ProgressSink for Collect {
    fn event(&self, event: ProgressEvent) {
        if let Ok(mut events) = self.0.lock() {
            events.push(event);
        }
    }
}

/// A condition that must hold before each mutating call a deployer makes: for a deploy run,
/// "this run still holds a valid claim on the service's deploy lock".
///
/// [`Progress::before_mutation`] asks it; deployers call that right before every call that
/// changes something (registering a revision, updating a service or a function, moving a tag),
/// so a run that lost its claim stops before its next change instead of after its last one.
pub trait Fence: Send + Sync {
    /// `Ok` while mutating calls may be made; `Err` says why not (one line).
    fn check(&self) -> Result<(), String>;
}

/// A progress reporter bound to one service, and the [`Fence`] its mutating calls pass.
#[derive(Clone)]
pub struct Progress {
    service: Arc<str>,
    sink: Arc<dyn ProgressSink>,
    fence: Option<Arc<dyn Fence>>,
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress")
            .field("service", &self.service)
            .field("fenced", &self.fence.is_some())
            .finish_non_exhaustive()
    }
}

impl Progress {
    /// A reporter for `service` that forwards to `sink`.
    pub fn new(service: &str, sink: Arc<dyn ProgressSink>) -> Self {
        Progress {
            service: service.into(),
            sink,
            fence: None,
        }
    }

    /// This reporter with `fence` checked by [`Progress::before_mutation`].
    #[must_use]
    pub fn with_fence(mut self, fence: Arc<dyn Fence>) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Called by deployers right before each mutating call (`call` names it, e.g.
    /// `UpdateService`): `Err` when the fence says no more changes may be made — the caller
    /// returns it at once, without making the call. Without a fence every call may be made.
    pub fn before_mutation(&self, call: &str) -> Result<(), crate::DeployError> {
        match &self.fence {
            Some(fence) => fence.check().map_err(|reason| crate::DeployError::Fenced {
                call: call.to_owned(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// A reporter that drops everything.
    pub fn discard(service: &str) -> Self {
        Progress::new(service, Arc::new(Discard))
    }

    /// The service this reporter is bound to.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Reports a step.
    pub fn emit(&self, phase: Phase, message: impl Into<String>) {
        self.send(phase, message.into(), false);
    }

    /// Reports a detail: a line of a builder's output, a state seen while polling.
    pub fn detail(&self, phase: Phase, message: impl Into<String>) {
        self.send(phase, message.into(), true);
    }

    fn send(&self, phase: Phase, message: String, detail: bool) {
        self.sink.event(ProgressEvent {
            service: self.service.clone(),
            phase,
            message,
            detail,
            at: SystemTime::now(),
        });
    }
}
