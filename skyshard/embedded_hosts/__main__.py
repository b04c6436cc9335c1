"""`python -m skyshard.embedded_hosts --home <sky home>`."""

import sys

from skyshard.embedded_hosts.run import main

sys.exit(main())
