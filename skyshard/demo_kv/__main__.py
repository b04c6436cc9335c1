from __future__ import annotations

import sys

from skyshard.demo_kv.server import main

sys.exit(main(sys.argv[1:]))
