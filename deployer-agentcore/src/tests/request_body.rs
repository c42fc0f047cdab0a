//! The exact `UpdateAgentRuntime` body, over replayed HTTP: a `GetAgentRuntime` response with
//! every field set goes in, and the update must send every field back as read, with only the
//! container URI replaced and nothing read-only added.

use aws_sdk_bedrockagentcorecontrol::{Client, Config};
use aws_smithy_http_client_test_util::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_runtime_api::http::{Request, Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use serde_json::{Map, Value, json};

use super::{FIXTURE, RUNTIME_ID, assert_no_secrets, new_uri, old_uri, run};
use crate::AgentcoreDeployer;
use crate::fields::{CARRIED_OVER, READ_ONLY};

const ENDPOINT: &str = "https://bedrock-agentcore-control.us-east-1.amazonaws.com";
/// What the test client's idempotency token provider returns.
const CLIENT_TOKEN: &str = "00000000-0000-4000-8000-000000000000";

fn fixture() -> Map<String, Value> {
    serde_json::from_str(FIXTURE).unwrap()
}

fn runtime_uri() -> String {
    format!("{ENDPOINT}/runtimes/{RUNTIME_ID}")
}

fn get_request() -> Request<SdkBody> {
    let mut request = Request::new(SdkBody::empty());
    request.set_uri(runtime_uri()).unwrap();
    request
}

fn update_request(body: &Value) -> Request<SdkBody> {
    let mut request = Request::new(SdkBody::from(body.to_string()));
    request.set_uri(runtime_uri()).unwrap();
    request.set_method("PUT").unwrap();
    request
}

fn response(status: u16, body: &Value) -> Response<SdkBody> {
    let mut response = Response::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(body.to_string()),
    );
    response
        .headers_mut()
        .insert("content-type", "application/json");
    response
}

/// The fixture as the runtime reads after the update settled.
fn settled_after_update() -> Value {
    let mut live = fixture();
    live.insert("agentRuntimeVersion".into(), json!("8"));
    live.insert(
        "agentRuntimeArtifact".into(),
        json!({"containerConfiguration": {"containerUri": new_uri()}}),
    );
    Value::Object(live)
}

fn update_response() -> Value {
    json!({
        "agentRuntimeArn": fixture()["agentRuntimeArn"],
        "agentRuntimeId": RUNTIME_ID,
        "workloadIdentityDetails": fixture()["workloadIdentityDetails"],
        "agentRuntimeVersion": "8",
        "createdAt": "2025-01-01T00:00:00Z",
        "lastUpdatedAt": "2025-02-01T08:53:20Z",
        "status": "UPDATING",
    })
}

/// What the update must send: the fixture without the read-only members, the new URI, and
/// the call's idempotency token.
fn expected_update_body() -> Value {
    let mut body = fixture();
    for field in READ_ONLY {
        body.remove(field.json);
    }
    body.insert(
        "agentRuntimeArtifact".into(),
        json!({"containerConfiguration": {"containerUri": new_uri()}}),
    );
    body.insert("clientToken".into(), json!(CLIENT_TOKEN));
    Value::Object(body)
}

fn deployer(http: &StaticReplayClient) -> AgentcoreDeployer {
    let config = Config::builder()
        .with_test_defaults_v2()
        .http_client(http.clone())
        .build();
    AgentcoreDeployer::new(Client::from_conf(config), super::target())
}

