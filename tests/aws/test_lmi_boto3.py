"""The LMI extension checked by a client we did not write: boto3 (botocore 1.44.8's model).

boto3 serialises requests and parses responses by the AWS model, so a wrong member name, type or
status code shows up here as a failure. Run by scripts/test with the emulator's virtualenv:
    .venv-aws/bin/python -m pytest tests/aws
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/lmi-operator"


def start_emulator(env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "lmi_emulator", "--port", "0", "--exit-with-stdin"],
        cwd=Path(__file__).parent,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = process.stdout.readline()
    assert line.startswith("LMI-EMULATOR READY "), f"emulator did not start: {line!r}"
    return process, line.split()[-1]


# AWS's capacity-provider request rates (1 write, 15 reads per second) are the emulator's
# defaults; these tests' clients do not retry, so the rate tests below set the rates themselves
# and every other test runs with them lifted.
NO_RATE_LIMITS = {
    "LMI_EMULATOR_CAPACITY_PROVIDER_READS_PER_SECOND": "0",
    "LMI_EMULATOR_CAPACITY_PROVIDER_WRITES_PER_SECOND": "0",
}


@pytest.fixture(scope="module")
def endpoint():
    process, url = start_emulator({**os.environ, **NO_RATE_LIMITS})
    yield url
    process.stdin.close()  # --exit-with-stdin: it stops its execution environments and exits
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def client(endpoint: str, service: str, validate: bool = True, attempts: int = 1):
    """A client that makes `attempts` attempts (1: every error reaches the test)."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            parameter_validation=validate,
            retries={"total_max_attempts": attempts, "mode": "standard"},
        ),
    )


@pytest.fixture
def lam(endpoint):
    return client(endpoint, "lambda")


@pytest.fixture
def raw_lambda(endpoint):
    """A client that sends what it is given, so the server's own validation answers."""
    return client(endpoint, "lambda", validate=False)


@pytest.fixture
def control(endpoint):
    def post(path: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"{endpoint}/moto-api/lmi/{path}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    yield post
    post(
        "config",
        {
            "StateDelaySeconds": 0,
            "MaxCapacityProviders": 1000,
            "MaxVersionsPerCapacityProvider": 100,
            "CapacityProviderReadsPerSecond": 0,
            "CapacityProviderWritesPerSecond": 0,
            "RolePropagationSeconds": 0,
            "DeniedActions": [],
        },
    )


@pytest.fixture
def network(endpoint):
    return build_network(endpoint)


def build_network(endpoint: str) -> dict:
    ec2 = client(endpoint, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az)["Subnet"][
            "SubnetId"
        ]
        for i, az in enumerate(["us-east-1a", "us-east-1b"])
    ]
    group = ec2.create_security_group(VpcId=vpc, GroupName=unique("sg"), Description="lmi")
    other_vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    other_group = ec2.create_security_group(
        VpcId=other_vpc, GroupName=unique("sg"), Description="other"
    )
    return {
        "subnets": subnets,
        "group": group["GroupId"],
        "other_group": other_group["GroupId"],
    }


@pytest.fixture
def function_role(endpoint):
    return build_role(endpoint)


def build_role(endpoint: str) -> str:
    iam = client(endpoint, "iam")
    name = unique("fn-role")
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def provider_request(network, name=None, **extra):
    return {
        "CapacityProviderName": name or unique("cp"),
        "VpcConfig": {"SubnetIds": network["subnets"], "SecurityGroupIds": [network["group"]]},
        "PermissionsConfig": {"CapacityProviderOperatorRoleArn": ROLE},
        **extra,
    }


def create_provider(lam, network, name=None, **extra):
    return lam.create_capacity_provider(**provider_request(network, name, **extra))[
        "CapacityProvider"
    ]


def create_function(lam, role, provider_arn, name=None, **extra):
    extra.setdefault("Code", {"ZipFile": b"not really a zip"})
    return lam.create_function(
        FunctionName=name or unique("fn"),
        Role=role,
        Runtime="provided.al2023",
        Handler="bootstrap",
        MemorySize=2048,
        CapacityProviderConfig={
            "LambdaManagedInstancesCapacityProviderConfig": {
                "CapacityProviderArn": provider_arn,
                "PerExecutionEnvironmentMaxConcurrency": 32,
                "ExecutionEnvironmentMemoryGiBPerVCpu": 4.0,
            }
        },
        **extra,
    )


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


# --- capacity providers -----------------------------------------------------------------------


def test_create_returns_the_provider_with_defaults_and_every_member_given(lam, network):
    provider = create_provider(
        lam,
        network,
        InstanceRequirements={
            "Architectures": ["arm64"],
            "AllowedInstanceTypes": ["m8g.*", "c7g.large"],
        },
        CapacityProviderScalingConfig={
            "MaxVCpuCount": 64,
            "ScalingMode": "Manual",
            "ScalingPolicies": [
                {
                    "PredefinedMetricType": "LambdaCapacityProviderAverageCPUUtilization",
                    "TargetValue": 60.0,
                }
            ],
        },
        KmsKeyArn=f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234",
        PropagateTags={"Mode": "Explicit", "ExplicitTags": {"team": "search"}},
        TelemetryConfig={"LoggingConfig": {"SystemLogLevel": "WARN", "LogGroup": "/lmi/cp"}},
    )
    assert provider["State"] == "Active"
    assert provider["CapacityProviderArn"].startswith(
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:capacity-provider:cp-"
    )
    assert provider["InstanceRequirements"]["Architectures"] == ["arm64"]
    assert provider["CapacityProviderScalingConfig"]["ScalingPolicies"][0]["TargetValue"] == 60.0
    assert provider["PropagateTags"] == {"Mode": "Explicit", "ExplicitTags": {"team": "search"}}
    assert provider["TelemetryConfig"]["LoggingConfig"]["LogGroup"] == "/lmi/cp"
    assert provider["KmsKeyArn"].endswith(":key/1234")

    plain = create_provider(lam, network)
    assert plain["InstanceRequirements"] == {"Architectures": ["x86_64"]}
    assert plain["CapacityProviderScalingConfig"] == {"ScalingMode": "Auto"}


def test_provider_is_pending_until_the_configured_delay_has_passed(lam, network, control):
    control("config", {"StateDelaySeconds": 1.0})
    provider = create_provider(lam, network)
    assert provider["State"] == "Pending"
    name = provider["CapacityProviderArn"].rsplit(":", 1)[-1]
    time.sleep(1.1)
    assert (
        lam.get_capacity_provider(CapacityProviderName=name)["CapacityProvider"]["State"]
        == "Active"
    )


def test_get_accepts_name_or_arn_and_unknown_is_not_found(lam, network):
    provider = create_provider(lam, network)
    arn = provider["CapacityProviderArn"]
    assert (
        lam.get_capacity_provider(CapacityProviderName=arn)["CapacityProvider"][
            "CapacityProviderArn"
        ]
        == arn
    )
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_capacity_provider(CapacityProviderName="does-not-exist")


