"""IAM's eventual consistency: a role created moments ago is not assumable by Lambda yet.

AWS IAM propagates changes "eventually" ("Changes that I make are not always immediately
visible", IAM troubleshooting guide); Lambda then refuses the role with
``InvalidParameterValueException`` "The role defined for the function cannot be assumed by
Lambda." (the message Terraform, Pulumi, CDK and aws-syndicate retry on after creating a role).
Here a role younger than ``LMI_EMULATOR_ROLE_PROPAGATION_SECONDS`` (or the control endpoint's
``RolePropagationSeconds``; default 0: at once) is refused so, by CreateFunction and, for the
operator role, CreateCapacityProvider. A role that does not exist in moto's IAM is left to the
callers' own checks.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from moto.iam.models import iam_backends

from .wire import invalid_parameter

propagation_seconds = float(os.environ.get("LMI_EMULATOR_ROLE_PROPAGATION_SECONDS", "0"))


def check_assumable(account: str, role_arn: str, what: str) -> None:
    """Refuses ``role_arn`` while IAM would still be propagating it."""
    if propagation_seconds <= 0:
        return
    try:
        role = iam_backends[account]["global"].get_role_by_arn(role_arn)
    except Exception:  # moto's not-found errors are several classes
        return
    created = role.create_date
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    age = (datetime.now(timezone.utc) - created).total_seconds()
    if age < propagation_seconds:
        raise invalid_parameter(f"The role defined for the {what} cannot be assumed by Lambda.")
