"""Execution environments for published LMI versions: AWS's Lambda Runtime Interface Emulator
(RIE) in Managed Instances mode, one per version, started by its first Invoke (see ``invoke``).

An environment is one process tree, started as root:

    setpriv --pdeathsig KILL unshare --mount --pid --fork --kill-child=KILL --propagation private \\
        sh -c 'mount --bind TASK /var/task && cd /var/task && exec aws-lambda-rie ...'

- ``TASK`` is the version's code zip unpacked (unix modes kept); RIE runs ``/var/task/bootstrap``
  as Lambda does for an OS-only runtime. An ``arm64`` version on an x86-64 host (or the reverse)
  runs its ``bootstrap`` through Debian's ``qemu-<arch>-static``.
- RIE gets the environment Lambda gives a function (see ``runtime_environment``); with
  ``AWS_LAMBDA_MAX_CONCURRENCY`` set it runs the Managed Instances runtime interface (that many
  concurrent ``/next`` polls) and initialises the runtime at once.
- Nothing outlives the server: the launcher thread lives as long as the process, so
  ``PR_SET_PDEATHSIG`` (which follows the creating *thread*) kills ``unshare`` only when the
  server dies, even by SIGKILL; ``unshare`` kills RIE, the PID namespace's init, and the kernel
  then kills everything left in that namespace. ``stop_all`` runs at exit.

The binary is ``$LMI_LAMBDA_RIE``, else ``<repo>/.tools/bin/aws-lambda-rie``, else
``<repo>/../shared/lambda/bin/aws-lambda-rie``.
"""

from __future__ import annotations

import atexit
import functools
import http.client
import io
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from moto.awslambda.models import LambdaFunction

from .attachments import lambda_backend
from .function_state import capacity_provider_config

REPO = Path(__file__).resolve().parents[3]
RIE_CANDIDATES = (
    REPO / ".tools/bin/aws-lambda-rie",
    REPO.parent / "shared/lambda/bin/aws-lambda-rie",
)
HOST_TOOLS = ("setpriv", "unshare", "sh", "mount")
QEMU = {"arm64": "qemu-aarch64-static", "x86_64": "qemu-x86_64-static"}
HOST_ARCHITECTURE = {"aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "x86_64")

# PerExecutionEnvironmentMaxConcurrency when the version leaves it out: the documented default
# for an OS-only runtime (Rust on provided.al2023), "8 concurrent requests per vCPU"
# (https://docs.aws.amazon.com/lambda/latest/dg/lambda-managed-instances-rust.html).
DEFAULT_CONCURRENCY_PER_VCPU = 8

LISTEN_TIMEOUT_SECONDS = 10.0
TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}

_endpoint: str | None = None


class Unavailable(Exception):
    """This host cannot run environments (RIE, a tool or root is missing)."""


class BadCode(Exception):
    """The version's code is not a zip archive."""


class StartFailed(Exception):
    """RIE exited before it listened; ``log`` is the end of its output."""

    def __init__(self, log: str):
        super().__init__(log)
        self.log = log


def set_endpoint(url: str) -> None:
    """The emulator's own URL, given to functions as ``AWS_ENDPOINT_URL``."""
    global _endpoint
    _endpoint = url


def endpoint() -> str:
    return _endpoint or f"http://127.0.0.1:{os.environ.get('MOTO_PORT', '5000')}"


def find_rie() -> Path | None:
    configured = os.environ.get("LMI_LAMBDA_RIE")
    candidates = (Path(configured),) if configured else RIE_CANDIDATES
    return next((path for path in candidates if os.access(path, os.X_OK)), None)


@functools.cache
def check_host(architecture: str) -> Path:
    """The RIE binary, once everything an environment needs is known to be here. Remembered per
    architecture once found (a missing piece raises and is looked for again next time)."""
    rie = find_rie()
    if rie is None:
        configured = os.environ.get("LMI_LAMBDA_RIE")
        looked = [configured] if configured else [str(path) for path in RIE_CANDIDATES]
        raise Unavailable(
            "The Lambda Runtime Interface Emulator (aws-lambda-rie) is missing: looked for "
            + ", ".join(looked)
            + " (set LMI_LAMBDA_RIE to its path)."
        )
    missing = [tool for tool in HOST_TOOLS if shutil.which(tool) is None]
    if architecture != HOST_ARCHITECTURE and shutil.which(QEMU[architecture]) is None:
        missing.append(QEMU[architecture])
    if missing:
        raise Unavailable(f"Running {architecture} functions here needs {', '.join(missing)}.")
    if os.geteuid() != 0:
        raise Unavailable("Running functions needs root (a mount namespace per environment).")
    return rie


