//! `deployer iam-policy` against what a deploy really does: the example monorepo
//! (`examples/acme`) is deployed with `deploy --all` under an access key of its own, the test
//! bed's request recorder (`xtask/testbed/patches/zz_recorder.py`) lists every AWS call that
//! key made, and each call is checked, action by action, against the policy `iam-policy`
//! printed beforehand:
//!
//! - every call (and what it implies: `iam:PassRole` for the roles a `RegisterTaskDefinition` or
//!   `UpdateAgentRuntime` passes on, `ecs:TagResource` for the tags a new revision is created
//!   with) is allowed by some statement: action (with the wildcards IAM allows), resource ARN
//!   (`*` and `?` globs) and conditions (`StringEquals`, `StringLike`);
//! - and the other way round, every (action, resource) pair the policy grants was needed by
//!   some call, except the ones listed in [`NOT_EXERCISED`] with the reason a deploy of this
//!   example does not reach them.
//!
//! The evaluator is deliberately small and independent of the cli's policy builder: the ARN
//! of each call is derived here from the call's own parameters, the way AWS's service
//! authorization reference describes it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use deployer_tests::{Deployer, FixtureRepo, REGION, RunOutput, Testbed, testbed, unique_name};
use serde_json::Value;

/// moto's account.
const ACCOUNT: &str = "123456789012";

/// Grants the deploys of these tests do not exercise, each with the reason: `(action, what, why)`,
/// where `what` ends the resource or the statement's Sid. A pair of the policy that no call
/// needed must be listed here.
const NOT_EXERCISED: &[(&str, &str, &str)] = &[
    (
        "logs:FilterLogEvents",
        "LogsOnFailure",
        "read only after a failed rollout (the diagnosis's log tail) and by `deployer logs` (tests/e2e/diagnosis.rs, logs.rs)",
    ),
    (
        "logs:GetLogEvents",
        "LogStreamsOnFailure",
        "ECS: the failed tasks' last log lines, read only after a failed rollout (tests/e2e/diagnosis.rs)",
    ),
    (
        "ecs:ListTasks",
        "EcsListTasksOnFailure",
        "ECS: the tasks a failed deployment started, read only after a failed rollout (tests/e2e/diagnosis.rs)",
    ),
    (
        "elasticloadbalancing:DescribeTargetHealth",
        "ElbTargetHealthOnFailureAcceptsOnlyStar",
        "ECS behind a load balancer: its targets' health, read only after a failed rollout (tests/e2e/diagnosis.rs)",
    ),
    (
        "ecs:DescribeTasks",
        "EcsTasksOnFailure",
        "ECS: why those tasks stopped, read only after a failed rollout (tests/e2e/diagnosis.rs)",
    ),
    (
        "codebuild:StopBuild",
        "CodeBuildProjects",
        "a build is stopped only when a run is interrupted or its deadline passes (tests/e2e/codebuild.rs stops one)",
    ),
    (
        "ssm:GetParameter",
        "/lock-takeover-*",
        "a lock take-over runs only when a deploy died holding the lock",
    ),
    (
        "ssm:PutParameter",
        "/lock-takeover-*",
        "a lock take-over runs only when a deploy died holding the lock",
    ),
    (
        "ssm:DeleteParameter",
        "/lock-takeover-*",
        "a lock take-over runs only when a deploy died holding the lock",
    ),
    // Emitted only for other configurations than the example's; listed so that the test
    // documents them should the example grow into them.
    (
        "ecr:BatchCheckLayerAvailability",
        "",
        "ECR registry only: the builder's push speaks the registry protocol to the registry, not the API moto records",
    ),
    (
        "ecr:InitiateLayerUpload",
        "",
        "ECR registry only: pushed by the builder over the registry protocol",
    ),
    (
        "ecr:UploadLayerPart",
        "",
        "ECR registry only: pushed by the builder over the registry protocol",
    ),
    (
        "ecr:CompleteLayerUpload",
        "",
        "ECR registry only: pushed by the builder over the registry protocol",
    ),
    (
        "ecr:PutImage",
        "",
        "ECR registry only: pushed by the builder over the registry protocol",
    ),
    (
        "ecr:BatchGetImage",
        "",
        "ECR registry only: the builder's manifest check over the registry protocol",
    ),
    (
        "ecr:GetDownloadUrlForLayer",
        "",
        "ECR registry only: the image config (its platform) read through the ECR API",
    ),
    (
        "s3:PutObject",
        "*",
        "zips above Lambda's direct-upload limit only (`s3_bucket`)",
    ),
    (
        "s3:GetObject",
        "*",
        "zips above Lambda's direct-upload limit only (`s3_bucket`)",
    ),
    (
        "lambda:ListVersionsByFunction",
        "",
        "publishing without an alias only",
    ),
    (
        "sagemaker:DeleteModel",
        "-*",
        "cleanup of copies older than `keep` only (the SageMaker test reaches it, a single deploy does not)",
    ),
    (
        "sagemaker:DeleteEndpointConfig",
        "-*",
        "cleanup of copies older than `keep` only (the SageMaker test reaches it, a single deploy does not)",
    ),
    (
        "sagemaker:UpdateEndpoint",
        "SageMakerLiveConfig",
        "a rollback to the config that was live when the policy was made",
    ),
    (
        "lambda:ListTags",
        "IacOwner",
        "authorizes the tags GetFunction returns to `status` and `plan` (the IaC revert guard), no call of its own",
    ),
    (
        "bedrock-agentcore:ListTagsForResource",
        "IacOwner",
        "`status` and `plan` read the runtime's stack-name tag (the IaC revert guard; the iac test reaches it), a deploy does not",
    ),
    (
        "bedrock-agentcore:InvokeAgentRuntime",
        "/runtime-endpoint/DEFAULT",
        "the invoke names the runtime; the DEFAULT endpoint is the qualifier AWS may authorize instead",
    ),
];

// ------------------------------------------------------------------------------ the evaluator

/// A policy statement as IAM reads it.
#[derive(Debug)]
struct Statement {
    sid: String,
    actions: Vec<String>,
    resources: Vec<String>,
    /// (operator, key, values)
    conditions: Vec<(String, String, Vec<String>)>,
}

