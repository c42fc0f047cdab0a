//! A target made of items (a config set, as `deployer-config` deploys it) through the same
//! flows: the set is an artifact made in process, its hash is the tag, the no-op path reads
//! and writes nothing beyond the records and the target's one read, `plan` carries the item
//! changes, and `rollback` hands the target the recorded set's identity to restore.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deployer_core::poll::PollPolicy;
use deployer_core::{
    Applied, Artifact, Change, Changes, ConfigArtifact, DeployError, Deployer, ItemChange,
    LiveState, Manifest, Progress, Service,
};

use super::fakes::lock;
use crate::engine::{Engine, Mode};
use crate::lock::Locks;
use crate::outcome::Action;
use crate::ports::{Artifacts, Built, External, ServiceInput, SmokeChecks, Targets};
use crate::store::MemoryStore;
use crate::{SystemClock, records::ServiceState};

fn set(n: u8) -> ConfigArtifact {
    let sha256 = format!("{n:02x}").repeat(32);
    ConfigArtifact {
        tag: sha256[..24].to_owned(),
        sha256,
        items: 2,
        bytes: Arc::from(vec![n]),
    }
}

/// What the fake store holds: the set applied last (its marker), and the calls made.
#[derive(Default)]
struct Store_ {
    applied: Option<String>,
    reads: usize,
    writes: Vec<String>,
    restored: Vec<String>,
}

struct ConfigTarget(Arc<Mutex<Store_>>);

#[async_trait]
impl Deployer for ConfigTarget {
    fn target(&self) -> String {
        "table t".into()
    }

    async fn read_live(&self) -> Result<LiveState, DeployError> {
        let mut store = lock(&self.0);
        store.reads += 1;
        Ok(LiveState {
            artifact: store.applied.clone(),
            ids: BTreeMap::new(),
            summary: "table t".into(),
        })
    }

    async fn apply(
        &self,
        live: &LiveState,
        wanted: &Artifact,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let Artifact::Config(config) = wanted else {
            return Err(DeployError::Mismatch(format!("not a set: {wanted}")));
        };
        assert!(!config.bytes.is_empty(), "apply is given the set itself");
        progress.before_mutation("TransactWriteItems")?;
        lock(&self.0).writes.push(wanted.deploy_id());
        Ok(Applied {
            old_artifact: live.artifact.clone(),
            new_artifact: wanted.deploy_id(),
            ids: BTreeMap::from([("table".into(), "t".into())]),
        })
    }

    async fn wait(
        &self,
        applied: &Applied,
        _: &PollPolicy,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        progress.before_mutation("PutParameter")?;
        lock(&self.0).applied = Some(applied.new_artifact.clone());
        Ok(applied.clone())
    }

    async fn changes(
        &self,
        _: &LiveState,
        wanted: &Artifact,
    ) -> Result<Option<Changes>, DeployError> {
        Ok(Some(Changes {
            items: vec![ItemChange {
                item: format!("pk={}", wanted.tag()),
                change: Change::Added,
                attributes: Vec::new(),
            }],
        }))
    }

    async fn rollback(
        &self,
        live: &LiveState,
        previous: &Applied,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        progress.before_mutation("TransactWriteItems")?;
        lock(&self.0).restored.push(previous.new_artifact.clone());
        Ok(Applied {
            old_artifact: live.artifact.clone(),
            new_artifact: previous.new_artifact.clone(),
            ids: previous.ids.clone(),
        })
    }
}

struct OneTarget(Arc<Mutex<Store_>>);

impl Targets for OneTarget {
    fn deployer(&self, _: &Service) -> Result<Box<dyn Deployer>, External> {
        Ok(Box::new(ConfigTarget(self.0.clone())))
    }
}

/// The caller's artifacts: the set made in process, never a registry.
struct Local;

#[async_trait]
impl Artifacts for Local {
    async fn find(
        &self,
        _: &Service,
        input: &ServiceInput,
        _: &Progress,
    ) -> Result<Option<Artifact>, External> {
        Ok(input.local.clone())
    }

    async fn build(&self, _: &Service, _: &ServiceInput, _: &Progress) -> Result<Built, External> {
        Err(External::failure("a set is never built"))
    }

    async fn digest(&self, _: &str, _: &str) -> Result<Option<String>, External> {
        Ok(None)
    }
}

struct NoSmoke;

#[async_trait]
impl SmokeChecks for NoSmoke {
    async fn run(
        &self,
        _: &Service,
        _: &deployer_core::manifest::Smoke,
        _: &BTreeMap<String, String>,
        _: &Progress,
    ) -> Result<String, String> {
        Ok(String::new())
    }
}

