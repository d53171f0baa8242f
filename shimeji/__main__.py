"""``python -m shimeji`` is the ``shimeji`` command."""

import sys

from shimeji.cli import main

sys.exit(main())
