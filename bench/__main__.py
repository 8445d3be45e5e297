"""``python -m bench``: the gateway-overhead benchmark (see ``bench/run.py``)."""

import sys

from .run import main

sys.exit(main())