def test_duplicate_name_is_a_conflict(lam, network):
    name = unique("cp")
    create_provider(lam, network, name)
    with pytest.raises(lam.exceptions.ResourceConflictException):
        create_provider(lam, network, name)


def test_unknown_subnet_and_security_group_are_invalid(lam, network):
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="subnet-0000"):
        create_provider(lam, {**network, "subnets": ["subnet-0000"]})
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="sg-0000"):
        create_provider(lam, {**network, "group": "sg-0000"})


def test_a_provider_may_have_no_security_group_as_the_model_allows(lam, network):
    # CapacityProviderSecurityGroupIds: min 0, max 5 (the API model).
    created = lam.create_capacity_provider(
        **provider_request(network, VpcConfig={"SubnetIds": network["subnets"], "SecurityGroupIds": []})
    )["CapacityProvider"]
    assert created["VpcConfig"]["SecurityGroupIds"] == []


def test_subnets_and_security_groups_must_share_one_vpc(lam, network):
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="same VPC"):
        create_provider(lam, {**network, "group": network["other_group"]})


def test_model_constraints_are_validated_by_the_server(raw_lambda, network):
    with pytest.raises(raw_lambda.exceptions.ClientError) as excinfo:
        create_provider(
            raw_lambda,
            network,
            PermissionsConfig={"CapacityProviderOperatorRoleArn": "not-a-role"},
            CapacityProviderScalingConfig={"MaxVCpuCount": 20000},
        )
    assert error_code(excinfo) == "ValidationException"
    message = excinfo.value.response["Error"]["Message"]
    assert message.startswith("2 validation errors detected")
    assert "'capacityProviderScalingConfig.maxVCpuCount'" in message
    assert "'permissionsConfig.capacityProviderOperatorRoleArn'" in message
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_instance_types_must_exist_and_match_the_architecture(lam, network):
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="architecture"):
        create_provider(
            lam,
            network,
            InstanceRequirements={
                "Architectures": ["x86_64"],
                "AllowedInstanceTypes": ["m8g.large"],
            },
        )
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="not a valid"):
        create_provider(
            lam,
            network,
            InstanceRequirements={"Architectures": ["arm64"], "ExcludedInstanceTypes": ["zz9.*"]},
        )
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="together"):
        create_provider(
            lam,
            network,
            InstanceRequirements={
                "Architectures": ["arm64"],
                "AllowedInstanceTypes": ["m8g.*"],
                "ExcludedInstanceTypes": ["m8g.large"],
            },
        )


def test_manual_scaling_needs_policies(lam, network):
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="Manual"):
        create_provider(lam, network, CapacityProviderScalingConfig={"ScalingMode": "Manual"})


def test_list_pages_through_every_provider_once(lam, raw_lambda, network):
    created = {create_provider(lam, network)["CapacityProviderArn"] for _ in range(5)}
    seen, pages, marker = [], 0, None
    while True:
        page = lam.list_capacity_providers(MaxItems=2, **({"Marker": marker} if marker else {}))
        assert len(page["CapacityProviders"]) <= 2
        seen += [p["CapacityProviderArn"] for p in page["CapacityProviders"]]
        pages += 1
        marker = page.get("NextMarker")
        if not marker:
            break
    assert created <= set(seen)
    assert len(seen) == len(set(seen))
    assert pages >= 3
    with pytest.raises(raw_lambda.exceptions.ClientError) as excinfo:
        raw_lambda.list_capacity_providers(MaxItems=51)
    assert error_code(excinfo) == "ValidationException"
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.list_capacity_providers(Marker="%%%")


def test_list_filters_by_state(lam, network, control):
    provider = create_provider(lam, network)
    name = provider["CapacityProviderArn"].rsplit(":", 1)[-1]
    control("state", {"CapacityProviderName": name, "State": "Failed"})
    failed = lam.list_capacity_providers(State="Failed")["CapacityProviders"]
    assert [p["CapacityProviderArn"] for p in failed] == [provider["CapacityProviderArn"]]


def test_update_changes_only_scaling_tag_propagation_and_telemetry(lam, network):
    provider = create_provider(
        lam, network, InstanceRequirements={"Architectures": ["arm64"]}, Tags={"a": "b"}
    )
    name = provider["CapacityProviderArn"].rsplit(":", 1)[-1]
    updated = lam.update_capacity_provider(
        CapacityProviderName=name,
        CapacityProviderScalingConfig={"MaxVCpuCount": 128, "ScalingMode": "Auto"},
        PropagateTags={"Mode": "None"},
        TelemetryConfig={"LoggingConfig": {"SystemLogLevel": "DEBUG"}},
    )["CapacityProvider"]
    assert updated["CapacityProviderScalingConfig"]["MaxVCpuCount"] == 128
    assert updated["PropagateTags"] == {"Mode": "None"}
    assert updated["TelemetryConfig"]["LoggingConfig"]["SystemLogLevel"] == "DEBUG"
    for fixed in ("VpcConfig", "PermissionsConfig", "InstanceRequirements", "CapacityProviderArn"):
        assert updated[fixed] == provider[fixed]
    # The model gives UpdateCapacityProvider no member for anything else.
    members = set(
        lam.meta.service_model.operation_model("UpdateCapacityProvider").input_shape.members
    )
    assert members == {
        "CapacityProviderName",
        "CapacityProviderScalingConfig",
        "PropagateTags",
        "TelemetryConfig",
    }
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.update_capacity_provider(CapacityProviderName="does-not-exist")


