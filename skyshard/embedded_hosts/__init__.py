"""The demo sky's hosts as embedded SSH servers (asyncssh): real SSH, real shard processes.

Start them with `python -m skyshard.embedded_hosts --home <sky home>`, `serve_sky(sky, home)`
(in-process) or `running_sky(home)` (a background process, as a context manager).
"""

from skyshard.embedded_hosts.run import RunningSky, SkyServers, running_sky, serve_sky
from skyshard.embedded_hosts.server import HostServerError, HostSpec

__all__ = ["HostServerError", "HostSpec", "RunningSky", "SkyServers", "running_sky", "serve_sky"]
