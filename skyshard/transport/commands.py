"""The allow-listed remote operations, built only from validated arguments and `shlex` quoting.

File operations (mkdir, upload, rename, read back) go over SFTP and never through a shell;
the only command lines are the host helper's operations and constant probe scripts.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from skyshard.transport import validate
from skyshard.transport.validate import ValidationError

PYTHON_NAME = re.compile(r"python3(\.\d{1,2})?")


@dataclass(frozen=True)
class RemotePath:
    """A path on a remote host: a validated absolute root plus a validated relative part."""

    root: str
    relative: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", validate.remote_root(self.root))
        if self.relative:
            object.__setattr__(self, "relative", validate.relative_path(self.relative))

    def child(self, relative: str) -> RemotePath:
        joined = f"{self.relative}/{relative}" if self.relative else relative
        return RemotePath(self.root, joined)

    @property
    def text(self) -> str:
        return f"{self.root}/{self.relative}" if self.relative else self.root


@dataclass(frozen=True)
class RemoteCommand:
    """One remote operation: argv is made of constants from code and validated values only.

    Built by `run_script` and the shard runtime client; never from free text."""

    operation: str
    argv: tuple[str, ...]

    @property
    def line(self) -> str:
        """The command line a remote shell receives, every argument quoted."""
        return shlex.join(self.argv)


def python_interpreter(value: object, field: str = "python") -> str:
    """A remote Python: `python3`, `python3.N`, or an absolute path."""
    if isinstance(value, str) and PYTHON_NAME.fullmatch(value):
        return value
    try:
        return validate.remote_root(value, field)
    except ValidationError:
        raise ValidationError(field, value, "must be python3[.N] or an absolute path") from None


def run_script(operation: str, script: str, root: RemotePath) -> RemoteCommand:
    """Run a constant `sh` script from skyshard's own code with the validated root as `$1`."""
    return RemoteCommand(operation, ("sh", "-c", script, f"skyshard-{operation}", root.text))