def architecture_of(fn: LambdaFunction) -> str:
    return (fn.architectures or ["x86_64"])[0]


def max_concurrency(fn: LambdaFunction) -> int:
    inner = capacity_provider_config(fn)["LambdaManagedInstancesCapacityProviderConfig"]
    configured = inner.get("PerExecutionEnvironmentMaxConcurrency")
    if configured:
        return int(configured)
    vcpus = int(fn.memory_size) / 1024 / float(inner["ExecutionEnvironmentMemoryGiBPerVCpu"])
    return DEFAULT_CONCURRENCY_PER_VCPU * max(1, int(vcpus))


def runtime_environment(fn: LambdaFunction) -> dict[str, str]:
    """The version's variables between Lambda's defaults and its reserved variables."""
    now = datetime.now(timezone.utc)
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "AWS_ENDPOINT_URL": endpoint(),
        **{str(k): str(v) for k, v in (fn.environment_vars or {}).items()},
        "_HANDLER": fn.handler or "",
        "LAMBDA_TASK_ROOT": "/var/task",
        "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": str(fn.version),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(fn.timeout),
        "AWS_LAMBDA_MAX_CONCURRENCY": str(max_concurrency(fn)),
        "AWS_LAMBDA_LOG_GROUP_NAME": fn.logs_group_name,
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{now:%Y/%m/%d}/[{fn.version}]{uuid.uuid4().hex}",
        "AWS_REGION": fn.region,
        "AWS_DEFAULT_REGION": fn.region,
        **TEST_CREDENTIALS,
    }


def unpack(code: bytes, task: Path, architecture: str) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(code))
    except zipfile.BadZipFile:
        raise BadCode("The function's deployment package is not a zip archive.") from None
    task.mkdir(exist_ok=True)
    with archive:
        for info in archive.infolist():
            mode = (info.external_attr >> 16) & 0o7777
            path = Path(archive.extract(info, task))
            if mode:  # archives made without unix modes keep the extraction defaults
                path.chmod(mode)
    task.chmod(0o755)  # RIE runs the runtime as an unprivileged user
    bootstrap = task / "bootstrap"
    if architecture != HOST_ARCHITECTURE and bootstrap.is_file():
        bootstrap.rename(task / f"bootstrap.{architecture}")
        qemu = shutil.which(QEMU[architecture])
        bootstrap.write_text(
            f'#!/bin/sh\nexec {qemu} /var/task/bootstrap.{architecture} "$@"\n'
        )
        bootstrap.chmod(0o755)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Every environment is started from this one long-lived thread: see the module docstring.
_launcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmi-environment-launcher")