def test_delete_goes_through_deleting_and_then_the_provider_is_gone(lam, network, control):
    control("config", {"StateDelaySeconds": 2})
    provider = create_provider(lam, network)
    name = provider["CapacityProviderArn"].rsplit(":", 1)[-1]
    time.sleep(2.1)
    assert (
        lam.delete_capacity_provider(CapacityProviderName=name)["CapacityProvider"]["State"]
        == "Deleting"
    )
    assert (
        lam.get_capacity_provider(CapacityProviderName=name)["CapacityProvider"]["State"]
        == "Deleting"
    )
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.update_capacity_provider(CapacityProviderName=name, PropagateTags={"Mode": "None"})
    time.sleep(2.1)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_capacity_provider(CapacityProviderName=name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.delete_capacity_provider(CapacityProviderName=name)


def test_account_limit_is_capacity_provider_limit_exceeded(lam, network, control):
    count = len(lam.list_capacity_providers(MaxItems=50)["CapacityProviders"])
    control("config", {"MaxCapacityProviders": count})
    with pytest.raises(lam.exceptions.CapacityProviderLimitExceededException):
        create_provider(lam, network)


def test_denied_actions_answer_as_iam_refuses_a_caller(lam, endpoint, network, control):
    control("config", {"DeniedActions": ["lambda:CreateCapacityProvider", "ec2:DescribeVpcs"]})
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        create_provider(lam, network)
    error = denied.value.response
    assert error["Error"]["Code"] == "AccessDeniedException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "is not authorized to perform: lambda:CreateCapacityProvider" in error["Error"]["Message"]
    ec2 = client(endpoint, "ec2")
    with pytest.raises(botocore.exceptions.ClientError) as unauthorized:
        ec2.describe_vpcs()
    error = unauthorized.value.response
    assert error["Error"]["Code"] == "UnauthorizedOperation"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "Encoded authorization failure message" in error["Error"]["Message"]
    # Other actions are not affected; lifting the denial lets the action through again.
    ec2.describe_subnets()
    control("config", {"DeniedActions": []})
    assert create_provider(lam, network)["CapacityProviderArn"]
    ec2.describe_vpcs()


def test_capacity_provider_tags(lam, network):
    provider = create_provider(lam, network, Tags={"lmi.dev/owner": "cluster-a"})
    arn = provider["CapacityProviderArn"]
    lam.tag_resource(Resource=arn, Tags={"team": "search"})
    lam.untag_resource(Resource=arn, TagKeys=["lmi.dev/owner"])
    assert lam.list_tags(Resource=arn)["Tags"] == {"team": "search"}
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.list_tags(Resource=arn + "-missing")


# --- functions on capacity providers ----------------------------------------------------------


def test_function_keeps_its_capacity_provider_config(lam, network, function_role):
    arn = create_provider(lam, network)["CapacityProviderArn"]
    created = create_function(lam, function_role, arn)
    name = created["FunctionName"]
    assert created["State"] == "ActiveNonInvocable"
    inner = created["CapacityProviderConfig"]["LambdaManagedInstancesCapacityProviderConfig"]
    assert inner == {
        "CapacityProviderArn": arn,
        "PerExecutionEnvironmentMaxConcurrency": 32,
        "ExecutionEnvironmentMemoryGiBPerVCpu": 4.0,
    }
    assert (
        lam.get_function(FunctionName=name)["Configuration"]["CapacityProviderConfig"]
        == created["CapacityProviderConfig"]
    )

    updated = lam.update_function_configuration(
        FunctionName=name,
        CapacityProviderConfig={
            "LambdaManagedInstancesCapacityProviderConfig": {
                "CapacityProviderArn": arn,
                "PerExecutionEnvironmentMaxConcurrency": 64,
                "ExecutionEnvironmentMemoryGiBPerVCpu": 8.0,
            }
        },
    )
    inner = lam.get_function_configuration(FunctionName=name)["CapacityProviderConfig"][
        "LambdaManagedInstancesCapacityProviderConfig"
    ]
    assert (
        updated["CapacityProviderConfig"]["LambdaManagedInstancesCapacityProviderConfig"] == inner
    )
    assert inner["PerExecutionEnvironmentMaxConcurrency"] == 64

    # The structure is replaced whole: a member left out returns to Lambda's default (not shown).
    lam.update_function_configuration(
        FunctionName=name,
        CapacityProviderConfig={
            "LambdaManagedInstancesCapacityProviderConfig": {
                "CapacityProviderArn": arn,
                "ExecutionEnvironmentMemoryGiBPerVCpu": 8.0,
            }
        },
    )
    inner = lam.get_function_configuration(FunctionName=name)["CapacityProviderConfig"][
        "LambdaManagedInstancesCapacityProviderConfig"
    ]
    assert "PerExecutionEnvironmentMaxConcurrency" not in inner, inner


def test_function_code_from_a_missing_s3_object_is_invalid(lam, network, function_role, endpoint):
    arn = create_provider(lam, network)["CapacityProviderArn"]
    s3 = client(endpoint, "s3")
    bucket = unique("code")
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as missing:
        create_function(lam, function_role, arn, Code={"S3Bucket": bucket, "S3Key": "a.zip"})
    assert "NoSuchKey" in str(missing.value)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as no_bucket:
        create_function(lam, function_role, arn, Code={"S3Bucket": unique("none"), "S3Key": "a"})
    assert "NoSuchBucket" in str(no_bucket.value)

    s3.put_object(Bucket=bucket, Key="a.zip", Body=b"zip one")
    name = create_function(lam, function_role, arn, Code={"S3Bucket": bucket, "S3Key": "a.zip"})[
        "FunctionName"
    ]
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_function_code(FunctionName=name, S3Bucket=bucket, S3Key="b.zip")
    s3.put_object(Bucket=bucket, Key="b.zip", Body=b"zip two")
    updated = lam.update_function_code(FunctionName=name, S3Bucket=bucket, S3Key="b.zip")
    assert updated["CodeSize"] == len(b"zip two")


def test_function_capacity_provider_config_is_validated(lam, raw_lambda, network, function_role):
    arn = create_provider(lam, network)["CapacityProviderArn"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        create_function(lam, function_role, arn + "-missing")
    with pytest.raises(raw_lambda.exceptions.ClientError) as excinfo:
        raw_lambda.create_function(
            FunctionName=unique("fn"),
            Role=function_role,
            Code={"ZipFile": b"zip"},
            CapacityProviderConfig={
                "LambdaManagedInstancesCapacityProviderConfig": {
                    "CapacityProviderArn": arn,
                    "PerExecutionEnvironmentMaxConcurrency": 1601,
                }
            },
        )
    assert error_code(excinfo) == "ValidationException"
    assert "perExecutionEnvironmentMaxConcurrency" in excinfo.value.response["Error"]["Message"]
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="2.0, 4.0 or 8.0"):
        lam.create_function(
            FunctionName=unique("fn"),
            Role=function_role,
            Code={"ZipFile": b"zip"},
            CapacityProviderConfig={
                "LambdaManagedInstancesCapacityProviderConfig": {
                    "CapacityProviderArn": arn,
                    "ExecutionEnvironmentMemoryGiBPerVCpu": 3.0,
                }
            },
        )


def test_function_moves_to_another_provider_and_its_versions_stay(lam, network, function_role):
    first = create_provider(lam, network)["CapacityProviderArn"]
    second = create_provider(lam, network)["CapacityProviderArn"]
    created = create_function(lam, function_role, first)
    name = created["FunctionName"]
    lam.publish_version(FunctionName=name)
    moved = lam.update_function_configuration(
        FunctionName=name,
        CapacityProviderConfig={
            "LambdaManagedInstancesCapacityProviderConfig": {"CapacityProviderArn": second}
        },
    )
    assert moved["FunctionArn"] == created["FunctionArn"]
    inner = moved["CapacityProviderConfig"]["LambdaManagedInstancesCapacityProviderConfig"]
    assert inner["CapacityProviderArn"] == second
    published = lam.publish_version(FunctionName=name)
    assert published["Version"] == "2"

    def on(provider):
        listed = lam.list_function_versions_by_capacity_provider(CapacityProviderName=provider)
        return sorted(v["FunctionArn"].rsplit(":", 1)[-1] for v in listed["FunctionVersions"])

    assert on(first) == ["1"]
    assert on(second) == ["$LATEST", "2"]


def test_function_cannot_move_onto_a_provider(lam, network, function_role):
    provider = create_provider(lam, network)["CapacityProviderArn"]
    plain = lam.create_function(
        FunctionName=unique("plain"),
        Role=function_role,
        Runtime="provided.al2023",
        Handler="bootstrap",
        Code={"ZipFile": b"zip"},
    )["FunctionName"]
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="move onto"):
        lam.update_function_configuration(
            FunctionName=plain,
            CapacityProviderConfig={
                "LambdaManagedInstancesCapacityProviderConfig": {"CapacityProviderArn": provider}
            },
        )


