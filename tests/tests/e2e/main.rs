//! End-to-end tests: the real `deployer` and the AWS SDK against the local test bed (moto,
//! a distribution registry, a real image builder). One binary, one module per area.
//!
//! Run them all with `cargo xtask test`, or start a bed with `cargo xtask testbed up` and use
//! `cargo test -p deployer-tests`. A test that needs an absent part fails naming it, unless
//! `DEPLOYER_TESTBED_OPTIONAL=1` is set (then it prints "skipped: …" and returns).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agentcore;
mod build_inputs;
mod ci_workflow;
mod codebuild;
mod config;
mod diagnosis;
mod ecs;
mod examples;
mod faults;
mod flow_trust;
mod force;
mod hostile;
mod iac;
mod iam;
mod image_pipeline;
mod kills;
mod lambda;
mod lock;
mod lock_trust;
mod logs;
mod monorepo;
mod order;
mod rollback_targets;
mod sagemaker;
mod smoke;
mod testbed_smoke;
