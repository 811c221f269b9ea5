"""SSH to the nodes: one connection per node, pinned host keys, sudo, timeouts, a log per node.

The only module that uses paramiko (imported lazily: it costs ~150 ms that `--help` should not pay).

- Host keys are pinned: the key from provisioning, the cluster file or the state is the only one
  accepted. Trust on first use only when asked for; `record_host_keys` then pins the key seen in
  the state.
- Addresses are `ipaddress` objects handed to the socket as bare literals, never "host:port".
- Every command and SFTP transfer has a timeout; a command's output goes line by line to the
  node's log file (0600) and to the console as `[phase] node: line`. Registered secrets and the
  ones passed to `run(secrets=...)` are masked.
- A non-root user runs everything through `sudo -n`; a user that would need a password is refused
  with SudoPasswordRequired when the connection opens, before anything runs.
"""

from v6kube.ssh.connection import SSHConnection, connect, open_connections
from v6kube.ssh.hostkeys import describe_key, fingerprint, record_host_keys, same_key
from v6kube.ssh.output import CommandResult, Connection
from v6kube.ssh.targets import AddressFamily, SSHOptions, Target, choose_address, targets_for

__all__ = [
    "AddressFamily", "CommandResult", "Connection", "SSHConnection", "SSHOptions", "Target", "choose_address",
    "connect", "describe_key", "fingerprint", "open_connections", "record_host_keys", "same_key", "targets_for",
]
