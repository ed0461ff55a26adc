"""Functions on capacity providers: the LMI members of moto's classic function operations.

- CreateFunction / UpdateFunctionConfiguration: ``CapacityProviderConfig`` is validated (shape,
  the provider exists and is Active, memory per vCPU is 2, 4 or 8 GiB — "the supported
  memory-to-CPU ratios are 2GB, 4GB, or 8GB per CPU", AWS SAM's ``CapacityProviderConfig``
  reference, though the model's range is 2.0–8.0) and kept (see
  ``function_state``). A function can move to another capacity provider with
  UpdateFunctionConfiguration (CloudFormation's ``AWS::Lambda::Function``
  ``CapacityProviderConfig``: "Update requires: No interruption"); the versions it published stay
  on the provider they were published on. It cannot move on or off capacity providers.
- CreateFunction / UpdateFunctionCode from S3: a missing bucket or object is
  ``InvalidParameterValueException`` (moto only checks the bucket and otherwise creates the
  function with empty code).
- PublishVersion, and CreateFunction / UpdateFunctionCode with ``PublishTo``: ``PublishTo:
  LATEST_PUBLISHED`` publishes (or republishes) the ``$LATEST.PUBLISHED`` version instead of a
  numbered one. A version is only published when code or configuration changed since the one it
  would replace, as Lambda does. New versions on a provider start ``Pending``. Version numbers
  are never reused, not even after the newest version was deleted (Lambda developer guide,
  "Function versions": versions are numbered in sequence; moto alone numbers from the
  versions that remain).
- PublishVersion's preconditions, as Lambda checks them: ``CodeSha256`` must be ``$LATEST``'s
  (else ``InvalidParameterValueException`` in Lambda's words) and ``RevisionId`` too (else
  ``PreconditionFailedException``, 412). Which one Lambda checks first when both differ (a code
  change since the caller's read) is not documented; the code hash is checked first here.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import unquote

from moto.awslambda.models import LambdaFunction, LambdaStorage
from moto.s3.exceptions import MissingBucket
from moto.s3.models import s3_backends
from moto.awslambda.responses import LambdaResponse
from moto.core.responses import TYPE_RESPONSE

from . import capacity_providers, environments, iam_propagation, limits
from .attachments import lambda_backend, versions_on
from .function_state import (
    capacity_provider_arn,
    capacity_provider_config,
    new_revision,
    revision_id,
    start_settling,
)
from .incoming import account_region, json_body, validate_member
from .lifecycle import LOCK
from .wire import conflict, invalid_parameter, modelled_error, not_found

LATEST_PUBLISHED = "$LATEST.PUBLISHED"
ALLOWED_MEMORY_GIB_PER_VCPU = (2.0, 4.0, 8.0)

# FunctionConfiguration members that differ between versions without a change of function.
_VOLATILE = {
    "Description",  # PublishVersion may override it for the version
    "FunctionArn",
    "Version",
    "LastModified",
    "State",
    "StateReason",
    "StateReasonCode",
    "LastUpdateStatus",
    "RevisionId",
}

_original_create_function = LambdaResponse.create_function
_original_update_function_configuration = LambdaResponse.update_function_configuration
_original_update_function_code = LambdaResponse.update_function_code



def latest_published(versions: list[LambdaFunction]) -> LambdaFunction | None:
    """The function's ``$LATEST.PUBLISHED`` version, if it has one."""
    return next((v for v in versions if str(v.version) == LATEST_PUBLISHED), None)

def check_capacity_provider_config(account: str, region: str, config: Any, structure: str) -> None:
    validate_member(structure, "CapacityProviderConfig", config, "capacityProviderConfig")
    inner = config["LambdaManagedInstancesCapacityProviderConfig"]
    arn = inner["CapacityProviderArn"]
    provider = capacity_providers.find_by_arn(account, region, arn)
    if provider is None:
        raise not_found(f"Capacity provider not found: {arn}")
    if provider.state != "Active":
        raise conflict(
            f"Capacity provider {provider.name} is not Active (state: {provider.state})."
        )
    ratio = inner.get("ExecutionEnvironmentMemoryGiBPerVCpu")
    if ratio is not None and float(ratio) not in ALLOWED_MEMORY_GIB_PER_VCPU:
        raise invalid_parameter(
            f"ExecutionEnvironmentMemoryGiBPerVCpu must be one of 2.0, 4.0 or 8.0, got {ratio}."
        )


