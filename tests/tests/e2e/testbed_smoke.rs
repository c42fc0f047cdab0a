//! The test bed itself: every AWS service we use answers on moto's one port, SSM round-trips
//! a parameter, and an image built by the real builder is pushed to the registry and found
//! there by tag.

use aws_sdk_ssm::types::ParameterType;
use deployer_tests::{testbed, unique_name};

#[tokio::test]
async fn ssm_parameter_round_trips_through_moto() {
    let Some(bed) = testbed!(moto) else { return };
    let ssm = aws_sdk_ssm::Client::new(&bed.sdk_config().await);
    let name = format!("/deployer-tests/{}/image-tag", unique_name("smoke"));

    let put = ssm
        .put_parameter()
        .name(&name)
        .value("v1")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap();
    assert_eq!(put.version(), 1);
    let got = ssm.get_parameter().name(&name).send().await.unwrap();
    let parameter = got.parameter().expect("GetParameter returns the parameter");
    assert_eq!((parameter.value(), parameter.version()), (Some("v1"), 1));

    let put = ssm
        .put_parameter()
        .name(&name)
        .value("v2")
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    assert_eq!(put.version(), 2);
    let got = ssm.get_parameter().name(&name).send().await.unwrap();
    let parameter = got.parameter().expect("GetParameter returns the parameter");
    assert_eq!((parameter.value(), parameter.version()), (Some("v2"), 2));
}

/// moto routes by the request's signing name: one endpoint URL serves every client.
#[tokio::test]
async fn every_service_answers_on_the_one_moto_port() {
    let Some(bed) = testbed!(moto) else { return };
    let config = bed.sdk_config().await;

    let ssm = aws_sdk_ssm::Client::new(&config);
    ssm.describe_parameters()
        .send()
        .await
        .expect("SSM DescribeParameters");

    let ecs = aws_sdk_ecs::Client::new(&config);
    let cluster = unique_name("cluster");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .expect("ECS CreateCluster");
    let clusters = ecs.list_clusters().send().await.expect("ECS ListClusters");
    assert!(
        clusters
            .cluster_arns()
            .iter()
            .any(|arn| arn.ends_with(&format!("/{cluster}"))),
        "{clusters:?}"
    );

    let ecr = aws_sdk_ecr::Client::new(&config);
    let repository = unique_name("repo");
    let created = ecr
        .create_repository()
        .repository_name(&repository)
        .send()
        .await
        .expect("ECR CreateRepository");
    let uri = created
        .repository()
        .and_then(|r| r.repository_uri())
        .expect("repositoryUri");
    assert!(uri.ends_with(&format!("/{repository}")), "{uri}");

    let lambda = aws_sdk_lambda::Client::new(&config);
    lambda
        .list_functions()
        .send()
        .await
        .expect("Lambda ListFunctions");

    let agentcore = aws_sdk_bedrockagentcorecontrol::Client::new(&config);
    agentcore
        .list_agent_runtimes()
        .send()
        .await
        .expect("bedrock-agentcore-control ListAgentRuntimes");
}

#[test]
fn scratch_image_is_built_pushed_and_found_by_tag() {
    let Some(bed) = testbed!(registry, builder) else {
        return;
    };
    let (registry, builder) = (bed.registry(), bed.builder());
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("hello.txt"),
        "hello from the test bed\n",
    )
    .unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nCOPY hello.txt /hello.txt\n",
    )
    .unwrap();
    let repository = format!("deployer-tests/{}", unique_name("smoke"));
    let image = registry.image(&repository, "v1");

    builder.build(context.path(), &image, "linux/arm64");
    builder.push(&image);
    builder.remove(&image);

    let found = registry.head_manifest(&repository, "v1");
    assert_eq!(found.status, 200, "HEAD manifest: {found:?}");
    let digest = found
        .header("Docker-Content-Digest")
        .expect("Docker-Content-Digest header");
    assert!(digest.starts_with("sha256:"), "{digest}");

    // The image really is for linux/arm64: its config blob says so.
    let manifest = registry
        .get(&format!("/v2/{repository}/manifests/{digest}"))
        .json()
        .unwrap();
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("manifest config digest");
    let config = registry
        .get(&format!("/v2/{repository}/blobs/{config_digest}"))
        .json()
        .unwrap();
    assert_eq!(
        (config["os"].as_str(), config["architecture"].as_str()),
        (Some("linux"), Some("arm64"))
    );

    let absent = registry.head_manifest(&repository, "no-such-tag");
    assert_eq!(absent.status, 404, "HEAD of an absent tag: {absent:?}");
}
