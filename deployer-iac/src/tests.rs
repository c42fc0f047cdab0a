#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;

const PARAM: &str = "/acme/app-api/image-tag";

fn ecs() -> Target<'static> {
    Target {
        kind: Kind::Ecs,
        service: "app-api",
        name: Some("app-api"),
        container: Some("app"),
        parameter: PARAM,
    }
}

/// An ECS template whose `app` container's image is `image`, with the parameters `parameters`.
fn ecs_template(image: Value, parameters: Value) -> Value {
    json!({
        "Parameters": parameters,
        "Resources": {
            "Task": {
                "Type": "AWS::ECS::TaskDefinition",
                "Properties": {
                    "ContainerDefinitions": [
                        { "Name": "sidecar", "Image": "public.ecr.aws/envoy:v1" },
                        { "Name": "app", "Image": image }
                    ]
                }
            }
        }
    })
}

fn ssm_parameter(default: &str) -> Value {
    json!({ "Tag": { "Type": "AWS::SSM::Parameter::Value<String>", "Default": default } })
}

fn wiring_of(template: &Value, target: &Target<'_>) -> Vec<Wiring> {
    template::check(template, target)
        .into_iter()
        .map(|f| f.wiring)
        .collect()
}

#[test]
fn dynamic_references_to_the_tag_parameter_are_wired() {
    for image in [
        json!("123.dkr.ecr.us-east-1.amazonaws.com/app:{{resolve:ssm:/acme/app-api/image-tag}}"),
        json!("123.dkr.ecr.us-east-1.amazonaws.com/app:{{resolve:ssm:/acme/app-api/image-tag:7}}"),
        json!({ "Fn::Sub": "${AWS::AccountId}.dkr.ecr.${AWS::Region}.amazonaws.com/app:{{resolve:ssm:/acme/app-api/image-tag}}" }),
        json!({ "Fn::Join": ["", [{ "Ref": "AWS::AccountId" }, ".dkr.ecr/app:", "{{resolve:ssm:/acme/app-api/image-tag}}"]] }),
    ] {
        let template = ecs_template(image.clone(), json!({}));
        assert_eq!(wiring_of(&template, &ecs()), [Wiring::Wired], "{image}");
    }
}

#[test]
fn ssm_typed_parameters_defaulting_to_the_tag_parameter_are_wired() {
    for image in [
        json!({ "Ref": "Tag" }),
        json!({ "Fn::Sub": "123.dkr.ecr.us-east-1.amazonaws.com/app:${Tag}" }),
        json!({ "Fn::Sub": ["${Repo}:${T}", { "Repo": "123.dkr.ecr/app", "T": { "Ref": "Tag" } }] }),
        // What CDK's ContainerImage.fromEcrRepository(repo, valueForStringParameter(…)) emits.
        json!({ "Fn::Join": ["", [
            { "Fn::Select": [4, { "Fn::Split": [":", { "Fn::GetAtt": ["Repo", "Arn"] }] }] },
            ".dkr.ecr.",
            { "Ref": "AWS::URLSuffix" },
            "/",
            { "Ref": "Repo" },
            ":",
            { "Ref": "Tag" }
        ]] }),
    ] {
        let template = ecs_template(image.clone(), ssm_parameter(PARAM));
        assert_eq!(wiring_of(&template, &ecs()), [Wiring::Wired], "{image}");
    }
}

#[test]
fn literals_other_parameters_and_other_ssm_parameters_are_not_wired() {
    let literal = ecs_template(json!("123.dkr.ecr/app:v41"), json!({}));
    assert_eq!(
        wiring_of(&literal, &ecs()),
        [Wiring::Literal("123.dkr.ecr/app:v41".into())]
    );
    // An SSM-typed parameter of another service.
    let other = ecs_template(
        json!({ "Ref": "Tag" }),
        ssm_parameter("/acme/web/image-tag"),
    );
    assert_eq!(
        wiring_of(&other, &ecs()),
        [Wiring::OtherParameter {
            name: "Tag".into(),
            kind: "AWS::SSM::Parameter::Value<String>".into(),
            default: Some("/acme/web/image-tag".into()),
        }]
    );
    // A plain String parameter inside Fn::Sub.
    let plain = ecs_template(
        json!({ "Fn::Sub": "123.dkr.ecr/app:${ImageTag}" }),
        json!({ "ImageTag": { "Type": "String", "Default": "v1" } }),
    );
    assert!(matches!(
        &wiring_of(&plain, &ecs())[..],
        [Wiring::OtherParameter { name, kind, .. }] if name == "ImageTag" && kind == "String"
    ));
    // Another parameter's dynamic reference, and a prefix of the right one.
    for image in [
        "app:{{resolve:ssm:/acme/web/image-tag}}",
        "app:{{resolve:ssm:/acme/app-api/image-tag-old}}",
    ] {
        let template = ecs_template(json!(image), json!({}));
        assert!(
            matches!(&wiring_of(&template, &ecs())[..], [Wiring::Other(_)]),
            "{image}"
        );
    }
}