class Environment:
    """One running (or starting) RIE for one published version."""

    def __init__(self, fn: LambdaFunction):
        self.fn = fn
        self.arn = fn.function_arn
        self.version = str(fn.version)
        self.dir = Path(tempfile.mkdtemp(prefix="lmi-environment-"))
        self.log_path = self.dir / "log"
        self.log_path.touch()
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.stopped = False
        self._lock = threading.RLock()

    def ensure_started(self) -> None:
        with self._lock:
            if self.stopped:
                raise StartFailed("the environment was stopped (its version was deleted)")
            if self.process is None:
                try:
                    self._start()
                except BaseException:
                    discard(self)
                    raise

    def _start(self) -> None:
        rie = check_host(architecture_of(self.fn))
        unpack(self.fn.code_bytes or b"", self.dir / "task", architecture_of(self.fn))
        self.port, api_port = _free_port(), _free_port()
        # Absolute paths: the function's own PATH (it may set one) must not pick the tools.
        setpriv, unshare, sh, mount = (shutil.which(tool) for tool in HOST_TOOLS)
        command = [
            setpriv, "--pdeathsig", "KILL",
            unshare, "--mount", "--pid", "--fork", "--kill-child=KILL",
            "--propagation", "private",
            sh, "-c", '"$1" --bind "$2" /var/task && cd /var/task && shift 2 && exec "$@"',
            "sh", mount, str(self.dir / "task"), str(rie),
            "--runtime-interface-emulator-address", f"127.0.0.1:{self.port}",
            "--runtime-api-address", f"127.0.0.1:{api_port}",
        ]  # fmt: skip
        Path("/var/task").mkdir(parents=True, exist_ok=True)
        env = runtime_environment(self.fn)
        with open(self.log_path, "ab") as log:
            self.process = _launcher.submit(
                subprocess.Popen,
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            ).result()
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + LISTEN_TIMEOUT_SECONDS
        while self.alive():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
        log = self.log_tail_lines()
        self.stop()
        raise StartFailed(log)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def wait_exit(self, seconds: float) -> bool:
        try:
            if self.process is not None:
                self.process.wait(seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def initialized(self) -> bool:
        """RIE prints ``START`` for an invocation only once the runtime has initialised."""
        return b"START RequestId:" in self.log_bytes()

    def invoke(self, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        """POST the payload to RIE's invocations endpoint; raises OSError if RIE is gone."""
        # RIE bounds both the runtime's init and the invocation by the function timeout.
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=2 * int(self.fn.timeout) + 30
        )
        try:
            connection.request(
                "POST",
                "/2015-03-31/functions/function/invocations",
                body=payload,
                headers={"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_bytes(self, since: int = 0) -> bytes:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(since)
                return log.read()
        except FileNotFoundError:
            return b""

    def log_tail_lines(self, lines: int = 15) -> str:
        """The end of the log without RIE's INFO chatter: the runtime's output, warnings."""
        text = self.log_bytes(max(0, self.log_size() - 16384)).decode("utf-8", "replace")
        kept = [line for line in text.splitlines() if "level=INFO" not in line]
        return "\n".join(kept[-lines:])

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            if self.process is not None and self.process.poll() is None:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if self.process is not None:
                self.process.wait()
            shutil.rmtree(self.dir, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        return {
            "FunctionArn": self.arn,
            "Version": self.version,
            "Pid": self.process.pid if self.process is not None else None,
            "Running": self.alive(),
            "Initialized": self.initialized() if self.process is not None else False,
        }


# qualified function ARN -> its version's environment
_environments: dict[str, Environment] = {}
_registry_lock = threading.Lock()


def for_version(fn: LambdaFunction) -> Environment:
    """The version's environment, replacing one that exited or belongs to a replaced version
    (a republished $LATEST.PUBLISHED has the same ARN)."""
    stale = None
    with _registry_lock:
        environment = _environments.get(fn.function_arn)
        if environment is not None and (environment.fn is not fn or environment.exited()):
            stale, environment = environment, None
        if environment is None:
            environment = _environments[fn.function_arn] = Environment(fn)
    if stale is not None:
        stale.stop()
    return environment


def discard(environment: Environment) -> None:
    with _registry_lock:
        if _environments.get(environment.arn) is environment:
            del _environments[environment.arn]
    environment.stop()


def _is_live(fn: LambdaFunction) -> bool:
    group = lambda_backend(fn.account_id, fn.region)._lambdas._functions.get(fn.function_name)
    return group is not None and any(v is fn for v in group["versions"])


def reap() -> None:
    """Stop the environments of versions that no longer exist (deleted or republished)."""
    with _registry_lock:
        gone = [e for e in _environments.values() if not _is_live(e.fn)]
    for environment in gone:
        discard(environment)


def all_environments() -> list[Environment]:
    with _registry_lock:
        return list(_environments.values())


def find(function_name: str, version: str) -> Environment | None:
    return next(
        (
            e
            for e in all_environments()
            if e.fn.function_name == function_name and e.version == version
        ),
        None,
    )


def stop_all() -> None:
    for environment in all_environments():
        discard(environment)


atexit.register(stop_all)