def check_version_limit(account: str, region: str, provider_arn: str) -> None:
    if len(versions_on(account, region, provider_arn)) >= limits.max_versions_per_capacity_provider:
        raise modelled_error(
            "FunctionVersionsPerCapacityProviderLimitExceededException",
            f"The number of function versions on capacity provider {provider_arn} exceeds "
            f"the limit of {limits.max_versions_per_capacity_provider}.",
        )


def check_publish_to(structure: str, body: dict[str, Any], fn_config: Any) -> str | None:
    publish_to = body.get("PublishTo")
    if publish_to is None:
        return None
    validate_member(structure, "PublishTo", publish_to, "publishTo")
    if fn_config is None:
        raise invalid_parameter("PublishTo is only supported for functions on a capacity provider.")
    return publish_to


def check_s3_code(account: str, code: dict[str, Any]) -> None:
    """Code from S3 must exist, as Lambda reads it during the call (moto skips missing keys)."""
    if "S3Bucket" not in code:
        return
    try:
        key = s3_backends[account]["aws"].get_object(
            code["S3Bucket"], code.get("S3Key", ""), code.get("S3ObjectVersion")
        )
    except MissingBucket:
        raise invalid_parameter(
            "Error occurred while GetObject. S3 Error Code: NoSuchBucket. S3 Error Message: "
            f"The specified bucket does not exist: {code['S3Bucket']}"
        ) from None
    if key is None:
        raise invalid_parameter(
            "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: "
            f"The specified key does not exist: s3://{code['S3Bucket']}/{code.get('S3Key', '')}"
        )


def _replace_body(request: LambdaResponse, body: dict[str, Any]) -> None:
    # moto's handlers read `json_body`, which parses `body` on every access.
    request.body = json.dumps(body)


def _published_response(fn: LambdaFunction) -> TYPE_RESPONSE:
    return 201, {"status": 201}, json.dumps(fn.get_configuration())


# --- CreateFunction, UpdateFunctionConfiguration, UpdateFunctionCode --------------------------


def create_function(self: LambdaResponse) -> TYPE_RESPONSE:
    body = json_body(self)
    account, region = account_region(self)
    config = body.get("CapacityProviderConfig")
    with LOCK:
        check_s3_code(account, body.get("Code") or {})
        if "Role" in body:
            iam_propagation.check_assumable(account, body["Role"], "function")
        if config is not None:
            check_capacity_provider_config(account, region, config, "CreateFunctionRequest")
            inner = config["LambdaManagedInstancesCapacityProviderConfig"]
            check_version_limit(account, region, inner["CapacityProviderArn"])
        publish_to = check_publish_to("CreateFunctionRequest", body, config)
        if publish_to is None:
            return _original_create_function(self)
        _replace_body(self, {k: v for k, v in body.items() if k not in ("Publish", "PublishTo")})
        _original_create_function(self)
        storage = lambda_backend(account, region)._lambdas
        return _published_response(publish(storage, body["FunctionName"], "", publish_to))


def update_function_configuration(self: LambdaResponse) -> TYPE_RESPONSE:
    body = json_body(self)
    account, region = account_region(self)
    function_name = unquote(self.path.rsplit("/", 2)[-2])
    with LOCK:
        fn = lambda_backend(account, region).get_function(function_name)
        if "CapacityProviderConfig" in body:
            config = body["CapacityProviderConfig"]
            check_capacity_provider_config(
                account, region, config, "UpdateFunctionConfigurationRequest"
            )
            new_arn = config["LambdaManagedInstancesCapacityProviderConfig"]["CapacityProviderArn"]
            if capacity_provider_arn(fn) is None:
                raise invalid_parameter(
                    f"{function_name} does not run on a capacity provider; a function cannot "
                    "move onto one."
                )
            if capacity_provider_arn(fn) != new_arn:
                check_version_limit(account, region, new_arn)
        return _original_update_function_configuration(self)


def update_function_code(self: LambdaResponse) -> TYPE_RESPONSE:
    body = json_body(self)
    account, region = account_region(self)
    function_name = unquote(self.path.rsplit("/", 2)[-2])
    with LOCK:
        fn = lambda_backend(account, region).get_function(function_name)
        check_s3_code(account, body)
        publish_to = check_publish_to(
            "UpdateFunctionCodeRequest", body, capacity_provider_config(fn)
        )
        if publish_to is None:
            return _original_update_function_code(self)
        _replace_body(self, {k: v for k, v in body.items() if k not in ("Publish", "PublishTo")})
        _original_update_function_code(self)
        storage = lambda_backend(account, region)._lambdas
        fn = publish(storage, function_name, "", publish_to)
        return 200, {}, json.dumps(fn.get_configuration())


