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

pub(crate) struct Fixture {
    pub(crate) repo: FixtureRepo,
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

// ------------------------------------------------------------------------- named endpoints
//
// The patch models endpoints as the API documents them (CREATING → READY, an update UPDATING
// with `targetVersion` set, then `liveVersion` moves; `DEFAULT` follows the latest version) and
// answers InvokeAgentRuntime with the endpoint, version and image that served it. An endpoint
// tagged `deployer-testbed:endpoint-update = stick` never finishes an update.

const ENDPOINT_TAG: &str = "deployer-testbed:endpoint-update";

/// A runtime READY at version 1 on a placeholder image, without the every-field setup.
async fn plain_runtime(client: &Client) -> String {
    let created = client
        .create_agent_runtime()
        .agent_runtime_name(unique_ident("e2e_endpoints"))
        .agent_runtime_artifact(container(
            "127.0.0.1:1/deployer-e2e/initial@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ))
        .role_arn(ROLE)
        .network_configuration(
            NetworkConfiguration::builder()
                .network_mode(NetworkMode::Public)
                .build()
                .expect("every required member is set"),
        )
        .send()
        .await
        .expect("CreateAgentRuntime");
    let runtime_id = created.agent_runtime_id().to_owned();
    settled(client, &runtime_id).await;
    runtime_id
}

/// Creates the named endpoint `name` on the runtime's current version (as the IaC would) and
/// waits until it is READY.
async fn create_endpoint(client: &Client, runtime_id: &str, name: &str, tags: &[(&str, &str)]) {
    let mut create = client
        .create_agent_runtime_endpoint()
        .agent_runtime_id(runtime_id)
        .name(name)
        .description("production traffic");
    for (key, value) in tags {
        create = create.tags(*key, *value);
    }
    create.send().await.expect("CreateAgentRuntimeEndpoint");
    for _ in 0..10 {
        if endpoint(client, runtime_id, name).await.status()
            == &aws_sdk_bedrockagentcorecontrol::types::AgentRuntimeEndpointStatus::Ready
        {
            return;
        }
    }
    panic!("endpoint {name} did not become READY");
}

async fn endpoint(
    client: &Client,
    runtime_id: &str,
    name: &str,
) -> aws_sdk_bedrockagentcorecontrol::operation::get_agent_runtime_endpoint::GetAgentRuntimeEndpointOutput
{
    client
        .get_agent_runtime_endpoint()
        .agent_runtime_id(runtime_id)
        .endpoint_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetAgentRuntimeEndpoint {name}: {e:?}"))
}

/// The agentcore fixture with `extra` manifest lines for the service.
pub(crate) fn endpoint_fixture(bed: &Testbed, runtime_id: &str, extra: &str) -> Fixture {
    let fixture = fixture(bed, runtime_id);
    let manifest = fixture.repo.read("deployer.toml");
    fixture.repo.write(
        "deployer.toml",
        manifest.replace(
            "timeout = \"2m\"\n",
            &format!("timeout = \"2m\"\n{extra}\n"),
        ),
    );
    fixture.repo.commit("endpoints");
    fixture
}

fn run_in(bed: &Testbed, fixture: &Fixture, access_key: &str, args: &[&str]) -> RunOutput {
    let mut deployer = Deployer::new()
        .current_dir(fixture.repo.path())
        .bed(bed)
        .env("AWS_ACCESS_KEY_ID", access_key)
        .args(args);
    if args.first() == Some(&"deploy") {
        deployer = deployer.args(["--builder", &bed.builder().name]);
    }
    for (key, value) in &bed.builder().env {
        deployer = deployer.env(key, value);
    }
    deployer.run()
}

/// Reads `<prefix>/agent/<what>` (`image-tag`, `deploy-state`) of the fixture's project.
async fn record(bed: &Testbed, fixture: &Fixture, what: &str) -> Option<String> {
    let manifest = fixture.repo.read("deployer.toml");
    let prefix = manifest
        .lines()
        .find_map(|line| line.strip_prefix("ssm_prefix = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("the fixture names its ssm_prefix");
    let ssm = aws_sdk_ssm::Client::new(&bed.sdk_config().await);
    ssm.get_parameter()
        .name(format!("{prefix}/agent/{what}"))
        .send()
        .await
        .ok()
        .and_then(|out| out.parameter().and_then(|p| p.value()).map(str::to_owned))
}

fn calls_named<'c>(calls: &'c [Value], action: &str) -> Vec<&'c Value> {
    calls.iter().filter(|c| c["action"] == action).collect()
}

#[tokio::test]
async fn a_named_endpoint_is_moved_to_the_new_version_and_status_and_plan_show_it() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let client = client(bed).await;
    let runtime_id = plain_runtime(&client).await;
    create_endpoint(&client, &runtime_id, "prod", &[]).await;
    let fixture = endpoint_fixture(
        bed,
        &runtime_id,
        r#"endpoints = ["prod"]
smoke = { invoke = { prompt = "ping" }, expect = "\"qualifier\": \"prod\"", timeout_s = 30 }"#,
    );
    let key = unique_name("AKIDENDPOINTS").to_ascii_uppercase();

    let plan = run_in(bed, &fixture, &key, &["plan", "--json"]);
    plan.assert_success();
    let planned = report(&plan);
    assert_eq!(
        planned["endpoints"],
        serde_json::json!([{"name": "prod", "status": "READY", "live_version": "1", "target_version": null}]),
        "{planned}"
    );
    let plan_text = run_in(bed, &fixture, &key, &["plan"]);
    plan_text.assert_success();
    assert!(
        plan_text.stdout.contains(
            "agent: endpoint prod: live version 1, target version the runtime's next version (READY)"
        ),
        "{}",
        plan_text.stdout
    );

    let out = run_in(
        bed,
        &fixture,
        &key,
        &["deploy", "--service", "agent", "--json"],
    );
    out.assert_success();
    let deployed = report(&out);
    assert_eq!(deployed["action"], "updated", "{deployed}");
    let version = get(&client, &runtime_id)
        .await
        .agent_runtime_version()
        .to_owned();
    assert_eq!(version, "2");
    let prod = endpoint(&client, &runtime_id, "prod").await;
    assert_eq!(prod.live_version(), Some("2"), "{prod:?}");
    assert_eq!(prod.status().as_str(), "READY");
    assert_eq!(prod.description(), Some("production traffic"));
    // The tag is recorded only now, and the smoke check went through `prod`.
    assert!(record(bed, &fixture, "image-tag").await.is_some());
    let calls = bed.moto().recorded_calls(&key);
    let moves = calls_named(&calls, "UpdateAgentRuntimeEndpoint");
    assert_eq!(moves.len(), 1, "{moves:?}");
    assert_eq!(moves[0]["params"]["agentRuntimeVersion"], "2");
    let invokes = calls_named(&calls, "InvokeAgentRuntime");
    assert_eq!(invokes.len(), 1, "{invokes:?}");
    assert_eq!(invokes[0]["params"]["qualifier"], "prod");
    assert_eq!(deployed["smoke"]["ok"], true, "{deployed}");

    let status = run_in(bed, &fixture, &key, &["status", "--json"]);
    status.assert_success();
    let shown = &status.json()["services"][0];
    assert_eq!(
        shown["endpoints"],
        serde_json::json!([{"name": "prod", "status": "READY", "live_version": "2", "target_version": "2"}]),
        "{shown}"
    );
    assert_eq!(shown["in_sync"], true, "{shown}");
    let text = run_in(bed, &fixture, &key, &["status"]);
    assert!(
        text.stdout
            .contains("  endpoint prod: live version 2, target version 2 (READY)"),
        "{}",
        text.stdout
    );
    eprintln!("{}", plan_text.stdout);
    eprintln!("{}", text.stdout);

    // Nothing to do: unchanged, no endpoint update.
    let again = run_in(
        bed,
        &fixture,
        &key,
        &["deploy", "--service", "agent", "--json"],
    );
    again.assert_success();
    assert_eq!(report(&again)["action"], "unchanged");
    let calls = bed.moto().recorded_calls(&key);
    assert_eq!(calls_named(&calls, "UpdateAgentRuntimeEndpoint").len(), 1);
}

#[tokio::test]
async fn an_endpoint_stuck_on_the_old_version_fails_the_deploy_and_nothing_is_recorded() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let client = client(bed).await;
    let runtime_id = plain_runtime(&client).await;
    create_endpoint(&client, &runtime_id, "prod", &[(ENDPOINT_TAG, "stick")]).await;
    let fixture = endpoint_fixture(bed, &runtime_id, r#"endpoints = ["prod"]"#);
    let manifest = fixture.repo.read("deployer.toml");
    fixture.repo.write(
        "deployer.toml",
        manifest.replace("timeout = \"2m\"", "timeout = \"6s\""),
    );
    fixture.repo.commit("short timeout");
    let key = unique_name("AKIDSTUCK").to_ascii_uppercase();

    let out = run_in(
        bed,
        &fixture,
        &key,
        &["deploy", "--service", "agent", "--json"],
    );
    out.assert_code(1);
    let failed = report(&out);
    assert_eq!(failed["action"], "failed", "{failed}");
    let message = failed["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "waiting for AgentCore endpoint prod of runtime {runtime_id} to serve version 2"
        )),
        "{message}"
    );
    assert!(
        message.contains("UPDATING (live version 1, target version 2)"),
        "{message}"
    );
    // The runtime rolled, the endpoint did not: nothing names the new image.
    assert_eq!(get(&client, &runtime_id).await.agent_runtime_version(), "2");
    assert_eq!(
        endpoint(&client, &runtime_id, "prod").await.live_version(),
        Some("1")
    );
    assert_eq!(record(bed, &fixture, "image-tag").await, None);
    let state = record(bed, &fixture, "deploy-state")
        .await
        .unwrap_or_default();
    let state: Value = serde_json::from_str(if state.is_empty() { "{}" } else { &state }).unwrap();
    assert!(state["current"].is_null(), "{state}");
}

