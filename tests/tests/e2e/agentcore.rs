//! AgentCore through the real `deployer` binary against moto's bedrock-agentcore-control, with
//! the test bed's patch (`xtask/testbed/patches/bedrock_agentcore_control.py`): moto keeps every
//! field of a runtime, an update replaces the whole configuration as on AWS (a field not sent is
//! reset), an updated runtime is UPDATING for two GetAgentRuntime calls and READY (or, for a
//! runtime tagged `deployer-testbed:update = fail`, UPDATE_FAILED) after.
//!
//! The runtime is set up with every field the SDK can set, then the fixture repository's
//! `agentcore` service (a `FROM scratch` image for linux/arm64) is deployed: GetAgentRuntime must
//! show the pushed digest URI and every other field unchanged, the environment variable values
//! must never reach the binary's output, and a second deploy must be `unchanged`.

use std::collections::HashMap;

use aws_sdk_bedrockagentcorecontrol::Client;
use aws_sdk_bedrockagentcorecontrol::operation::get_agent_runtime::GetAgentRuntimeOutput;
use aws_sdk_bedrockagentcorecontrol::types::{
    AgentRuntimeArtifact, AgentRuntimeStatus, AllowedPort, AuthorizerConfiguration,
    CapacityProviderConfiguration, ContainerConfiguration, CustomJwtAuthorizerConfiguration,
    FilesystemConfiguration, LifecycleConfiguration, NetworkConfiguration, NetworkMode, PortRange,
    ProtocolConfiguration, RequestHeaderConfiguration, RuntimeMetadataConfiguration,
    ServerProtocol, SessionStorageConfiguration,
};
use deployer_tests::{
    Deployer, FixtureRepo, RunOutput, Testbed, http, testbed, unique_ident, unique_name,
};
use serde_json::Value;

const ROLE: &str = "arn:aws:iam::123456789012:role/deployer-e2e-agent";
const FAIL_TAG: (&str, &str) = ("deployer-testbed:update", "fail");
/// What the test bed's patch reports for a failing update (its `FAILURE_REASON`).
const FAILURE_REASON: &str = "the new container failed its health check";

/// Environment variables whose values are secrets: unique per run, so a leak cannot be a
/// coincidence.
fn environment(run: &str) -> HashMap<String, String> {
    HashMap::from([
        (
            "DATABASE_URL".to_owned(),
            format!("postgres://agent:db-password-{run}@db.internal/agent"),
        ),
        (
            "UPSTREAM_API_TOKEN".to_owned(),
            format!("api-token-{run}-SECRET"),
        ),
        ("LOG_LEVEL".to_owned(), format!("debug-{run}")),
    ])
}

fn assert_no_secrets(environment: &HashMap<String, String>, out: &RunOutput) {
    for (name, value) in environment {
        assert!(
            !out.stdout.contains(value.as_str()),
            "stdout shows the value of {name}:\n{}",
            out.stdout
        );
        assert!(
            !out.stderr.contains(value.as_str()),
            "stderr shows the value of {name}:\n{}",
            out.stderr
        );
    }
}

async fn client(bed: &Testbed) -> Client {
    Client::new(&bed.sdk_config().await)
}