/// One authorization IAM makes for a call.
#[derive(Debug, Clone)]
struct Request {
    action: String,
    resource: String,
    context: BTreeMap<&'static str, String>,
    /// The call it came from, for messages.
    call: String,
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn parse_policy(document: &Value) -> Vec<Statement> {
    assert_eq!(document["Version"], "2012-10-17", "{document}");
    document["Statement"]
        .as_array()
        .expect("Statement is a list")
        .iter()
        .map(|s| {
            assert_eq!(s["Effect"], "Allow", "{s}");
            assert!(
                s.get("NotAction").is_none() && s.get("NotResource").is_none(),
                "{s}"
            );
            let mut conditions = Vec::new();
            if let Some(operators) = s.get("Condition").and_then(Value::as_object) {
                for (operator, keys) in operators {
                    for (key, values) in keys.as_object().expect("condition keys") {
                        conditions.push((operator.clone(), key.clone(), strings(values)));
                    }
                }
            }
            Statement {
                sid: s["Sid"].as_str().unwrap_or_default().to_owned(),
                actions: strings(&s["Action"]),
                resources: strings(&s["Resource"]),
                conditions,
            }
        })
        .collect()
}

/// IAM's wildcard match: `*` any run of characters, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Actions compare case-insensitively (IAM does); resources case-sensitively.
fn action_matches(pattern: &str, action: &str) -> bool {
    glob(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

fn conditions_hold(statement: &Statement, request: &Request) -> bool {
    statement.conditions.iter().all(|(operator, key, values)| {
        let Some(value) = request.context.get(key.as_str()) else {
            return false;
        };
        match operator.as_str() {
            "StringEquals" => values.iter().any(|v| v == value),
            "StringLike" => values.iter().any(|v| glob(v, value)),
            other => panic!("the evaluator does not know the condition operator {other}"),
        }
    })
}

fn allowed_by<'s>(statements: &'s [Statement], request: &Request) -> Option<&'s Statement> {
    statements.iter().find(|s| {
        s.actions.iter().any(|a| action_matches(a, &request.action))
            && s.resources.iter().any(|r| glob(r, &request.resource))
            && conditions_hold(s, request)
    })
}

// ------------------------------------------------------------ from recorded calls to requests

fn arn(service: &str, resource: &str) -> String {
    format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}")
}

fn param<'c>(call: &'c Value, name: &str) -> Option<&'c str> {
    call["params"].get(name).and_then(Value::as_str)
}

fn lambda_arn(call: &Value, qualified: bool) -> String {
    let name = param(call, "FunctionName").unwrap_or_default();
    let base = if name.starts_with("arn:") {
        name.to_owned()
    } else {
        arn("lambda", &format!("function:{name}"))
    };
    match param(call, "Qualifier").filter(|_| qualified) {
        Some(qualifier) => format!("{base}:{qualifier}"),
        None => base,
    }
}

fn pass_role(role: &str, service: &str, call: &str) -> Request {
    Request {
        action: "iam:PassRole".into(),
        resource: role.to_owned(),
        context: BTreeMap::from([("iam:PassedToService", service.to_owned())]),
        call: call.to_owned(),
    }
}