def test_moving_to_a_full_provider_is_its_version_limit(lam, network, function_role, control):
    first = create_provider(lam, network)["CapacityProviderArn"]
    second = create_provider(lam, network)["CapacityProviderArn"]
    create_function(lam, function_role, second)
    name = create_function(lam, function_role, first)["FunctionName"]
    control("config", {"MaxVersionsPerCapacityProvider": 1})
    try:
        with pytest.raises(
            lam.exceptions.FunctionVersionsPerCapacityProviderLimitExceededException
        ):
            lam.update_function_configuration(
                FunctionName=name,
                CapacityProviderConfig={
                    "LambdaManagedInstancesCapacityProviderConfig": {
                        "CapacityProviderArn": second
                    }
                },
            )
    finally:
        control("config", {"MaxVersionsPerCapacityProvider": 100})


def test_function_on_a_pending_provider_is_a_conflict(lam, network, function_role, control):
    control("config", {"StateDelaySeconds": 30})
    arn = create_provider(lam, network)["CapacityProviderArn"]
    with pytest.raises(lam.exceptions.ResourceConflictException, match="Pending"):
        create_function(lam, function_role, arn)


def test_published_versions_are_pending_then_active_and_listed_by_provider(
    lam, network, function_role, control
):
    provider = create_provider(lam, network)
    name = create_function(lam, function_role, provider["CapacityProviderArn"])["FunctionName"]
    control("config", {"StateDelaySeconds": 0.5})
    version = lam.publish_version(FunctionName=name)
    assert (version["Version"], version["State"]) == ("1", "Pending")
    assert (
        version["CapacityProviderConfig"]["LambdaManagedInstancesCapacityProviderConfig"][
            "CapacityProviderArn"
        ]
        == provider["CapacityProviderArn"]
    )
    # Unchanged code and configuration publish nothing new.
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    time.sleep(0.6)
    assert lam.get_function(FunctionName=name, Qualifier="1")["Configuration"]["State"] == "Active"

    listed = lam.list_function_versions_by_capacity_provider(
        CapacityProviderName=provider["CapacityProviderArn"].rsplit(":", 1)[-1]
    )
    assert listed["CapacityProviderArn"] == provider["CapacityProviderArn"]
    states = {v["FunctionArn"].rsplit(":", 1)[-1]: v["State"] for v in listed["FunctionVersions"]}
    assert states == {"$LATEST": "ActiveNonInvocable", "1": "Active"}
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.list_function_versions_by_capacity_provider(CapacityProviderName="does-not-exist")


def test_version_numbers_are_never_reused(lam, network, function_role):
    arn = create_provider(lam, network)["CapacityProviderArn"]
    name = create_function(lam, function_role, arn)["FunctionName"]
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    lam.update_function_configuration(FunctionName=name, MemorySize=4096)
    assert lam.publish_version(FunctionName=name)["Version"] == "2"
    lam.delete_function(FunctionName=name, Qualifier="2")
    lam.update_function_configuration(FunctionName=name, MemorySize=6144)
    assert lam.publish_version(FunctionName=name)["Version"] == "3"


def test_every_change_of_latest_gets_a_new_revision_and_each_version_its_own(
    lam, network, function_role
):
    arn = create_provider(lam, network)["CapacityProviderArn"]
    created = create_function(lam, function_role, arn)
    name = created["FunctionName"]
    first = created["RevisionId"]
    assert first and lam.get_function(FunctionName=name)["Configuration"]["RevisionId"] == first
    configured = lam.update_function_configuration(FunctionName=name, MemorySize=4096)
    assert configured["RevisionId"] not in ("", first)
    assert lam.get_function(FunctionName=name)["Configuration"]["RevisionId"] == (
        configured["RevisionId"]
    )
    coded = lam.update_function_code(FunctionName=name, ZipFile=b"other code")
    assert coded["RevisionId"] not in (first, configured["RevisionId"])
    version = lam.publish_version(FunctionName=name)
    assert version["RevisionId"] != coded["RevisionId"]
    assert lam.get_function(FunctionName=name)["Configuration"]["RevisionId"] == coded["RevisionId"]


def test_publish_version_refuses_a_latest_changed_since_it_was_read(lam, network, function_role):
    arn = create_provider(lam, network)["CapacityProviderArn"]
    read = create_function(lam, function_role, arn)
    name = read["FunctionName"]
    lam.update_function_configuration(FunctionName=name, MemorySize=4096)
    with pytest.raises(lam.exceptions.PreconditionFailedException) as stale:
        lam.publish_version(FunctionName=name, RevisionId=read["RevisionId"])
    assert stale.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    coded = lam.update_function_code(FunctionName=name, ZipFile=b"other code")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as other_code:
        lam.publish_version(FunctionName=name, CodeSha256=read["CodeSha256"])
    assert "is different from current CodeSHA256 in $LATEST" in str(other_code.value)
    listed = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in listed] == ["$LATEST"]
    version = lam.publish_version(
        FunctionName=name, CodeSha256=coded["CodeSha256"], RevisionId=coded["RevisionId"]
    )
    assert (version["Version"], version["MemorySize"]) == ("1", 4096)


def test_publish_to_latest_published_replaces_that_version(lam, network, function_role):
    arn = create_provider(lam, network)["CapacityProviderArn"]
    name = create_function(lam, function_role, arn, PublishTo="LATEST_PUBLISHED")["FunctionName"]
    first = lam.get_function(FunctionName=name, Qualifier="$LATEST.PUBLISHED")["Configuration"]
    assert first["Version"] == "$LATEST.PUBLISHED"
    assert first["FunctionArn"].endswith(f"function:{name}:$LATEST.PUBLISHED")

    lam.update_function_configuration(FunctionName=name, MemorySize=4096)
    again = lam.publish_version(FunctionName=name, PublishTo="LATEST_PUBLISHED")
    assert again["Version"] == "$LATEST.PUBLISHED"
    assert again["MemorySize"] == 4096
    published = [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]]
    assert published.count("$LATEST.PUBLISHED") == 1
    assert lam.publish_version(FunctionName=name)["Version"] == "1"


def test_publish_to_needs_a_capacity_provider(lam, function_role):
    name = lam.create_function(
        FunctionName=unique("plain"),
        Role=function_role,
        Runtime="provided.al2023",
        Handler="bootstrap",
        Code={"ZipFile": b"zip"},
    )["FunctionName"]
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.publish_version(FunctionName=name, PublishTo="LATEST_PUBLISHED")


