//! The deploy-state records of today read back through each deployer's typed ids: a record the
//! cli wrote before the keys were exported (issue 15) stays readable, key for key.

use deployer_engine::records::ServiceState;

/// `<ssm_prefix>/<service>/deploy-state` of an ECS service as written today: the last deploy,
/// and a `--no-wait` rollout not yet confirmed.
const ECS: &str = r#"{"current":{"tag":"c1","artifact":"h/acme/api@sha256:1","ids":{"cluster":"arn:aws:ecs:us-east-1:123456789012:cluster/acme","container":"web","deployment":"ecs-svc/1","old_task_definition":"arn:aws:ecs:us-east-1:123456789012:task-definition/api:7","service":"arn:aws:ecs:us-east-1:123456789012:service/acme/api","task_definition":"arn:aws:ecs:us-east-1:123456789012:task-definition/api:8"},"at":"2026-01-02T00:00:00Z"},"pending":{"tag":"c2","applied":{"old_artifact":"h/acme/api@sha256:1","new_artifact":"h/acme/api@sha256:2","ids":{"cluster":"acme","container":"web","deployment":"ecs-svc/2","mutable_tag":"h/acme/api:latest","mutable_tag_previous_digest":"sha256:1","old_task_definition":"arn:td:8","service":"api","task_definition":"arn:td:8"}},"at":"2026-01-03T00:00:00Z"}}"#;

/// … of an AgentCore runtime.
const AGENTCORE: &str = r#"{"current":{"tag":"c1","artifact":"h/acme/agent@sha256:1","ids":{"arn":"arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/acme_agent-a1b2c3d4e5","old_version":"7","runtime_id":"acme_agent-a1b2c3d4e5","version":"8"},"at":"2026-01-02T00:00:00Z"}}"#;

/// … of a SageMaker endpoint with two targeted variants.
const SAGEMAKER: &str = r#"{"pending":{"tag":"c2","applied":{"old_artifact":"h/acme/inference@sha256:1","new_artifact":"h/acme/inference@sha256:2","ids":{"endpoint":"acme-inference","endpoint_config":"acme-inference-c2","models":"acme-inference-A-c2,acme-inference-B-c2","old_endpoint_config":"acme-inference-c1","old_models":"acme-inference-A-c1,acme-inference-B-c1","variants":"A,B"}},"at":"2026-01-03T00:00:00Z"}}"#;

/// … of a Lambda function with an alias.
const LAMBDA: &str = r#"{"current":{"tag":"c1","artifact":"2jmj7l5rSw0yVb/vlWAYkK/YBwk=","ids":{"alias":"live","code_sha256":"2jmj7l5rSw0yVb/vlWAYkK/YBwk=","function":"arn:aws:lambda:us-east-1:123456789012:function:render","old_code_sha256":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=","old_version":"4","version":"5"},"at":"2026-01-02T00:00:00Z"}}"#;

fn state(json: &str) -> ServiceState {
    serde_json::from_str(json).expect("a deploy-state record")
}

#[test]
fn ecs_records_of_today_read_back_by_the_exported_keys() {
    use deployer_ecs::ids;

    let state = state(ECS);
    let current = &state.current.as_ref().unwrap().ids;
    let pending = &state.pending.as_ref().unwrap().applied.ids;
    assert_eq!(
        current[ids::TASK_DEFINITION],
        "arn:aws:ecs:us-east-1:123456789012:task-definition/api:8"
    );
    assert_eq!(
        current[ids::OLD_TASK_DEFINITION],
        "arn:aws:ecs:us-east-1:123456789012:task-definition/api:7"
    );
    assert_eq!(current[ids::DEPLOYMENT], "ecs-svc/1");
    assert_eq!(
        current[ids::CLUSTER],
        "arn:aws:ecs:us-east-1:123456789012:cluster/acme"
    );
    assert_eq!(
        current[ids::SERVICE],
        "arn:aws:ecs:us-east-1:123456789012:service/acme/api"
    );
    assert_eq!(current[ids::CONTAINER], "web");
    assert_eq!(pending[ids::MUTABLE_TAG], "h/acme/api:latest");
    assert_eq!(pending[ids::MUTABLE_TAG_PREVIOUS_DIGEST], "sha256:1");
}

#[test]
fn agentcore_records_of_today_read_back_by_the_exported_keys() {
    use deployer_agentcore::ids;

    let state = state(AGENTCORE);
    let current = &state.current.as_ref().unwrap().ids;
    assert_eq!(
        ids::runtime_arn(current),
        Some("arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/acme_agent-a1b2c3d4e5")
    );
    assert_eq!(current[ids::RUNTIME_ID], "acme_agent-a1b2c3d4e5");
    assert_eq!(
        (
            current[ids::OLD_VERSION].as_str(),
            current[ids::VERSION].as_str()
        ),
        ("7", "8")
    );
}

#[test]
fn sagemaker_records_of_today_read_back_typed() {
    use deployer_sagemaker::ids::Rollover;

    let state = state(SAGEMAKER);
    let applied = &state.pending.as_ref().unwrap().applied;
    let rollover = Rollover::from_ids(&applied.ids).unwrap();
    assert_eq!(rollover.endpoint_config, "acme-inference-c2");
    assert_eq!(rollover.old_endpoint_config, "acme-inference-c1");
    assert_eq!(
        rollover.models,
        ["acme-inference-A-c2", "acme-inference-B-c2"]
    );
    assert_eq!(
        rollover.old_models,
        ["acme-inference-A-c1", "acme-inference-B-c1"]
    );
    assert_eq!(rollover.variants, ["A", "B"]);
    assert_eq!(
        rollover.to_ids(),
        applied.ids,
        "written back in the same format"
    );
}

#[test]
fn lambda_records_of_today_read_back_by_the_exported_keys() {
    use deployer_lambda::ids;

    let state = state(LAMBDA);
    let current = &state.current.as_ref().unwrap().ids;
    assert_eq!(
        current[ids::FUNCTION],
        "arn:aws:lambda:us-east-1:123456789012:function:render"
    );
    assert_eq!(current[ids::ALIAS], "live");
    assert_eq!(
        (
            current[ids::OLD_VERSION].as_str(),
            current[ids::VERSION].as_str()
        ),
        ("4", "5")
    );
    assert_eq!(current[ids::CODE_SHA256], "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
    assert_eq!(
        current[ids::OLD_CODE_SHA256],
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    );
    // The whole state is written back as it was read.
    let again: ServiceState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    assert_eq!(again, state);
}