/// The authorizations IAM makes for one recorded call; `task_definitions` maps a family to the
/// ARN of the revision the deploy registered (`RegisterTaskDefinition` creates it, and its
/// tags are authorized on it).
fn requests(
    call: &Value,
    task_definitions: &BTreeMap<String, String>,
) -> Result<Vec<Request>, String> {
    let service = call["service"].as_str().unwrap_or_default();
    let operation = call["action"].as_str().unwrap_or_default();
    // Named by operation and sequence number only: parameters can hold secret values.
    let described = format!("{service}:{operation} (call {})", call["seq"]);
    let request = |action: &str, resource: String| Request {
        action: action.to_owned(),
        resource,
        context: BTreeMap::new(),
        call: described.clone(),
    };
    let iam_action = format!("{service}:{operation}");
    let one = |resource: String| Ok(vec![request(&iam_action, resource)]);
    match (service, operation) {
        ("ssm", "GetParameter" | "PutParameter" | "DeleteParameter") => {
            let name = param(call, "Name").ok_or("no Name")?;
            one(arn(
                "ssm",
                &format!("parameter/{}", name.trim_start_matches('/')),
            ))
        }
        // A batched read is authorized per parameter it names.
        ("ssm", "GetParameters") => Ok(strings(&call["params"]["Names"])
            .iter()
            .map(|name| {
                request(
                    &iam_action,
                    arn(
                        "ssm",
                        &format!("parameter/{}", name.trim_start_matches('/')),
                    ),
                )
            })
            .collect()),
        ("ecs", "DescribeServices" | "UpdateService") => {
            let cluster = param(call, "cluster").unwrap_or("default");
            let cluster = cluster.rsplit('/').next().unwrap_or(cluster);
            let services = if operation == "UpdateService" {
                strings(&call["params"]["service"])
            } else {
                strings(&call["params"]["services"])
            };
            Ok(services
                .iter()
                .map(|s| {
                    if s.starts_with("arn:") {
                        s.clone()
                    } else {
                        arn("ecs", &format!("service/{cluster}/{s}"))
                    }
                })
                .map(|resource| request(&iam_action, resource))
                .collect())
        }
        ("ecs", "DescribeTaskDefinition") => one("*".into()),
        ("ecs", "RegisterTaskDefinition") => {
            let mut all = vec![request(&iam_action, "*".into())];
            for role in ["taskRoleArn", "executionRoleArn"] {
                if let Some(role) = param(call, role) {
                    all.push(pass_role(role, "ecs-tasks.amazonaws.com", &described));
                }
            }
            let tagged = call["params"]["tags"]
                .as_array()
                .is_some_and(|tags| !tags.is_empty());
            if tagged {
                let family = param(call, "family").ok_or("no family")?;
                let registered = task_definitions.get(family).ok_or_else(|| {
                    format!("no registered revision of {family} in the deploy's report")
                })?;
                let mut tag = request("ecs:TagResource", registered.clone());
                tag.context
                    .insert("ecs:CreateAction", "RegisterTaskDefinition".into());
                all.push(tag);
            }
            Ok(all)
        }
        ("bedrock-agentcore", "GetAgentRuntime" | "UpdateAgentRuntime") => {
            let id = param(call, "agentRuntimeId").ok_or("no agentRuntimeId")?;
            let mut all = vec![request(
                &iam_action,
                arn("bedrock-agentcore", &format!("runtime/{id}")),
            )];
            if let Some(role) = param(call, "roleArn") {
                all.push(pass_role(
                    role,
                    "bedrock-agentcore.amazonaws.com",
                    &described,
                ));
            }
            Ok(all)
        }
        ("bedrock-agentcore", "GetAgentRuntimeEndpoint" | "UpdateAgentRuntimeEndpoint") => {
            let id = param(call, "agentRuntimeId").ok_or("no agentRuntimeId")?;
            let name = param(call, "endpointName").ok_or("no endpointName")?;
            one(arn(
                "bedrock-agentcore",
                &format!("runtime/{id}/runtime-endpoint/{name}"),
            ))
        }
        ("bedrock-agentcore", "InvokeAgentRuntime") => one(param(call, "agentRuntimeArn")
            .ok_or("no agentRuntimeArn")?
            .to_owned()),
        // Read by version or alias: the qualified ARN.
        ("lambda", "GetFunction" | "GetFunctionConfiguration") => one(lambda_arn(call, true)),
        ("lambda", "Invoke") => Ok(vec![request(
            "lambda:InvokeFunction",
            lambda_arn(call, true),
        )]),
        // Authorized on the function itself.
        (
            "lambda",
            "UpdateFunctionCode"
            | "PublishVersion"
            | "ListVersionsByFunction"
            | "GetAlias"
            | "UpdateAlias"
            | "CreateAlias",
        ) => one(lambda_arn(call, false)),
        ("s3", "GetObject" | "PutObject" | "HeadObject") => {
            let action = if operation == "HeadObject" {
                "s3:GetObject"
            } else {
                iam_action.as_str()
            };
            let object = format!(
                "arn:aws:s3:::{}/{}",
                param(call, "Bucket").ok_or("no Bucket")?,
                param(call, "Key").ok_or("no Key")?
            );
            Ok(vec![request(action, object)])
        }
        // A config service's table: read with Scan; a transaction is authorized per write it
        // holds, as that write's own action, on the table.
        ("dynamodb", "Scan") => one(arn(
            "dynamodb",
            &format!("table/{}", param(call, "TableName").ok_or("no TableName")?),
        )),
        ("dynamodb", "TransactWriteItems") => {
            let items = call["params"]["TransactItems"]
                .as_array()
                .ok_or("no TransactItems")?;
            items
                .iter()
                .map(|item| {
                    let (kind, write) = item
                        .as_object()
                        .and_then(|o| o.iter().next())
                        .ok_or("an empty TransactItem")?;
                    let action = match kind.as_str() {
                        "Put" => "dynamodb:PutItem",
                        "Update" => "dynamodb:UpdateItem",
                        "Delete" => "dynamodb:DeleteItem",
                        "ConditionCheck" => "dynamodb:ConditionCheckItem",
                        other => return Err(format!("a TransactItem of kind {other}")),
                    };
                    let table = write["TableName"].as_str().ok_or("no TableName")?;
                    Ok(request(action, arn("dynamodb", &format!("table/{table}"))))
                })
                .collect()
        }
        // IAM names a runtime `runtime/<id>`; moto's ARNs are `agent/<uuid>:<version>`, which
        // the caller maps to the runtime's (through `task_definitions`, the map of names).
        ("bedrock-agentcore", "ListTagsForResource") => {
            let arn = param(call, "resourceArn").ok_or("no resourceArn")?;
            one(task_definitions
                .get(arn)
                .cloned()
                .unwrap_or_else(|| arn.to_owned()))
        }
        ("cloudformation", "DescribeStacks" | "GetTemplate") => one(arn(
            "cloudformation",
            &format!(
                "stack/{}/id",
                param(call, "StackName").ok_or("no StackName")?
            ),
        )),
        ("ecr", "GetAuthorizationToken") => one("*".into()),
        ("ecr", "DescribeImages" | "BatchGetImage") => {
            let registry = param(call, "registryId").unwrap_or(ACCOUNT);
            one(format!(
                "arn:aws:ecr:{REGION}:{registry}:repository/{}",
                param(call, "repositoryName").ok_or("no repositoryName")?
            ))
        }
        ("sagemaker", _) => sagemaker(call, operation, &described),
        // Builds are authorized on their project; a build id is `<project>:<uuid>`.
        ("codebuild", "StartBuild") => one(arn(
            "codebuild",
            &format!(
                "project/{}",
                param(call, "projectName").ok_or("no projectName")?
            ),
        )),
        ("codebuild", "BatchGetBuilds" | "StopBuild") => {
            let ids = if operation == "StopBuild" {
                vec![param(call, "id").ok_or("no id")?.to_owned()]
            } else {
                strings(&call["params"]["ids"])
            };
            ids.iter()
                .map(|id| {
                    let project = id.split_once(':').ok_or("a build id without `:`")?.0;
                    Ok(request(
                        &iam_action,
                        arn("codebuild", &format!("project/{project}")),
                    ))
                })
                .collect()
        }
        // The diagnosis of a failed ECS rollout: its tasks, by cluster.
        ("ecs", "ListTasks") => {
            let cluster = param(call, "cluster").unwrap_or("default");
            let cluster = cluster.rsplit('/').next().unwrap_or(cluster);
            one(arn("ecs", &format!("container-instance/{cluster}/*")))
        }
        ("ecs", "DescribeTasks") => {
            let cluster = param(call, "cluster").unwrap_or("default");
            let cluster = cluster.rsplit('/').next().unwrap_or(cluster);
            Ok(strings(&call["params"]["tasks"])
                .iter()
                .map(|task| {
                    let id = task.rsplit('/').next().unwrap_or(task);
                    request(&iam_action, arn("ecs", &format!("task/{cluster}/{id}")))
                })
                .collect())
        }
        // No resource-level permissions.
        ("elasticloadbalancing", "DescribeTargetHealth") => one("*".into()),
        ("logs", "FilterLogEvents") => one(arn(
            "logs",
            &format!(
                "log-group:{}",
                param(call, "logGroupName").ok_or("no logGroupName")?
            ),
        )),
        ("logs", "GetLogEvents") => one(arn(
            "logs",
            &format!(
                "log-group:{}:log-stream:{}",
                param(call, "logGroupName").ok_or("no logGroupName")?,
                param(call, "logStreamName").ok_or("no logStreamName")?
            ),
        )),
        // Needs no permission.
        ("sts", "GetCallerIdentity") => Ok(Vec::new()),
        _ => Err(format!(
            "the test does not know how IAM authorizes {described}: add it to `requests`"
        )),
    }
}