async fn get(client: &Client, runtime_id: &str) -> GetAgentRuntimeOutput {
    client
        .get_agent_runtime()
        .agent_runtime_id(runtime_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetAgentRuntime {runtime_id}: {e:?}"))
}

/// Polls until the runtime left CREATING/UPDATING.
async fn settled(client: &Client, runtime_id: &str) -> GetAgentRuntimeOutput {
    for _ in 0..10 {
        let live = get(client, runtime_id).await;
        if !matches!(
            live.status(),
            AgentRuntimeStatus::Creating | AgentRuntimeStatus::Updating
        ) {
            return live;
        }
    }
    panic!("runtime {runtime_id} did not settle in 10 reads");
}

fn container(uri: &str) -> AgentRuntimeArtifact {
    AgentRuntimeArtifact::ContainerConfiguration(
        ContainerConfiguration::builder()
            .container_uri(uri)
            .build()
            .expect("every required member is set"),
    )
}

/// A runtime with every field the SDK can set. CreateAgentRuntime takes all but
/// `metadataConfiguration`, so an UpdateAgentRuntime follows that sets every field (and leaves
/// the runtime UPDATING: the deploy must wait for it first). Returns the id.
async fn create_runtime(
    client: &Client,
    environment: &HashMap<String, String>,
    tags: &[(&str, &str)],
) -> String {
    let name = unique_ident("e2e_agent");
    let initial_uri = "127.0.0.1:1/deployer-e2e/initial@sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let mut create = client
        .create_agent_runtime()
        .agent_runtime_name(&name)
        .agent_runtime_artifact(container(initial_uri))
        .role_arn(ROLE)
        .network_configuration(
            NetworkConfiguration::builder()
                .network_mode(NetworkMode::Public)
                .build()
                .expect("every required member is set"),
        )
        .description("deployer e2e agent")
        .set_environment_variables(Some(environment.clone()));
    for (key, value) in tags {
        create = create.tags(*key, *value);
    }
    let created = create.send().await.expect("CreateAgentRuntime");
    let runtime_id = created.agent_runtime_id().to_owned();
    settled(client, &runtime_id).await;
    client
        .update_agent_runtime()
        .agent_runtime_id(&runtime_id)
        .agent_runtime_artifact(container(initial_uri))
        .role_arn(ROLE)
        .network_configuration(
            NetworkConfiguration::builder()
                .network_mode(NetworkMode::Public)
                .build()
                .expect("every required member is set"),
        )
        .description("deployer e2e agent: every field set")
        .authorizer_configuration(AuthorizerConfiguration::CustomJwtAuthorizer(
            CustomJwtAuthorizerConfiguration::builder()
                .discovery_url("https://idp.example.com/.well-known/openid-configuration")
                .allowed_clients("deployer-e2e-client")
                .allowed_audience("deployer-e2e")
                .allowed_scopes("agent/invoke")
                .build()
                .expect("every required member is set"),
        ))
        .request_header_configuration(RequestHeaderConfiguration::RequestHeaderAllowlist(vec![
            "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant".to_owned(),
        ]))
        .protocol_configuration(
            ProtocolConfiguration::builder()
                .server_protocol(ServerProtocol::Mcp)
                .build()
                .expect("every required member is set"),
        )
        // Not AWS's defaults (900 / 28800), so a reset would show.
        .lifecycle_configuration(
            LifecycleConfiguration::builder()
                .idle_runtime_session_timeout(600)
                .max_lifetime(7200)
                .build(),
        )
        .metadata_configuration(
            RuntimeMetadataConfiguration::builder()
                .require_mmdsv2(true)
                .build()
                .expect("every required member is set"),
        )
        .set_environment_variables(Some(environment.clone()))
        .filesystem_configurations(FilesystemConfiguration::SessionStorage(
            SessionStorageConfiguration::builder()
                .mount_path("/mnt/session")
                .build()
                .expect("every required member is set"),
        ))
        .capacity_provider_configuration(
            CapacityProviderConfiguration::builder()
                .capacity_provider_arn(
                    "arn:aws:bedrock-agentcore:us-east-1:123456789012:capacity-provider/deployer-e2e",
                )
                .build(),
        )
        .platform_version("2")
        .allowed_ports(AllowedPort::Port(8081))
        .allowed_ports(AllowedPort::PortRange(
            PortRange::builder()
                .from(9000)
                .to(9010)
                .build()
                .expect("every required member is set"),
        ))
        .send()
        .await
        .expect("UpdateAgentRuntime (setting every field)");
    runtime_id
}

struct Fixture {
    repo: FixtureRepo,
    repository: String,
}

fn fixture(bed: &Testbed, runtime_id: &str) -> Fixture {
    let name = unique_name("agentcore");
    let repository = format!("{name}/agent");
    let repo = FixtureRepo::new();
    repo.write(
        "agent/Dockerfile",
        "FROM scratch\nCOPY agent.txt /agent.txt\n",
    )
    .write("agent/agent.txt", "agent v1\n")
    .write(
        "deployer.toml",
        format!(
            r#"[project]
name = "{name}"
ssm_prefix = "/{name}"
registry = "{registry}"

[services.agent]
kind = "agentcore"
dockerfile = "agent/Dockerfile"
context = "agent"
platform = "linux/arm64"
inputs = ["agent/**"]
repository = "{repository}"
runtime_id = "{runtime_id}"
poll_interval = "500ms"
timeout = "2m"
"#,
            registry = bed.registry().host,
        ),
    );
    repo.commit("fixture");
    Fixture { repo, repository }
}

fn deploy(bed: &Testbed, fixture: &Fixture) -> RunOutput {
    let mut deployer = Deployer::new()
        .current_dir(fixture.repo.path())
        .bed(bed)
        .args([
            "deploy",
            "--service",
            "agent",
            "--json",
            "--builder",
            &bed.builder().name,
        ]);
    for (key, value) in &bed.builder().env {
        deployer = deployer.env(key, value);
    }
    deployer.run()
}

fn report(out: &RunOutput) -> Value {
    let json = out.json();
    let services = json["services"]
        .as_array()
        .unwrap_or_else(|| panic!("no services in {json}"));
    assert_eq!(services.len(), 1, "{json}");
    services[0].clone()
}

/// The digest the registry has for `repository:tag`.
fn pushed_digest(bed: &Testbed, repository: &str, tag: &str) -> String {
    let response = bed.registry().head_manifest(repository, tag);
    assert_eq!(
        response.status, 200,
        "{repository}:{tag} is not in the registry"
    );
    response
        .header("docker-content-digest")
        .unwrap_or_else(|| panic!("no Docker-Content-Digest for {repository}:{tag}"))
        .to_owned()
}

fn uri(live: &GetAgentRuntimeOutput) -> &str {
    match live.agent_runtime_artifact() {
        Some(AgentRuntimeArtifact::ContainerConfiguration(container)) => container.container_uri(),
        other => panic!("not a container runtime: {other:?}"),
    }
}

/// Every field of `after` is the one of `before`, but the artifact and what comes with a new
/// version (version, ARN, update time, status). Compared through the full `Debug` output, so a
/// field a later SDK adds is compared too; the two fields `Debug` redacts are compared apart.
fn assert_carried_over(before: &GetAgentRuntimeOutput, after: &GetAgentRuntimeOutput) {
    let mut expected = before.clone();
    expected.agent_runtime_artifact = after.agent_runtime_artifact.clone();
    expected.agent_runtime_version = after.agent_runtime_version.clone();
    expected.agent_runtime_arn = after.agent_runtime_arn.clone();
    expected.last_updated_at = after.last_updated_at;
    expected.status = after.status.clone();
    expected.failure_reason = after.failure_reason.clone();
    // Without the SDK's response metadata (the last field), which differs per call.
    let fields = |live: &GetAgentRuntimeOutput| -> String {
        let debug = format!("{live:?}");
        debug
            .split(", _request_id:")
            .next()
            .unwrap_or_default()
            .replace(", ", ",\n")
    };
    assert_eq!(
        fields(&expected),
        fields(after),
        "a field changed with the deploy"
    );
    assert_eq!(
        before.description(),
        after.description(),
        "the description changed"
    );
    assert_eq!(
        before.environment_variables(),
        after.environment_variables(),
        "the environment variables changed"
    );
}

#[tokio::test]
async fn deploy_replaces_the_image_and_carries_every_field_over() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let client = client(bed).await;
    let run = unique_name("run");
    let environment = environment(&run);
    let runtime_id = create_runtime(&client, &environment, &[]).await;
    let fixture = fixture(bed, &runtime_id);

    // The runtime is UPDATING (the setup's update, which already shows every field): the
    // deploy must wait for it, then roll.
    let before = get(&client, &runtime_id).await;
    assert_eq!(before.status(), &AgentRuntimeStatus::Updating);
    assert_eq!(before.environment_variables(), Some(&environment));
    let out = deploy(bed, &fixture);
    assert_no_secrets(&environment, &out);
    out.assert_success();
    let after = get(&client, &runtime_id).await;
    let report = report(&out);
    assert_eq!(report["kind"], "agentcore", "{report}");
    assert_eq!(report["action"], "updated", "{report}");
    let tag = report["tag"].as_str().unwrap();
    let digest = pushed_digest(bed, &fixture.repository, tag);
    let new_uri = format!("{}/{}@{digest}", bed.registry().host, fixture.repository);
    assert_eq!(report["new_artifact"], new_uri.as_str(), "{report}");
    assert!(
        report["old_artifact"]
            .as_str()
            .unwrap()
            .contains("deployer-e2e/initial@sha256:0000"),
        "{report}"
    );
    assert_eq!(report["ids"]["runtime_id"], runtime_id.as_str(), "{report}");
    assert_eq!(report["ids"]["old_version"], "2", "{report}");
    assert_eq!(report["ids"]["version"], "3", "{report}");

    assert_eq!(uri(&after), new_uri);
    assert_eq!(after.status(), &AgentRuntimeStatus::Ready);
    assert_eq!(after.agent_runtime_version(), "3");
    assert_carried_over(&before, &after);
    assert_eq!(after.environment_variables(), Some(&environment));
    assert_eq!(
        after
            .lifecycle_configuration()
            .and_then(|l| l.max_lifetime()),
        Some(7200)
    );
    assert!(
        after
            .metadata_configuration()
            .is_some_and(|m| m.require_mmdsv2())
    );

    // Nothing changed: nothing is sent.
    let again = deploy(bed, &fixture);
    assert_no_secrets(&environment, &again);
    again.assert_success();
    let report = self::report(&again);
    assert_eq!(report["action"], "unchanged", "{report}");
    assert_eq!(report["ids"]["version"], "3", "{report}");
    assert_eq!(get(&client, &runtime_id).await.agent_runtime_version(), "3");
}

