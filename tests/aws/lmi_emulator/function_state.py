"""What a function keeps when it runs on a capacity provider, patched into moto's LambdaFunction.

moto's classic Lambda drops members it does not know. A function created (or updated) with
``CapacityProviderConfig`` keeps it and returns it from every call that returns a
FunctionConfiguration (CreateFunction, GetFunction, GetFunctionConfiguration, ListFunctions,
ListVersionsByFunction, PublishVersion, UpdateFunction*).

Revisions: ``$LATEST`` gets a new ``RevisionId`` on creation and on every change of its code or
configuration, and each published version its own (moto reports none), so that PublishVersion
can check its ``RevisionId`` precondition (``function_config``).

States, as Lambda reports them for functions on a capacity provider: the unpublished ``$LATEST``
goes ``Pending`` → ``ActiveNonInvocable`` (it can never be invoked); a published version goes
``Pending`` → ``Active`` (capacity is started for it). Functions without a capacity provider keep
moto's behaviour.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from moto.awslambda.models import LambdaFunction

from .lifecycle import Settling

# ExecutionEnvironmentMemoryGiBPerVCpu when the request leaves it out (Lambda's documented 2:1).
DEFAULT_MEMORY_GIB_PER_VCPU = 2.0

_original_init = LambdaFunction.__init__
_original_get_configuration = LambdaFunction.get_configuration
_original_update_configuration = LambdaFunction.update_configuration
_original_update_function_code = LambdaFunction.update_function_code


def capacity_provider_config(fn: LambdaFunction) -> dict[str, Any] | None:
    return getattr(fn, "lmi_capacity_provider_config", None)


def capacity_provider_arn(fn: LambdaFunction) -> str | None:
    config = capacity_provider_config(fn)
    if config is None:
        return None
    return config["LambdaManagedInstancesCapacityProviderConfig"]["CapacityProviderArn"]


def revision_id(fn: LambdaFunction) -> str:
    return getattr(fn, "lmi_revision_id", "")


def new_revision(fn: LambdaFunction) -> None:
    """A new RevisionId: the function (or a version copied from it) changed."""
    fn.lmi_revision_id = str(uuid.uuid4())


def lmi_state(fn: LambdaFunction) -> Settling | None:
    return getattr(fn, "lmi_state", None)


def state_of(fn: LambdaFunction) -> str:
    settling = lmi_state(fn)
    return settling.current() if settling is not None else fn.state


def start_settling(fn: LambdaFunction) -> None:
    """(Re)start the Pending → settled transition, for a new $LATEST or a new published version."""
    if capacity_provider_config(fn) is None:
        fn.lmi_state = None
        return
    settled = "ActiveNonInvocable" if str(fn.version) == "$LATEST" else "Active"
    fn.lmi_state = Settling.start("Pending", settled)
    fn.lmi_forced_reason = None


def set_capacity_provider_config(fn: LambdaFunction, config: dict[str, Any] | None) -> None:
    if config is not None:
        config = copy.deepcopy(config)
        inner = config["LambdaManagedInstancesCapacityProviderConfig"]
        inner.setdefault("ExecutionEnvironmentMemoryGiBPerVCpu", DEFAULT_MEMORY_GIB_PER_VCPU)
        inner["ExecutionEnvironmentMemoryGiBPerVCpu"] = float(
            inner["ExecutionEnvironmentMemoryGiBPerVCpu"]
        )
    fn.lmi_capacity_provider_config = config


def _init(
    self: LambdaFunction, account_id: str, spec: dict[str, Any], *args: Any, **kwargs: Any
) -> None:
    _original_init(self, account_id, spec, *args, **kwargs)
    set_capacity_provider_config(self, spec.get("CapacityProviderConfig"))
    start_settling(self)
    new_revision(self)


def _get_configuration(self: LambdaFunction, on_create: bool = False) -> dict[str, Any]:
    config = _original_get_configuration(self, on_create=on_create)
    config["RevisionId"] = revision_id(self)
    provider_config = capacity_provider_config(self)
    if provider_config is not None:
        config["CapacityProviderConfig"] = copy.deepcopy(provider_config)
        config["State"] = state_of(self)
        if config["State"] == "Pending":
            config["StateReason"] = "The function is being created."
            config["StateReasonCode"] = "Creating"
        code, reason = getattr(self, "lmi_forced_reason", None) or (None, None)
        if code is not None:
            config["StateReasonCode"] = code
        if reason is not None:
            config["StateReason"] = reason
    return config


def _update_configuration(self: LambdaFunction, config_updates: dict[str, Any]) -> dict[str, Any]:
    if "CapacityProviderConfig" in config_updates:
        set_capacity_provider_config(self, config_updates["CapacityProviderConfig"])
    _original_update_configuration(self, config_updates)
    new_revision(self)
    return self.get_configuration()


def _update_function_code(self: LambdaFunction, updated_spec: dict[str, Any]) -> dict[str, Any]:
    _original_update_function_code(self, updated_spec)
    new_revision(self)
    return self.get_configuration()


def install() -> None:
    LambdaFunction.__init__ = _init  # type: ignore[method-assign]
    LambdaFunction.get_configuration = _get_configuration  # type: ignore[method-assign]
    LambdaFunction.update_configuration = _update_configuration  # type: ignore[method-assign]
    LambdaFunction.update_function_code = _update_function_code  # type: ignore[method-assign]