/// An ARN with its resource part in lower case.
fn lower_resource(arn: &str) -> String {
    let mut parts: Vec<&str> = arn.splitn(6, ':').collect();
    let resource = parts.pop().unwrap_or_default().to_ascii_lowercase();
    format!("{}:{resource}", parts.join(":"))
}

/// SageMaker names its resources in lower case in ARNs.
fn sagemaker(call: &Value, operation: &str, described: &str) -> Result<Vec<Request>, String> {
    let named = |kind: &str, member: &str| -> Result<String, String> {
        let name = param(call, member).ok_or_else(|| format!("no {member}"))?;
        Ok(arn(
            "sagemaker",
            &format!("{kind}/{}", name.to_ascii_lowercase()),
        ))
    };
    let resource = match operation {
        "DescribeEndpoint" | "UpdateEndpoint" => named("endpoint", "EndpointName")?,
        "DescribeEndpointConfig" | "CreateEndpointConfig" | "DeleteEndpointConfig" => {
            named("endpoint-config", "EndpointConfigName")?
        }
        "DescribeModel" | "CreateModel" | "DeleteModel" => named("model", "ModelName")?,
        // As AWS returns them: the name in lower case (moto keeps the case).
        "ListTags" | "AddTags" => {
            lower_resource(param(call, "ResourceArn").ok_or("no ResourceArn")?)
        }
        "ListModels" | "ListEndpointConfigs" => "*".to_owned(),
        other => {
            return Err(format!(
                "the test does not know how IAM authorizes sagemaker:{other}"
            ));
        }
    };
    let request = |action: &str, resource: String| Request {
        action: action.to_owned(),
        resource,
        context: BTreeMap::new(),
        call: described.to_owned(),
    };
    let mut all = vec![request(&format!("sagemaker:{operation}"), resource.clone())];
    // UpdateEndpoint is authorized on the config the endpoint moves to as well.
    if operation == "UpdateEndpoint" {
        all.push(request(
            "sagemaker:UpdateEndpoint",
            named("endpoint-config", "EndpointConfigName")?,
        ));
    }
    if operation.starts_with("Create")
        && call["params"]["Tags"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    {
        all.push(request("sagemaker:AddTags", resource));
    }
    if let Some(role) = param(call, "ExecutionRoleArn") {
        all.push(pass_role(role, "sagemaker.amazonaws.com", described));
    }
    Ok(all)
}

// ------------------------------------------------------------------------------- the example

fn example_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/acme"))
}

fn copy_into(repo: &FixtureRepo, dir: &Path, prefix: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let relative = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            copy_into(repo, &entry.path(), &format!("{relative}/"));
        } else {
            repo.write(&relative, std::fs::read(entry.path()).unwrap());
        }
    }
}

/// The example in a fresh repository, its stand-in infrastructure created in moto under a
/// project name of its own (as `monorepo.rs` does).
fn example(bed: &Testbed) -> FixtureRepo {
    let repo = FixtureRepo::new();
    copy_into(&repo, example_dir(), "");
    let project = unique_name("iam");
    let output = Command::new(&bed.moto().python)
        .current_dir(repo.path())
        .args([
            "infra/create_resources.py",
            "--project",
            &project,
            "--registry",
            &bed.registry().host,
        ])
        .envs(bed.env())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "create_resources.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    repo.write(
        "deployer.toml",
        repo.read("deployer.toml").replace("acme", &project),
    );
    repo.commit("example");
    repo
}

/// `deployer <args>` in the example, signing its AWS calls with `access_key` (the recorder's
/// marker for this run).
fn run(bed: &Testbed, repo: &FixtureRepo, access_key: &str, args: &[&str]) -> RunOutput {
    let mut deployer = Deployer::new()
        .current_dir(repo.path())
        .bed(bed)
        .env("AWS_ACCESS_KEY_ID", access_key)
        .env("ACME_REGISTRY", &bed.registry().host)
        .args(args);
    for (key, value) in &bed.builder().env {
        deployer = deployer.env(key, value);
    }
    deployer.run()
}

/// The calls moto recorded for `access_key`.
fn recorded(bed: &Testbed, access_key: &str) -> Vec<Value> {
    bed.moto().recorded_calls(access_key)
}

