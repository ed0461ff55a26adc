"""Put/GetFunctionScalingConfig (``/2025-11-30/functions/{name}/function-scaling-config``).

The config belongs to a published version (``Qualifier``: a version number or
``$LATEST.PUBLISHED``) of a function on a capacity provider. Lambda reports what was asked for
(``RequestedFunctionScalingConfig``) and what is in force (``AppliedFunctionScalingConfig``); here
a put is applied once the state delay has passed (at once with the default delay of 0).
A version that was never given a config reports neither.

As AWS reports it: ``RequestedFunctionScalingConfig`` only while a change settles; once in effect
the values move to ``AppliedFunctionScalingConfig`` and the requested member is cleared
(Terraform AWS provider, ``function_scaling_config_test.go``: "AWS reports the values under
RequestedFunctionScalingConfig while a change settles and moves them to
AppliedFunctionScalingConfig once in effect, clearing the other"; its resource waits for the
requested member to be nil). A put on a version that is not ``Active`` yet (still ``Pending``) is
``ResourceConflictException``, the model's error for an operation on a resource that is
stabilising (Lambda developer guide, "Lambda function states": operations on a function while
it is ``Pending`` fail).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moto.awslambda.models import LambdaFunction
from moto.awslambda.responses import LambdaResponse
from moto.core.responses import TYPE_RESPONSE

from .attachments import lambda_backend
from .function_state import capacity_provider_config, state_of
from .incoming import account_region, operation_input
from .lifecycle import LOCK, Settling
from .wire import conflict, invalid_parameter, json_response


@dataclass
class ScalingConfig:
    requested: dict[str, int]
    previously_applied: dict[str, int] | None
    settling: Settling

    def applied(self) -> dict[str, int] | None:
        return self.requested if self.settling.has_settled() else self.previously_applied


def _scaling(fn: LambdaFunction) -> ScalingConfig | None:
    return getattr(fn, "lmi_scaling_config", None)


def _version(request: LambdaResponse, params: dict[str, Any]) -> LambdaFunction:
    account, region = account_region(request)
    storage = lambda_backend(account, region)._lambdas
    fn = storage.get_function_by_name_or_arn_with_qualifier(
        params["FunctionName"], params["Qualifier"]
    )
    if capacity_provider_config(fn) is None:
        raise invalid_parameter(
            f"Function {fn.function_name} does not run on a capacity provider; "
            "function scaling configuration applies to Lambda Managed Instances functions only."
        )
    return fn


def put_function_scaling_config(self: LambdaResponse) -> TYPE_RESPONSE:
    params = operation_input(self, "PutFunctionScalingConfig")
    requested = dict(params.get("FunctionScalingConfig") or {})
    low = requested.get("MinExecutionEnvironments")
    high = requested.get("MaxExecutionEnvironments")
    if low is not None and high is not None and low > high:
        raise invalid_parameter(
            f"MinExecutionEnvironments ({low}) cannot be greater than "
            f"MaxExecutionEnvironments ({high})."
        )
    with LOCK:
        fn = _version(self, params)
        state = state_of(fn)
        if state == "Pending":
            raise conflict(
                "The operation cannot be performed at this time. The function is currently in "
                f"the following state: {state}"
            )
        current = _scaling(fn)
        fn.lmi_scaling_config = ScalingConfig(
            requested=requested,
            previously_applied=current.applied() if current else None,
            settling=Settling.start("Requested", "Applied"),
        )
        return json_response(202, {"FunctionState": state_of(fn)})


def get_function_scaling_config(self: LambdaResponse) -> TYPE_RESPONSE:
    params = operation_input(self, "GetFunctionScalingConfig")
    with LOCK:
        fn = _version(self, params)
        scaling = _scaling(fn)
        settling = scaling is not None and not scaling.settling.has_settled()
        return json_response(
            200,
            {
                "FunctionArn": fn.function_arn,
                "RequestedFunctionScalingConfig": scaling.requested if settling else None,
                "AppliedFunctionScalingConfig": scaling.applied() if scaling else None,
            },
        )


OPERATIONS = {
    "PutFunctionScalingConfig": put_function_scaling_config,
    "GetFunctionScalingConfig": get_function_scaling_config,
}
