"""`python -m improv ...` (also what `torchrun ... -m improv train` runs)."""

import sys

from .cli import main

sys.exit(main())