#[tokio::test]
async fn the_policy_allows_exactly_what_a_deploy_of_the_example_calls() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let repo = example(bed);
    let services = [
        "app-api",
        "artifact-render",
        "embeddings",
        "inference-api",
        "rag-ingestion",
        "repositories",
    ];

    // The policy, before anything is deployed: it is derived from the live resources.
    let tool_key = unique_name("AKIDIAMPOLICY").to_ascii_uppercase();
    let mut args = vec!["iam-policy"];
    for service in services {
        args.extend(["--service", service]);
    }
    let text = run(bed, &repo, &tool_key, &args);
    text.assert_success();
    let printed: Value = serde_json::from_str(&text.stdout).unwrap_or_else(|e| {
        panic!(
            "iam-policy prints the policy JSON itself ({e}):\n{}",
            text.stdout
        )
    });
    args.push("--json");
    let wrapped = run(bed, &repo, &tool_key, &args);
    wrapped.assert_success();
    let wrapped = wrapped.json();
    assert_eq!(wrapped["policy"], printed, "--json wraps the same policy");
    assert_eq!(wrapped["account"], ACCOUNT);
    let statements = parse_policy(&printed);
    for statement in &statements {
        assert!(
            statement.sid.chars().all(|c| c.is_ascii_alphanumeric()) && !statement.sid.is_empty(),
            "{statement:?}"
        );
        if statement.resources.iter().any(|r| r == "*") {
            assert!(
                statement.sid.ends_with("AcceptsOnlyStar")
                    || statement.sid.ends_with("AcceptOnlyStar"),
                "a `*` must be named in its Sid: {statement:?}"
            );
        }
    }
    let tool_calls = recorded(bed, &tool_key);
    assert!(
        tool_calls.iter().all(|c| ["Get", "Describe", "List"]
            .iter()
            .any(|p| c["action"].as_str().unwrap_or_default().starts_with(p))),
        "iam-policy only reads: {tool_calls:?}"
    );

    // A real deploy of every service, under its own access key.
    let deploy_key = unique_name("AKIDIAMDEPLOY").to_ascii_uppercase();
    let deploy = run(
        bed,
        &repo,
        &deploy_key,
        &[
            "deploy",
            "--all",
            "--json",
            "--builder",
            &bed.builder().name,
        ],
    );
    deploy.assert_success();
    let report = deploy.json();
    for entry in report["services"].as_array().unwrap() {
        assert_eq!(entry["action"], "updated", "{entry}");
    }
    let task_definitions: BTreeMap<String, String> = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["ids"]["task_definition"].as_str())
        .filter_map(|arn| {
            Some((
                arn.rsplit_once('/')?.1.rsplit_once(':')?.0.to_owned(),
                arn.to_owned(),
            ))
        })
        .collect();

    // The config service once more: a row changed and one dropped (update, delete under
    // `prune`), then back to the first set (its kept copy read from S3).
    let row = "config/repositories/acme-api.yaml";
    repo.write(
        row,
        repo.read(row).replace("max_turns: 60", "max_turns: 61"),
    );
    repo.remove("config/repositories/platform.toml");
    repo.commit("change the config");
    for args in [
        &["deploy", "--service", "repositories", "--json"][..],
        &["rollback", "--service", "repositories", "--json"][..],
        &["status", "--service", "repositories", "--json"][..],
    ] {
        let out = run(bed, &repo, &deploy_key, args);
        out.assert_success();
    }

    let summary = verify(
        &statements,
        &recorded(bed, &deploy_key),
        &task_definitions,
        &text.stdout,
    );
    eprintln!("iam (example): {summary}");
}

/// Checks `calls` against the policy both ways (module doc) and says what was checked.
fn verify(
    statements: &[Statement],
    calls: &[Value],
    task_definitions: &BTreeMap<String, String>,
    policy_text: &str,
) -> String {
    assert!(calls.len() > 10, "the recorder saw the deploy: {calls:?}");
    let mut checked = Vec::new();
    let mut problems = Vec::new();
    for call in calls {
        match requests(call, task_definitions) {
            Ok(requests) => checked.extend(requests),
            Err(problem) => problems.push(problem),
        }
    }
    assert!(
        problems.is_empty(),
        "calls the test cannot map:\n{}",
        problems.join("\n")
    );
    assert_allowed(statements, &checked, policy_text);
    verify_needed(statements, calls, checked, policy_text)
}

/// Every request of `checked` is allowed by some statement.
fn assert_allowed(statements: &[Statement], checked: &[Request], policy_text: &str) {
    let denied: Vec<String> = checked
        .iter()
        .filter(|r| allowed_by(statements, r).is_none())
        .map(|r| {
            format!(
                "{} on {} {:?} (from {})",
                r.action, r.resource, r.context, r.call
            )
        })
        .collect();
    assert!(
        denied.is_empty(),
        "the policy denies what the deploy did:\n{}\n\npolicy:\n{policy_text}",
        denied.join("\n"),
    );
}

/// Nothing is granted that no call of `checked` needed, but the documented exceptions; returns
/// what was checked, in a line.
fn verify_needed(
    statements: &[Statement],
    calls: &[Value],
    checked: Vec<Request>,
    policy_text: &str,
) -> String {
    let mut unexercised = Vec::new();
    for statement in statements {
        for action in &statement.actions {
            for resource in &statement.resources {
                let needed = checked.iter().any(|r| {
                    action_matches(action, &r.action)
                        && glob(resource, &r.resource)
                        && conditions_hold(statement, r)
                });
                let documented = NOT_EXERCISED.iter().any(|(a, what, _)| {
                    a == action && (resource.ends_with(what) || statement.sid.ends_with(what))
                });
                if !needed && !documented {
                    unexercised.push(format!("{} {action} on {resource}", statement.sid));
                }
            }
        }
    }
    assert!(
        unexercised.is_empty(),
        "the policy grants what the deploy never needed (add the reason to NOT_EXERCISED if it is right):\n{}\n\npolicy:\n{policy_text}",
        unexercised.join("\n")
    );

    let actions: BTreeSet<&str> = checked.iter().map(|r| r.action.as_str()).collect();
    let pairs: usize = statements
        .iter()
        .map(|s| s.actions.len() * s.resources.len())
        .sum();
    format!(
        "{} calls recorded, {} authorizations checked, {} distinct actions ({}), {} statements, {pairs} granted (action, resource) pairs",
        calls.len(),
        checked.len(),
        actions.len(),
        actions.iter().copied().collect::<Vec<_>>().join(", "),
        statements.len()
    )
}

