"""``python -m coatcheck``: the ``coatcheck`` command (:mod:`coatcheck.cli`), for when the
console script is not on ``PATH``."""

import sys

from .cli import main

sys.exit(main())
