//! ECS through the real `deployer` binary against moto.
//!
//! moto alone starts no deployment on `UpdateService`; the test bed's ECS patch
//! (`xtask/testbed/patches/ecs.py`, see its docstring) makes it start a new PRIMARY deployment
//! that every `DescribeServices` moves forward (desired 2: 1/2 IN_PROGRESS, then COMPLETED), and
//! makes rollouts of a task definition tagged `deployer-testbed:rollout = fail` fail and roll
//! back to the previous revision, as the deployment circuit breaker does; a task definition
//! tagged `deployer-testbed:unknown-member` is described with a member no SDK models. No real
//! task runs.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, HealthCheck, KeyValuePair, LaunchType, LogConfiguration,
    LogDriver, NetworkMode, PortMapping, Secret, Tag, TaskDefinition, TaskDefinitionField,
    TransportProtocol,
};
use deployer_tests::{Deployer, FixtureRepo, RunOutput, Testbed, testbed, unique_name};
use serde_json::Value;

const DOCKERFILE: &str = "FROM scratch\nCOPY app.txt /app.txt\n";
pub(crate) const FAIL_TAG: (&str, &str) = ("deployer-testbed:rollout", "fail");
/// Makes the test bed add a member `testbedUnknown` (which no SDK models) to the task definition
/// and its containers in `DescribeTaskDefinition` responses.
const UNKNOWN_MEMBER_TAG: (&str, &str) = ("deployer-testbed:unknown-member", "testbedUnknown");

/// A cluster, a service on a two-container task definition with roles, environment, secrets,
/// logs and a health check, and a fixture repository whose `web` service deploys it.
pub(crate) struct Setup {
    ecs: Client,
    /// The cluster, service and task definition family, and the log group's last part.
    pub(crate) name: String,
    pub(crate) repo: FixtureRepo,
    repository: String,
    /// The task definition the service ran before any deploy.
    first: String,
}

/// The service starts on `<registry>/<repository>:<initial_tag>` (never pushed: no task runs).
pub(crate) async fn setup(
    bed: &Testbed,
    initial_tag: &str,
    extra_tags: &[(&str, &str)],
    manifest_extra: &str,
) -> Setup {
    setup_with(bed, initial_tag, extra_tags, manifest_extra, None).await
}

/// [`setup`], the service behind the load balancer target group `target_group` (container
/// `web`, port 8080) when one is given.
pub(crate) async fn setup_with(
    bed: &Testbed,
    initial_tag: &str,
    extra_tags: &[(&str, &str)],
    manifest_extra: &str,
    target_group: Option<&str>,
) -> Setup {
    let ecs = Client::new(&bed.sdk_config().await);
    let name = unique_name("ecs");
    let repository = format!("{name}/web");
    let image = bed.registry().image(&repository, initial_tag);
    ecs.create_cluster()
        .cluster_name(&name)
        .send()
        .await
        .unwrap();
    let web = ContainerDefinition::builder()
        .name("web")
        .image(image)
        .cpu(128)
        .memory(256)
        .essential(true)
        .port_mappings(
            PortMapping::builder()
                .container_port(8080)
                .host_port(0)
                .protocol(TransportProtocol::Tcp)
                .build(),
        )
        .environment(
            KeyValuePair::builder()
                .name("RUST_LOG")
                .value("info")
                .build(),
        )
        .environment(
            KeyValuePair::builder()
                .name("DATABASE_URL")
                .value("postgres://app:pw@db/app")
                .build(),
        )
        .secrets(
            Secret::builder()
                .name("API_KEY")
                .value_from("arn:aws:ssm:us-east-1:123456789012:parameter/api-key")
                .build()
                .unwrap(),
        )
        .log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", format!("/ecs/{name}"))
                .options("awslogs-region", "us-east-1")
                .options("awslogs-stream-prefix", "app")
                .build()
                .unwrap(),
        )
        .health_check(
            HealthCheck::builder()
                .command("CMD-SHELL")
                .command("true")
                .interval(10)
                .retries(3)
                .build()
                .unwrap(),
        )
        .command("serve")
        .build();
    let sidecar = ContainerDefinition::builder()
        .name("log-router")
        .image("public.ecr.aws/aws-observability/aws-for-fluent-bit:stable")
        .memory_reservation(50)
        .essential(false)
        .build();
    let mut tags = vec![Tag::builder().key("team").value("api").build()];
    tags.extend(
        extra_tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build()),
    );
    let registered = ecs
        .register_task_definition()
        .family(&name)
        .task_role_arn("arn:aws:iam::123456789012:role/app-task")
        .execution_role_arn("arn:aws:iam::123456789012:role/app-execution")
        .network_mode(NetworkMode::Bridge)
        .requires_compatibilities(Compatibility::Ec2)
        .cpu("256")
        .memory("512")
        .container_definitions(web)
        .container_definitions(sidecar)
        .set_tags(Some(tags))
        .send()
        .await
        .unwrap();
    let first = registered
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_owned();
    let mut create = ecs
        .create_service()
        .cluster(&name)
        .service_name(&name)
        .task_definition(&first)
        .desired_count(2)
        .launch_type(LaunchType::Ec2);
    if let Some(target_group) = target_group {
        create = create.load_balancers(
            aws_sdk_ecs::types::LoadBalancer::builder()
                .target_group_arn(target_group)
                .container_name("web")
                .container_port(8080)
                .build(),
        );
    }
    create.send().await.unwrap();

    let repo = FixtureRepo::new();
    repo.write("web/Dockerfile", DOCKERFILE)
        .write("web/app.txt", "web v1\n")
        .write(
            "deployer.toml",
            format!(
                r#"[project]
name = "{name}"
ssm_prefix = "/{name}"
registry = "{registry}"

[services.web]
kind = "ecs"
dockerfile = "web/Dockerfile"
context = "web"
platform = "linux/amd64"
inputs = ["web/**"]
repository = "{repository}"
cluster = "{name}"
service = "{name}"
container = "web"
timeout = "2m"
poll_interval = "1s"
{manifest_extra}"#,
                registry = bed.registry().host,
            ),
        );
    repo.commit("fixture");
    Setup {
        ecs,
        name,
        repo,
        repository,
        first,
    }
}

