//! The [`LambdaZipDeployer`]: skip when the function's `CodeSha256` is the zip's, else upload
//! (directly, or through S3 above the direct-upload limit), wait, publish, alias. The
//! `Deployer` is `deployer_lambda::LambdaDeployer`; this module is its [`ZipPackage`].

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use deployer_aws::{Redactor, api_error};
use deployer_core::manifest::LambdaZipTarget;
use deployer_core::progress::Phase;
use deployer_core::{Artifact, DeployError, Progress, ZipArtifact};
use deployer_lambda::{Code, Function, LambdaDeployer, Package, PackageKind};

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

/// Deploys deterministic zips to one Lambda zip function:
/// `LambdaZipDeployer::new(client, target.lambda, ZipPackage::new(&target, s3, key_prefix))`.
pub type LambdaZipDeployer = LambdaDeployer<ZipPackage>;

/// The code of a zip function: the zip inline up to [`MAX_DIRECT_UPLOAD`], above it uploaded
/// to the service's `s3_bucket`. A zip's bytes are not kept, so an earlier deploy is restored
/// by pointing the alias back at the version it published (`publish = true` and `alias`).
#[derive(Clone, Debug)]
pub struct ZipPackage {
    s3: Option<aws_sdk_s3::Client>,
    bucket: Option<String>,
    key_prefix: String,
}

impl ZipPackage {
    /// Zips above [`MAX_DIRECT_UPLOAD`] are uploaded with `s3` to `target.s3_bucket` under
    /// `<key_prefix><tag>.zip`; without a bucket they are an error naming the limit.
    pub fn new(
        target: &LambdaZipTarget,
        s3: Option<aws_sdk_s3::Client>,
        key_prefix: String,
    ) -> Self {
        ZipPackage {
            s3,
            bucket: target.s3_bucket.clone(),
            key_prefix,
        }
    }

    /// The code to send: the zip itself, or its S3 location once uploaded.
    async fn upload(
        &self,
        function: &Function,
        zip: &ZipArtifact,
        progress: &Progress,
    ) -> Result<Code, DeployError> {
        if zip.size <= MAX_DIRECT_UPLOAD {
            return Ok(Code::ZipFile(zip.bytes.clone()));
        }
        let Some(bucket) = &self.bucket else {
            return Err(DeployError::Mismatch(format!(
                "the zip for {} is {} bytes, above the {MAX_DIRECT_UPLOAD} bytes (50 MiB less 64 KiB) Lambda accepts in an UpdateFunctionCode request; set `s3_bucket` on the service to upload it through S3",
                function.target().function,
                zip.size
            )));
        };
        let Some(s3) = &self.s3 else {
            return Err(DeployError::Mismatch(format!(
                "the zip for {} is above Lambda's direct-upload limit of {MAX_DIRECT_UPLOAD} bytes and `s3_bucket` is set, but this deployer was built without an S3 client",
                function.target().function
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
            progress.before_mutation("PutObject")?;
            s3.put_object()
                .bucket(bucket)
                .key(&key)
                .content_type("application/zip")
                .body(ByteStream::from(zip.bytes.to_vec()))
                .send()
                .await
                .map_err(|error| api_error("PutObject", &error, &Redactor::default()))?;
        }
        Ok(Code::S3 {
            bucket: bucket.clone(),
            key,
        })
    }
}

#[async_trait]
impl Package for ZipPackage {
    const KIND: PackageKind = PackageKind::Zip;

    /// The function's `CodeSha256` is the zip's base64 SHA-256.
    fn identity(
        &self,
        target: &str,
        wanted: &Artifact,
    ) -> Result<(String, Option<String>), DeployError> {
        let zip = wanted.expect_zip(target)?;
        Ok((zip.sha256_b64.clone(), Some(zip.sha256_b64.clone())))
    }

    async fn code(
        &self,
        function: &Function,
        wanted: &Artifact,
        progress: &Progress,
    ) -> Result<Code, DeployError> {
        let zip = wanted.expect_zip(&function.describe())?;
        self.upload(function, zip, progress).await
    }

    fn restores_versions(&self) -> bool {
        true
    }
}
