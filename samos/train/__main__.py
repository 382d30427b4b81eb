"""``python -m samos.train --config ...`` (the same as ``samos train``; torchrun-friendly)."""

import sys

from samos.train.cli import main

sys.exit(main())