#[test]
fn the_warning_names_resource_path_expected_wiring_and_fix() {
    let template = ecs_template(json!("123.dkr.ecr/app:v41"), json!({}));
    let findings = template::check(&template, &ecs());
    let warning = findings[0].warning("AcmeCompute", &ecs()).unwrap();
    for needle in [
        "CloudFormation stack `AcmeCompute`",
        "Task (AWS::ECS::TaskDefinition) Properties.ContainerDefinitions[1].Image is the literal `123.dkr.ecr/app:v41`",
        "`{{resolve:ssm:/acme/app-api/image-tag}}`",
        "AWS::SSM::Parameter::Value<String> with Default `/acme/app-api/image-tag`",
        "ecs.ContainerImage.fromEcrRepository(repo, ssm.StringParameter.valueForStringParameter(this, '/acme/app-api/image-tag'))",
    ] {
        assert!(warning.contains(needle), "{needle} in {warning}");
    }
    assert!(!warning.contains('\n'));
}

#[test]
fn yaml_templates_with_short_form_tags_parse_to_the_long_form() {
    let body = r#"
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Tag:
    Type: AWS::SSM::Parameter::Value<String>
    Default: /acme/app-api/image-tag
Resources:
  Task:
    Type: AWS::ECS::TaskDefinition
    Properties:
      Cpu: 256
      ContainerDefinitions:
        - Name: app
          Image: !Join
            - ""
            - - !GetAtt Repo.RepositoryUri
              - ":"
              - !Ref Tag
        - Name: other
          Image: !Sub "${AWS::AccountId}.dkr.ecr.${AWS::Region}.amazonaws.com/x:{{resolve:ssm:/acme/app-api/image-tag}}"
          Essential: false
  Fn:
    Type: AWS::Lambda::Function
    Condition: !Condition IsProd
    Properties:
      Code:
        ImageUri: !Select [0, !Split [",", !ImportValue Images]]
"#;
    let template = template::parse(body).unwrap();
    let containers = &template["Resources"]["Task"]["Properties"]["ContainerDefinitions"];
    assert_eq!(
        containers[0]["Image"],
        json!({ "Fn::Join": ["", [{ "Fn::GetAtt": ["Repo", "RepositoryUri"] }, ":", { "Ref": "Tag" }]] })
    );
    assert_eq!(
        containers[1]["Image"]["Fn::Sub"],
        "${AWS::AccountId}.dkr.ecr.${AWS::Region}.amazonaws.com/x:{{resolve:ssm:/acme/app-api/image-tag}}"
    );
    assert_eq!(containers[1]["Essential"], false);
    assert_eq!(template["Resources"]["Task"]["Properties"]["Cpu"], 256);
    assert_eq!(
        template["Resources"]["Fn"]["Properties"]["Code"]["ImageUri"],
        json!({ "Fn::Select": [0, { "Fn::Split": [",", { "Fn::ImportValue": "Images" }] }] })
    );
    assert_eq!(
        template["Resources"]["Fn"]["Condition"],
        json!({ "Condition": "IsProd" })
    );
    assert_eq!(wiring_of(&template, &ecs()), [Wiring::Wired]);
    let all = Target {
        container: None,
        ..ecs()
    };
    assert_eq!(wiring_of(&template, &all), [Wiring::Wired, Wiring::Wired]);
}

