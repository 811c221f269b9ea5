"""The testbed: IPv6-only nodes in network namespaces with real sshd, and a BIRD router."""
