"""Shared pytest setup. The testbed fixtures live in tests/testbed/fixtures.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import testbed` however pytest was started

from testbed.fixtures import lab, new_node, ssh_options, sudo_installed  # noqa: E402,F401
