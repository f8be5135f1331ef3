"""``python -m generation.data``: see :mod:`generation.data.cli`."""

import sys

from generation.data.cli import main

sys.exit(main())