# --- PublishVersion ---------------------------------------------------------------------------


def publish_version(self: LambdaResponse) -> TYPE_RESPONSE:
    body = json_body(self)
    account, region = account_region(self)
    function_name = unquote(self.path.split("/")[-2])
    with LOCK:
        storage = lambda_backend(account, region)._lambdas
        fn = storage.get_function_by_name_or_arn_forbid_qualifier(function_name)
        publish_to = check_publish_to("PublishVersionRequest", body, capacity_provider_config(fn))
        check_publish_preconditions(fn, body)
        published = publish(storage, function_name, body.get("Description") or "", publish_to)
        return _published_response(published)


def check_publish_preconditions(latest: LambdaFunction, body: dict[str, Any]) -> None:
    """Refuse to publish when ``$LATEST`` is not what the caller read."""
    sha = body.get("CodeSha256")
    if sha is not None and sha != latest.code_sha_256:
        raise invalid_parameter(
            f"CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST "
            f"({latest.code_sha_256}). Please try again with the CodeSHA256 in $LATEST."
        )
    revision = body.get("RevisionId")
    if revision is not None and revision != revision_id(latest):
        raise modelled_error(
            "PreconditionFailedException",
            "The Revision Id provided does not match the latest Revision Id. Call the "
            "GetFunction/GetAlias API to retrieve the latest Revision Id",
        )


def fingerprint(fn: LambdaFunction) -> str:
    """What a published version freezes: code and configuration, without per-version fields."""
    config = {k: v for k, v in fn.get_configuration().items() if k not in _VOLATILE}
    return json.dumps(config, sort_keys=True, default=str)


def publish(
    storage: LambdaStorage, name_or_arn: str, description: str = "", publish_to: str | None = None
) -> LambdaFunction:
    """Publish $LATEST as the next numbered version, or as $LATEST.PUBLISHED. Replaces moto's
    ``LambdaStorage.publish_version`` (which CreateFunction's ``Publish`` also goes through)."""
    latest = storage.get_function_by_name_or_arn_forbid_qualifier(name_or_arn)
    group = storage._functions[latest.function_name]
    versions: list[LambdaFunction] = group["versions"]
    if publish_to == "LATEST_PUBLISHED":
        version: str | int = LATEST_PUBLISHED
        previous = latest_published(versions)
    else:
        numbered = [v for v in versions if str(v.version).isdigit()]
        # Lambda never reuses a version number, not even that of a deleted latest version.
        version = max([int(v.version) for v in numbered] + [group.get("lmi_last_version", 0)]) + 1
        previous = max(numbered, key=lambda v: int(v.version), default=None)
    if previous is not None and fingerprint(previous) == fingerprint(latest):
        return previous  # nothing changed since: Lambda returns the existing version

    provider_arn = capacity_provider_arn(latest)
    if provider_arn is not None:
        account, region = storage.account_id, storage.region_name
        if publish_to != "LATEST_PUBLISHED" or previous is None:
            check_version_limit(account, region, provider_arn)

    fn = copy.copy(latest)
    fn.set_version(version)  # type: ignore[arg-type]
    if isinstance(version, int):
        group["lmi_last_version"] = version
    new_revision(fn)
    if description:
        fn.description = description
    start_settling(fn)
    if publish_to == "LATEST_PUBLISHED" and previous is not None:
        versions.remove(previous)
        environments.reap()  # the replaced version's execution environment goes with it
    versions.append(fn)
    storage._arns[fn.function_arn] = fn
    latest.code_or_config_updated = False
    return fn


def _storage_publish_version(
    self: LambdaStorage, name_or_arn: str, description: str = ""
) -> LambdaFunction:
    return publish(self, name_or_arn, description)


def install() -> None:
    LambdaResponse.create_function = create_function  # type: ignore[method-assign]
    LambdaResponse.update_function_configuration = update_function_configuration  # type: ignore[method-assign]
    LambdaResponse.update_function_code = update_function_code  # type: ignore[method-assign]
    LambdaResponse.publish_version = publish_version  # type: ignore[method-assign]
    LambdaStorage.publish_version = _storage_publish_version  # type: ignore[method-assign]
