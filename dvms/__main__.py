"""``python -m dvms``: the ``dvms`` command."""

import sys

from dvms.app.cli import main

sys.exit(main())