fn deploy(bed: &Testbed, setup: &Setup) -> RunOutput {
    let mut deployer = Deployer::new()
        .current_dir(setup.repo.path())
        .bed(bed)
        .args([
            "deploy",
            "--json",
            "--service",
            "web",
            "--builder",
            &bed.builder().name,
        ]);
    for (key, value) in &bed.builder().env {
        deployer = deployer.env(key, value);
    }
    deployer.run()
}

pub(crate) fn web(json: &Value) -> &Value {
    let services = json["services"]
        .as_array()
        .unwrap_or_else(|| panic!("no services in {json}"));
    assert_eq!(services.len(), 1, "{json}");
    &services[0]
}

/// The task definition with its tags, as DescribeTaskDefinition returns it.
async fn task_definition(ecs: &Client, arn: &str) -> (TaskDefinition, Vec<Tag>) {
    let output = ecs
        .describe_task_definition()
        .task_definition(arn)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    (
        output.task_definition.unwrap(),
        output.tags.unwrap_or_default(),
    )
}

async fn service_task_definition(ecs: &Client, name: &str) -> String {
    let output = ecs
        .describe_services()
        .cluster(name)
        .services(name)
        .send()
        .await
        .unwrap();
    output.services()[0].task_definition().unwrap().to_owned()
}

async fn revisions(ecs: &Client, family: &str) -> usize {
    ecs.list_task_definitions()
        .family_prefix(family)
        .send()
        .await
        .unwrap()
        .task_definition_arns()
        .len()
}