#[test]
fn yaml_literal_and_json_give_the_same_findings() {
    let yaml = "Resources:\n  Task:\n    Type: AWS::ECS::TaskDefinition\n    Properties:\n      ContainerDefinitions:\n        - Name: app\n          Image: 123.dkr.ecr/app:v41\n";
    let json_body = ecs_template(json!("123.dkr.ecr/app:v41"), json!({})).to_string();
    let from_yaml = template_warnings("S", yaml, &ecs());
    let from_json = template_warnings("S", &json_body, &ecs());
    assert_eq!(from_yaml.len(), 1);
    assert_eq!(
        from_yaml[0].replace("[0]", "[1]"),
        from_json[0],
        "the same warning, but for the index"
    );
    assert!(template_warnings("S", "Resources: [", &ecs())[0].contains("does not parse"));
}

#[test]
fn the_target_is_narrowed_by_the_names_the_template_gives() {
    let template = json!({
        "Resources": {
            "ApiTask": { "Type": "AWS::ECS::TaskDefinition", "Properties": { "ContainerDefinitions": [
                { "Name": "app", "Image": "app:{{resolve:ssm:/acme/app-api/image-tag}}" } ] } },
            "WorkerTask": { "Type": "AWS::ECS::TaskDefinition", "Properties": { "ContainerDefinitions": [
                { "Name": "app", "Image": "worker:v3" } ] } },
            "Api": { "Type": "AWS::ECS::Service", "Properties": { "ServiceName": "app-api", "TaskDefinition": { "Ref": "ApiTask" } } },
            "Ingest": { "Type": "AWS::Lambda::Function", "Properties": { "FunctionName": "acme-ingest", "Code": { "ImageUri": "ingest:v1" } } },
            "Render": { "Type": "AWS::Lambda::Function", "Properties": { "FunctionName": "acme-render", "Code": { "ImageUri": "render:{{resolve:ssm:/acme/render/image-tag}}" } } },
            "Agent": { "Type": "AWS::BedrockAgentCore::Runtime", "Properties": { "AgentRuntimeName": "acme_agent",
                "AgentRuntimeArtifact": { "ContainerConfiguration": { "ContainerUri": "agent:v9" } } } }
        }
    });
    assert_eq!(
        wiring_of(&template, &ecs()),
        [Wiring::Wired],
        "the service's task definition only"
    );
    let render = Target {
        kind: Kind::Lambda,
        service: "render",
        name: Some("arn:aws:lambda:us-east-1:123456789012:function:acme-render"),
        container: None,
        parameter: "/acme/render/image-tag",
    };
    assert_eq!(wiring_of(&template, &render), [Wiring::Wired]);
    let agent = Target {
        kind: Kind::Agentcore,
        service: "agent",
        name: Some("acme_agent-AbCdE12345"),
        container: None,
        parameter: "/acme/agent/image-tag",
    };
    let findings = template::check(&template, &agent);
    assert_eq!(
        findings[0].property,
        "Properties.AgentRuntimeArtifact.ContainerConfiguration.ContainerUri"
    );
    assert_eq!(findings[0].wiring, Wiring::Literal("agent:v9".into()));
    let none = Target {
        kind: Kind::Sagemaker,
        ..agent
    };
    assert!(
        template_warnings("S", &template.to_string(), &none)[0]
            .contains("has no AWS::SageMaker::Model")
    );
}

fn state(image: &str, data_value: Option<&str>) -> Value {
    let mut resources = vec![json!({
        "mode": "managed", "type": "aws_ecs_task_definition", "name": "app",
        "instances": [{ "attributes": {
            "container_definitions": json!([
                { "name": "app", "image": image },
                { "name": "proxy", "image": "nginx:1" }
            ]).to_string()
        } }]
    })];
    if let Some(value) = data_value {
        resources.push(json!({
            "mode": "data", "type": "aws_ssm_parameter", "name": "tag",
            "instances": [{ "attributes": { "name": PARAM, "value": value, "insecure_value": value } }]
        }));
    }
    json!({ "version": 4, "resources": resources })
}

