//! Helpers for deployer's end-to-end tests, which run against real parts on 127.0.0.1: a moto
//! server (AWS), a distribution registry (images) and a real image builder (Docker or buildah).
//!
//! `cargo xtask test` starts a fresh test bed, runs `cargo test --workspace` with
//! `DEPLOYER_TESTBED` naming the bed's file, and stops the bed. By hand: `cargo xtask testbed up`,
//! then any `cargo test`, then `cargo xtask testbed down`.
//!
//! A test names the parts it needs; a part that is absent (no bed file, not installed, not
//! answering) fails the test with a message naming the part and how to start it. Only the
//! explicit opt-out `DEPLOYER_TESTBED_OPTIONAL=1` turns that into a visible "skipped" line.
//!
//! ```ignore
//! use deployer_tests::{testbed, unique_name};
//!
//! #[tokio::test]
//! async fn parameter_round_trip() {
//!     let Some(bed) = testbed!(moto) else { return };
//!     let ssm = aws_sdk_ssm::Client::new(&bed.sdk_config().await);
//!     let name = format!("/{}", unique_name("param"));
//!     ssm.put_parameter().name(&name).value("v1").r#type(aws_sdk_ssm::types::ParameterType::String).send().await.unwrap();
//! }
//! ```
//!
//! - [`Testbed`] (through [`testbed!`]): the endpoints, an SDK config for moto
//!   ([`Testbed::sdk_config`]), the environment for a child `deployer` ([`Testbed::env`]), the
//!   registry ([`Registry`]) and the image builder ([`Builder`]).
//! - [`FixtureRepo`]: a temporary git repository to write, commit and edit files in.
//! - [`Deployer`]: runs the already built `deployer` binary ([`deployer_bin`]), or a crate's
//!   example program ([`example_bin`]), and returns its exit code, stdout and stderr. Tests
//!   never build the workspace themselves.
//! - [`unique_name`]: names that do not collide between tests sharing one moto.
//! - [`http`]: a tiny blocking HTTP/1.1 client for the registry and moto's own endpoints.
//! - [`FaultProxy`] ([`faultproxy`]): a fault-injecting proxy in front of moto, one per test
//!   (throttling, HTTP 500/503, dropped connections, latency, holds), and its counts.
//! - [`LiveRun`]: a `deployer` run whose progress lines arrive as they are printed, to act at a
//!   phase boundary (SIGKILL); [`deployer_command`] builds its command.
//! - [`ExampleRepo`] ([`example`]): the example monorepo with its infrastructure in moto, and what
//!   its services run, read straight from moto.
#![warn(missing_docs)]
// A test-support library: failing loudly (panicking) is how a helper reports a broken setup.
#![allow(clippy::missing_panics_doc)]

mod bed;
mod deployer;
pub mod example;
pub mod faultproxy;
mod fixture;
pub mod http;
mod live;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use bed::{
    Builder, BuilderOutput, MANIFEST_ACCEPT, Moto, Part, REGION, Registry, Testbed,
    file_path as testbed_file, sha256_digest,
};
pub use deployer::{Deployer, RunOutput, deployer_bin, example_bin};
pub use example::ExampleRepo;
pub use faultproxy::{FaultProxy, Faults, ProxyStats};
pub use fixture::FixtureRepo;
pub use live::{LiveRun, ProgressLine, deployer_command};

/// The test bed with the named parts (`moto`, `registry`, `builder`), or `None` when a part is
/// absent and `DEPLOYER_TESTBED_OPTIONAL=1` is set (the test should return). Without the
/// opt-out, an absent part fails the test with a message naming it.
///
/// ```ignore
/// let Some(bed) = testbed!(moto, registry, builder) else { return };
/// ```
#[macro_export]
macro_rules! testbed {
    (@part moto) => { $crate::Part::Moto };
    (@part registry) => { $crate::Part::Registry };
    (@part builder) => { $crate::Part::Builder };
    ($($part:ident),* $(,)?) => {
        $crate::Testbed::get(&[$($crate::testbed!(@part $part)),*])
    };
}

/// A name no other test of any run on the same bed uses: `<prefix>-<run>-<n>`, lowercase
/// letters, digits and `-` (valid for SSM, ECR, ECS, Lambda, S3). `<run>` mixes the pid and
/// the start time; `<n>` counts up within the process.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", run_id())
}

/// Like [`unique_name`] with `_` instead of `-` (AgentCore runtime names allow no `-`).
pub fn unique_ident(prefix: &str) -> String {
    unique_name(prefix).replace('-', "_")
}

fn run_id() -> &'static str {
    static RUN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!("{:x}{:04x}", std::process::id(), nanos & 0xffff)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_stay_plain() {
        let a = unique_name("svc");
        let b = unique_name("svc");
        assert_ne!(a, b);
        assert!(a.starts_with("svc-"));
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{a}"
        );
        assert!(!unique_ident("rt").contains('-'));
    }
}