/// Asserts that `new` is `old` with the `web` image replaced by `image`, field by field; only
/// the read-only members (ARN, revision, status, …) may differ.
fn assert_only_the_image_differs(old: &TaskDefinition, new: &TaskDefinition, image: &str) {
    macro_rules! same {
        ($($field:ident),* $(,)?) => {$(
            assert_eq!(old.$field, new.$field, concat!("`", stringify!($field), "` changed in the new revision"));
        )*};
    }
    same!(
        family,
        task_role_arn,
        execution_role_arn,
        network_mode,
        volumes,
        placement_constraints,
        requires_compatibilities,
        cpu,
        memory,
        pid_mode,
        ipc_mode,
        proxy_configuration,
        inference_accelerators,
        ephemeral_storage,
        runtime_platform,
        enable_fault_injection,
    );
    let (old_containers, new_containers) =
        (old.container_definitions(), new.container_definitions());
    assert_eq!(old_containers.len(), new_containers.len());
    for (old, new) in old_containers.iter().zip(new_containers) {
        let mut expected = old.clone();
        if old.name() == Some("web") {
            assert_eq!(new.image(), Some(image), "the web container's image");
            expected.image = Some(image.to_owned());
        }
        // Field by field first (a failure names the field), then the whole (anything else).
        assert_eq!(
            expected.environment(),
            new.environment(),
            "environment of {:?}",
            old.name()
        );
        assert_eq!(
            expected.secrets(),
            new.secrets(),
            "secrets of {:?}",
            old.name()
        );
        assert_eq!(
            expected.log_configuration(),
            new.log_configuration(),
            "logConfiguration of {:?}",
            old.name()
        );
        assert_eq!(
            expected.health_check(),
            new.health_check(),
            "healthCheck of {:?}",
            old.name()
        );
        assert_eq!(
            expected.port_mappings(),
            new.port_mappings(),
            "portMappings of {:?}",
            old.name()
        );
        assert_eq!(&expected, new, "container {:?}", old.name());
    }
    // Everything else, whole: the old one with the new image and the new read-only members.
    let mut expected = old.clone();
    for container in expected.container_definitions.iter_mut().flatten() {
        if container.name() == Some("web") {
            container.image = Some(image.to_owned());
        }
    }
    expected.task_definition_arn = new.task_definition_arn.clone();
    expected.revision = new.revision;
    expected.status = new.status.clone();
    expected.requires_attributes = new.requires_attributes.clone();
    expected.compatibilities = new.compatibilities.clone();
    expected.registered_at = new.registered_at;
    expected.registered_by = new.registered_by.clone();
    expected.deregistered_at = new.deregistered_at;
    expected.delete_requested_at = new.delete_requested_at;
    assert_eq!(&expected, new);
}

#[tokio::test]
async fn deploy_rolls_a_new_revision_that_differs_only_in_the_image() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let setup = setup(bed, "bootstrap", &[], "").await;

    let run = deploy(bed, &setup);
    run.assert_success();
    let json = run.json();
    let report = web(&json);
    assert_eq!(report["action"], "updated", "{json}");

    // The image is the pushed digest URI.
    let tag = report["tag"].as_str().unwrap();
    let head = bed.registry().head_manifest(&setup.repository, tag);
    assert_eq!(head.status, 200, "{}:{tag} was pushed", setup.repository);
    let digest = head.header("docker-content-digest").unwrap();
    let image = format!("{}/{}@{digest}", bed.registry().host, setup.repository);
    assert_eq!(report["new_artifact"], image.as_str());
    assert_eq!(
        report["old_artifact"],
        bed.registry()
            .image(&setup.repository, "bootstrap")
            .as_str()
    );

    // The service points at a new revision whose only difference is the image.
    let ids = &report["ids"];
    let new_arn = ids["task_definition"].as_str().unwrap();
    assert_eq!(ids["old_task_definition"], setup.first.as_str());
    assert_ne!(new_arn, setup.first);
    assert!(
        ids["deployment"].as_str().unwrap().starts_with("ecs-svc/"),
        "{ids}"
    );
    assert_eq!(
        service_task_definition(&setup.ecs, &setup.name).await,
        new_arn
    );
    let (old, old_tags) = task_definition(&setup.ecs, &setup.first).await;
    let (new, new_tags) = task_definition(&setup.ecs, new_arn).await;
    assert_eq!(new.revision(), old.revision() + 1);
    assert_only_the_image_differs(&old, &new, &image);
    assert_eq!(old_tags, new_tags, "the task definition's tags are copied");
    // The deployment the deploy waited for completed with all tasks running.
    let service = setup
        .ecs
        .describe_services()
        .cluster(&setup.name)
        .services(&setup.name)
        .send()
        .await
        .unwrap();
    let deployments = service.services()[0].deployments();
    let ours = deployments
        .iter()
        .find(|d| d.id() == ids["deployment"].as_str())
        .expect("our deployment is listed");
    assert_eq!(ours.status(), Some("PRIMARY"));
    assert_eq!(ours.rollout_state().map(|s| s.as_str()), Some("COMPLETED"));
    assert_eq!(ours.running_count(), 2);

    // A second deploy finds the service on the image: unchanged, no new revision.
    let again = deploy(bed, &setup);
    again.assert_success();
    let json = again.json();
    assert_eq!(web(&json)["action"], "unchanged", "{json}");
    assert_eq!(web(&json)["ids"]["task_definition"], new_arn);
    assert_eq!(revisions(&setup.ecs, &setup.name).await, 2);
}