struct Bed {
    _dir: tempfile::TempDir,
    manifest: Arc<Manifest>,
    records: Arc<MemoryStore>,
    target: Arc<Mutex<Store_>>,
}

impl Bed {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        let text = r#"[project]
name = "m"

[services.repos]
kind = "config"
source = "config"
dynamodb = { table = "t", key = ["pk"] }
s3_bucket = "b"
"#;
        let path = dir.path().join("deployer.toml");
        std::fs::write(&path, text).unwrap();
        let manifest = Arc::new(Manifest::load(&path).unwrap());
        Bed {
            _dir: dir,
            manifest,
            records: Arc::new(MemoryStore::default()),
            target: Arc::new(Mutex::new(Store_::default())),
        }
    }

    async fn run(&self, mode: Mode, artifact: Option<&ConfigArtifact>) -> crate::ServiceResult {
        let locks = Locks::new(
            self.records.clone(),
            Arc::new(SystemClock),
            Duration::from_secs(6),
            "test",
        );
        let engine = Engine::new(
            self.manifest.clone(),
            self.records.clone(),
            locks,
            Arc::new(OneTarget(self.target.clone())),
            Arc::new(Local),
            Arc::new(NoSmoke),
        );
        let input = match artifact {
            Some(set) => ServiceInput {
                service: "repos".into(),
                tag: set.tag.clone(),
                local: Some(Artifact::Config(set.clone())),
                bases: BTreeMap::new(),
            },
            None => ServiceInput::untagged("repos"),
        };
        let mut results = engine.run(mode, vec![input], std::future::pending()).await;
        results.pop().unwrap()
    }

    fn state(&self) -> ServiceState {
        self.records
            .value("/m/repos/deploy-state")
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn a_set_deploys_records_and_then_is_a_no_op() {
    let bed = Bed::new();
    let first = set(1);
    let result = bed.run(Mode::Deploy { wait: true }, Some(&first)).await;
    assert_eq!(result.action, Action::Updated, "{result:?}");
    assert_eq!(
        bed.records.value("/m/repos/image-tag").as_deref(),
        Some(first.tag.as_str())
    );
    assert_eq!(
        bed.state().current.unwrap().artifact,
        Artifact::Config(first.clone()).deploy_id()
    );
    assert_eq!(lock(&bed.target).writes.len(), 1);

    // The no-op path: one read of the target, the records, no lock, no write.
    let before = bed.records.snapshot();
    let reads = lock(&bed.target).reads;
    let result = bed.run(Mode::Deploy { wait: true }, Some(&first)).await;
    assert_eq!(result.action, Action::Unchanged, "{result:?}");
    assert_eq!(lock(&bed.target).reads, reads + 1);
    assert_eq!(lock(&bed.target).writes.len(), 1);
    assert_eq!(bed.records.snapshot(), before);
}

#[tokio::test]
async fn plan_carries_the_item_changes_only_when_a_deploy_would_write() {
    let bed = Bed::new();
    let first = set(1);
    bed.run(Mode::Deploy { wait: true }, Some(&first)).await;
    let unchanged = bed.run(Mode::Plan, Some(&first)).await;
    assert_eq!(unchanged.action, Action::Unchanged);
    assert!(unchanged.changes.is_none());
    let second = set(2);
    let planned = bed.run(Mode::Plan, Some(&second)).await;
    assert_eq!(planned.action, Action::Deploy);
    let changes = planned.changes.expect("a plan of a set lists its items");
    assert_eq!(changes.items[0].item, format!("pk={}", second.tag));
    assert_eq!(lock(&bed.target).writes.len(), 1, "plan writes nothing");
}

#[tokio::test]
async fn rollback_restores_the_previous_set_by_its_identity() {
    let bed = Bed::new();
    let (first, second) = (set(1), set(2));
    bed.run(Mode::Deploy { wait: true }, Some(&first)).await;
    bed.run(Mode::Deploy { wait: true }, Some(&second)).await;
    let result = bed.run(Mode::Rollback, None).await;
    assert_eq!(result.action, Action::RolledBack, "{result:?}");
    let first_id = Artifact::Config(first.clone()).deploy_id();
    assert_eq!(lock(&bed.target).restored, std::slice::from_ref(&first_id));
    assert_eq!(
        bed.records.value("/m/repos/image-tag").as_deref(),
        Some(first.tag.as_str())
    );
    let state = bed.state();
    assert_eq!(state.current.unwrap().artifact, first_id);
    assert_eq!(
        state.previous.unwrap().artifact,
        Artifact::Config(second).deploy_id()
    );
}
