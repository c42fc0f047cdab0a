//! The AWS plumbing every deployer shares, written once: the raw-JSON copy check, secret
//! redaction, and SDK errors classified and shown in one line.
//!
//! It is built on the smithy runtime types alone (`aws-smithy-types`, `aws-smithy-runtime-api`,
//! which every `aws-sdk-*` crate re-exports), so it works with any service's client and adds no
//! service SDK to a build (the zip-only cli keeps its dependency tree; a tidy test checks that
//! this crate depends on no `aws-sdk-*` crate).
//!
//! - [`raw`]: [`ResponseRecorder`] keeps the raw JSON of the response a full replacement is
//!   copied from (the SDK drops members it does not model), [`BodyCheck`] refuses to send a
//!   request body that does not carry every member read back as read, with one comparison rule
//!   (`null` is absent, numbers by value, paths never values).
//! - [`Redactor`]: a resource's secret values (its environment) replaced by `***` in any text
//!   that came from AWS.
//! - [`classify`] ([`ErrorClass`]: throttling, transient, not found, access denied, other) and
//!   [`error_line`] (`Code: message`, never the SDK's `DisplayErrorContext`, whose tail is the
//!   raw response); [`Failure`] and [`api_error`] put both together for a
//!   [`DeployError`](deployer_core::DeployError).
//!
//! # Using it alone
//!
//! Any SDK client: record what a read returned, send it back checked, report failures in one
//! redacted line and poll again only when that can help. `examples/ssm-copy.rs` is a whole
//! program doing that for an SSM parameter
//! (`cargo run -p deployer-aws --example ssm-copy -- <from> <to>`).
//!
//! ```no_run
//! # async fn demo(client: aws_sdk_ssm::Client) -> Result<(), deployer_core::DeployError> {
//! use deployer_aws::{BodyCheck, Failure, Redactor, ResponseRecorder, Unread};
//!
//! let recorder = ResponseRecorder::default();
//! let read = client
//!     .get_parameter()
//!     .name("/app/config")
//!     .customize()
//!     .interceptor(recorder.clone())
//!     .send()
//!     .await
//!     .map_err(|error| deployer_aws::api_error("GetParameter", &error, &Redactor::default()))?;
//! let value = read.parameter().and_then(|p| p.value()).unwrap_or_default();
//! let redactor = Redactor::new([value]);
//!
//! // Send it back whole: every member read (raw, including those this SDK does not model).
//! let raw = recorder.recorded().and_then(|raw| raw.nested("Parameter"));
//! let check = raw.map(|p| BodyCheck::new(p.select(["Name", "Value", "Type"]), Unread::Allowed));
//! let mut put = client
//!     .put_parameter()
//!     .name("/app/config")
//!     .value(value)
//!     .overwrite(true)
//!     .customize();
//! if let Some(check) = &check {
//!     put = put.interceptor(check.clone());
//! }
//! if let Err(error) = put.send().await {
//!     if let Some(paths) = check.as_ref().and_then(BodyCheck::problem) {
//!         return Err(deployer_core::DeployError::Mismatch(format!(
//!             "the copy would lose {}", paths.join(", ")
//!         )));
//!     }
//!     let failure = Failure::new(&error, &redactor);
//!     if failure.is_retryable() {
//!         // throttled or a passing server problem: poll again later
//!     }
//!     return Err(failure.into_error("PutParameter"));
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod error;
pub mod raw;
mod redact;

pub use error::{ErrorClass, Failure, api_error, classify, error_line};
pub use raw::{BodyCheck, RawJson, ResponseRecorder, Unread};
pub use redact::Redactor;
