"""Invoke on functions that run on a capacity provider: the version's code runs in its execution
environment (``environments``: AWS's Runtime Interface Emulator in Managed Instances mode).
Functions without a capacity provider keep moto's Invoke.

Which version runs, as Lambda documents it:
- an unqualified name or ARN runs ``$LATEST.PUBLISHED`` ("When you invoke a Lambda Managed
  Instances function using an unqualified ARN, Lambda implicitly invokes the $LATEST.PUBLISHED
  version", developer guide, "$LATEST.PUBLISHED version in Lambda Managed Instances"); without one
  it is ``NoPublishedVersionException`` (the model: "The function has no published versions");
- only an ``Active`` version runs (developer guide, "Lambda function states": "Functions can only
  be successfully invoked while active"); any other state, including the unpublished
  ``$LATEST``'s ``ActiveNonInvocable``, answers ``ResourceConflictException`` in Lambda's words
  for a function that is not ready.

The answer, as the Invoke API gives it: the function's payload with 200 (``RequestResponse``),
202 at once for ``Event`` (run in the background, result dropped), 204 for ``DryRun`` (nothing
runs). A function error is 200 with ``X-Amz-Function-Error: Unhandled`` and the runtime's
``{"errorType", "errorMessage"}``; RIE marks it with an ``Error-Type`` header on its own answer.
``LogType: Tail`` returns the last 4 KB of what the environment logged during the call.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from typing import Any
from urllib.parse import unquote

from moto.awslambda.models import LambdaFunction, LambdaStorage
from moto.awslambda.responses import LambdaResponse
from moto.core.responses import TYPE_RESPONSE

from . import environments
from .function_config import latest_published
from .function_state import capacity_provider_config, state_of
from .lifecycle import LOCK
from .wire import AwsError, conflict, empty_response, modelled_error

# The model's Invoke documentation: 6 MB synchronous, 1 MB asynchronous payloads.
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 1024 * 1024
TAIL_BYTES = 4096
INIT_EXIT_WAIT_SECONDS = 3.0
# RIE's own report of a failed init, e.g. `msg="INIT failed" err=Runtime.ExitError`.
_INIT_FAILED = re.compile(r'msg="INIT failed" err="?([\w.]+)')

_original_invoke = LambdaResponse.invoke
_original_del_function = LambdaStorage.del_function


def _is_qualified(name: str, qualifier: str | None) -> bool:
    return qualifier is not None or ":" in name.split(":function:")[-1]


def resolve(storage: LambdaStorage, name: str, qualifier: str | None) -> LambdaFunction:
    """The version an Invoke runs; refuses what Lambda refuses."""
    fn = storage.get_function_by_name_or_arn_with_qualifier(name, qualifier)
    if capacity_provider_config(fn) is None:
        return fn
    if not _is_qualified(name, qualifier):
        published = latest_published(storage._functions[fn.function_name]["versions"])
        if published is None:
            raise modelled_error(
                "NoPublishedVersionException",
                f"Function {fn.function_name} has no $LATEST.PUBLISHED version to invoke "
                "unqualified; publish one or name a version.",
            )
        fn = published
    state = state_of(fn)
    if state != "Active":
        raise conflict(
            "The operation cannot be performed at this time. "
            f"The function is currently in the following state: {state}"
        )
    return fn


def invoke(self: LambdaResponse) -> TYPE_RESPONSE:
    name = unquote(self.path.rsplit("/", 2)[-2])
    qualifier = self.querystring.get("Qualifier", [None])[0]
    with LOCK:
        fn = resolve(self.backend._lambdas, name, qualifier)
    if capacity_provider_config(fn) is None:
        return _original_invoke(self)

    invocation_type = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
    if invocation_type == "DryRun":
        return empty_response(204)
    payload = self.raw_body or b""
    limit = MAX_ASYNC_PAYLOAD if invocation_type == "Event" else MAX_SYNC_PAYLOAD
    if len(payload) > limit:
        raise modelled_error(
            "RequestTooLargeException",
            f"Request must be smaller than {limit} bytes for the {invocation_type} invocation "
            "type",
        )
    try:
        json.loads(payload or b"{}")
    except ValueError as error:
        raise modelled_error(
            "InvalidRequestContentException",
            f"Could not parse request body into json: {error}",
        ) from None

    if invocation_type == "Event":
        threading.Thread(target=_run_in_background, args=(fn, payload), daemon=True).start()
        return empty_response(202)
    status, headers, body, log = run(fn, payload)
    headers["status"] = str(status)  # moto's dispatcher takes the status from here
    headers["X-Amz-Executed-Version"] = str(fn.version)
    if self.headers.get("X-Amz-Log-Type") == "Tail":
        headers["X-Amz-Log-Result"] = base64.b64encode(log[-TAIL_BYTES:]).decode()
    return status, headers, body


def run(fn: LambdaFunction, payload: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    """Run one invocation in the version's environment: (status, headers, body, its log)."""
    try:
        environments.check_host(environments.architecture_of(fn))
    except environments.Unavailable as error:
        raise modelled_error("ServiceException", str(error)) from None
    environment = environments.for_version(fn)
    start = environment.log_size()
    try:
        environment.ensure_started()
    except environments.BadCode as error:
        raise modelled_error("InvalidZipFileException", str(error)) from None
    except environments.StartFailed as error:
        return _init_failed(_init_error_type(error.log), error.log, b"")
    try:
        status, rie_headers, body = environment.invoke(payload or b"{}")
    except OSError as error:
        return _environment_lost(environment, error, start)
    log = environment.log_bytes(start)
    error_type = rie_headers.get("Error-Type")
    if status == 400 and error_type == "Runtime.Unavailable":
        raise _throttled()
    if status != 200:
        raise modelled_error(
            "ServiceException",
            f"The runtime interface emulator answered {status}: {body[:500]!r}",
        )
    if error_type is None:
        return 200, {"Content-Type": "application/json"}, body, log
    if not environment.initialized() and environment.wait_exit(INIT_EXIT_WAIT_SECONDS):
        tail = environment.log_tail_lines()
        environments.discard(environment)
        return _init_failed(error_type, tail, log)
    return _function_error(_error_body(error_type, body, environment), log)


