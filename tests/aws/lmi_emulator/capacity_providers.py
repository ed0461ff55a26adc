"""Capacity providers: Create/Get/List/Update/DeleteCapacityProvider and
ListFunctionVersionsByCapacityProvider (``/2025-11-30/capacity-providers...``).

Validation beyond the model's shapes, as Lambda does it:
- subnets and security groups must exist in EC2 (same account and region) and share one VPC;
- instance types: either allowed or excluded, not both; each must name (or, with ``*``, match)
  a known EC2 instance type, and allowed ones must have the provider's architecture;
- scaling: ``Manual`` needs scaling policies, ``Auto`` takes none;
- names are unique per account and region (a provider being deleted still holds its name);
- a provider with attached function versions cannot be deleted;
- only scaling, tag propagation and telemetry can be updated;
- every operation here counts against the account's capacity-provider read or write rate
  (``limits``): over it, ``TooManyRequestsException``.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from moto.awslambda.responses import LambdaResponse
from moto.core.responses import TYPE_RESPONSE
from moto.ec2.exceptions import InvalidSubnetIdError
from moto.ec2.models import ec2_backends
from moto.ec2.models.instance_types import INSTANCE_TYPES
from moto.utilities.utils import get_partition

from . import iam_propagation, limits
from .attachments import versions_on
from .incoming import account_region, operation_input
from .lifecycle import LOCK, Settling
from .wire import conflict, invalid_parameter, json_response, modelled_error, not_found

DEFAULT_ARCHITECTURE = "x86_64"
DEFAULT_SCALING_MODE = "Auto"
DEFAULT_PAGE_SIZE = 50

# Members of the CapacityProvider shape that are stored as given.
_FIXED_MEMBERS = ("VpcConfig", "PermissionsConfig", "InstanceRequirements", "KmsKeyArn")
_UPDATABLE_MEMBERS = ("CapacityProviderScalingConfig", "PropagateTags", "TelemetryConfig")


@dataclass
class CapacityProvider:
    name: str
    arn: str
    members: dict[str, Any]
    lifecycle: Settling
    tags: dict[str, str] = field(default_factory=dict)
    last_modified: str = ""

    @property
    def state(self) -> str:
        return self.lifecycle.current()

    def is_gone(self) -> bool:
        """A deleted provider disappears once its Deleting state has run its course."""
        return (
            self.lifecycle.pending == "Deleting"
            and self.lifecycle.has_settled()
            and (self.lifecycle.forced is None)
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "CapacityProviderArn": self.arn,
            "State": self.state,
            **copy.deepcopy(self.members),
            "LastModified": self.last_modified,
        }


# (account, region) -> name -> provider
_providers: dict[tuple[str, str], dict[str, CapacityProvider]] = {}


def providers(account: str, region: str) -> dict[str, CapacityProvider]:
    """The live providers of an account and region (deleted ones swept out)."""
    with LOCK:
        registry = _providers.setdefault((account, region), {})
        for name in [n for n, p in registry.items() if p.is_gone()]:
            del registry[name]
        return registry


def find(account: str, region: str, name_or_arn: str) -> CapacityProvider:
    """The provider named by a name or ARN, or ResourceNotFoundException."""
    name = name_or_arn.rsplit(":", 1)[-1]
    provider = providers(account, region).get(name)
    if provider is None or (name_or_arn.startswith("arn:") and provider.arn != name_or_arn):
        raise not_found(f"Capacity provider not found: {name_or_arn}")
    return provider


def find_by_arn(account: str, region: str, arn: str) -> CapacityProvider | None:
    return next((p for p in providers(account, region).values() if p.arn == arn), None)


def make_arn(account: str, region: str, name: str) -> str:
    return f"arn:{get_partition(region)}:lambda:{region}:{account}:capacity-provider:{name}"


def timestamp() -> str:
    """Lambda's LastModified format, e.g. 2026-01-12T09:30:00.000+0000."""
    moment = datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


# --- validation -------------------------------------------------------------------------------


def check_network(account: str, region: str, vpc_config: dict[str, Any]) -> None:
    ec2 = ec2_backends[account][region]
    vpcs: dict[str, str] = {}  # vpc id -> the first resource seen in it
    for subnet_id in vpc_config["SubnetIds"]:
        try:
            subnet = ec2.get_subnet(subnet_id)
        except InvalidSubnetIdError:
            raise invalid_parameter(f"Subnet {subnet_id} does not exist.") from None
        vpcs.setdefault(subnet.vpc_id, subnet_id)
    for group_id in vpc_config.get("SecurityGroupIds", []):
        group = ec2.get_security_group_from_id(group_id)
        if group is None:
            raise invalid_parameter(f"Security group {group_id} does not exist.")
        vpcs.setdefault(group.vpc_id, group_id)
    if len(vpcs) > 1:
        listed = ", ".join(f"{resource} is in {vpc}" for vpc, resource in vpcs.items())
        raise invalid_parameter(
            f"All subnets and security groups must belong to the same VPC ({listed})."
        )


