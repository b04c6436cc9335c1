"""The `skyshard` command line."""
