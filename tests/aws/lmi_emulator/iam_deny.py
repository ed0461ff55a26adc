"""IAM refusals: actions a test denies answer as AWS answers a caller whose policies do not allow
them. moto's own IAM enforcement (``INITIAL_NO_AUTH_ACTION_COUNT``) needs moto IAM users for
every caller and evaluates few condition keys, so the emulator instead takes a list of denied
``service:Operation`` actions (``POST /moto-api/lmi/config {"DeniedActions": [...]}``).

The answers follow AWS:
- Lambda: HTTP 403, ``x-amzn-ErrorType: AccessDeniedException``, a JSON body whose ``Message``
  reads "User: ARN is not authorized to perform: ACTION on resource: ARN because no
  identity-based policy allows the ACTION action" (IAM User Guide, "Troubleshoot access denied
  error messages"; AccessDeniedException is not in Lambda's model, so the SDKs surface it as an
  unmodelled error with that code).
- EC2: HTTP 403, ``UnauthorizedOperation`` in EC2's XML error envelope, "You are not authorized
  to perform this operation. User: ... Encoded authorization failure message: ..." (EC2 API
  Reference, "Error codes for the Amazon EC2 API": UnauthorizedOperation).
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.responses import BaseResponse

denied: set[str] = set()


def set_denied(actions: list[str]) -> None:
    for action in actions:
        if not isinstance(action, str) or action.count(":") != 1:
            raise ValueError(f"an action is service:Operation, not {action!r}")
    denied.clear()
    denied.update(actions)


def _caller(response: BaseResponse) -> str:
    account = getattr(response, "current_account", None) or DEFAULT_ACCOUNT_ID
    return f"arn:aws:sts::{account}:assumed-role/lmi-operator/lmi-operator"


def _refusal(response: BaseResponse, service: str, action: str) -> Any:
    name = f"{service}:{action}"
    user = _caller(response)
    request_id = str(uuid.uuid4())
    if service == "ec2":
        encoded = base64.b64encode(
            json.dumps({"allowed": False, "explicitDeny": False, "action": name}).encode()
        ).decode()
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>"
            f"You are not authorized to perform this operation. User: {user} is not "
            f"authorized to perform: {name} because no identity-based policy allows the "
            f"{name} action. Encoded authorization failure message: {encoded}"
            f"</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
        return 403, {"Content-Type": "text/xml;charset=UTF-8"}, body
    message = (
        f"User: {user} is not authorized to perform: {name} because no identity-based "
        f"policy allows the {name} action"
    )
    return (
        403,
        {
            "Content-Type": "application/json",
            "x-amzn-ErrorType": "AccessDeniedException",
            "x-amzn-RequestId": request_id,
        },
        json.dumps({"Message": message, "Type": "User"}),
    )


def install() -> None:
    call_action = BaseResponse.call_action

    def checked_call_action(self: BaseResponse) -> Any:
        if denied:
            service = self.boto3_service_name
            try:
                action = self._get_action()
            except Exception:  # not an operation of the model: moto answers it
                action = ""
            if action and f"{service}:{action}" in denied:
                return _refusal(self, service, action)
        return call_action(self)

    BaseResponse.call_action = checked_call_action
