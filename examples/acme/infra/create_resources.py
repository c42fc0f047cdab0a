#!/usr/bin/env python3
"""Stand-in for the example's infrastructure code (CDK or Terraform in a real repository).

It creates, in whatever AWS endpoint the environment names (the demo and the tests point
AWS_ENDPOINT_URL at the local moto server), what the infrastructure owns and deployer does not:
the IAM roles, the ECS cluster, task definition and service, the AgentCore runtime, the two Lambda
functions, the repositories table (and a row of its own, which deployer must leave alone), the
bucket deployer keeps its config sets in, and the SSM parameters through which the infrastructure hands its identifiers to the
application layer (`<ssm_prefix>/<service>/...`). It prints the identifiers as one JSON object.

    python3 create_resources.py --project acme --registry 127.0.0.1:5000

Every resource name starts with the project name, so several copies can share one emulator.
The secret values below are fixtures: tests check that deployer never prints them.
"""

import argparse
import io
import json
import zipfile

import boto3

ACCOUNT = "123456789012"
SECRET_TOKEN = "s3cr3t-agent-token-4242"
SECRET_DB_PASSWORD = "s3cr3t-db-password-7373"


def trust_policy(service):
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


def role(iam, name, service):
    try:
        return iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_policy(service))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return iam.get_role(RoleName=name)["Role"]["Arn"]


def bootstrap_zip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return 'bootstrap'\n")
    return buffer.getvalue()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="acme")
    parser.add_argument("--registry", default="127.0.0.1:5000")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args()
    p, registry = args.project, args.registry
    session = boto3.session.Session(region_name=args.region)
    iam, ecs, ssm = session.client("iam"), session.client("ecs"), session.client("ssm")
    lam, agentcore = session.client("lambda"), session.client("bedrock-agentcore-control")
    sagemaker = session.client("sagemaker")
    dynamodb, s3 = session.client("dynamodb"), session.client("s3")

    task_role = role(iam, f"{p}-task", "ecs-tasks.amazonaws.com")
    execution_role = role(iam, f"{p}-execution", "ecs-tasks.amazonaws.com")
    lambda_role = role(iam, f"{p}-lambda", "lambda.amazonaws.com")
    runtime_role = role(iam, f"{p}-agentcore", "bedrock-agentcore.amazonaws.com")
    model_role = role(iam, f"{p}-sagemaker", "sagemaker.amazonaws.com")

    # ECS: the app API
    ecs.create_cluster(clusterName=p)
    task_definition = ecs.register_task_definition(
        family=f"{p}-app-api",
        taskRoleArn=task_role,
        executionRoleArn=execution_role,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        runtimePlatform={"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
        containerDefinitions=[
            {
                "name": "app",
                "image": f"{registry}/{p}/app-api:bootstrap",
                "essential": True,
                "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
                "environment": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "DB_PASSWORD", "value": SECRET_DB_PASSWORD}],
                "secrets": [{"name": "API_KEY", "valueFrom": f"arn:aws:ssm:{args.region}:{ACCOUNT}:parameter/{p}/api-key"}],
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": f"/{p}/app-api", "awslogs-region": args.region, "awslogs-stream-prefix": "app"}},
            }
        ],
        tags=[{"key": "project", "value": p}],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(
        cluster=p,
        serviceName="app-api",
        taskDefinition=task_definition,
        desiredCount=2,
        launchType="FARGATE",
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    )

    # AgentCore: the inference API
    runtime = agentcore.create_agent_runtime(
        agentRuntimeName=f"{p.replace('-', '_')}_inference",
        agentRuntimeArtifact={"containerConfiguration": {"containerUri": f"{ACCOUNT}.dkr.ecr.{args.region}.amazonaws.com/{p}/inference-api:bootstrap"}},
        roleArn=runtime_role,
        networkConfiguration={"networkMode": "PUBLIC"},
        description="the inference API",
        protocolConfiguration={"serverProtocol": "HTTP"},
        lifecycleConfiguration={"idleRuntimeSessionTimeout": 900, "maxLifetime": 28800},
        environmentVariables={"MODEL_ID": "anthropic.claude", "AGENT_TOKEN": SECRET_TOKEN},
    )

    # Lambda: ingestion from an image, rendering from a zip
    lam.create_function(
        FunctionName=f"{p}-rag-ingestion",
        PackageType="Image",
        Code={"ImageUri": f"{registry}/{p}/rag-ingestion:bootstrap"},
        Role=lambda_role,
        Architectures=["x86_64"],
        Environment={"Variables": {"INDEX": f"{p}-documents"}},
    )
    lam.create_function(
        FunctionName=f"{p}-artifact-render",
        Runtime="python3.12",
        Handler="handler.handler",
        Code={"ZipFile": bootstrap_zip()},
        Role=lambda_role,
        Environment={"Variables": {"BUCKET": f"{p}-artifacts", "DB_PASSWORD": SECRET_DB_PASSWORD}},
    )

    # SageMaker: the embeddings endpoint the app API calls
    sagemaker.create_model(
        ModelName=f"{p}-embeddings-bootstrap",
        PrimaryContainer={
            "Image": f"{registry}/{p}/embeddings:bootstrap",
            "Environment": {"MODEL_NAME": "embeddings", "HF_TOKEN": SECRET_TOKEN},
        },
        ExecutionRoleArn=model_role,
        Tags=[{"Key": "project", "Value": p}],
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{p}-embeddings-bootstrap",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{p}-embeddings-bootstrap",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=f"{p}-embeddings", EndpointConfigName=f"{p}-embeddings-bootstrap")

    # The agent's configuration table (deployer writes its rows) and a row IaC owns: it has no
    # owner mark, so deployer never changes or deletes it.
    table = f"{p}-repositories"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(
        TableName=table,
        Item={"pk": {"S": "tenant#acme"}, "sk": {"S": "settings"}, "plan": {"S": "enterprise"}},
    )
    # The bucket deployer keeps every applied config set in (its rollback source).
    s3.create_bucket(Bucket=f"{p}-deployer")

    # The identifiers the infrastructure hands to the application layer.
    outputs = {"runtime_id": runtime["agentRuntimeId"], "cluster": p, "task_definition": task_definition, "repositories_table": table}
    ssm.put_parameter(Name=f"/{p}/inference-api/runtime-id", Value=runtime["agentRuntimeId"], Type="String", Overwrite=True)
    ssm.put_parameter(Name=f"/{p}/repositories/table", Value=table, Type="String", Overwrite=True)
    print(json.dumps(outputs))


if __name__ == "__main__":
    main()
