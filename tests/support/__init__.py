"""Test support: real sshd, test hosts, network namespaces and synthetic placement instances."""
