"""Capture real raw facts from testbed nodes into tests/nodeops_cases/facts/ (fresh and prepared,
per OS). The planner cases start from these and change what they are about. Run it again after a
change to what the steps write:

    tests/run-in-netns .venv/bin/python tests/nodeops_cases/capture_facts.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from testbed.lab import Lab, target_for  # noqa: E402
from v6kube.nodes import PrepareSpec, gather_raw_facts, prepare_nodes  # noqa: E402
from v6kube.ssh import SSHOptions, connect  # noqa: E402

RESOLVERS = ("2001:4860:4860::8888", "2001:4860:4860::8844")


class Literal(str):
    pass


yaml.add_representer(Literal, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|"))


def dump(path: Path, raw: dict[str, str], comment: str) -> None:
    body = {name: Literal(text) if "\n" in text else text for name, text in raw.items()}
    path.write_text(f"# {comment}\n" + yaml.dump(body, sort_keys=False, width=200))


def main() -> None:
    with Lab.create(session=1) as lab:
        options = SSHOptions(private_key=lab.client_key, connect_timeout=10)
        for os_name, resolved in (("debian-12", False), ("ubuntu-22.04", False), ("ubuntu-24.04", True)):
            node = lab.add_node(os_name=os_name, resolved=resolved, name="n1")
            spec = PrepareSpec(node="n1", os_id_hint=None, kubernetes_minor="1.33", resolvers=RESOLVERS,
                               gateway=lab.gateway, peers=lab.peers)
            with connect(target_for(node), options) as conn:
                dump(HERE / "facts" / f"{os_name}-fresh.yaml", gather_raw_facts(conn),
                     f"Raw facts of a fresh {os_name} testbed node (captured by capture_facts.py).")
                prepare_nodes({"n1": conn}, {"n1": spec})
                dump(HERE / "facts" / f"{os_name}-prepared.yaml", gather_raw_facts(conn),
                     f"Raw facts of the same {os_name} node once prepared for Kubernetes 1.33, gateway "
                     f"{lab.gateway}, peers {', '.join(map(str, lab.peers))} (captured by capture_facts.py).")
            lab.remove_node(node)


if __name__ == "__main__":
    main()
