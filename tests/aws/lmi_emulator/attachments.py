"""Which function versions run on a capacity provider (they block its deletion)."""

from __future__ import annotations

from dataclasses import dataclass

from moto.awslambda.models import LambdaBackend, LambdaFunction
from moto.awslambda.utils import get_backend

from .function_state import capacity_provider_arn, state_of


@dataclass(frozen=True)
class AttachedVersion:
    function_arn: str  # qualified: ...:function:name:$LATEST, :1, :$LATEST.PUBLISHED
    state: str


def lambda_backend(account: str, region: str) -> LambdaBackend:
    """moto's Lambda backend for the account and region (the Docker-free one, see server)."""
    return get_backend(account, region)


def all_versions(account: str, region: str) -> list[LambdaFunction]:
    """Every $LATEST and published version in the account and region."""
    found: list[LambdaFunction] = []
    for group in lambda_backend(account, region)._lambdas._functions.values():
        if group["latest"] is not None:
            found.append(group["latest"])
        found.extend(group["versions"])
    return found


def qualified_arn(fn: LambdaFunction) -> str:
    if str(fn.version) == "$LATEST":
        return f"{fn.function_arn}:$LATEST"
    return fn.function_arn


def versions_on(account: str, region: str, provider_arn: str) -> list[AttachedVersion]:
    return [
        AttachedVersion(qualified_arn(fn), state_of(fn))
        for fn in all_versions(account, region)
        if capacity_provider_arn(fn) == provider_arn
    ]
