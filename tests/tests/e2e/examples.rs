//! The crates' example programs are real tools: `deployer-ecs`'s `ecs-roll` (built by
//! `cargo test --workspace`, like every example) rolls an ECS service in moto over to an image
//! pushed to the bed's registry, with nothing but the standard AWS environment pointing it at
//! moto over plain http.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{ContainerDefinition, KeyValuePair, LaunchType};
use deployer_tests::{Deployer, RunOutput, Testbed, example_bin, testbed, unique_name};

fn ecs_roll(bed: &Testbed, args: &[&str]) -> RunOutput {
    Deployer::program(example_bin("deployer-ecs", "ecs-roll"))
        .bed(bed)
        .args(args)
        .run()
}

/// The service's task definition: (ARN, revision, the `web` container's image and environment).
async fn live(ecs: &Client, name: &str) -> (String, i32, String, Vec<KeyValuePair>) {
    let services = ecs
        .describe_services()
        .cluster(name)
        .services(name)
        .send()
        .await
        .unwrap();
    let arn = services.services()[0].task_definition().unwrap().to_owned();
    let described = ecs
        .describe_task_definition()
        .task_definition(&arn)
        .send()
        .await
        .unwrap();
    let definition = described.task_definition().unwrap();
    let web = definition
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some("web"))
        .unwrap();
    (
        arn.clone(),
        definition.revision(),
        web.image().unwrap().to_owned(),
        web.environment().to_vec(),
    )
}

#[tokio::test]
async fn the_deployer_ecs_example_rolls_a_service_to_the_pushed_image() {
    let Some(bed) = testbed!(moto, registry) else {
        return;
    };
    let ecs = Client::new(&bed.sdk_config().await);
    let name = unique_name("example");
    let repository = format!("{name}/web");
    ecs.create_cluster()
        .cluster_name(&name)
        .send()
        .await
        .unwrap();
    let web = ContainerDefinition::builder()
        .name("web")
        .image(bed.registry().image(&repository, "bootstrap"))
        .memory(256)
        .essential(true)
        .environment(
            KeyValuePair::builder()
                .name("RUST_LOG")
                .value("info")
                .build(),
        )
        .build();
    let sidecar = ContainerDefinition::builder()
        .name("log-router")
        .image("public.ecr.aws/aws-observability/aws-for-fluent-bit:stable")
        .memory_reservation(50)
        .essential(false)
        .build();
    let first = ecs
        .register_task_definition()
        .family(&name)
        .container_definitions(web)
        .container_definitions(sidecar)
        .send()
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_owned();
    ecs.create_service()
        .cluster(&name)
        .service_name(&name)
        .task_definition(&first)
        .desired_count(2)
        .launch_type(LaunchType::Ec2)
        .send()
        .await
        .unwrap();
    let (digest, _) = bed
        .registry()
        .push_image(&repository, "v2", "amd64", b"the example's layer");
    let image = format!("{}/{repository}@{digest}", bed.registry().host);

    // Rolled over: a new revision with the pushed image in `web`, waited for until completed.
    let run = ecs_roll(
        bed,
        &[
            "--cluster",
            &name,
            "--service",
            &name,
            "--container",
            "web",
            "--timeout-secs",
            "120",
            &image,
        ],
    );
    run.assert_success();
    assert!(
        run.stdout
            .starts_with(&format!("updated: ECS service {name}/{name}\n")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("  now:    {image}\n")),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("apply: registered") && run.stderr.contains("completed"),
        "progress on stderr: {}",
        run.stderr
    );
    let (arn, revision, live_image, environment) = live(&ecs, &name).await;
    assert_ne!(arn, first);
    assert_eq!(revision, 2);
    assert_eq!(
        live_image, image,
        "the service runs the pushed image, by digest"
    );
    assert_eq!(environment[0].value(), Some("info"), "the rest is copied");
    assert!(
        run.stdout.contains(&format!("  task_definition: {arn}\n")),
        "{}",
        run.stdout
    );
    let services = ecs
        .describe_services()
        .cluster(&name)
        .services(&name)
        .send()
        .await
        .unwrap();
    let primary = services.services()[0]
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .unwrap();
    assert_eq!(primary.task_definition(), Some(arn.as_str()));
    assert_eq!(
        primary.rollout_state().map(|s| s.as_str()),
        Some("COMPLETED")
    );
    assert_eq!(primary.running_count(), 2);

    // Again: unchanged, nothing registered.
    let again = ecs_roll(
        bed,
        &[
            "--cluster",
            &name,
            "--service",
            &name,
            "--container",
            "web",
            &image,
        ],
    );
    again.assert_success();
    assert!(again.stdout.starts_with("unchanged: "), "{}", again.stdout);
    assert_eq!(live(&ecs, &name).await.1, 2);

    // Failures exit non-zero and say why: a service that does not exist (1), arguments that
    // name no image (2).
    let missing = ecs_roll(bed, &["--cluster", &name, "--service", "absent", &image]);
    missing.assert_code(1);
    assert!(
        missing.stderr.contains("error: ") && missing.stderr.contains("absent"),
        "{}",
        missing.stderr
    );
    assert!(missing.stdout.is_empty(), "{}", missing.stdout);
    ecs_roll(bed, &["--cluster", &name, "--service", &name, "no-image"]).assert_code(2);
    assert_eq!(live(&ecs, &name).await.1, 2);
}