#[tokio::test]
async fn a_failing_update_exits_1_with_the_reason() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let client = client(bed).await;
    let environment = environment(&unique_name("fail"));
    let runtime_id = create_runtime(&client, &environment, &[FAIL_TAG]).await;
    let fixture = fixture(bed, &runtime_id);
    // What the failing container wrote to the runtime's log group (issue 16): the diagnosis
    // shows its tail, with the runtime's environment values hidden.
    let group = format!("/aws/bedrock-agentcore/runtimes/{runtime_id}-DEFAULT");
    let logs = aws_sdk_cloudwatchlogs::Client::new(&bed.sdk_config().await);
    logs.create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .unwrap();
    logs.create_log_stream()
        .log_group_name(&group)
        .log_stream_name("2026/12/04/[runtime-logs]abc")
        .send()
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let token = &environment["UPSTREAM_API_TOKEN"];
    let mut put = logs
        .put_log_events()
        .log_group_name(&group)
        .log_stream_name("2026/12/04/[runtime-logs]abc");
    for (i, line) in [
        "agent starting".to_owned(),
        format!("calling upstream with {token}"),
        "exec format error".to_owned(),
    ]
    .iter()
    .enumerate()
    {
        put = put.log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now + i as i64)
                .message(line)
                .build()
                .unwrap(),
        );
    }
    put.send().await.unwrap();

    let out = deploy(bed, &fixture);
    assert_no_secrets(&environment, &out);
    out.assert_code(1);
    let report = report(&out);
    assert_eq!(report["action"], "failed", "{report}");
    let message = report["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {report}"));
    assert!(message.contains("UPDATE_FAILED"), "{message}");
    assert!(message.contains(FAILURE_REASON), "{message}");
    let diagnosis = &report["diagnosis"];
    assert!(
        diagnosis["reasons"][0].as_str().is_some_and(
            |reason| reason.starts_with("UPDATE_FAILED") && reason.contains(FAILURE_REASON)
        ),
        "the runtime's failureReason: {report}"
    );
    let lines: Vec<&str> = diagnosis["logs"]
        .as_array()
        .unwrap_or_else(|| panic!("no log tail in {report}"))
        .iter()
        .map(|line| line["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "agent starting",
            "calling upstream with ***",
            "exec format error"
        ],
        "{report}"
    );
    let live = get(&client, &runtime_id).await;
    assert_eq!(live.status(), &AgentRuntimeStatus::UpdateFailed);
}