#[tokio::test]
async fn a_missing_endpoint_is_an_error_naming_it_before_anything_changes() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let client = client(bed).await;
    let runtime_id = plain_runtime(&client).await;
    let fixture = endpoint_fixture(bed, &runtime_id, r#"endpoints = ["prod"]"#);
    let key = unique_name("AKIDNOENDPOINT").to_ascii_uppercase();
    let out = run_in(
        bed,
        &fixture,
        &key,
        &["deploy", "--service", "agent", "--json"],
    );
    out.assert_code(2);
    let message = report(&out)["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains(&format!(
            "AgentCore endpoint prod of runtime {runtime_id} was not found"
        )),
        "{message}"
    );
    assert!(message.contains("the IaC's job"), "{message}");
    let calls = bed.moto().recorded_calls(&key);
    assert!(calls_named(&calls, "UpdateAgentRuntime").is_empty());
    assert_eq!(get(&client, &runtime_id).await.agent_runtime_version(), "1");
}

#[tokio::test]
async fn rollback_moves_the_endpoints_back_without_updating_the_runtime() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let client = client(bed).await;
    let runtime_id = plain_runtime(&client).await;
    create_endpoint(&client, &runtime_id, "prod", &[]).await;
    let fixture = endpoint_fixture(bed, &runtime_id, r#"endpoints = ["prod"]"#);
    let key = unique_name("AKIDROLLBACK").to_ascii_uppercase();

    let first = run_in(
        bed,
        &fixture,
        &key,
        &["deploy", "--service", "agent", "--json"],
    );
    first.assert_success();
    let first_image = report(&first)["new_artifact"].as_str().unwrap().to_owned();
    fixture.repo.write("agent/agent.txt", "agent v2\n");
    fixture.repo.commit("v2");
    let second = run_in(
        bed,
        &fixture,
        &key,
        &["deploy", "--service", "agent", "--json"],
    );
    second.assert_success();
    assert_eq!(get(&client, &runtime_id).await.agent_runtime_version(), "3");
    assert_eq!(
        endpoint(&client, &runtime_id, "prod").await.live_version(),
        Some("3")
    );

    let rollback_key = unique_name("AKIDROLLBACKONLY").to_ascii_uppercase();
    let back = Deployer::new()
        .current_dir(fixture.repo.path())
        .bed(bed)
        .env("AWS_ACCESS_KEY_ID", &rollback_key)
        .args(["rollback", "--service", "agent", "--json"])
        .run();
    back.assert_success();
    let rolled = report(&back);
    assert_eq!(rolled["action"], "rolled_back", "{rolled}");
    assert_eq!(rolled["new_artifact"], first_image.as_str(), "{rolled}");
    // The endpoint serves version 2 (the first deploy's) again; the runtime stays at 3.
    assert_eq!(
        endpoint(&client, &runtime_id, "prod").await.live_version(),
        Some("2")
    );
    let runtime = get(&client, &runtime_id).await;
    assert_eq!(runtime.agent_runtime_version(), "3");
    let calls = bed.moto().recorded_calls(&rollback_key);
    assert!(
        calls_named(&calls, "UpdateAgentRuntime").is_empty(),
        "the rollback updated the runtime: {:?}",
        calls.iter().map(|c| &c["action"]).collect::<Vec<_>>()
    );
    let moves = calls_named(&calls, "UpdateAgentRuntimeEndpoint");
    assert_eq!(moves.len(), 1, "{moves:?}");
    assert_eq!(moves[0]["params"]["agentRuntimeVersion"], "2");
    assert_eq!(moves[0]["params"]["endpointName"], "prod");

    // Status: the endpoint serves the recorded deploy's version: in sync.
    let status = run_in(bed, &fixture, &key, &["status", "--json"]);
    let shown = &status.json()["services"][0];
    assert_eq!(
        shown["endpoints"],
        serde_json::json!([{"name": "prod", "status": "READY", "live_version": "2", "target_version": "2"}]),
        "{shown}"
    );
}
