"""``python -m gpusom``: the ``gpusom`` command line (``gpusom.cli``)."""

import sys

from .cli import main

sys.exit(main())
