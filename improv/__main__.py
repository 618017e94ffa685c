"""`python -m improv ...` (also what `torchrun ... -m improv train` runs)."""

import sys

from improv.cli.main import main

sys.exit(main())