def _architectures_of(instance_type: str) -> list[str]:
    return INSTANCE_TYPES[instance_type]["ProcessorInfo"]["SupportedArchitectures"]


def _matching_types(pattern: str) -> list[str]:
    if "*" in pattern:
        return [name for name in INSTANCE_TYPES if fnmatch.fnmatchcase(name, pattern)]
    return [pattern] if pattern in INSTANCE_TYPES else []


def check_instance_requirements(requirements: dict[str, Any]) -> None:
    allowed = requirements.get("AllowedInstanceTypes") or []
    excluded = requirements.get("ExcludedInstanceTypes") or []
    if allowed and excluded:
        raise invalid_parameter(
            "AllowedInstanceTypes and ExcludedInstanceTypes cannot be specified together."
        )
    architecture = requirements["Architectures"][0]
    for pattern in allowed:
        matches = _matching_types(pattern)
        if not matches:
            raise invalid_parameter(f"Instance type {pattern} is not a valid instance type.")
        if not any(architecture in _architectures_of(name) for name in matches):
            raise invalid_parameter(
                f"Instance type {pattern} does not support the {architecture} architecture."
            )
    for pattern in excluded:
        if not _matching_types(pattern):
            raise invalid_parameter(f"Instance type {pattern} is not a valid instance type.")


def check_scaling(scaling: dict[str, Any]) -> None:
    policies = scaling.get("ScalingPolicies")
    if scaling["ScalingMode"] == "Manual" and not policies:
        raise invalid_parameter("ScalingPolicies are required when ScalingMode is Manual.")
    if scaling["ScalingMode"] == "Auto" and policies:
        raise invalid_parameter("ScalingPolicies can only be specified when ScalingMode is Manual.")


def with_defaults(members: dict[str, Any]) -> dict[str, Any]:
    members = copy.deepcopy(members)
    requirements = members.setdefault("InstanceRequirements", {})
    requirements.setdefault("Architectures", [DEFAULT_ARCHITECTURE])
    scaling = members.setdefault("CapacityProviderScalingConfig", {})
    scaling.setdefault("ScalingMode", DEFAULT_SCALING_MODE)
    return members


# --- operations -------------------------------------------------------------------------------


def create_capacity_provider(self: LambdaResponse) -> TYPE_RESPONSE:
    params = operation_input(self, "CreateCapacityProvider")
    account, region = account_region(self)
    name = params["CapacityProviderName"].rsplit(":", 1)[-1]
    members = with_defaults(
        {k: params[k] for k in _FIXED_MEMBERS + _UPDATABLE_MEMBERS if k in params}
    )
    with LOCK:
        registry = providers(account, region)
        if name in registry:
            raise conflict(f"Capacity provider {name} already exists.")
        if len(registry) >= limits.max_capacity_providers:
            raise modelled_error(
                "CapacityProviderLimitExceededException",
                f"The number of capacity providers exceeds the limit of "
                f"{limits.max_capacity_providers} for this account.",
            )
        iam_propagation.check_assumable(
            account,
            members["PermissionsConfig"]["CapacityProviderOperatorRoleArn"],
            "capacity provider",
        )
        check_network(account, region, members["VpcConfig"])
        check_instance_requirements(members["InstanceRequirements"])
        check_scaling(members["CapacityProviderScalingConfig"])
        provider = CapacityProvider(
            name=name,
            arn=make_arn(account, region, name),
            members=members,
            lifecycle=Settling.start("Pending", "Active"),
            tags=dict(params.get("Tags") or {}),
            last_modified=timestamp(),
        )
        registry[name] = provider
        return json_response(202, {"CapacityProvider": provider.to_wire()})


def get_capacity_provider(self: LambdaResponse) -> TYPE_RESPONSE:
    params = operation_input(self, "GetCapacityProvider")
    account, region = account_region(self)
    with LOCK:
        provider = find(account, region, params["CapacityProviderName"])
        return json_response(200, {"CapacityProvider": provider.to_wire()})


def list_capacity_providers(self: LambdaResponse) -> TYPE_RESPONSE:
    params = operation_input(self, "ListCapacityProviders")
    account, region = account_region(self)
    page_size = params.get("MaxItems", DEFAULT_PAGE_SIZE)
    with LOCK:
        listed = sorted(providers(account, region).values(), key=lambda p: p.name)
        if "State" in params:
            listed = [p for p in listed if p.state == params["State"]]
        page, next_marker = paginate(listed, params.get("Marker"), page_size, lambda p: p.name)
        return json_response(
            200,
            {"CapacityProviders": [p.to_wire() for p in page], "NextMarker": next_marker},
        )


