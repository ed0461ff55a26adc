"""The Lambda REST-JSON wire format: errors the SDKs parse into typed variants, JSON responses.

Lambda answers an error with its HTTP status, an ``x-amzn-errortype`` header naming the error
shape, and a JSON body ``{"Type": "User", "message": "..."}``. The member that carries the text
follows the model: most errors use ``message``, a few (ResourceNotFoundException,
ServiceException, ResourceInUseException) use ``Message``. Constraint violations the model's
shapes catch are ``ValidationException`` (not a modelled Lambda error: the SDKs surface it as an
unhandled error with that code), exactly as Lambda's front end answers them.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.exceptions import HTTPException

from .shapes import MODEL

# Errors whose message member is spelt "Message" in the model (the rest use "message").
_CAPITALISED_MESSAGE = {
    name
    for name in MODEL.shape_names
    if MODEL.shape_for(name).metadata.get("exception")
    and "Message" in MODEL.shape_for(name).members
}


class AwsError(HTTPException):
    """An error answered in Lambda's wire format. moto's dispatcher serialises any
    ``HTTPException`` raised by a handler from ``code``, ``get_headers()`` and ``description``."""

    def __init__(
        self,
        error_type: str,
        message: str,
        status: int,
        fault: str = "User",
        members: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__()
        self.code = status
        self.error_type = error_type
        self.message = message
        member = "Message" if error_type in _CAPITALISED_MESSAGE else "message"
        body: dict[str, Any] = {member: message, **(members or {})}
        if error_type != "ValidationException":
            body = {"Type": fault, **body}
        self.description = json.dumps(body)
        self.extra_headers = dict(headers or {})

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [
            ("x-amzn-errortype", self.error_type),
            ("Content-Type", "application/json"),
            *self.extra_headers.items(),
        ]

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"


def modelled_error(
    error_type: str,
    message: str,
    members: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> AwsError:
    """An error whose status comes from the model's error shape (e.g. 409 for conflicts), with
    any further body ``members`` and ``headers`` the shape has."""
    shape = MODEL.shape_for(error_type)
    status = shape.metadata["error"]["httpStatusCode"]
    fault = "Service" if status >= 500 else "User"
    return AwsError(error_type, message, status, fault, members, headers)


def invalid_parameter(message: str) -> AwsError:
    return modelled_error("InvalidParameterValueException", message)


def conflict(message: str) -> AwsError:
    return modelled_error("ResourceConflictException", message)


def not_found(message: str) -> AwsError:
    return modelled_error("ResourceNotFoundException", message)


def validation_error(message: str) -> AwsError:
    return AwsError("ValidationException", message, 400)


def serialization_error(message: str) -> AwsError:
    return AwsError("SerializationException", message, 400)


def json_response(status: int, body: dict[str, Any] | None) -> tuple[int, dict[str, str], str]:
    """A success response; ``None`` members are dropped, as AWS omits unset members."""
    headers = {"Content-Type": "application/json", "status": str(status)}
    return status, headers, json.dumps(_drop_none(body or {}))


def empty_response(status: int) -> tuple[int, dict[str, str], str]:
    return status, {"status": str(status)}, ""


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value