def test_provider_with_function_versions_cannot_be_deleted(lam, network, function_role):
    provider = create_provider(lam, network)
    name = provider["CapacityProviderArn"].rsplit(":", 1)[-1]
    fn = create_function(lam, function_role, provider["CapacityProviderArn"])["FunctionName"]
    lam.publish_version(FunctionName=fn)
    with pytest.raises(lam.exceptions.ResourceConflictException, match=f"function:{fn}:1"):
        lam.delete_capacity_provider(CapacityProviderName=name)
    lam.delete_function(FunctionName=fn)
    assert (
        lam.delete_capacity_provider(CapacityProviderName=name)["CapacityProvider"]["State"]
        == "Deleting"
    )


def test_versions_per_provider_limit(lam, network, function_role, control):
    arn = create_provider(lam, network)["CapacityProviderArn"]
    name = create_function(lam, function_role, arn)["FunctionName"]
    control("config", {"MaxVersionsPerCapacityProvider": 1})
    with pytest.raises(lam.exceptions.FunctionVersionsPerCapacityProviderLimitExceededException):
        lam.publish_version(FunctionName=name)


def test_function_scaling_config_requested_while_settling_then_applied(
    lam, network, function_role, control
):
    arn = create_provider(lam, network)["CapacityProviderArn"]
    name = create_function(lam, function_role, arn)["FunctionName"]
    lam.publish_version(FunctionName=name)
    before = lam.get_function_scaling_config(FunctionName=name, Qualifier="1")
    assert "RequestedFunctionScalingConfig" not in before
    assert "AppliedFunctionScalingConfig" not in before

    put = lam.put_function_scaling_config(
        FunctionName=name,
        Qualifier="1",
        FunctionScalingConfig={"MinExecutionEnvironments": 3, "MaxExecutionEnvironments": 30},
    )
    assert put["FunctionState"] == "Active"
    settled = lam.get_function_scaling_config(FunctionName=name, Qualifier="1")
    # settled at once (delay 0): the values are applied and no longer reported as requested
    assert "RequestedFunctionScalingConfig" not in settled
    assert settled["AppliedFunctionScalingConfig"] == {
        "MinExecutionEnvironments": 3,
        "MaxExecutionEnvironments": 30,
    }
    control("config", {"StateDelaySeconds": 30})
    try:
        lam.put_function_scaling_config(
            FunctionName=name,
            Qualifier="1",
            FunctionScalingConfig={"MinExecutionEnvironments": 5, "MaxExecutionEnvironments": 50},
        )
        got = lam.get_function_scaling_config(FunctionName=name, Qualifier="1")
    finally:
        control("config", {"StateDelaySeconds": 0})
    assert got["FunctionArn"].endswith(f"function:{name}:1")
    assert got["RequestedFunctionScalingConfig"] == {
        "MinExecutionEnvironments": 5,
        "MaxExecutionEnvironments": 50,
    }
    assert got["AppliedFunctionScalingConfig"] == {
        "MinExecutionEnvironments": 3,
        "MaxExecutionEnvironments": 30,
    }


def test_function_scaling_put_on_a_pending_version_is_a_conflict(
    lam, network, function_role, control
):
    arn = create_provider(lam, network)["CapacityProviderArn"]
    name = create_function(lam, function_role, arn)["FunctionName"]
    control("config", {"StateDelaySeconds": 0.5})
    try:
        lam.publish_version(FunctionName=name)
        assert lam.get_function_configuration(FunctionName=name, Qualifier="1")["State"] == (
            "Pending"
        )
        with pytest.raises(lam.exceptions.ResourceConflictException, match="Pending"):
            lam.put_function_scaling_config(
                FunctionName=name,
                Qualifier="1",
                FunctionScalingConfig={"MaxExecutionEnvironments": 5},
            )
    finally:
        control("config", {"StateDelaySeconds": 0})
    time.sleep(0.6)  # Active now: the put is accepted
    lam.put_function_scaling_config(
        FunctionName=name, Qualifier="1", FunctionScalingConfig={"MaxExecutionEnvironments": 5}
    )


def test_function_scaling_config_errors(lam, raw_lambda, network, function_role):
    arn = create_provider(lam, network)["CapacityProviderArn"]
    name = create_function(lam, function_role, arn)["FunctionName"]
    lam.publish_version(FunctionName=name)
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="greater"):
        lam.put_function_scaling_config(
            FunctionName=name,
            Qualifier="1",
            FunctionScalingConfig={"MinExecutionEnvironments": 9, "MaxExecutionEnvironments": 2},
        )
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_scaling_config(FunctionName=name, Qualifier="7")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_scaling_config(FunctionName="does-not-exist", Qualifier="1")
    with pytest.raises(raw_lambda.exceptions.ClientError) as excinfo:
        raw_lambda.put_function_scaling_config(
            FunctionName=name,
            Qualifier="$LATEST",
            FunctionScalingConfig={"MaxExecutionEnvironments": 15001},
        )
    assert error_code(excinfo) == "ValidationException"
    plain = lam.create_function(
        FunctionName=unique("plain"),
        Role=function_role,
        Runtime="provided.al2023",
        Handler="bootstrap",
        Code={"ZipFile": b"zip"},
        Publish=True,
    )["FunctionName"]
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.get_function_scaling_config(FunctionName=plain, Qualifier="1")


def test_forced_failed_version_state(lam, network, function_role, control):
    arn = create_provider(lam, network)["CapacityProviderArn"]
    name = create_function(lam, function_role, arn)["FunctionName"]
    lam.publish_version(FunctionName=name)
    control(
        "state",
        {
            "FunctionName": name,
            "Qualifier": "1",
            "State": "Failed",
            "StateReasonCode": "InsufficientCapacity",
            "StateReason": "No capacity for the instance types of the provider.",
        },
    )
    failed = lam.get_function_configuration(FunctionName=name, Qualifier="1")
    assert failed["State"] == "Failed"
    assert failed["StateReasonCode"] == "InsufficientCapacity"
    assert failed["StateReason"].startswith("No capacity")
    control("state", {"FunctionName": name, "Qualifier": "1", "State": None})
    active = lam.get_function_configuration(FunctionName=name, Qualifier="1")
    assert active["State"] == "Active"
    assert "StateReasonCode" not in active


def test_a_role_created_moments_ago_is_not_assumable_yet(endpoint, lam, network, control):
    control("config", {"RolePropagationSeconds": 30})
    try:
        fresh = build_role(endpoint)
        with pytest.raises(lam.exceptions.InvalidParameterValueException, match="cannot be assumed"):
            lam.create_capacity_provider(
                **provider_request(network, PermissionsConfig={"CapacityProviderOperatorRoleArn": fresh})
            )
        provider = create_provider(lam, network)["CapacityProviderArn"]  # an older role
        with pytest.raises(lam.exceptions.InvalidParameterValueException, match="cannot be assumed"):
            create_function(lam, fresh, provider)
    finally:
        control("config", {"RolePropagationSeconds": 0})
    create_function(lam, fresh, provider)