#[tokio::test]
async fn a_field_this_build_does_not_know_stops_the_deploy() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let client = client(bed).await;
    // `resourceConfigurations` is in botocore's model (so moto keeps and returns it) but not in
    // the SDK this workspace locks: the SDK cannot send it, so create the runtime by hand.
    let name = unique_ident("e2e_unknown");
    let body = serde_json::json!({
        "agentRuntimeName": name,
        "agentRuntimeArtifact": {"containerConfiguration": {"containerUri": "127.0.0.1:1/deployer-e2e/initial:v1"}},
        "roleArn": ROLE,
        "networkConfiguration": {"networkMode": "PUBLIC"},
        "resourceConfigurations": [{"minimumMemoryInMiB": 2048}],
    })
    .to_string();
    let url = format!("{}/runtimes/", bed.moto().url);
    let authorization = "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/bedrock-agentcore/aws4_request, \
                         SignedHeaders=host, Signature=0";
    // CreateAgentRuntime is `PUT /runtimes/` (`POST` lists them).
    let created = http::request(
        "PUT",
        &url,
        &[
            ("Content-Type", "application/json"),
            ("Authorization", authorization),
        ],
        body.as_bytes(),
    )
    .unwrap();
    assert!(
        created.status < 300,
        "CreateAgentRuntime by hand: {} {}",
        created.status,
        created.text()
    );
    let runtime_id = created.json().unwrap()["agentRuntimeId"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = settled(&client, &runtime_id).await;
    let fixture = fixture(bed, &runtime_id);

    let out = deploy(bed, &fixture);
    out.assert_code(2);
    let report = report(&out);
    let message = report["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {report}"));
    assert!(message.contains("`resourceConfigurations`"), "{message}");
    assert!(message.contains("upgrade deployer"), "{message}");
    assert_eq!(
        get(&client, &runtime_id).await.agent_runtime_version(),
        before.agent_runtime_version()
    );
}