/// An AgentCore runtime with the named endpoint `prod` (as the IaC would create them), through
/// boto3 with the bed's Python. Returns the runtime id.
fn agentcore_with_endpoint(bed: &Testbed, name: &str) -> String {
    let script = format!(
        r#"
import boto3
c = boto3.client("bedrock-agentcore-control", region_name="{REGION}")
r = c.create_agent_runtime(
    agentRuntimeName="{name}",
    agentRuntimeArtifact={{"containerConfiguration": {{"containerUri": "127.0.0.1:1/deployer-e2e/initial:v1"}}}},
    roleArn="arn:aws:iam::{ACCOUNT}:role/deployer-e2e-agent",
    networkConfiguration={{"networkMode": "PUBLIC"}},
)
c.create_agent_runtime_endpoint(agentRuntimeId=r["agentRuntimeId"], name="prod")
for _ in range(5):
    c.get_agent_runtime_endpoint(agentRuntimeId=r["agentRuntimeId"], endpointName="prod")
print(r["agentRuntimeId"])
"#
    );
    let output = Command::new(&bed.moto().python)
        .args(["-c", &script])
        .envs(bed.env())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "creating the runtime: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn the_policy_allows_exactly_what_agentcore_endpoint_deploys_and_rollbacks_call() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let name = unique_name("iamendpoints");
    let runtime_id = agentcore_with_endpoint(bed, &name.replace('-', "_"));
    let fixture = crate::agentcore::endpoint_fixture(bed, &runtime_id, r#"endpoints = ["prod"]"#);
    let repo = fixture.repo;

    let tool_key = unique_name("AKIDIAMAGENT").to_ascii_uppercase();
    let text = run(bed, &repo, &tool_key, &["iam-policy"]);
    text.assert_success();
    let printed: Value = serde_json::from_str(&text.stdout).unwrap();
    let statements = parse_policy(&printed);
    let endpoints = statements
        .iter()
        .find(|s| s.sid == "AgentAgentCoreEndpoints")
        .unwrap_or_else(|| panic!("no endpoint statement:\n{}", text.stdout));
    assert_eq!(
        endpoints.resources,
        [arn(
            "bedrock-agentcore",
            &format!("runtime/{runtime_id}/runtime-endpoint/prod")
        )]
    );

    // Two deploys (the endpoint moved each time), a rollback (the endpoint moved back, the
    // runtime read at the recorded version) and a status, under one key.
    let deploy_key = unique_name("AKIDIAMAGENTDEPLOY").to_ascii_uppercase();
    let builder = bed.builder().name.clone();
    let deploy = [
        "deploy",
        "--service",
        "agent",
        "--json",
        "--builder",
        &builder,
    ];
    run(bed, &repo, &deploy_key, &deploy).assert_success();
    repo.write("agent/agent.txt", "agent v2\n");
    repo.commit("v2");
    run(bed, &repo, &deploy_key, &deploy).assert_success();
    run(
        bed,
        &repo,
        &deploy_key,
        &["rollback", "--service", "agent", "--json"],
    )
    .assert_success();
    run(bed, &repo, &deploy_key, &["status", "--json"]).assert_success();

    let calls = recorded(bed, &deploy_key);
    for action in [
        "UpdateAgentRuntimeEndpoint",
        "GetAgentRuntimeEndpoint",
        "UpdateAgentRuntime",
    ] {
        assert!(
            calls.iter().any(|c| c["action"] == action),
            "no {action} was recorded"
        );
    }
    // `status`'s IaC guard reads the runtime's tags by moto's ARN (`agent/<uuid>:<version>`);
    // IAM authorizes them on `runtime/<id>`.
    let runtime_arns: BTreeMap<String, String> = calls
        .iter()
        .filter(|c| c["action"] == "ListTagsForResource")
        .filter_map(|c| param(c, "resourceArn"))
        .map(|moto| {
            (
                moto.to_owned(),
                format!("arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:runtime/{runtime_id}"),
            )
        })
        .collect();
    let summary = verify(&statements, &calls, &runtime_arns, &text.stdout);
    eprintln!("iam (agentcore endpoints): {summary}");
}

/// Creates what the infrastructure would for a SageMaker endpoint (boto3 with the bed's Python,
/// so that this binary needs no SageMaker SDK): a model, a config, the endpoint.
fn sagemaker_endpoint(bed: &Testbed, name: &str, image: &str) {
    let script = format!(
        r#"
import boto3
client = boto3.client("sagemaker", region_name="{REGION}")
client.create_model(ModelName="{name}-iac-model", ExecutionRoleArn="arn:aws:iam::{ACCOUNT}:role/{name}-inference",
    PrimaryContainer={{"Image": "{image}", "Environment": {{"LOG_LEVEL": "info"}}}}, Tags=[{{"Key": "team", "Value": "ml"}}])
client.create_endpoint_config(EndpointConfigName="{name}-iac-config", ProductionVariants=[{{"VariantName": "AllTraffic",
    "ModelName": "{name}-iac-model", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}}])
client.create_endpoint(EndpointName="{name}", EndpointConfigName="{name}-iac-config")
"#
    );
    let mut command = Command::new(&bed.moto().python);
    bed.apply_env(&mut command);
    let output = command.args(["-c", &script]).output().expect("run boto3");
    assert!(
        output.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_policy_allows_exactly_what_sagemaker_rollovers_and_their_cleanup_call() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let name = unique_name("iamsm");
    let repository = format!("{name}/inference");
    sagemaker_endpoint(bed, &name, &bed.registry().image(&repository, "bootstrap"));
    let repo = FixtureRepo::new();
    repo.write(
        "inference/Dockerfile",
        "FROM scratch\nCOPY model.txt /model.txt\n",
    )
    .write("inference/model.txt", "model 1\n")
    .write(
        "deployer.toml",
        format!(
            r#"[project]
name = "{name}"
registry = {{ env = "ACME_REGISTRY" }}

[services.inference]
kind = "sagemaker"
dockerfile = "inference/Dockerfile"
context = "inference"
platform = "linux/amd64"
inputs = ["inference/**"]
repository = "{repository}"
endpoint = "{name}"
keep = 1
timeout = "2m"
poll_interval = "1s"
"#
        ),
    );
    repo.commit("fixture");

    let tool_key = unique_name("AKIDIAMSMPOLICY").to_ascii_uppercase();
    let printed = run(bed, &repo, &tool_key, &["iam-policy"]);
    printed.assert_success();
    let document: Value = serde_json::from_str(&printed.stdout).expect("the policy JSON");
    let statements = parse_policy(&document);

    // Three rollovers: the third deletes the first copy (keep = 1 earlier one besides the
    // previous, which is always kept).
    let deploy_key = unique_name("AKIDIAMSMDEPLOY").to_ascii_uppercase();
    for round in 1..=3 {
        repo.write("inference/model.txt", format!("model {round}\n"));
        repo.commit(&format!("model {round}"));
        let deploy = run(
            bed,
            &repo,
            &deploy_key,
            &[
                "deploy",
                "--all",
                "--json",
                "--builder",
                &bed.builder().name,
            ],
        );
        deploy.assert_success();
        assert_eq!(
            deploy.json()["services"][0]["action"],
            "updated",
            "round {round}"
        );
    }
    let calls = recorded(bed, &deploy_key);
    for operation in [
        "CreateModel",
        "CreateEndpointConfig",
        "UpdateEndpoint",
        "DeleteModel",
        "DeleteEndpointConfig",
        "ListModels",
    ] {
        assert!(
            calls.iter().any(|c| c["action"] == operation),
            "the deploys called {operation}"
        );
    }
    let summary = verify(&statements, &calls, &BTreeMap::new(), &printed.stdout);
    eprintln!("iam (sagemaker): {summary}");
}

#[test]
fn the_evaluator_matches_like_iam() {
    assert!(glob(
        "arn:aws:lambda:*:*:function:f:*",
        "arn:aws:lambda:us-east-1:1:function:f:3"
    ));
    assert!(!glob(
        "arn:aws:lambda:us-east-1:1:function:f",
        "arn:aws:lambda:us-east-1:1:function:f:3"
    ));
    assert!(glob("a?c*", "abcdef") && !glob("a?c", "ac"));
    assert!(action_matches("ECS:Describe*", "ecs:DescribeServices"));
    let statements = parse_policy(&serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "P", "Effect": "Allow", "Action": "iam:PassRole", "Resource": ["arn:aws:iam::1:role/r"],
            "Condition": {"StringEquals": {"iam:PassedToService": ["ecs-tasks.amazonaws.com"]}}}]
    }));
    let mut pass = pass_role("arn:aws:iam::1:role/r", "ecs-tasks.amazonaws.com", "test");
    assert!(allowed_by(&statements, &pass).is_some());
    pass.context
        .insert("iam:PassedToService", "lambda.amazonaws.com".into());
    assert!(
        allowed_by(&statements, &pass).is_none(),
        "the condition binds"
    );
    pass.context.clear();
    assert!(
        allowed_by(&statements, &pass).is_none(),
        "a missing condition key fails"
    );
}