/// The circuit breaker fails the rollout and rolls the service back to the old revision, where it
/// is "stable" again: the deploy fails (exit 1) and records nothing.
#[tokio::test]
async fn a_rollout_rolled_back_by_the_circuit_breaker_fails_the_deploy() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    // The tag is copied into the new revision, which the test bed's ECS patch then fails.
    let setup = setup(bed, "bootstrap", &[FAIL_TAG], "").await;

    let run = deploy(bed, &setup);
    run.assert_code(1);
    let json = run.json();
    let report = web(&json);
    assert_eq!(report["action"], "failed", "{json}");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("rollout failed") && message.contains("circuit breaker"),
        "{message}"
    );
    assert!(
        message.contains(&format!("{}:1", setup.name)),
        "names the revision rolled back to: {message}"
    );
    assert_eq!(report["ssm_written"], false);
    assert_eq!(report["error"]["exit_code"], 1);

    // A new revision was registered, and kept (it is never deregistered), but the service is
    // back on the old one once the rollback completes.
    assert_eq!(revisions(&setup.ecs, &setup.name).await, 2);
    let mut on = String::new();
    for _ in 0..5 {
        on = service_task_definition(&setup.ecs, &setup.name).await;
        if on == setup.first {
            break;
        }
    }
    assert_eq!(on, setup.first);
}

/// A member AWS returns that this build's SDK does not model cannot be copied: the deploy refuses
/// (exit 2), naming the member paths, and registers nothing.
#[tokio::test]
async fn a_member_the_sdk_does_not_know_stops_the_deploy() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let setup = setup(bed, "bootstrap", &[UNKNOWN_MEMBER_TAG], "").await;

    let run = deploy(bed, &setup);
    run.assert_code(2);
    let json = run.json();
    let report = web(&json);
    assert_eq!(report["action"], "failed", "{json}");
    let message = report["error"]["message"].as_str().unwrap();
    for path in [
        "`containerDefinitions[0].testbedUnknown`",
        "`containerDefinitions[1].testbedUnknown`",
        "`testbedUnknown`",
    ] {
        assert!(message.contains(path), "{path} in {message}");
    }
    assert!(
        message.contains("upgrade deployer") && !message.contains("postgres://"),
        "{message}"
    );
    assert_eq!(
        revisions(&setup.ecs, &setup.name).await,
        1,
        "nothing was registered"
    );
    assert_eq!(
        service_task_definition(&setup.ecs, &setup.name).await,
        setup.first
    );
}

/// `force_new_deployment`: the task definition names a mutable tag; the deploy points the tag at
/// the new image, restarts the service on the live revision and waits for that deployment. What
/// it rolled to (and records) is the digest the tag names, not the movable tag.
#[tokio::test]
async fn force_new_deployment_restarts_on_the_live_revision() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let setup = setup(bed, "latest", &[], "force_new_deployment = true\n").await;
    let mutable = bed.registry().image(&setup.repository, "latest");

    let run = deploy(bed, &setup);
    run.assert_success();
    let json = run.json();
    let report = web(&json);
    assert_eq!(report["action"], "updated", "{json}");
    assert_eq!(report["ids"]["task_definition"], setup.first.as_str());
    let digest = bed
        .registry()
        .head_manifest(&setup.repository, "latest")
        .header("docker-content-digest")
        .map(str::to_owned)
        .expect("the mutable tag exists");
    let pinned = format!("{}@{digest}", mutable.rsplit_once(':').unwrap().0);
    assert_eq!(report["new_artifact"], pinned.as_str());
    assert_eq!(report["ids"]["mutable_tag"], mutable.as_str());
    assert_eq!(
        revisions(&setup.ecs, &setup.name).await,
        1,
        "no new revision"
    );
    let service = setup
        .ecs
        .describe_services()
        .cluster(&setup.name)
        .services(&setup.name)
        .send()
        .await
        .unwrap();
    let primary = service.services()[0]
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .unwrap();
    assert_eq!(primary.id(), report["ids"]["deployment"].as_str());
    assert_eq!(
        primary.rollout_state().map(|s| s.as_str()),
        Some("COMPLETED")
    );
}
