"""EC2's client-token idempotency for ``CreateVpcEndpoint``, which moto 5.2.5 records and
ignores (every call makes a new endpoint).

AWS, "Ensuring idempotency in Amazon EC2 API requests" (EC2 Developer Guide): a retry with the
same client token and the same parameters completes "without performing any further actions"
and returns the original result; the same token with different parameters fails with
``IdempotentParameterMismatch``. The operator sends one token per endpoint it creates, so a
retry after a lost answer must not leave a second endpoint behind.
"""

from __future__ import annotations

import inspect
from typing import Any

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.vpcs import VPCBackend


class IdempotentParameterMismatch(EC2ClientError):
    def __init__(self) -> None:
        super().__init__(
            "IdempotentParameterMismatch",
            "The client token was used before with different parameters.",
        )


def _request(arguments: dict[str, Any]) -> tuple:
    """The parameters that make an endpoint request the same request."""
    return (
        arguments.get("vpc_id"),
        arguments.get("service_name"),
        (arguments.get("endpoint_type") or "").lower(),
        tuple(sorted(arguments.get("subnet_ids") or [])),
        tuple(sorted(arguments.get("security_group_ids") or [])),
        tuple(sorted(arguments.get("route_table_ids") or [])),
        arguments.get("private_dns_enabled"),
    )


def install() -> None:
    create = VPCBackend.create_vpc_endpoint
    signature = inspect.signature(create)

    def create_idempotent(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        token = bound.arguments.get("client_token")
        request = _request(bound.arguments)
        if token:
            for endpoint in self.vpc_end_points.values():
                if getattr(endpoint, "client_token", None) != token:
                    continue
                if getattr(endpoint, "lmi_request", None) == request:
                    return endpoint
                raise IdempotentParameterMismatch()
        endpoint = create(self, *args, **kwargs)
        endpoint.lmi_request = request
        return endpoint

    VPCBackend.create_vpc_endpoint = create_idempotent
