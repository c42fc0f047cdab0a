//! The [`LambdaZipDeployer`]: skip when the function's `CodeSha256` is the zip's, else upload
//! (directly, or through S3 above the direct-upload limit), wait, publish, alias.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use deployer_core::manifest::LambdaZipTarget;
use deployer_core::poll::PollPolicy;
use deployer_core::progress::Phase;
use deployer_core::{Applied, Artifact, DeployError, Deployer, LiveState, Progress, ZipArtifact};
use deployer_lambda::{Code, Function, PackageKind, api_error, code_is_live};

/// The largest zip sent inside the `UpdateFunctionCode` request: 52,363,264 bytes, 50 MiB less
/// 64 KiB. Larger zips go through S3.
///
/// Two limits apply to a direct upload. Lambda refuses a zip of 50 MiB or more ("Zipped size
/// must be smaller than 52428800 bytes"), and it refuses a request body above a size fixed for
/// the operation: the JSON request carries the zip base64-encoded, 4 bytes per 3, and that
/// limit was 69,905,067 bytes (exactly base64 of 50 MiB) before AWS raised it to 70,167,211.
/// 50 MiB less 64 KiB encodes to 69,817,688 bytes, leaving more than 80 KB for the JSON around
/// it under the older, tighter limit, so this threshold passes both checks wherever either
/// applies, while nearly all of the 50 MiB stays usable.
pub const MAX_DIRECT_UPLOAD: u64 = 50 * 1024 * 1024 - 64 * 1024;

/// Deploys deterministic zips to one Lambda zip function.
#[derive(Clone, Debug)]
pub struct LambdaZipDeployer {
    function: Function,
    s3: Option<aws_sdk_s3::Client>,
    bucket: Option<String>,
    key_prefix: String,
}

impl LambdaZipDeployer {
    /// The deployer for `target`. Zips above [`MAX_DIRECT_UPLOAD`] are uploaded with `s3` to
    /// `target.s3_bucket` under `<key_prefix><tag>.zip`; without a bucket they are an error
    /// naming the limit.
    pub fn new(
        client: aws_sdk_lambda::Client,
        target: LambdaZipTarget,
        s3: Option<aws_sdk_s3::Client>,
        key_prefix: String,
    ) -> Self {
        LambdaZipDeployer {
            function: Function::new(client, target.lambda, PackageKind::Zip),
            s3,
            bucket: target.s3_bucket,
            key_prefix,
        }
    }

    /// The policy for the waits made before the update (until a running update settled, and
    /// retries of `ResourceConflictException`); the default is ten minutes. The wait after the
    /// update uses the policy given to [`Deployer::wait`].
    pub fn with_policy(mut self, policy: PollPolicy) -> Self {
        self.function = self.function.with_policy(policy);
        self
    }

    /// The code to send: the zip itself, or its S3 location once uploaded.
    async fn code(&self, zip: &ZipArtifact, progress: &Progress) -> Result<Code, DeployError> {
        if zip.size <= MAX_DIRECT_UPLOAD {
            return Ok(Code::ZipFile(zip.bytes.clone()));
        }
        let Some(bucket) = &self.bucket else {
            return Err(DeployError::Mismatch(format!(
                "the zip for {} is {} bytes, above the {MAX_DIRECT_UPLOAD} bytes (50 MiB less 64 KiB) Lambda accepts in an UpdateFunctionCode request; set `s3_bucket` on the service to upload it through S3",
                self.function.target().function,
                zip.size
            )));
        };
        let Some(s3) = &self.s3 else {
            return Err(DeployError::Mismatch(format!(
                "the zip for {} is above Lambda's direct-upload limit of {MAX_DIRECT_UPLOAD} bytes and `s3_bucket` is set, but this deployer was built without an S3 client",
                self.function.target().function
            )));
        };
        let key = format!("{}{}.zip", self.key_prefix, zip.tag);
        // The key names the content: an object of the same size there is this zip, uploaded
        // by an earlier deploy that stopped later. Any failure to look just means "upload".
        let uploaded = s3.head_object().bucket(bucket).key(&key).send().await;
        if uploaded.is_ok_and(|head| head.content_length() == i64::try_from(zip.size).ok()) {
            progress.emit(
                Phase::Push,
                format!("s3://{bucket}/{key} is already uploaded"),
            );
        } else {
            progress.emit(
                Phase::Push,
                format!(
                    "uploading the zip ({} bytes) to s3://{bucket}/{key}",
                    zip.size
                ),
            );
            s3.put_object()
                .bucket(bucket)
                .key(&key)
                .content_type("application/zip")
                .body(ByteStream::from(zip.bytes.to_vec()))
                .send()
                .await
                .map_err(|error| api_error("PutObject", &error))?;
        }
        Ok(Code::S3 {
            bucket: bucket.clone(),
            key,
        })
    }
}

#[async_trait]
impl Deployer for LambdaZipDeployer {
    fn target(&self) -> String {
        self.function.describe()
    }

    async fn read_live(&self) -> Result<LiveState, DeployError> {
        self.function.read_live().await
    }

    /// The function's `CodeSha256` is the zip's base64 SHA-256 (and, publishing, a published
    /// version holds it too: see `deployer_lambda::Function::is_current`).
    fn is_current(&self, live: &LiveState, wanted: &Artifact) -> bool {
        self.function.is_current(live, wanted)
    }

    async fn apply(
        &self,
        live: &LiveState,
        wanted: &Artifact,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let Artifact::Zip(zip) = wanted else {
            return Err(DeployError::Mismatch(format!(
                "{} deploys zips, not {wanted}",
                self.function.describe()
            )));
        };
        let code = if code_is_live(live, wanted) {
            None
        } else {
            Some(self.code(zip, progress).await?)
        };
        self.function
            .apply(
                live,
                code,
                Some(&zip.sha256_b64),
                zip.sha256_b64.clone(),
                progress,
            )
            .await
    }

    async fn wait(
        &self,
        applied: &Applied,
        policy: &PollPolicy,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        self.function.wait(applied, policy, progress).await
    }

    /// A zip's bytes are not kept: roll back by pointing the alias at the version the earlier
    /// deploy published (`publish = true` and `alias` required).
    async fn rollback(
        &self,
        live: &LiveState,
        previous: &Applied,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        self.function
            .restore(live, previous, &self.function.policy(), progress)
            .await
    }
}
