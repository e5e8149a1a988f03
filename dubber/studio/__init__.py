"""`dub studio`: a local web app to review, edit and re-render a dub shot by shot.

    dub studio [--host 127.0.0.1] [--port 7860] [--root DIR] [--work DIR]

`project` holds what the studio does (no web code); `app` is the Gradio page over it. Importing
this package imports neither gradio nor torch: the command line lists `dub studio` for free.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ..errors import InputError, OutputError
from ..options import STUDIO_HOST as DEFAULT_HOST, STUDIO_PORT as DEFAULT_PORT   # this machine only
DEFAULT_WORK_DIR = "dub-studio"
DEFAULT_MAX_UPLOAD_MB = 2048


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `dub studio` options."""
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it "
                             "to the local network)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--root", metavar="DIR",
                        help="folder whose videos may be opened by path (default: uploads only); "
                             "nothing outside it is opened")
    parser.add_argument("--work", metavar="DIR", default=DEFAULT_WORK_DIR,
                        help="folder for takes and uploads, the only one the page serves "
                             f"(default ./{DEFAULT_WORK_DIR})")
    parser.add_argument("--max-upload-mb", type=int, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                        help=f"largest upload accepted (default {DEFAULT_MAX_UPLOAD_MB} MB)")
    parser.add_argument("--cache-dir", metavar="DIR", help="stage cache (default: $DUB_CACHE_DIR or ~/.cache/dubber)")
    parser.add_argument("--model", metavar="PATH|REPO",
                        help="AudioStory checkpoint folder or Hub repo id; the backend list offers AudioStory "
                             "when its weights are on this machine")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what each stage does")


def settings_from_args(args: argparse.Namespace):
    """StudioSettings from the command line, checked.

    Raises:
        InputError: --root is not a folder, --work is a file, --port or --max-upload-mb out of range.
    """
    from .project import StudioSettings

    root = Path(args.root).expanduser().resolve() if args.root else None
    if root is not None and not root.is_dir():
        raise InputError(f"The studio root {args.root} is not a folder; pass an existing folder with --root.")
    work = Path(args.work).expanduser().absolute()
    if work.exists() and not work.is_dir():
        raise InputError(f"The work location {work} is a file; pass a folder with --work.")
    if not 0 < args.port < 65536:
        raise InputError(f"The port {args.port} is not between 1 and 65535; pass another with --port.")
    if args.max_upload_mb < 1:
        raise InputError(f"The upload limit must be at least 1 MB (got {args.max_upload_mb}); fix --max-upload-mb.")
    return StudioSettings(work_dir=work, root=root, cache_dir=args.cache_dir, max_upload_mb=args.max_upload_mb,
                          model=args.model)


def run(args: argparse.Namespace) -> int:
    """Start the studio from parsed `dub studio` arguments; returns when it is stopped."""
    import importlib.util

    settings = settings_from_args(args)
    if importlib.util.find_spec("gradio") is None:
        raise InputError("The studio needs gradio; install it with pip install 'dubber[studio]'.")
    from .app import serve

    _check_port_free(args.host, args.port)   # first: a refused start makes no work folder
    try:
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=settings.work_dir):   # there and writable, not only there
            pass
    except OSError as err:
        raise OutputError(f"Cannot use {settings.work_dir} as the studio's work folder ({err.strerror}); "
                          "choose another with --work.") from err
    print(f"dub: studio on http://{args.host}:{args.port} (work folder {settings.work_dir}); Ctrl+C stops it.",
          file=sys.stderr)
    serve(settings, host=args.host, port=args.port)
    return 0


def _check_port_free(host: str, port: int) -> None:
    """Refuse, in one sentence, a port another program already listens on."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise InputError(f"The studio cannot listen on {host} ({err}); give another --host.") from err
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            raise InputError(f"Port {port} on {host} is taken ({err.strerror}); stop what uses it or give "
                             "another --port.") from err