#[tokio::test]
async fn the_policy_allows_exactly_what_a_deploy_on_codebuild_calls() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let repo = example(bed);
    let project = repo
        .read("deployer.toml")
        .lines()
        .find_map(|l| {
            l.strip_prefix("name = \"")
                .map(|n| n.trim_end_matches('"').to_owned())
        })
        .unwrap();
    let (codebuild, bucket) = crate::codebuild::codebuild_infra(bed, &project);
    repo.write(
        "deployer.toml",
        repo.read("deployer.toml").replacen(
            "[project]\n",
            &format!("[project]\nbuilder = \"codebuild\"\ncodebuild = {{ project = \"{codebuild}\", bucket = \"{bucket}\" }}\n"),
            1,
        ),
    );
    repo.commit("builds on CodeBuild");
    let services = ["app-api", "embeddings", "inference-api", "rag-ingestion"];
    let tool_key = unique_name("AKIDIAMCBPOLICY").to_ascii_uppercase();
    let mut args = vec!["iam-policy"];
    for service in services {
        args.extend(["--service", service]);
    }
    let text = run(bed, &repo, &tool_key, &args);
    text.assert_success();
    let printed: Value = serde_json::from_str(&text.stdout).unwrap();
    let statements = parse_policy(&printed);
    let deploy_key = unique_name("AKIDIAMCBDEPLOY").to_ascii_uppercase();
    let mut deploy_args = vec!["deploy", "--json"];
    for service in services {
        deploy_args.extend(["--service", service]);
    }
    let deploy = run(bed, &repo, &deploy_key, &deploy_args);
    deploy.assert_success();
    let report = deploy.json();
    let task_definitions: BTreeMap<String, String> = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["ids"]["task_definition"].as_str())
        .filter_map(|arn| {
            Some((
                arn.rsplit_once('/')?.1.rsplit_once(':')?.0.to_owned(),
                arn.to_owned(),
            ))
        })
        .collect();
    let calls = recorded(bed, &deploy_key);
    assert!(
        calls.iter().any(|c| c["action"] == "StartBuild"),
        "the deploy built on CodeBuild"
    );
    let summary = verify(&statements, &calls, &task_definitions, &text.stdout);
    eprintln!("iam (codebuild): {summary}");
}

