"""The ``coatcheck`` command line: ``coatcheck demo`` runs the demo app on a store."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .stores import from_url

DEFAULT_DEMO_STORE = "sqlite:///coatcheck-demo.db"


def _demo(args: argparse.Namespace) -> int:
    try:
        import uvicorn  # noqa: PLC0415

        from .demo import create_app  # noqa: PLC0415
    except ImportError as exc:
        print(
            f"coatcheck demo needs the demo extra ({exc.name} is missing): "
            "pip install 'coatcheck[demo]'",
            file=sys.stderr,
        )
        return 2
    store = from_url(args.store)
    app = create_app(store, idle_timeout=args.idle_timeout, absolute_timeout=args.absolute_timeout)
    print(f"coatcheck demo on {args.store}: http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coatcheck", description=__doc__)
    parser.add_argument("--version", action="version", version=f"coatcheck {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the demo app")
    demo.add_argument(
        "--store", default=DEFAULT_DEMO_STORE, help="store URL (default: %(default)s)"
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--idle-timeout", type=float, default=1800, help="seconds")
    demo.add_argument("--absolute-timeout", type=float, default=43200, help="seconds")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status. Errors are one line, never a traceback."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except (ValueError, OSError) as exc:
        print(f"coatcheck: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