def update_capacity_provider(self: LambdaResponse) -> TYPE_RESPONSE:
    params = operation_input(self, "UpdateCapacityProvider")
    account, region = account_region(self)
    with LOCK:
        provider = find(account, region, params["CapacityProviderName"])
        if provider.state == "Deleting":
            raise conflict(f"Capacity provider {provider.name} is being deleted.")
        members = copy.deepcopy(provider.members)
        for member in _UPDATABLE_MEMBERS:
            if member in params:
                members[member] = params[member]
        members = with_defaults(members)
        check_scaling(members["CapacityProviderScalingConfig"])
        provider.members = members
        provider.last_modified = timestamp()
        return json_response(202, {"CapacityProvider": provider.to_wire()})


def delete_capacity_provider(self: LambdaResponse) -> TYPE_RESPONSE:
    params = operation_input(self, "DeleteCapacityProvider")
    account, region = account_region(self)
    with LOCK:
        provider = find(account, region, params["CapacityProviderName"])
        attached = versions_on(account, region, provider.arn)
        if attached:
            names = ", ".join(v.function_arn for v in attached)
            raise conflict(
                f"Capacity provider {provider.name} is in use by function versions: {names}"
            )
        if provider.lifecycle.pending != "Deleting":
            provider.lifecycle.restart("Deleting", "Deleting")
        wire = provider.to_wire()
        providers(account, region)  # a zero delay removes it right away
        return json_response(202, {"CapacityProvider": wire})


def list_function_versions_by_capacity_provider(self: LambdaResponse) -> TYPE_RESPONSE:
    params = operation_input(self, "ListFunctionVersionsByCapacityProvider")
    account, region = account_region(self)
    page_size = params.get("MaxItems", DEFAULT_PAGE_SIZE)
    with LOCK:
        provider = find(account, region, params["CapacityProviderName"])
        attached = sorted(versions_on(account, region, provider.arn), key=lambda v: v.function_arn)
        page, next_marker = paginate(
            attached, params.get("Marker"), page_size, lambda v: v.function_arn
        )
        return json_response(
            200,
            {
                "CapacityProviderArn": provider.arn,
                "FunctionVersions": [
                    {"FunctionArn": v.function_arn, "State": v.state} for v in page
                ],
                "NextMarker": next_marker,
            },
        )


def paginate(
    items: list[Any], marker: str | None, page_size: int, key: Callable[[Any], str]
) -> tuple[list[Any], str | None]:
    """One page of ``items`` (sorted by ``key``) after ``marker``; the marker is opaque to
    clients (base64 of the last key returned)."""
    start = 0
    if marker is not None:
        try:
            decoded = base64.b64decode(marker.encode(), altchars=b"-_", validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            decoded = ""
        if not decoded.startswith(_MARKER_PREFIX):
            raise invalid_parameter(f"Invalid marker: {marker}")
        after = decoded[len(_MARKER_PREFIX) :]
        start = next((i for i, item in enumerate(items) if key(item) > after), len(items))
    page = items[start : start + page_size]
    more = start + page_size < len(items)
    next_marker = None
    if more:
        next_marker = base64.urlsafe_b64encode((_MARKER_PREFIX + key(page[-1])).encode()).decode()
    return page, next_marker


_MARKER_PREFIX = "lmi-marker:"


def rate_limited(
    kind: str, handler: Callable[[LambdaResponse], TYPE_RESPONSE]
) -> Callable[[LambdaResponse], TYPE_RESPONSE]:
    """``handler``, refused with ``TooManyRequestsException`` beyond the account's rate for
    capacity-provider ``kind`` (read or write) operations."""

    def limited(self: LambdaResponse) -> TYPE_RESPONSE:
        account, region = account_region(self)
        wait = limits.take(account, region, kind)
        if wait is not None:
            raise modelled_error(
                "TooManyRequestsException",
                f"Rate exceeded: capacity provider {kind} APIs allow "
                f"{limits.rate(kind):g} requests per second combined.",
                members={"Reason": "CallerRateLimitExceeded"},
                headers={"Retry-After": str(max(1, round(wait + 0.5)))},
            )
        return handler(self)

    return limited


OPERATIONS = {
    "CreateCapacityProvider": rate_limited(limits.WRITE, create_capacity_provider),
    "GetCapacityProvider": rate_limited(limits.READ, get_capacity_provider),
    "ListCapacityProviders": rate_limited(limits.READ, list_capacity_providers),
    "UpdateCapacityProvider": rate_limited(limits.WRITE, update_capacity_provider),
    "DeleteCapacityProvider": rate_limited(limits.WRITE, delete_capacity_provider),
    "ListFunctionVersionsByCapacityProvider": rate_limited(
        limits.READ, list_function_versions_by_capacity_provider
    ),
}