/// Issue 16: what a failed ECS rollout's diagnosis reads (its tasks, why they stopped, its load
/// balancer's targets, their containers' log lines) is allowed by the policy `iam-policy` printed beforehand.
#[tokio::test]
async fn the_policy_allows_what_a_failed_rollouts_diagnosis_calls() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let group = crate::diagnosis::unhealthy_target_group(bed, &unique_name("tg-iam"));
    let setup =
        crate::ecs::setup_with(bed, "bootstrap", crate::diagnosis::OOM, "", Some(&group)).await;
    let tool_key = unique_name("AKIDIAMFAILPOLICY").to_ascii_uppercase();
    let printed = run(
        bed,
        &setup.repo,
        &tool_key,
        &["iam-policy", "--service", "web"],
    );
    printed.assert_success();
    let policy: Value = serde_json::from_str(&printed.stdout).unwrap();
    let statements = parse_policy(&policy);
    assert!(
        statements.iter().any(|s| s.sid == "WebEcsTasksOnFailure"),
        "{}",
        printed.stdout
    );

    let deploy_key = unique_name("AKIDIAMFAILDEPLOY").to_ascii_uppercase();
    let out = run(
        bed,
        &setup.repo,
        &deploy_key,
        &[
            "deploy",
            "--service",
            "web",
            "--json",
            "--builder",
            &bed.builder().name,
        ],
    );
    out.assert_code(1);
    let report = out.json();
    assert!(
        report["services"][0]["diagnosis"]["stopped_tasks"][0]["containers"][0]["exit_code"] == 137,
        "the diagnosis was read: {report}"
    );
    // The revision the failed deploy registered (the report of a failure names none).
    let ecs = aws_sdk_ecs::Client::new(&bed.sdk_config().await);
    let newest = ecs
        .list_task_definitions()
        .family_prefix(&setup.name)
        .sort(aws_sdk_ecs::types::SortOrder::Desc)
        .send()
        .await
        .unwrap()
        .task_definition_arns()[0]
        .clone();
    let task_definitions = BTreeMap::from([(setup.name.clone(), newest)]);
    let calls = recorded(bed, &deploy_key);
    let mut checked = Vec::new();
    for call in &calls {
        checked.extend(requests(call, &task_definitions).unwrap_or_else(|p| panic!("{p}")));
    }
    for action in [
        "ecs:ListTasks",
        "ecs:DescribeTasks",
        "logs:GetLogEvents",
        "elasticloadbalancing:DescribeTargetHealth",
    ] {
        assert!(
            checked.iter().any(|r| r.action == action),
            "the diagnosis called {action}: {:?}",
            checked.iter().map(|r| &r.action).collect::<Vec<_>>()
        );
    }
    assert_allowed(&statements, &checked, &printed.stdout);
}

/// The IaC revert guard's reads (`plan`, `status`): `iam-policy` grants
/// `cloudformation:GetTemplate` on the stack a service's `iac` names and the AgentCore tag read
/// of a service without `iac`, and every call `plan` and `status` then make is allowed by it.
#[tokio::test]
async fn the_policy_allows_what_the_iac_guard_of_plan_and_status_calls() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let repo = example(bed);
    let stack = unique_name("iam-iac");
    crate::iac::create_stack(
        bed,
        &stack,
        "Resources:\n  AppTask:\n    Type: AWS::ECS::TaskDefinition\n    Properties:\n      ContainerDefinitions:\n        - Name: app\n          Image: app:v1\n          Memory: 512\n",
    );
    repo.write(
        "deployer.toml",
        repo.read("deployer.toml").replace(
            "[services.app-api]\n",
            &format!("[services.app-api]\niac = {{ cfn_stack = \"{stack}\" }}\n"),
        ),
    );
    repo.commit("iac");
    let selected = ["--service", "app-api", "--service", "inference-api"];
    let tool_key = unique_name("AKIDIACPOLICY").to_ascii_uppercase();
    let mut args = vec!["iam-policy"];
    args.extend(selected);
    let text = run(bed, &repo, &tool_key, &args);
    text.assert_success();
    let printed: Value = serde_json::from_str(&text.stdout).unwrap();
    let statements = parse_policy(&printed);
    let template = statements
        .iter()
        .find(|s| s.sid == "AppApiIacTemplate")
        .unwrap_or_else(|| panic!("no AppApiIacTemplate in\n{}", text.stdout));
    assert_eq!(template.actions, ["cloudformation:GetTemplate"]);
    assert_eq!(
        template.resources,
        [format!(
            "arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{stack}/*"
        )]
    );
    let owner = statements
        .iter()
        .find(|s| s.sid == "InferenceApiIacOwner")
        .unwrap_or_else(|| panic!("no InferenceApiIacOwner in\n{}", text.stdout));
    assert_eq!(owner.actions, ["bedrock-agentcore:ListTagsForResource"]);
    assert!(
        !statements.iter().any(|s| s.sid == "AppApiIacOwner"),
        "app-api names its stack"
    );

    let key = unique_name("AKIDIACGUARD").to_ascii_uppercase();
    let mut runtime_arns = BTreeMap::new();
    for command in ["plan", "status"] {
        let mut args = vec![command, "--json"];
        args.extend(selected);
        let out = run(bed, &repo, &key, &args);
        assert!(
            matches!(out.code, Some(0 | 1)),
            "{command}\n{}\n{}",
            out.stdout,
            out.stderr
        );
        let json = out.json();
        let warnings = &crate::monorepo::service(&json, "app-api")["warnings"];
        assert!(
            warnings.to_string().contains(&format!(
                "CloudFormation stack `{stack}` would revert the image"
            )),
            "{command}: {warnings}"
        );
        if command == "plan" {
            let ids = &crate::monorepo::service(&json, "inference-api")["ids"];
            let (Some(moto_arn), Some(id)) = (ids["arn"].as_str(), ids["runtime_id"].as_str())
            else {
                panic!("the runtime's ids in {json}");
            };
            runtime_arns.insert(
                moto_arn.to_owned(),
                format!("arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:runtime/{id}"),
            );
        }
    }
    let calls = recorded(bed, &key);
    let mut checked = Vec::new();
    for call in &calls {
        checked.extend(requests(call, &runtime_arns).unwrap_or_else(|e| panic!("{e}")));
    }
    let denied: Vec<String> = checked
        .iter()
        .filter(|r| allowed_by(&statements, r).is_none())
        .map(|r| format!("{} on {} (from {})", r.action, r.resource, r.call))
        .collect();
    assert!(
        denied.is_empty(),
        "the policy denies what plan and status did:\n{}\n\npolicy:\n{}",
        denied.join("\n"),
        text.stdout
    );
    for (action, sid) in [
        ("cloudformation:GetTemplate", "AppApiIacTemplate"),
        (
            "bedrock-agentcore:ListTagsForResource",
            "InferenceApiIacOwner",
        ),
    ] {
        let by: Vec<&str> = checked
            .iter()
            .filter(|r| r.action == action)
            .filter_map(|r| allowed_by(&statements, r).map(|s| s.sid.as_str()))
            .collect();
        assert!(
            !by.is_empty() && by.iter().all(|s| *s == sid),
            "{action} is called and allowed by {sid}: {by:?}"
        );
    }
}