def test_quotas_and_rates_default_to_awss_figures():
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMI_EMULATOR_")}
    process, url = start_emulator(env)
    try:
        request = urllib.request.Request(f"{url}/moto-api/lmi/config", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            defaults = json.load(answer)
    finally:
        process.stdin.close()
        process.wait(10)
    assert defaults["CapacityProviderReadsPerSecond"] == 15
    assert defaults["CapacityProviderWritesPerSecond"] == 1
    assert defaults["MaxVersionsPerCapacityProvider"] == 100
    assert defaults["MaxCapacityProviders"] == 1000


def test_capacity_provider_writes_beyond_one_per_second_are_throttled(
    lam, raw_lambda, network, control
):
    control("config", {"CapacityProviderWritesPerSecond": 1})
    first = unique("rate")
    raw_lambda.create_capacity_provider(**provider_request(network, first))
    with pytest.raises(raw_lambda.exceptions.TooManyRequestsException) as excinfo:
        raw_lambda.create_capacity_provider(**provider_request(network, unique("rate")))
    error = excinfo.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["Reason"] == "CallerRateLimitExceeded"
    assert int(error["ResponseMetadata"]["HTTPHeaders"]["retry-after"]) >= 1
    # updates and deletes share the write rate; reads have their own
    with pytest.raises(raw_lambda.exceptions.TooManyRequestsException):
        raw_lambda.delete_capacity_provider(CapacityProviderName=first)
    raw_lambda.get_capacity_provider(CapacityProviderName=first)
    time.sleep(1.05)
    try:
        raw_lambda.delete_capacity_provider(CapacityProviderName=first)
    finally:
        control("config", {"CapacityProviderWritesPerSecond": 0})


def test_capacity_provider_reads_beyond_fifteen_per_second_are_throttled(
    endpoint, lam, network, control
):
    arn = create_provider(lam, network)["CapacityProviderArn"]
    control("config", {"CapacityProviderReadsPerSecond": 15})  # resets the buckets
    clients = [client(endpoint, "lambda") for _ in range(8)]
    reads = [
        lambda c: c.get_capacity_provider(CapacityProviderName=arn),
        lambda c: c.list_capacity_providers(),
        lambda c: c.list_function_versions_by_capacity_provider(CapacityProviderName=arn),
    ]

    def read(i):
        try:
            reads[i % 3](clients[i % 8])
            return "ok"
        except clients[0].exceptions.TooManyRequestsException:
            return "throttled"

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(read, range(60)))
    elapsed = time.monotonic() - started
    # the three read operations share one bucket: a burst of 15, then 15 per second
    assert outcomes.count("ok") >= 15
    assert outcomes.count("ok") <= 15 + 15 * elapsed + 1
    assert "throttled" in outcomes


# --- Invoke: published versions run under AWS's Runtime Interface Emulator --------------------

REPO = Path(__file__).resolve().parents[2]
RIE_PATHS = (
    [Path(os.environ["LMI_LAMBDA_RIE"])]
    if os.environ.get("LMI_LAMBDA_RIE")
    else [REPO / ".tools/bin/aws-lambda-rie", REPO.parent / "shared/lambda/bin/aws-lambda-rie"]
)
RIE = next((path for path in RIE_PATHS if os.access(path, os.X_OK)), None)
needs_rie = pytest.mark.skipif(
    RIE is None,
    reason="aws-lambda-rie not found ($LMI_LAMBDA_RIE, .tools/bin/ or ../shared/lambda/bin/)",
)

# A custom runtime in the Managed Instances style (stdlib only): AWS_LAMBDA_MAX_CONCURRENCY
# workers poll /next at once. Init reads s3://$CONFIG_BUCKET/$CONFIG_KEY back from the emulator
# (AWS_ENDPOINT_URL) when those are set, and exits if it cannot. An event {"fail": m} is a
# function error, {"exit": code} exits the runtime; {"wait_for": n} returns once n invocations
# are in flight together (or after 10 s); {"sleep": s} sleeps. Each answer reports the most
# invocations seen in flight at once.
RUNTIME = r"""#!/usr/bin/env python3
import json, os, sys, threading, time, urllib.error, urllib.request

API = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime/invocation"
SIGNED = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, " \
    "SignedHeaders=host, Signature=0"
lock = threading.Lock()
in_flight = peak = 0


def read_config():
    bucket, key = os.environ.get("CONFIG_BUCKET"), os.environ.get("CONFIG_KEY")
    if not bucket:
        return None
    url = f"{os.environ['AWS_ENDPOINT_URL']}/{bucket}/{key}"
    try:
        request = urllib.request.Request(url, headers={"Authorization": SIGNED})
        with urllib.request.urlopen(request) as response:
            return response.read().decode()
    except urllib.error.HTTPError as error:
        sys.exit(f"cannot read s3://{bucket}/{key}: HTTP {error.code}")


CONFIG = read_config()


def post(path, document, headers=None):
    data = json.dumps(document).encode()
    request = urllib.request.Request(f"{API}/{path}", data, headers or {}, method="POST")
    try:
        urllib.request.urlopen(request).read()
    except urllib.error.HTTPError:
        pass


def handle(event):
    global in_flight, peak
    with lock:
        in_flight += 1
        peak = max(peak, in_flight)
    try:
        deadline = time.monotonic() + 10
        while peak < event.get("wait_for", 0) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(event.get("sleep", 0))
        return {
            "echo": event,
            "peak_in_flight": peak,
            "pid": os.getpid(),
            "config": CONFIG,
            "greeting": os.environ.get("GREETING"),
            "env": {k: v for k, v in os.environ.items() if k.startswith("AWS_")},
        }
    finally:
        with lock:
            in_flight -= 1


def worker():
    while True:
        with urllib.request.urlopen(f"{API}/next") as response:
            request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(response.read())
        if "exit" in event:
            os._exit(event["exit"])
        if "fail" in event:
            error = {"errorType": "OrderError", "errorMessage": event["fail"]}
            post(f"{request_id}/error", error, {"Lambda-Runtime-Function-Error-Type": "Unhandled"})
        else:
            post(f"{request_id}/response", handle(event))


for _ in range(int(os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY", "1"))):
    threading.Thread(target=worker, daemon=True).start()
threading.Event().wait()
"""


def runtime_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16  # an executable, as Lambda needs it
        archive.writestr(info, RUNTIME)
    return buffer.getvalue()


def runtime_function(lam, network, role, concurrency=4, memory=2048, **extra):
    """A function on a new provider whose code is RUNTIME; returns its name."""
    arn = create_provider(lam, network)["CapacityProviderArn"]
    inner = {"CapacityProviderArn": arn, "ExecutionEnvironmentMemoryGiBPerVCpu": 2.0}
    if concurrency is not None:
        inner["PerExecutionEnvironmentMaxConcurrency"] = concurrency
    return lam.create_function(
        FunctionName=unique("fn"),
        Role=role,
        Runtime="provided.al2023",
        Handler="bootstrap",
        MemorySize=memory,
        Timeout=30,
        Code={"ZipFile": runtime_zip()},
        CapacityProviderConfig={"LambdaManagedInstancesCapacityProviderConfig": inner},
        **extra,
    )["FunctionName"]


def payload(response) -> dict:
    return json.loads(response["Payload"].read())


