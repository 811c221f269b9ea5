"""The testbed: IPv6-only "servers" on this machine, built by the tests themselves.

- lab.py: `Lab.create()` builds a bridge and a BIRD router (AS 65530, two peer addresses, MD5)
  inside the namespace the tests run in; `lab.add_node(os_name=..., resolved=..., ...)` adds a
  node: its own network namespace, /etc overlay, /run, hostname, host key and a real sshd.
  `target_for(node)` gives the v6kube SSH target, pinned to the node's host key.
- stubs.py: recording stubs for what cannot run here (apt-get, systemctl, modprobe, ...).
- fixtures.py: pytest fixtures (`lab`, `new_node`, `ssh_options`, `sudo_installed`); a testbed
  that cannot run is skipped, or fails when CI=true.

Run the tests through tests/run-in-netns, so that nothing can leave the machine.
"""
