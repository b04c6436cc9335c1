"""The `skyshard` command line."""

# Console scripts installed before the package split run `from skyshard.cli import main`.
from skyshard.cli.main import main

__all__ = ["main"]
