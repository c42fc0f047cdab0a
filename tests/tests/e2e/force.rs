//! ECS `force_new_deployment`: a task definition on a mutable tag. The pipeline pushes the
//! content tag, points the mutable tag at the same digest, and forces a new deployment on the
//! live task definition; unchanged is decided by the last deploy recorded. Through the real
//! binary, on the example monorepo (whose task definition runs `…/app-api:bootstrap`).

use crate::monorepo::{monorepo, service};
use deployer_tests::testbed;

#[tokio::test]
async fn force_new_deployment_moves_the_mutable_tag_and_restarts() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let mono = monorepo(bed);
    let manifest = mono.repo.read("deployer.toml").replace(
        "container = \"app\"",
        "container = \"app\"\nforce_new_deployment = true",
    );
    mono.repo.write("deployer.toml", manifest);
    mono.repo.commit("app-api runs a mutable tag");
    let repository = format!("{}/app-api", mono.project);
    let digest = |reference: &str| {
        bed.registry()
            .head_manifest(&repository, reference)
            .header("docker-content-digest")
            .map(str::to_owned)
    };
    let ecs = aws_sdk_ecs::Client::new(&bed.sdk_config().await);
    let live_task_definition = || async {
        let described = ecs
            .describe_services()
            .cluster(&mono.project)
            .services("app-api")
            .send()
            .await
            .unwrap();
        described.services()[0]
            .task_definition()
            .unwrap()
            .to_owned()
    };
    let bootstrap_task_definition = live_task_definition().await;

    let first = mono.deploy(bed, &["--service", "app-api"]);
    first.assert_success();
    let report = service(&first.json(), "app-api").clone();
    assert_eq!(report["action"], "updated", "{report}");
    let tag = report["tag"].as_str().unwrap().to_owned();
    assert!(digest(&tag).is_some());
    assert_eq!(
        digest("bootstrap"),
        digest(&tag),
        "the mutable tag names the new image"
    );
    assert_eq!(
        live_task_definition().await,
        bootstrap_task_definition,
        "no new revision: a forced deployment"
    );
    assert!(report["ids"]["deployment"].is_string(), "{report}");

    let second = mono.deploy(bed, &["--service", "app-api"]);
    second.assert_success();
    assert_eq!(service(&second.json(), "app-api")["action"], "unchanged");

    mono.repo.write(
        "backend/src/apis/app_api/main.py",
        "def health():\n    return {'status': 'ok', 'v': 4}\n",
    );
    let third = mono.deploy(bed, &["--service", "app-api"]);
    third.assert_success();
    let new_tag = service(&third.json(), "app-api")["tag"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_tag, tag);
    assert_eq!(
        digest("bootstrap"),
        digest(&new_tag),
        "the mutable tag moved to the newer image"
    );
}
