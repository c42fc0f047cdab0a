//! Two deploys of one service at once: one proceeds, the other waits for it (or, with
//! `--lock-wait 0s`, fails naming the holder); a lock whose holder died expires and is taken
//! over. Through the real binary, on the example monorepo.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_ssm::types::ParameterType;

use crate::monorepo::{monorepo, service};
use deployer_tests::testbed;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn concurrent_deploys_of_one_service_never_interleave() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let mono = monorepo(bed);
    let ssm = aws_sdk_ssm::Client::new(&bed.sdk_config().await);
    let ecs = aws_sdk_ecs::Client::new(&bed.sdk_config().await);
    let lock = format!("/{}/app-api/lock", mono.project);

    // Two deploys at the same time: both succeed, one rolls, the other waited and found the
    // service already on the image; exactly one new revision.
    let (a, b) = std::thread::scope(|scope| {
        // -v: progress lines on stderr even with --json
        let first = scope.spawn(|| mono.deploy(bed, &["--service", "app-api", "-v"]));
        let second = scope.spawn(|| mono.deploy(bed, &["--service", "app-api", "-v"]));
        (first.join().unwrap(), second.join().unwrap())
    });
    a.assert_success();
    b.assert_success();
    let mut actions = vec![
        service(&a.json(), "app-api")["action"]
            .as_str()
            .unwrap()
            .to_owned(),
        service(&b.json(), "app-api")["action"]
            .as_str()
            .unwrap()
            .to_owned(),
    ];
    actions.sort();
    assert_eq!(actions, ["unchanged", "updated"]);
    assert!(
        a.stderr.contains("waiting for another deploy")
            || b.stderr.contains("waiting for another deploy"),
        "{}\n{}",
        a.stderr,
        b.stderr
    );
    let revisions = ecs
        .list_task_definitions()
        .family_prefix(format!("{}-app-api", mono.project))
        .send()
        .await
        .unwrap();
    assert_eq!(revisions.task_definition_arns().len(), 2, "bootstrap + one");
    assert!(
        ssm.get_parameter().name(&lock).send().await.is_err(),
        "the lock is released"
    );

    // A live holder: --lock-wait 0s fails at once, naming it.
    let claim = format!(
        "{{\"id\":\"other-1\",\"holder\":\"pid 4242 on ci-runner-7\",\"renewed_at\":{},\"lease_s\":600}}",
        now()
    );
    ssm.put_parameter()
        .name(&lock)
        .value(claim)
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap();
    mono.repo.write(
        "backend/src/apis/app_api/main.py",
        "def health():\n    return {'status': 'ok', 'v': 3}\n",
    );
    let held = mono.deploy(bed, &["--service", "app-api", "--lock-wait", "0s"]);
    held.assert_code(1);
    let message = service(&held.json(), "app-api")["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("another deploy of `app-api` is running: pid 4242 on ci-runner-7"),
        "{message}"
    );

    // The holder died: its lease expired, the next deploy takes the lock over and proceeds.
    let expired = format!(
        "{{\"id\":\"other-2\",\"holder\":\"pid 4242 on ci-runner-7\",\"renewed_at\":{},\"lease_s\":5}}",
        now() - 60
    );
    ssm.put_parameter()
        .name(&lock)
        .value(expired)
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let taken = mono.deploy(bed, &["--service", "app-api", "--lock-wait", "0s", "-v"]);
    taken.assert_success();
    assert_eq!(service(&taken.json(), "app-api")["action"], "updated");
    assert!(
        taken.stderr.contains("taking over the lock"),
        "{}",
        taken.stderr
    );
    assert!(
        ssm.get_parameter().name(&lock).send().await.is_err(),
        "released after the deploy"
    );
}
