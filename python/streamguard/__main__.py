"""``python -m streamguard`` is the ``streamguard`` command."""

import sys

from streamguard.cli import main

sys.exit(main())
