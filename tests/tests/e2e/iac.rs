//! The IaC revert guard (issue 17): `plan` and `status` warn when the CloudFormation stack or
//! the Terraform state that owns a service would put another image back on its next deploy.
//! Stacks are created in moto (its `CreateStack`/`GetTemplate`) with each wiring of the image
//! property; Terraform states are files of the repository. Through the real binary on the
//! example monorepo, after a real deploy of its ECS service.

use std::process::Command;

use deployer_tests::{REGION, Testbed, testbed, unique_name};

use crate::monorepo::{Monorepo, monorepo, service};

/// Creates the CloudFormation stack `name` from `template` in moto (boto3, as the
/// infrastructure would).
pub(crate) fn create_stack(bed: &Testbed, name: &str, template: &str) {
    let script = r#"
import sys, boto3
cfn = boto3.client("cloudformation")
cfn.create_stack(StackName=sys.argv[1], TemplateBody=sys.stdin.read())
"#;
    let mut child = Command::new(&bed.moto().python)
        .args(["-c", script, name])
        .envs(bed.env())
        .env("AWS_DEFAULT_REGION", REGION)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(template.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "create_stack {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Tags the example's ECS service with `aws:cloudformation:stack-name` = `stack`.
fn tag_service(bed: &Testbed, mono: &Monorepo, stack: &str) {
    let script = r#"
import sys, boto3
ecs = boto3.client("ecs")
arn = ecs.describe_services(cluster=sys.argv[1], services=[sys.argv[2]])["services"][0]["serviceArn"]
ecs.tag_resource(resourceArn=arn, tags=[{"key": "aws:cloudformation:stack-name", "value": sys.argv[3]}])
"#;
    let output = Command::new(&bed.moto().python)
        .args(["-c", script, &mono.project, "app-api", stack])
        .envs(bed.env())
        .env("AWS_DEFAULT_REGION", REGION)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tag_resource: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The example with app-api deployed: the repository, the manifest as it was, the live image
/// (`repo@sha256:…`) and the recorded tag.
struct Deployed {
    mono: Monorepo,
    manifest: String,
    live: String,
    tag: String,
}

fn deployed(bed: &Testbed) -> Deployed {
    let mono = monorepo(bed);
    let out = mono.deploy(bed, &["--service", "app-api"]);
    assert_eq!(out.code, Some(0), "deploy\n{}\n{}", out.stdout, out.stderr);
    let json = out.json();
    let report = service(&json, "app-api");
    let tag = report["tag"].as_str().unwrap().to_owned();
    let live = report["artifact"].as_str().unwrap().to_owned();
    let manifest = mono.repo.read("deployer.toml");
    Deployed {
        mono,
        manifest,
        live,
        tag,
    }
}

impl Deployed {
    /// The tag parameter of app-api.
    fn parameter(&self) -> String {
        format!("/{}/app-api/image-tag", self.mono.project)
    }

    /// The repository part of the live image.
    fn repository(&self) -> &str {
        self.live.split_once('@').unwrap().0
    }

    /// The manifest with `iac` set on app-api (`None`: as deployed).
    fn set_iac(&self, iac: Option<&str>) {
        let text = match iac {
            None => self.manifest.clone(),
            Some(iac) => self.manifest.replace(
                "[services.app-api]\n",
                &format!("[services.app-api]\niac = {iac}\n"),
            ),
        };
        self.mono.repo.write("deployer.toml", text);
    }

    /// `<command> --json --service app-api`: exit 0, and app-api's warnings.
    fn warnings(&self, bed: &Testbed, command: &str) -> Vec<String> {
        let out = self
            .mono
            .run(bed, &[command, "--json", "--service", "app-api"]);
        assert_eq!(
            out.code,
            Some(0),
            "{command}: the guard never fails it\n{}\n{}",
            out.stdout,
            out.stderr
        );
        let json = out.json();
        service(&json, "app-api")["warnings"]
            .as_array()
            .unwrap_or_else(|| panic!("no warnings list in {json}"))
            .iter()
            .map(|w| w.as_str().unwrap().to_owned())
            .collect()
    }

    /// `plan` in text, for the record.
    fn plan_text(&self, bed: &Testbed) -> String {
        let out = self.mono.run(bed, &["plan", "--service", "app-api"]);
        assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
        out.stdout
    }
}

/// A task definition template whose `app` container's image is `image` (YAML, with
/// `parameters` in the Parameters section).
fn yaml_template(image: &str, parameters: &str) -> String {
    format!(
        "AWSTemplateFormatVersion: \"2010-09-09\"\nParameters:\n  Unused:\n    Type: String\n    Default: x\n{parameters}Resources:\n  AppTask:\n    Type: AWS::ECS::TaskDefinition\n    Properties:\n      Family: {}\n      ContainerDefinitions:\n        - Name: app\n          Image: {image}\n          Memory: 512\n",
        unique_name("iac-task")
    )
}

/// Each wiring of the image property in a stack gives the right warnings: `{{resolve:ssm:…}}`
/// (plain and inside `Fn::Sub`) and an SSM-typed parameter defaulting to the tag parameter
/// none; a literal and another parameter one each, naming the resource, the property and the
/// fix; a stack that is gone one saying it cannot tell. `status` warns like `plan`.
#[tokio::test]
async fn cloudformation_stacks_warn_unless_the_image_is_wired_to_the_tag_parameter() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let d = deployed(bed);
    let parameter = d.parameter();
    let repository = d.repository().to_owned();
    assert!(
        d.warnings(bed, "plan").is_empty(),
        "no iac, no stack tag: nothing checked"
    );

    // Wired: no warning.
    let resolve = serde_json::json!({
        "Resources": { "AppTask": { "Type": "AWS::ECS::TaskDefinition", "Properties": {
            "Family": unique_name("iac-task"),
            "ContainerDefinitions": [{ "Name": "app", "Memory": 512,
                "Image": format!("{repository}:{{{{resolve:ssm:{parameter}}}}}") }] } } }
    })
    .to_string();
    let sub_resolve = yaml_template(
        &format!("!Sub \"{repository}:{{{{resolve:ssm:{parameter}}}}}\""),
        "",
    );
    let ssm_typed = yaml_template(
        &format!("!Sub \"{repository}:${{Tag}}\""),
        &format!(
            "  Tag:\n    Type: AWS::SSM::Parameter::Value<String>\n    Default: {parameter}\n"
        ),
    );
    for (wiring, template) in [
        ("resolve", resolve),
        ("sub-resolve", sub_resolve),
        ("ssm-typed", ssm_typed),
    ] {
        let stack = unique_name(&format!("iac-{wiring}"));
        create_stack(bed, &stack, &template);
        d.set_iac(Some(&format!("{{ cfn_stack = \"{stack}\" }}")));
        assert_eq!(
            d.warnings(bed, "plan"),
            Vec::<String>::new(),
            "{wiring}: wired to {parameter}"
        );
    }

    // Not wired: one warning each.
    let literal = yaml_template(&format!("{repository}:v1"), "");
    let other = yaml_template(
        &format!("!Sub \"{repository}:${{ImageTag}}\""),
        "  ImageTag:\n    Type: String\n    Default: v1\n",
    );
    let mut texts = Vec::new();
    for (wiring, template, is) in [
        (
            "literal",
            literal,
            format!("is the literal `{repository}:v1`"),
        ),
        (
            "other-parameter",
            other,
            "is template parameter `ImageTag` (Type String, Default `v1`)".to_owned(),
        ),
    ] {
        let stack = unique_name(&format!("iac-{wiring}"));
        create_stack(bed, &stack, &template);
        d.set_iac(Some(&format!("{{ cfn_stack = \"{stack}\" }}")));
        let warnings = d.warnings(bed, "plan");
        assert_eq!(warnings.len(), 1, "{wiring}: {warnings:?}");
        for needle in [
            format!("the next deploy of CloudFormation stack `{stack}` would revert the image"),
            format!(
                "AppTask (AWS::ECS::TaskDefinition) Properties.ContainerDefinitions[0].Image {is}"
            ),
            format!("expected `{{{{resolve:ssm:{parameter}}}}}`"),
            format!(
                "ecs.ContainerImage.fromEcrRepository(repo, ssm.StringParameter.valueForStringParameter(this, '{parameter}'))"
            ),
        ] {
            assert!(
                warnings[0].contains(&needle),
                "{wiring}: {needle}\nin {}",
                warnings[0]
            );
        }
        assert_eq!(
            d.warnings(bed, "status"),
            warnings,
            "{wiring}: status warns alike"
        );
        texts.push(d.plan_text(bed));
    }

    // A stack that is not there: a warning, exit 0.
    d.set_iac(Some("{ cfn_stack = \"no-such-stack\" }"));
    let gone = d.warnings(bed, "plan");
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert!(
        gone[0].starts_with("cannot tell whether CloudFormation stack `no-such-stack` keeps the image: GetTemplate of stack `no-such-stack` failed:"),
        "{}",
        gone[0]
    );

    // No `iac`: the stack the service's stack-name tag names.
    let stack = unique_name("iac-tagged");
    create_stack(bed, &stack, &yaml_template(&format!("{repository}:v1"), ""));
    tag_service(bed, &d.mono, &stack);
    d.set_iac(None);
    let tagged = d.warnings(bed, "plan");
    assert_eq!(tagged.len(), 1, "{tagged:?}");
    assert!(
        tagged[0].contains(&format!("CloudFormation stack `{stack}`")),
        "{}",
        tagged[0]
    );
    // `ignores_image` silences it.
    d.set_iac(Some(&format!(
        "{{ cfn_stack = \"{stack}\", ignores_image = true }}"
    )));
    assert!(d.warnings(bed, "plan").is_empty());
    texts.push(d.plan_text(bed));
    eprintln!("plan texts:\n{}", texts.join("\n----\n"));
}

/// A Terraform state whose task definition names another image than the live one warns (the
/// next apply would revert it); one naming the live image (by the recorded tag or the digest)
/// does not, nor does a state whose configuration reads the tag parameter, nor
/// `ignores_image = true`. A missing state file is a warning, not an error.
#[tokio::test]
async fn a_terraform_state_with_another_image_warns_unless_it_ignores_the_image() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let d = deployed(bed);
    let repository = d.repository().to_owned();
    let state = |image: &str, data: Option<&str>| {
        let mut resources = vec![serde_json::json!({
            "mode": "managed", "type": "aws_ecs_task_definition", "name": "app",
            "instances": [{ "schema_version": 1, "attributes": {
                "family": "app",
                "container_definitions": serde_json::json!([{ "name": "app", "image": image }]).to_string()
            } }]
        })];
        if let Some(value) = data {
            resources.push(serde_json::json!({
                "mode": "data", "type": "aws_ssm_parameter", "name": "image_tag",
                "instances": [{ "attributes": { "name": d.parameter(), "value": value, "insecure_value": value } }]
            }));
        }
        serde_json::json!({ "version": 4, "terraform_version": "1.9.0", "resources": resources })
            .to_string()
    };
    let iac =
        "{ tf_state = \"infra/terraform.tfstate\", address = \"aws_ecs_task_definition.app\" }";
    d.set_iac(Some(iac));

    // Missing: a warning saying so.
    let missing = d.warnings(bed, "plan");
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(
        missing[0].starts_with(
            "cannot tell whether Terraform state `infra/terraform.tfstate` keeps the image: reading"
        ),
        "{}",
        missing[0]
    );

    // Stale.
    let stale = format!("{repository}:an-old-tag");
    d.mono
        .repo
        .write("infra/terraform.tfstate", state(&stale, None));
    let warnings = d.warnings(bed, "plan");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    for needle in [
        "the next `terraform apply` would revert the image".to_owned(),
        format!(
            "`infra/terraform.tfstate` has `aws_ecs_task_definition.app` container_definitions[app].image = `{stale}` but the service runs `{}`",
            d.live
        ),
        format!(
            "data \"aws_ssm_parameter\" \"image_tag\" {{ name = \"{}\" }}",
            d.parameter()
        ),
        "lifecycle { ignore_changes = [container_definitions] }".to_owned(),
    ] {
        assert!(
            warnings[0].contains(&needle),
            "{needle}\nin {}",
            warnings[0]
        );
    }
    assert_eq!(d.warnings(bed, "status"), warnings, "status warns alike");
    let text = d.plan_text(bed);
    eprintln!("plan text (stale state):\n{text}");
    assert!(
        text.contains("app-api: warning: the next `terraform apply` would revert the image"),
        "{text}"
    );

    // The same image: by the recorded tag, by the digest.
    for image in [format!("{repository}:{}", d.tag), d.live.clone()] {
        d.mono
            .repo
            .write("infra/terraform.tfstate", state(&image, None));
        assert!(d.warnings(bed, "plan").is_empty(), "{image} is what runs");
    }
    // The configuration reads the tag parameter (its value at that apply is the image's tag).
    d.mono
        .repo
        .write("infra/terraform.tfstate", state(&stale, Some("an-old-tag")));
    assert!(
        d.warnings(bed, "plan").is_empty(),
        "the next apply reads the tag again"
    );

    // Stale, but the IaC leaves the image alone.
    d.mono
        .repo
        .write("infra/terraform.tfstate", state(&stale, None));
    d.set_iac(Some(
        "{ tf_state = \"infra/terraform.tfstate\", address = \"aws_ecs_task_definition.app\", ignores_image = true }",
    ));
    assert!(d.warnings(bed, "plan").is_empty(), "ignores_image");
}
