//! Every top-level member of the shapes deployer copies, and what it does with it.
//!
//! Member names are the API's (and the JSON body's): `PrimaryContainer`, `ProductionVariants`.
//! The tests hold these tables against the SDK's own schemas: when an SDK upgrade adds a member
//! to `DescribeModelOutput`, `CreateModelInput`, `DescribeEndpointConfigOutput`,
//! `CreateEndpointConfigInput` or `UpdateEndpointInput`, a test fails until the member is placed
//! in a table (and copied, with the fixture extended).

/// `DescribeModel` members copied into `CreateModel` as read (in the targeted containers, the
/// `Image` is replaced).
pub const MODEL_COPIED: &[&str] = &[
    "PrimaryContainer",
    "Containers",
    "InferenceExecutionConfig",
    "ExecutionRoleArn",
    "VpcConfig",
    "EnableNetworkIsolation",
];

/// `DescribeModel` members SageMaker sets itself: not sent.
pub const MODEL_READ_ONLY: &[&str] = &[
    "ModelName",
    "ModelArn",
    "CreationTime",
    "DeploymentRecommendation",
];

/// `CreateModel` members not copied from `DescribeModel`: `ModelName` is deployer's (see the
/// crate doc), `Tags` come from `ListTags` on the live model (minus `aws:` tags, plus
/// `deployer:endpoint`).
pub const MODEL_SET_BY_DEPLOYER: &[&str] = &["ModelName", "Tags"];

/// `DescribeEndpointConfig` members copied into `CreateEndpointConfig` as read (in the targeted
/// variants, the `ModelName` is replaced).
pub const CONFIG_COPIED: &[&str] = &[
    "ProductionVariants",
    "DataCaptureConfig",
    "KmsKeyId",
    "AsyncInferenceConfig",
    "ExplainerConfig",
    "ShadowProductionVariants",
    "ExecutionRoleArn",
    "VpcConfig",
    "EnableNetworkIsolation",
    "MetricsConfig",
];

/// `DescribeEndpointConfig` members SageMaker sets itself: not sent.
pub const CONFIG_READ_ONLY: &[&str] = &["EndpointConfigName", "EndpointConfigArn", "CreationTime"];

/// `CreateEndpointConfig` members not copied from `DescribeEndpointConfig`:
/// `EndpointConfigName` is deployer's, `Tags` come from `ListTags` on the live config.
pub const CONFIG_SET_BY_DEPLOYER: &[&str] = &["EndpointConfigName", "Tags"];

/// `UpdateEndpoint` members and what deployer sends.
pub const UPDATE_ENDPOINT: &[(&str, &str)] = &[
    ("EndpointName", "the manifest's `endpoint`"),
    ("EndpointConfigName", "the new endpoint config"),
    (
        "RetainAllVariantProperties",
        "true: the live instance counts and weights (autoscaling's) are kept",
    ),
    (
        "ExcludeRetainedVariantProperties",
        "not sent: every variant property is retained",
    ),
    (
        "DeploymentConfig",
        "from the manifest's `blue_green`, when given",
    ),
    (
        "RetainDeploymentConfig",
        "true when the manifest gives no `blue_green` and the endpoint has a last deployment config",
    ),
];