def environments(endpoint: str) -> dict[str, dict]:
    with urllib.request.urlopen(f"{endpoint}/moto-api/lmi/environments") as response:
        listed = json.loads(response.read())["Environments"]
    return {e["FunctionArn"]: e for e in listed}


def is_running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(condition, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@needs_rie
def test_invoke_runs_the_published_version_in_its_environment(lam, network, function_role):
    name = runtime_function(
        lam, network, function_role, Environment={"Variables": {"GREETING": "hello"}}
    )
    lam.publish_version(FunctionName=name)
    response = lam.invoke(
        FunctionName=name, Qualifier="1", Payload=json.dumps({"order": 42}), LogType="Tail"
    )
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert response["ExecutedVersion"] == "1"
    result = payload(response)
    assert result["echo"] == {"order": 42}
    assert result["greeting"] == "hello"
    env = result["env"]
    assert env["AWS_LAMBDA_MAX_CONCURRENCY"] == "4"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "lambda-managed-instances"  # set by RIE
    assert (env["AWS_LAMBDA_FUNCTION_NAME"], env["AWS_LAMBDA_FUNCTION_VERSION"]) == (name, "1")
    assert (env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], env["AWS_LAMBDA_FUNCTION_TIMEOUT"]) == (
        "2048",
        "30",
    )
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert "START RequestId" in base64.b64decode(response["LogResult"]).decode()

    # The same environment serves the next call, also through an alias.
    again = payload(lam.invoke(FunctionName=name, Qualifier="1", Payload=b"{}"))
    assert again["pid"] == result["pid"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    aliased = lam.invoke(FunctionName=name, Qualifier="live", Payload=b"{}")
    assert aliased["ExecutedVersion"] == "1"
    assert payload(aliased)["pid"] == result["pid"]
    dry = lam.invoke(FunctionName=name, Qualifier="1", InvocationType="DryRun")
    assert dry["StatusCode"] == 204
    assert lam.invoke(FunctionName=name, Qualifier="1", InvocationType="Event")["StatusCode"] == 202


@needs_rie
def test_latest_is_not_invocable_and_unqualified_runs_latest_published(
    endpoint, lam, network, function_role
):
    name = runtime_function(lam, network, function_role, concurrency=None, memory=4096)
    with pytest.raises(lam.exceptions.ResourceConflictException, match="ActiveNonInvocable"):
        lam.invoke(FunctionName=name, Qualifier="$LATEST")
    with pytest.raises(lam.exceptions.NoPublishedVersionException):
        lam.invoke(FunctionName=name)
    arn = lam.publish_version(FunctionName=name, PublishTo="LATEST_PUBLISHED")["FunctionArn"]
    response = lam.invoke(FunctionName=name, Payload=b"{}")
    assert response["ExecutedVersion"] == "$LATEST.PUBLISHED"
    # No PerExecutionEnvironmentMaxConcurrency: 8 per vCPU, 4096 MiB at 2 GiB per vCPU.
    assert payload(response)["env"]["AWS_LAMBDA_MAX_CONCURRENCY"] == "16"

    # Republishing replaces the version, and its environment with it.
    old_pid = environments(endpoint)[arn]["Pid"]
    lam.update_function_configuration(FunctionName=name, MemorySize=8192)
    lam.publish_version(FunctionName=name, PublishTo="LATEST_PUBLISHED")
    assert not is_running(old_pid)
    env = payload(lam.invoke(FunctionName=name, Payload=b"{}"))["env"]
    assert (env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], env["AWS_LAMBDA_MAX_CONCURRENCY"]) == (
        "8192",
        "32",
    )


@needs_rie
def test_invoke_refuses_a_version_that_is_not_active(lam, network, function_role, control):
    name = runtime_function(lam, network, function_role)
    control("config", {"StateDelaySeconds": 30})
    lam.publish_version(FunctionName=name)
    with pytest.raises(lam.exceptions.ResourceConflictException, match="Pending"):
        lam.invoke(FunctionName=name, Qualifier="1")


@needs_rie
def test_function_error_is_unhandled_with_the_runtime_error(lam, network, function_role):
    name = runtime_function(lam, network, function_role)
    lam.publish_version(FunctionName=name)
    started = time.monotonic()
    response = lam.invoke(FunctionName=name, Qualifier="1", Payload=b'{"fail": "no stock"}')
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert payload(response) == {"errorType": "OrderError", "errorMessage": "no stock"}
    # An error of a runtime that has initialised is not mistaken for a failed init (no wait).
    assert time.monotonic() - started < 2.5
    # The environment keeps serving.
    ok = lam.invoke(FunctionName=name, Qualifier="1", Payload=b'{"order": 1}')
    assert "FunctionError" not in ok


@needs_rie
def test_a_runtime_that_exits_is_replaced_by_a_new_environment(
    endpoint, lam, network, function_role
):
    name = runtime_function(lam, network, function_role)
    version_arn = lam.publish_version(FunctionName=name)["FunctionArn"]
    lam.invoke(FunctionName=name, Qualifier="1", Payload=b"{}")
    first_pid = environments(endpoint)[version_arn]["Pid"]
    crashed = lam.invoke(FunctionName=name, Qualifier="1", Payload=b'{"exit": 3}')
    assert crashed["FunctionError"] == "Unhandled"
    error = payload(crashed)
    assert error["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in error["errorMessage"]
    assert wait_until(lambda: not environments(endpoint)[version_arn]["Running"])
    after = lam.invoke(FunctionName=name, Qualifier="1", Payload=b"{}")
    assert "FunctionError" not in after
    assert environments(endpoint)[version_arn]["Pid"] != first_pid


@needs_rie
def test_concurrent_invokes_overlap_in_one_environment(endpoint, lam, network, function_role):
    name = runtime_function(lam, network, function_role, concurrency=4)
    lam.publish_version(FunctionName=name)
    # a worker that has not polled yet answers 429, which callers retry
    clients = [client(endpoint, "lambda", attempts=5) for _ in range(4)]

    def call(c):
        return payload(c.invoke(FunctionName=name, Qualifier="1", Payload=b'{"wait_for": 4}'))

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, clients))
    assert [r["peak_in_flight"] for r in results] == [4, 4, 4, 4]
    assert len({r["pid"] for r in results}) == 1


@needs_rie
def test_invokes_beyond_the_concurrency_are_throttled(endpoint, lam, network, function_role):
    name = runtime_function(lam, network, function_role, concurrency=1)
    lam.publish_version(FunctionName=name)
    lam.invoke(FunctionName=name, Qualifier="1", Payload=b"{}")  # started and idle
    slow = threading.Thread(
        target=lambda: client(endpoint, "lambda").invoke(
            FunctionName=name, Qualifier="1", Payload=b'{"sleep": 1}'
        )
    )
    slow.start()
    log_url = f"{endpoint}/moto-api/lmi/environments/{name}/1/log"
    assert wait_until(lambda: urllib.request.urlopen(log_url).read().count(b"START") == 2)
    with pytest.raises(lam.exceptions.TooManyRequestsException):
        lam.invoke(FunctionName=name, Qualifier="1", Payload=b"{}")
    slow.join()


