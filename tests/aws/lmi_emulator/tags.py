"""Tags on capacity providers: Lambda's TagResource, UntagResource and ListTags accept their ARNs.

moto's Lambda resolves a tagged resource from its ARN in one place; capacity-provider ARNs are
resolved to our providers there, so the three operations work unchanged (the operator tags what
it creates, for ownership).
"""

from __future__ import annotations

from typing import Any

from moto.awslambda.models import LambdaBackend

from . import capacity_providers
from .lifecycle import LOCK
from .wire import not_found

_original_get_resource_by_arn = LambdaBackend._get_resource_by_arn


def _get_resource_by_arn(self: LambdaBackend, arn: str) -> Any:
    if ":capacity-provider:" not in arn:
        return _original_get_resource_by_arn(self, arn)
    with LOCK:
        provider = capacity_providers.find_by_arn(self.account_id, self.region_name, arn)
    if provider is None:
        raise not_found(f"Capacity provider not found: {arn}")
    return provider


def install() -> None:
    LambdaBackend._get_resource_by_arn = _get_resource_by_arn  # type: ignore[method-assign]
