//! Lookups: a target field whose value comes from the infrastructure at deploy time instead of
//! being copied into the manifest.
//!
//! ```toml
//! runtime_id = { ssm = "/acme/inference-api/runtime-id" }
//! cluster = { env = "ECS_CLUSTER" }
//! function = { cfn_output = { stack = "AcmeCompute", output = "RenderFunction" } }
//! endpoint = { tf_output = { state = "infra/terraform.tfstate", output = "endpoint_name" } }
//! ```
//!
//! The manifest keeps the lookup ([`crate::Service::lookups`], [`crate::manifest::Project::lookups`]);
//! the caller resolves every lookup once per run, before anything is built, and writes the
//! values in with [`crate::Service::resolve`] / [`crate::manifest::Project::resolve`].

use std::fmt;

use serde::Serialize;

/// Where a field's value comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lookup {
    /// An SSM parameter (String or SecureString).
    Ssm {
        /// The parameter name.
        name: String,
    },
    /// An environment variable of the deploying process.
    Env {
        /// The variable.
        var: String,
    },
    /// An output of a CloudFormation stack (CDK writes its outputs there).
    CfnOutput {
        /// The stack name.
        stack: String,
        /// The output key.
        output: String,
    },
    /// An output of a Terraform state: a local file (relative to the manifest) or `s3://`.
    TfOutput {
        /// The state path.
        state: String,
        /// The output name.
        output: String,
    },
}

impl fmt::Display for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lookup::Ssm { name } => write!(f, "ssm parameter {name}"),
            Lookup::Env { var } => write!(f, "environment variable {var}"),
            Lookup::CfnOutput { stack, output } => {
                write!(f, "CloudFormation output {stack}.{output}")
            }
            Lookup::TfOutput { state, output } => write!(f, "Terraform output {output} of {state}"),
        }
    }
}

/// The fields that may be lookups.
pub const FIELDS: &[&str] = &[
    "cluster",
    "service",
    "runtime_id",
    "function",
    "endpoint",
    "repository",
    "registry",
    "table",
    "prefix",
    "s3_bucket",
    "codebuild.project",
    "codebuild.bucket",
];

const KINDS: &[&str] = &["ssm", "env", "cfn_output", "tf_output"];

/// A literal string or a lookup, parsed from a field's TOML value.
pub(crate) enum Value {
    Literal(String),
    Lookup(Lookup),
}

/// Parses a field's value: a string, or a one-key table naming a lookup.
pub(crate) fn parse(value: &toml::Value) -> Result<Value, (String, Option<String>)> {
    let example = "a string, or a lookup such as { ssm = \"/acme/app/cluster\" }, { env = \"VAR\" }, { cfn_output = { stack = \"S\", output = \"O\" } } or { tf_output = { state = \"infra/terraform.tfstate\", output = \"o\" } }";
    let table = match value {
        toml::Value::String(text) => return Ok(Value::Literal(text.clone())),
        toml::Value::Table(table) => table,
        other => {
            return Err((
                format!("expected {example}, found a {}", other.type_str()),
                None,
            ));
        }
    };
    let mut keys = table.keys();
    let (Some(kind), None) = (keys.next(), keys.next()) else {
        return Err((
            format!("a lookup names exactly one source ({})", KINDS.join(", ")),
            Some(example.into()),
        ));
    };
    let text = |value: &toml::Value, what: &str| -> Result<String, (String, Option<String>)> {
        match value.as_str() {
            Some(text) if !text.is_empty() => Ok(text.to_owned()),
            _ => Err((
                format!("`{kind}` lookup: `{what}` must be a non-empty string"),
                None,
            )),
        }
    };
    let pair =
        |value: &toml::Value, first: &str| -> Result<(String, String), (String, Option<String>)> {
            let Some(inner) = value.as_table() else {
                return Err((
                    format!("`{kind}` takes a table {{ {first} = \"…\", output = \"…\" }}"),
                    None,
                ));
            };
            if let Some(unknown) = inner.keys().find(|k| *k != first && *k != "output") {
                return Err((
                    format!("unknown key `{unknown}` in the `{kind}` lookup"),
                    Some(format!("its keys are `{first}` and `output`")),
                ));
            }
            let a = inner
                .get(first)
                .ok_or_else(|| (format!("the `{kind}` lookup has no `{first}`"), None))?;
            let b = inner
                .get("output")
                .ok_or_else(|| (format!("the `{kind}` lookup has no `output`"), None))?;
            Ok((text(a, first)?, text(b, "output")?))
        };
    let inner = &table[kind.as_str()];
    let lookup = match kind.as_str() {
        "ssm" => {
            let name = text(inner, "ssm")?;
            if !name.starts_with('/') {
                return Err((format!("SSM parameter `{name}` must start with `/`"), None));
            }
            Lookup::Ssm { name }
        }
        "env" => Lookup::Env {
            var: text(inner, "env")?,
        },
        "cfn_output" => {
            let (stack, output) = pair(inner, "stack")?;
            Lookup::CfnOutput { stack, output }
        }
        "tf_output" => {
            let (state, output) = pair(inner, "state")?;
            Lookup::TfOutput { state, output }
        }
        other => {
            let help = crate::manifest::did_you_mean(other, KINDS.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| format!("lookups: {}", KINDS.join(", ")));
            return Err((format!("unknown lookup `{other}`"), Some(help)));
        }
    };
    Ok(Value::Lookup(lookup))
}
