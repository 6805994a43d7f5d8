"""The ``coatcheck`` command line (click): the demo shop, and an operator's tools for a store.

Commands live in the modules beside this one and register themselves on :data:`commands`:
:mod:`coatcheck.cli.demo` (``demo``, ``compare``) and :mod:`coatcheck.cli.operations`
(``stats``, ``sessions``, ``revoke``, ``purge``, ``migrate``, ``export``, ``import``,
``rekey``, ``keygen``, ``bench``).
Errors are one clear line and a non-zero exit status, never a traceback. ``python -m coatcheck``
and ``python -m coatcheck.cli`` run the same command as the ``coatcheck`` console script.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

try:
    import click
except ImportError as exc:  # pragma: no cover - the cli extra is missing
    raise SystemExit(
        f"the coatcheck command needs the cli extra ({exc.name} is missing): "
        "pip install 'coatcheck[cli]'"
    ) from exc

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="coatcheck")
def commands() -> None:
    """coatcheck: server-side sessions. Run the demo shop, or inspect and manage a store."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: the process's); return the exit status."""
    try:
        commands.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        print("coatcheck: aborted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:
        print(f"coatcheck: {exc}", file=sys.stderr)
        return 2
    return 0


from . import demo, operations  # noqa: E402  (they register their commands)

__all__ = ["commands", "demo", "entry", "main", "operations"]


def entry() -> None:  # pragma: no cover - the console script
    """The ``coatcheck`` console script."""
    sys.exit(main())
