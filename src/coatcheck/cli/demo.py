"""``coatcheck demo``: run the demo app on a store (the embedded SQLite file by default)."""

from __future__ import annotations

import sys

import click

from ..stores import from_url
from . import commands

DEFAULT_DEMO_STORE = "sqlite:///coatcheck-demo.db"


@commands.command()
@click.option("--store", default=DEFAULT_DEMO_STORE, show_default=True, help="store URL")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--idle-timeout", type=float, default=1800, show_default=True, help="seconds")
@click.option("--absolute-timeout", type=float, default=43200, show_default=True, help="seconds")
def demo(store: str, host: str, port: int, idle_timeout: float, absolute_timeout: float) -> None:
    """Run the demo app."""
    try:
        import uvicorn  # noqa: PLC0415

        from ..demo import create_app  # noqa: PLC0415
    except ImportError as exc:
        raise click.ClickException(
            f"coatcheck demo needs the demo extra ({exc.name} is missing): "
            "pip install 'coatcheck[demo]'"
        ) from exc
    app = create_app(from_url(store), idle_timeout=idle_timeout, absolute_timeout=absolute_timeout)
    print(f"coatcheck demo on {store}: http://{host}:{port}/", flush=True)
    sys.stdout.flush()
    uvicorn.run(app, host=host, port=port, log_level="warning")
