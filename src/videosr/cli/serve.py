"""`videosr serve`: the local web page (the ``videosr[web]`` extra, Gradio), a thin layer like the CLI."""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import signal
import sys

from ..errors import UsageError

LOOPBACK_NAMES = ("localhost",)


def register(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="a local web page: upload, preview, upscale (needs the [web] extra)",
        description="Serve a web page to upload a video, compare models on any frame and run "
        "whole-clip jobs (pip install -e '.[web]').",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; any other needs --auth)",
    )
    p.add_argument("--port", type=int, default=7860)
    p.add_argument(
        "--jobs",
        default="videosr-jobs",
        metavar="DIR",
        help="folder for uploads, jobs and their outputs (default ./videosr-jobs); the only folder the "
        "server serves files from; unfinished jobs in it resume when the server starts",
    )
    p.add_argument(
        "--auth",
        default=None,
        metavar="USER:PASS",
        help="require this user name and password, or with a token (no colon, 12+ characters) any user "
        "name and the token as password; needed with a --host other than loopback; or set "
        "VIDEOSR_AUTH",
    )
    p.add_argument(
        "--max-upload", default="2gb", metavar="SIZE", help="largest upload accepted, e.g. 500mb, 2gb (default 2gb)"
    )
    p.add_argument(
        "--workers", type=int, default=1, help="jobs run at once (default 1: on a CPU one job uses every core)"
    )
    p.set_defaults(handler=run)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


MIN_TOKEN = 12


def parse_auth(value: str | None):
    """``USER:PASS`` -> (user, password); a token (no colon, at least MIN_TOKEN characters) -> a check that takes
    any user name with the token as the password; None -> None."""
    if value is None:
        return None
    user, sep, password = value.partition(":")
    if sep:
        if not user or not password:
            raise UsageError("--auth takes USER:PASS (both non-empty) or a token")
        return user, password
    if len(value) < MIN_TOKEN:
        raise UsageError(f"--auth takes USER:PASS, or a token of at least {MIN_TOKEN} characters")
    token = value.encode()

    def check(user: str, password: str) -> bool:
        return hmac.compare_digest(str(password).encode(), token)

    return check


def check_size(value: str) -> str:
    if not re.fullmatch(r"\d+(\.\d+)?\s*(b|kb|mb|gb|tb)", value.strip().lower()):
        raise UsageError(f"--max-upload takes a size such as 500mb or 2gb, not {value!r}")
    return value.strip().lower()


def run(args) -> int:
    auth = parse_auth(args.auth if args.auth is not None else os.environ.get("VIDEOSR_AUTH"))
    if not is_loopback(args.host) and auth is None:
        raise UsageError(
            f"--host {args.host} makes the page reachable from other machines: give --auth USER:PASS "
            f"(or set VIDEOSR_AUTH), or bind 127.0.0.1"
        )
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    max_upload = check_size(args.max_upload)
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("videosr serve needs the web extra: pip install -e '.[web]'", file=sys.stderr)
        return 2
    from ..web.app import launch

    where = f"http://{args.host}:{args.port}"
    if auth is None:
        note = " (this machine only)"
    elif isinstance(auth, tuple):
        note = f" (login required: user {auth[0]!r})"
    else:
        note = " (login required: any user name, the token as password)"
    print(f"videosr serve: {where}{note}; jobs in {os.path.abspath(args.jobs)}; uploads up to {max_upload}", flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, stop)  # SIGTERM stops the server as Ctrl-C does: jobs resume next start
    try:
        launch(
            args.jobs,
            host=args.host,
            port=args.port,
            auth=auth,
            max_upload=max_upload,
            workers=args.workers,
            quiet=True,
        )
    finally:
        signal.signal(signal.SIGTERM, old)
    print("videosr serve: stopped; unfinished jobs continue when it starts again", file=sys.stderr)
    return 0