#[tokio::test(start_paused = true)]
async fn update_sends_back_every_field_it_read() {
    let live = Value::Object(fixture());
    let expected = expected_update_body();
    let http = StaticReplayClient::new(vec![
        ReplayEvent::new(get_request(), response(200, &live)),
        ReplayEvent::new(get_request(), response(200, &live)),
        ReplayEvent::new(update_request(&expected), response(202, &update_response())),
        ReplayEvent::new(get_request(), response(200, &settled_after_update())),
    ]);
    let run = run(&deployer(&http)).await;
    let outcome = run.outcome();
    assert_eq!(outcome.old_artifact.as_deref(), Some(old_uri().as_str()));
    assert_eq!(outcome.new_artifact.as_deref(), Some(new_uri().as_str()));
    assert_eq!(outcome.ids["old_version"], "7");
    assert_eq!(outcome.ids["version"], "8");

    let requests: Vec<_> = http.actual_requests().collect();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[2].method(), "PUT");
    let sent: Value = serde_json::from_slice(requests[2].body().bytes().unwrap()).unwrap();
    let Value::Object(sent) = sent else {
        panic!("the update body is not an object")
    };
    let Value::Object(expected) = expected else {
        unreachable!()
    };
    for (key, value) in &expected {
        assert_eq!(
            sent.get(key),
            Some(value),
            "`{key}` was not sent back as read"
        );
    }
    for key in sent.keys() {
        assert!(
            expected.contains_key(key),
            "`{key}` was sent but is read-only or unknown"
        );
    }
    for field in CARRIED_OVER {
        assert!(
            sent.contains_key(field.json),
            "`{}` is carried over but was not sent",
            field.json
        );
    }
    // Only the container URI differs from what was read.
    let read = fixture();
    for (key, value) in &sent {
        match key.as_str() {
            "agentRuntimeArtifact" => assert_ne!(Some(value), read.get(key)),
            "clientToken" => {}
            _ => assert_eq!(Some(value), read.get(key), "`{key}` changed"),
        }
    }

    // The same through the replay client: URIs and JSON bodies (no headers are expected, so
    // none are compared).
    http.assert_requests_match(&[]);
}

#[tokio::test(start_paused = true)]
async fn an_unmodelled_field_in_the_response_stops_the_update() {
    let mut live = fixture();
    live.insert(
        "sessionAffinityConfiguration".into(),
        json!({"mode": "STICKY"}),
    );
    let live = Value::Object(live);
    let http = StaticReplayClient::new(vec![
        ReplayEvent::new(get_request(), response(200, &live)),
        ReplayEvent::new(get_request(), response(200, &live)),
    ]);
    let run = run(&deployer(&http)).await;
    let error = run.error().to_string();
    assert!(error.contains("`sessionAffinityConfiguration`"), "{error}");
    assert!(error.contains("upgrade deployer"), "{error}");
    assert!(run.error().is_config());
    assert_eq!(http.actual_requests().count(), 2, "no update may be sent");
}

#[tokio::test(start_paused = true)]
async fn a_missing_role_arn_is_a_missing_field() {
    let mut live = fixture();
    live.remove("roleArn");
    let live = Value::Object(live);
    let http = StaticReplayClient::new(vec![
        ReplayEvent::new(get_request(), response(200, &live)),
        ReplayEvent::new(get_request(), response(200, &live)),
    ]);
    let run = run(&deployer(&http)).await;
    let error = run.error();
    assert!(
        matches!(
            error,
            deployer_core::DeployError::MissingField {
                field: "roleArn",
                ..
            }
        ),
        "{error:?}"
    );
    assert_no_secrets("the error", &error.to_string());
    assert_eq!(http.actual_requests().count(), 2, "no update may be sent");
}

#[tokio::test(start_paused = true)]
async fn a_nested_field_the_sdk_skips_stops_the_update() {
    // A member AWS added inside a configuration the SDK knows: the SDK skips it on read, so the
    // update would reset it.
    let mut live = fixture();
    live["authorizerConfiguration"]["customJWTAuthorizer"]["certificateConfigurations"] =
        json!([{"s3": {"uri": "s3://acme-certs/idp.pem"}}]);
    let live = Value::Object(live);
    let http = StaticReplayClient::new(vec![
        ReplayEvent::new(get_request(), response(200, &live)),
        ReplayEvent::new(get_request(), response(200, &live)),
    ]);
    let run = run(&deployer(&http)).await;
    let error = run.error().to_string();
    assert!(
        error.contains("`authorizerConfiguration.customJWTAuthorizer.certificateConfigurations`"),
        "{error}"
    );
    assert!(error.contains("was not updated"), "{error}");
    assert!(run.error().is_config());
    assert_eq!(http.actual_requests().count(), 2, "no update may be sent");
}
