"""The LMI extension checked by a client we did not write: boto3 (botocore 1.44.8's model).

boto3 serialises requests and parses responses by the AWS model, so a wrong member name, type or
status code shows up here as a failure. Run by scripts/test with the emulator's virtualenv:
    .venv-aws/bin/python -m pytest tests/aws
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/lmi-operator"


@pytest.fixture(scope="module")
def endpoint():
    process = subprocess.Popen(
        [sys.executable, "-m", "lmi_emulator", "--port", "0", "--exit-with-stdin"],
        cwd=Path(__file__).parent,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    assert line.startswith("LMI-EMULATOR READY "), f"emulator did not start: {line!r}"
    yield line.split()[-1]
    process.kill()
    process.wait()


def client(endpoint: str, service: str, validate: bool = True):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(parameter_validation=validate, retries={"max_attempts": 1}),
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
            "MaxVersionsPerCapacityProvider": 1000,
        },
    )


@pytest.fixture
def network(endpoint):
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
    iam = client(endpoint, "iam")
    name = unique("fn-role")
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_provider(lam, network, name=None, **extra):
    request = {
        "CapacityProviderName": name or unique("cp"),
        "VpcConfig": {"SubnetIds": network["subnets"], "SecurityGroupIds": [network["group"]]},
        "PermissionsConfig": {"CapacityProviderOperatorRoleArn": ROLE},
        **extra,
    }
    return lam.create_capacity_provider(**request)["CapacityProvider"]


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


def test_function_cannot_move_to_another_provider(lam, network, function_role):
    first = create_provider(lam, network)["CapacityProviderArn"]
    second = create_provider(lam, network)["CapacityProviderArn"]
    name = create_function(lam, function_role, first)["FunctionName"]
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="cannot be changed"):
        lam.update_function_configuration(
            FunctionName=name,
            CapacityProviderConfig={
                "LambdaManagedInstancesCapacityProviderConfig": {"CapacityProviderArn": second}
            },
        )


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


def test_function_scaling_config_requested_and_applied(lam, network, function_role, control):
    arn = create_provider(lam, network)["CapacityProviderArn"]
    name = create_function(lam, function_role, arn)["FunctionName"]
    lam.publish_version(FunctionName=name)
    before = lam.get_function_scaling_config(FunctionName=name, Qualifier="1")
    assert "RequestedFunctionScalingConfig" not in before

    put = lam.put_function_scaling_config(
        FunctionName=name,
        Qualifier="1",
        FunctionScalingConfig={"MinExecutionEnvironments": 3, "MaxExecutionEnvironments": 30},
    )
    assert put["FunctionState"] == "Active"
    control("config", {"StateDelaySeconds": 30})
    lam.put_function_scaling_config(
        FunctionName=name,
        Qualifier="1",
        FunctionScalingConfig={"MinExecutionEnvironments": 5, "MaxExecutionEnvironments": 50},
    )
    got = lam.get_function_scaling_config(FunctionName=name, Qualifier="1")
    assert got["FunctionArn"].endswith(f"function:{name}:1")
    assert got["RequestedFunctionScalingConfig"] == {
        "MinExecutionEnvironments": 5,
        "MaxExecutionEnvironments": 50,
    }
    assert got["AppliedFunctionScalingConfig"] == {
        "MinExecutionEnvironments": 3,
        "MaxExecutionEnvironments": 30,
    }


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
    control("state", {"FunctionName": name, "Qualifier": "1", "State": "Failed"})
    assert lam.get_function_configuration(FunctionName=name, Qualifier="1")["State"] == "Failed"
    control("state", {"FunctionName": name, "Qualifier": "1", "State": None})
    assert lam.get_function_configuration(FunctionName=name, Qualifier="1")["State"] == "Active"
