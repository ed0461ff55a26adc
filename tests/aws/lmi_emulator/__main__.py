"""Serve moto with the LMI extension: ``python -m lmi_emulator --port PORT``.

Prints ``LMI-EMULATOR READY http://HOST:PORT`` on stdout once the socket listens (``--port 0``
picks a free port), then serves in the foreground until killed. Requests are served on a thread
each, so a function that calls back into the emulator while its Invoke is in progress is answered.
Execution environments of invoked functions stop with the server (SIGTERM, Ctrl-C, stdin closing
with ``--exit-with-stdin``; on SIGKILL the kernel stops them, see ``environments``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from . import lifecycle


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aws-emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port; 0 picks a free one")
    parser.add_argument(
        "--state-delay",
        type=float,
        default=None,
        help="seconds a capacity provider or published version stays Pending "
        "(default: $LMI_EMULATOR_STATE_DELAY_SECONDS or 0)",
    )
    parser.add_argument(
        "--exit-with-stdin",
        action="store_true",
        help="exit when stdin closes (a parent that dies takes the emulator with it)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


def _exit_when_stdin_closes() -> None:
    from . import environments

    while sys.stdin.buffer.read(4096):
        pass
    environments.stop_all()
    os._exit(0)


def _terminate(signum: int, frame: object) -> None:
    from . import environments

    environments.stop_all()
    os._exit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.state_delay is not None:
        lifecycle.set_delay(args.state_delay)
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.WARNING)

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from . import environments
    from .install import install

    install()
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler
    )
    # moto builds some URLs (e.g. for Lambda's own SDK calls) from MOTO_PORT.
    os.environ["MOTO_PORT"] = str(server.port)
    local_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    environments.set_endpoint(f"http://{local_host}:{server.port}")
    signal.signal(signal.SIGTERM, _terminate)
    if args.exit_with_stdin:
        threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    print(f"LMI-EMULATOR READY http://{args.host}:{server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