@needs_rie
def test_deleting_a_version_stops_its_environment(endpoint, lam, network, function_role):
    name = runtime_function(lam, network, function_role)
    version_arn = lam.publish_version(FunctionName=name)["FunctionArn"]
    lam.invoke(FunctionName=name, Qualifier="1", Payload=b"{}")
    pid = environments(endpoint)[version_arn]["Pid"]
    assert is_running(pid)
    lam.delete_function(FunctionName=name, Qualifier="1")
    assert version_arn not in environments(endpoint)
    assert not is_running(pid)
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"{endpoint}/moto-api/lmi/environments/{name}/1/log")


@needs_rie
def test_failed_init_is_reported_and_the_next_invoke_starts_afresh(
    endpoint, lam, network, function_role
):
    bucket = unique("config")
    s3 = client(endpoint, "s3")
    s3.create_bucket(Bucket=bucket)
    variables = {"CONFIG_BUCKET": bucket, "CONFIG_KEY": "catalog.json"}
    name = runtime_function(lam, network, function_role, Environment={"Variables": variables})
    version_arn = lam.publish_version(FunctionName=name)["FunctionArn"]

    failed = lam.invoke(FunctionName=name, Qualifier="1", Payload=b"{}")
    assert failed["FunctionError"] == "Unhandled"
    error = payload(failed)
    assert error["errorType"] == "Runtime.ExitError"
    assert "INIT failed" in error["errorMessage"]
    assert f"cannot read s3://{bucket}/catalog.json: HTTP 404" in error["errorMessage"]
    assert version_arn not in environments(endpoint)

    # The runtime reads its configuration from the emulator while its Invoke is in progress.
    s3.put_object(Bucket=bucket, Key="catalog.json", Body=b'{"items": 3}')
    fixed = lam.invoke(FunctionName=name, Qualifier="1", Payload=b"{}")
    assert "FunctionError" not in fixed
    assert payload(fixed)["config"] == '{"items": 3}'
    assert environments(endpoint)[version_arn]["Running"]


@needs_rie
def test_invoke_payload_is_checked_before_the_function_runs(lam, network, function_role):
    name = runtime_function(lam, network, function_role)
    lam.publish_version(FunctionName=name)
    with pytest.raises(lam.exceptions.InvalidRequestContentException):
        lam.invoke(FunctionName=name, Qualifier="1", Payload=b"{not json")
    with pytest.raises(lam.exceptions.RequestTooLargeException):
        lam.invoke(FunctionName=name, Qualifier="1", Payload=b'"' + b"x" * 6 * 1024 * 1024 + b'"')


@needs_rie
def test_code_that_is_not_a_zip_cannot_run(lam, network, function_role):
    arn = create_provider(lam, network)["CapacityProviderArn"]
    name = create_function(lam, function_role, arn)["FunctionName"]  # "not really a zip"
    lam.publish_version(FunctionName=name)
    with pytest.raises(lam.exceptions.InvalidZipFileException):
        lam.invoke(FunctionName=name, Qualifier="1", Payload=b"{}")


@needs_rie
def test_no_environment_outlives_a_killed_server(tmp_path):
    # A killed server cannot remove its environments' directories: keep them in tmp_path.
    process, url = start_emulator({**os.environ, "TMPDIR": str(tmp_path)})
    try:
        lam = client(url, "lambda")
        name = runtime_function(lam, build_network(url), build_role(url))
        lam.publish_version(FunctionName=name)
        lam.invoke(FunctionName=name, Qualifier="1", Payload=b"{}")
        (pid,) = [e["Pid"] for e in environments(url).values()]
        assert is_running(pid)
    finally:
        process.kill()
        process.wait()
    assert wait_until(lambda: not is_running(pid)), f"environment {pid} outlived the server"


def test_invoke_without_the_runtime_interface_emulator_is_a_clear_error(tmp_path):
    missing = tmp_path / "aws-lambda-rie"
    process, url = start_emulator({**os.environ, "LMI_LAMBDA_RIE": str(missing)})
    try:
        lam = client(url, "lambda")
        name = runtime_function(lam, build_network(url), build_role(url))
        lam.publish_version(FunctionName=name)
        with pytest.raises(lam.exceptions.ServiceException, match=str(missing)) as excinfo:
            lam.invoke(FunctionName=name, Qualifier="1", Payload=b"{}")
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    finally:
        process.kill()
        process.wait()


def test_object_reads_with_another_expected_bucket_owner_are_access_denied(endpoint):
    s3 = client(endpoint, "s3")
    bucket = unique("owner-check")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="catalog.parquet", Body=b"bytes")
    owner = "123456789012"
    assert s3.get_object(Bucket=bucket, Key="catalog.parquet", ExpectedBucketOwner=owner)[
        "Body"
    ].read() == b"bytes"
    s3.head_object(Bucket=bucket, Key="catalog.parquet", ExpectedBucketOwner=owner)
    for call in (s3.get_object, s3.head_object):
        with pytest.raises(s3.exceptions.ClientError) as refused:
            call(Bucket=bucket, Key="catalog.parquet", ExpectedBucketOwner="210987654321")
        error = refused.value.response["Error"]
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        if call is s3.get_object:
            assert error["Code"] == "AccessDenied"
    # Without the condition nothing changes.
    assert s3.get_object(Bucket=bucket, Key="catalog.parquet")["Body"].read() == b"bytes"


def test_create_vpc_endpoint_is_idempotent_by_client_token(endpoint, network):
    ec2 = client(endpoint, "ec2")
    vpc = ec2.describe_subnets(SubnetIds=network["subnets"][:1])["Subnets"][0]["VpcId"]
    request = dict(
        VpcId=vpc,
        ServiceName="com.amazonaws.us-east-1.lambda",
        VpcEndpointType="Interface",
        SubnetIds=network["subnets"],
        SecurityGroupIds=[network["group"]],
        PrivateDnsEnabled=True,
        ClientToken=unique("token"),
    )
    first = ec2.create_vpc_endpoint(**request)["VpcEndpoint"]["VpcEndpointId"]
    # A retry after a lost answer: the same endpoint, not a second one.
    again = ec2.create_vpc_endpoint(**request)["VpcEndpoint"]["VpcEndpointId"]
    assert again == first
    endpoints = ec2.describe_vpc_endpoints(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}]
    )["VpcEndpoints"]
    assert [e["VpcEndpointId"] for e in endpoints].count(first) == 1
    assert len([e for e in endpoints if e["ServiceName"] == request["ServiceName"]]) == 1
    # The same token for another request is refused.
    with pytest.raises(ec2.exceptions.ClientError) as refused:
        ec2.create_vpc_endpoint(**{**request, "SubnetIds": network["subnets"][:1]})
    assert refused.value.response["Error"]["Code"] == "IdempotentParameterMismatch"
    # Without a token (or with a new one) each call creates an endpoint, as before.
    other = ec2.create_vpc_endpoint(**{**request, "ClientToken": unique("token")})
    assert other["VpcEndpoint"]["VpcEndpointId"] != first