def _run_in_background(fn: LambdaFunction, payload: bytes) -> None:
    try:
        run(fn, payload)
    except AwsError:
        pass  # an asynchronous invocation's failure reaches no caller


def _error_body(
    error_type: str, body: bytes, environment: environments.Environment
) -> dict[str, Any]:
    """The runtime's error document, or one made from RIE's error type. RIE's own documents
    (e.g. ``Runtime.ExitError``) carry no message: the end of the log says what happened."""
    try:
        document = json.loads(body)
    except ValueError:
        document = {"errorType": error_type, "errorMessage": body.decode("utf-8", "replace")}
    if not isinstance(document, dict) or "errorType" not in document:
        document = {"errorType": error_type, "errorMessage": json.dumps(document)}
    document.setdefault("errorMessage", environment.log_tail_lines())
    return document


def _function_error(
    document: dict[str, Any], log: bytes
) -> tuple[int, dict[str, str], bytes, bytes]:
    headers = {"Content-Type": "application/json", "X-Amz-Function-Error": "Unhandled"}
    return 200, headers, json.dumps(document).encode(), log


def _init_error_type(log_tail: str) -> str:
    found = _INIT_FAILED.search(log_tail)
    return found.group(1) if found else "Runtime.Unknown"


def _init_failed(
    error_type: str, log_tail: str, log: bytes
) -> tuple[int, dict[str, str], bytes, bytes]:
    message = f"INIT failed ({error_type}); the environment was discarded. Last log lines:\n"
    return _function_error({"errorType": error_type, "errorMessage": message + log_tail}, log)


def _environment_lost(
    environment: environments.Environment, error: OSError, start: int
) -> tuple[int, dict[str, str], bytes, bytes]:
    if environment.wait_exit(INIT_EXIT_WAIT_SECONDS):
        initialized = environment.initialized()
        tail, log = environment.log_tail_lines(), environment.log_bytes(start)
        environments.discard(environment)
        if not initialized:
            return _init_failed(_init_error_type(tail), tail, log)
        message = f"The execution environment stopped during the invocation:\n{tail}"
        return _function_error({"errorType": "Runtime.ExitError", "errorMessage": message}, log)
    raise modelled_error(
        "ServiceException", f"The execution environment did not answer: {error}"
    ) from None


def _throttled() -> AwsError:
    # Lambda Managed Instances "might reject new invokes to protect invokes that are already in
    # flight" with HTTP 429 (developer guide, "Troubleshooting Lambda Managed Instances").
    return modelled_error(
        "TooManyRequestsException",
        "Rate Exceeded. Every runtime worker of the execution environment is busy "
        "(AWS_LAMBDA_MAX_CONCURRENCY invocations in flight).",
    )


def _del_function(self: LambdaStorage, name_or_arn: str, qualifier: str | None = None) -> None:
    _original_del_function(self, name_or_arn, qualifier)
    environments.reap()


def install() -> None:
    LambdaResponse.invoke = invoke  # type: ignore[method-assign]
    LambdaStorage.del_function = _del_function  # type: ignore[method-assign]