#[test]
fn a_state_image_other_than_the_live_one_warns_unless_it_is_the_same() {
    let live = "127.0.0.1:5000/acme/app-api@sha256:bbb";
    let stale = state("127.0.0.1:5000/acme/app-api:old", None);
    let read = tfstate::image(
        &stale,
        "aws_ecs_task_definition.app",
        Kind::Ecs,
        Some("app"),
        PARAM,
    )
    .unwrap();
    assert_eq!(read.attribute, "container_definitions[app].image");
    let warning = state_warning(
        "infra/terraform.tfstate",
        "aws_ecs_task_definition.app",
        &read,
        live,
        Some("new"),
        &ecs(),
    )
    .unwrap();
    for needle in [
        "`terraform apply` would revert the image",
        "`infra/terraform.tfstate` has `aws_ecs_task_definition.app` container_definitions[app].image = `127.0.0.1:5000/acme/app-api:old`",
        "data \"aws_ssm_parameter\" \"image_tag\" { name = \"/acme/app-api/image-tag\" }",
        "lifecycle { ignore_changes = [container_definitions] }",
        "ignores_image = true",
    ] {
        assert!(warning.contains(needle), "{needle} in {warning}");
    }
    // The recorded tag, the digest, the very same string: the same image.
    for image in [
        "127.0.0.1:5000/acme/app-api:new",
        "127.0.0.1:5000/acme/app-api@sha256:bbb",
        "127.0.0.1:5000/acme/app-api:new@sha256:bbb",
    ] {
        let read = tfstate::image(
            &state(image, None),
            "aws_ecs_task_definition.app",
            Kind::Ecs,
            Some("app"),
            PARAM,
        )
        .unwrap();
        assert_eq!(
            state_warning("s", "a", &read, live, Some("new"), &ecs()),
            None,
            "{image}"
        );
    }
    // Another repository with the same tag is not.
    assert!(!same_image(
        "127.0.0.1:5000/acme/web:new",
        live,
        Some("new")
    ));
    // A configuration reading the tag parameter: the image came from it at the last apply.
    let reads = tfstate::image(
        &state("127.0.0.1:5000/acme/app-api:old", Some("old")),
        "aws_ecs_task_definition.app",
        Kind::Ecs,
        Some("app"),
        PARAM,
    )
    .unwrap();
    assert!(reads.reads_parameter);
    assert_eq!(
        state_warning("s", "a", &reads, live, Some("new"), &ecs()),
        None
    );
}

#[test]
fn state_errors_say_what_is_missing() {
    let s = state("app:1", None);
    let error = |address: &str, kind: Kind, container: Option<&str>| {
        tfstate::image(&s, address, kind, container, PARAM)
            .unwrap_err()
            .to_string()
    };
    assert!(
        error("aws_ecs_task_definition.web", Kind::Ecs, Some("app"))
            .contains("has no such resource")
    );
    assert!(error("aws_ecs_task_definition.app", Kind::Ecs, None).contains("several containers"));
    assert!(
        error("aws_ecs_task_definition.app", Kind::Ecs, Some("db")).contains("no container `db`")
    );
    assert!(
        error("aws_ecs_task_definition.app", Kind::Lambda, None)
            .contains("is in a `aws_lambda_function`")
    );
    assert!(error("nonsense", Kind::Ecs, None).contains("not a resource address"));
    let lambda = json!({ "version": 4, "resources": [{ "module": "module.api", "mode": "managed",
        "type": "aws_lambda_function", "name": "this",
        "instances": [{ "index_key": 0, "attributes": { "image_uri": "fn:1" } }] }] });
    let read = tfstate::image(
        &lambda,
        "module.api.aws_lambda_function.this[0]",
        Kind::Lambda,
        None,
        PARAM,
    )
    .unwrap();
    assert_eq!(
        (read.attribute.as_str(), read.image.as_str()),
        ("image_uri", "fn:1")
    );
}

#[test]
fn image_references_split_at_the_tag_not_the_port() {
    let r = ImageRef::parse("127.0.0.1:5000/acme/app:v1@sha256:abc");
    assert_eq!(r.repository, "127.0.0.1:5000/acme/app");
    assert_eq!(r.tag.as_deref(), Some("v1"));
    assert_eq!(r.digest.as_deref(), Some("sha256:abc"));
    let r = ImageRef::parse("127.0.0.1:5000/acme/app");
    assert_eq!(
        (r.repository.as_str(), r.tag),
        ("127.0.0.1:5000/acme/app", None)
    );
}
