"""Test controls, served unsigned under ``/moto-api/lmi/`` (moto's own control namespace).

``POST /moto-api/lmi/config`` with any of
    {"StateDelaySeconds": 2.5, "MaxCapacityProviders": 3, "MaxVersionsPerCapacityProvider": 10,
     "CapacityProviderReadsPerSecond": 15, "CapacityProviderWritesPerSecond": 1,
     "RolePropagationSeconds": 10, "DeniedActions": ["lambda:CreateCapacityProvider"]}
changes the settings and answers all of them (a rate of 0: no limit; denied actions answer as
IAM refuses a caller, see ``iam_deny``).

``POST /moto-api/lmi/state`` forces a state that AWS would reach by itself, e.g. a provider or a
version that failed:
    {"CapacityProviderName": "cp", "State": "Failed"}
    {"FunctionName": "fn", "Qualifier": "3", "State": "Failed",
     "StateReasonCode": "InsufficientCapacity", "StateReason": "..."}
(a version's ``StateReasonCode`` and ``StateReason`` are reported while the forced state holds;
any string is taken, so a test can send a code a future model adds). ``"State": null`` returns the resource to its natural lifecycle. ``Account`` (default
123456789012) and ``Region`` (default us-east-1) pick the resource's home.

Execution environments of invoked versions (see ``environments``):
``GET /moto-api/lmi/environments`` lists them (``FunctionArn``, ``Version``, ``Pid``,
``Running``, ``Initialized``); ``GET /moto-api/lmi/environments/{FunctionName}/{Version}/log``
answers one environment's log (RIE's output and the runtime's) as text.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote, urlparse

from moto.core import DEFAULT_ACCOUNT_ID

from . import capacity_providers, environments, iam_deny, iam_propagation, lifecycle, limits
from .attachments import lambda_backend
from .function_state import lmi_state
from .lifecycle import LOCK

CAPACITY_PROVIDER_STATES = {"Pending", "Active", "Failed", "Deleting"}
FUNCTION_STATES = {"Pending", "Active", "ActiveNonInvocable", "Failed", "Inactive"}


def _reply(status: int, body: dict[str, Any]) -> tuple[int, dict[str, str], str]:
    return status, {"Content-Type": "application/json"}, json.dumps(body)


def _body(request: Any) -> dict[str, Any]:
    data = request.get_data() if hasattr(request, "get_data") else request.data
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _optional_float(body: dict[str, Any], member: str) -> float | None:
    return float(body[member]) if member in body else None


def config(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    try:
        body = _body(request)
        with LOCK:
            if "StateDelaySeconds" in body:
                lifecycle.set_delay(float(body["StateDelaySeconds"]))
            if "MaxCapacityProviders" in body:
                limits.max_capacity_providers = int(body["MaxCapacityProviders"])
            if "MaxVersionsPerCapacityProvider" in body:
                limits.max_versions_per_capacity_provider = int(
                    body["MaxVersionsPerCapacityProvider"]
                )
            if "DeniedActions" in body:
                iam_deny.set_denied(list(body["DeniedActions"]))
            if "RolePropagationSeconds" in body:
                iam_propagation.propagation_seconds = float(body["RolePropagationSeconds"])
            limits.set_rates(
                reads=_optional_float(body, "CapacityProviderReadsPerSecond"),
                writes=_optional_float(body, "CapacityProviderWritesPerSecond"),
            )
    except (ValueError, TypeError) as error:
        return _reply(400, {"message": str(error)})
    return _reply(
        200,
        {
            "StateDelaySeconds": lifecycle.delay(),
            "MaxCapacityProviders": limits.max_capacity_providers,
            "MaxVersionsPerCapacityProvider": limits.max_versions_per_capacity_provider,
            "CapacityProviderReadsPerSecond": limits.capacity_provider_reads_per_second,
            "CapacityProviderWritesPerSecond": limits.capacity_provider_writes_per_second,
            "RolePropagationSeconds": iam_propagation.propagation_seconds,
            "DeniedActions": sorted(iam_deny.denied),
        },
    )


def state(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    try:
        body = _body(request)
    except ValueError as error:
        return _reply(400, {"message": str(error)})
    account = body.get("Account", DEFAULT_ACCOUNT_ID)
    region = body.get("Region", "us-east-1")
    forced = body.get("State")
    with LOCK:
        if "CapacityProviderName" in body:
            if forced is not None and forced not in CAPACITY_PROVIDER_STATES:
                return _reply(400, {"message": f"unknown capacity provider state {forced}"})
            provider = capacity_providers.providers(account, region).get(
                body["CapacityProviderName"]
            )
            if provider is None:
                return _reply(404, {"message": "no such capacity provider"})
            provider.lifecycle.forced = forced
            return _reply(200, {"State": provider.state})
        if "FunctionName" in body:
            if forced is not None and forced not in FUNCTION_STATES:
                return _reply(400, {"message": f"unknown function state {forced}"})
            storage = lambda_backend(account, region)._lambdas
            try:
                fn = storage.get_function_by_name_or_arn_with_qualifier(
                    body["FunctionName"], body.get("Qualifier", "$LATEST")
                )
            except Exception:  # moto's not-found errors are several classes
                return _reply(404, {"message": "no such function version"})
            settling = lmi_state(fn)
            if settling is None:
                return _reply(400, {"message": "the function does not run on a capacity provider"})
            settling.forced = forced
            fn.lmi_forced_reason = (
                (body.get("StateReasonCode"), body.get("StateReason")) if forced else None
            )
            return _reply(200, {"State": settling.current()})
    return _reply(400, {"message": "name a CapacityProviderName or a FunctionName"})


def environment_list(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    described = [e.describe() for e in environments.all_environments()]
    return _reply(200, {"Environments": described})


_LOG_PATH = re.compile(r"/moto-api/lmi/environments/([^/]+)/([^/]+)/log$")


def environment_log(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], Any]:
    match = _LOG_PATH.search(urlparse(full_url).path)
    found = match and environments.find(unquote(match.group(1)), unquote(match.group(2)))
    if not found:
        return _reply(404, {"message": "no execution environment for that function version"})
    return 200, {"Content-Type": "text/plain; charset=utf-8"}, found.log_bytes()


URL_PATHS = {
    "{0}/moto-api/lmi/config$": config,
    "{0}/moto-api/lmi/state$": state,
    "{0}/moto-api/lmi/environments$": environment_list,
    "{0}/moto-api/lmi/environments/(?P<function>[^/]+)/(?P<version>[^/]+)/log$": environment_log,
}
