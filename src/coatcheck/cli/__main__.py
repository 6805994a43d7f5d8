"""``python -m coatcheck.cli``: the same as the ``coatcheck`` command."""

import sys

from . import main

sys.exit(main())
