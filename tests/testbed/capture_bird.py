"""Regenerate tests/data/bird/*.txt: real `birdc` output from the testbed (BIRD 2 on the lab's router
and on two nodes configured by tests/testbed/bgp.py from v6kube's rendered bgp.yaml).

    tests/run-in-netns .venv/bin/python tests/testbed/capture_bird.py

Scenarios: healthy; worker-0 with a wrong MD5 password; cp-0 withdrawing one pod block; the
router's second BIRD (peer ::f) stopped. The lab's addresses differ per run; the tests read the
node and peer addresses from the files' header lines.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from testbed import bgp  # noqa: E402
from testbed.lab import BGP_PASSWORD, Lab  # noqa: E402
from v6kube import config, planner  # noqa: E402
from v6kube.redact import Secret  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "data" / "bird"


def main() -> None:
    lab = Lab.create()
    try:
        cp, worker = lab.add_node("cp-0", start_sshd=False), lab.add_node("worker-0", start_sshd=False)
        plan = planner.offline_plan(config.parse_cluster(bgp.lab_cluster_yaml(lab, [cp, worker])))
        good = planner.render_bgp(plan, planner.Secrets(bgp_password=Secret(BGP_PASSWORD)))
        bad = planner.render_bgp(plan, planner.Secrets(bgp_password=Secret("Wrong0password")))
        blocks = [bgp.nth_block(plan.addresses.pod_subnet, 122, i) for i in range(3)]
        header = (f"# captured by tests/testbed/capture_bird.py (BIRD 2.0.12, Debian 12)\n"
                  f"# nodes: cp-0={cp.address} worker-0={worker.address}; peers: {lab.peers[0]} {lab.peers[1]}\n"
                  f"# cp-0 blocks: {blocks[0]} {blocks[1]}; worker-0 blocks: {blocks[2]}; "
                  f"services: {plan.addresses.service_subnet}\n")
        s_cp = bgp.start_speaker(lab, cp, bgp.speaker_config(good, cp, blocks=blocks[:2]))
        s_w = bgp.start_speaker(lab, worker, bgp.speaker_config(good, worker, blocks=blocks[2:]))
        rtr_e, rtr_f = bgp.router_ctls(lab)
        routes = lambda ctl: bgp.birdc(ctl, "show", "route")  # noqa: E731
        bgp.wait_until(lambda: all(routes(c).count("unicast") == 6 for c in (rtr_e, rtr_f)), 20, "5 BGP routes")

        def save(name: str, text: str) -> None:
            (OUT / name).write_text(header + text)

        save("router-protocols-all.txt", bgp.birdc(rtr_e, "show", "protocols", "all"))
        save("router-route.txt", routes(rtr_e))
        save("node-protocols-all.txt", s_cp.birdc("show", "protocols", "all"))
        save("node-protocols.txt", s_cp.birdc("show", "protocols"))

        s_cp.reconfigure(bgp.speaker_config(good, cp, blocks=blocks[:1]))
        bgp.wait_until(lambda: routes(rtr_e).count("unicast") == 5, 10, "the withdrawal")
        save("router-route-withdrawn.txt", routes(rtr_e))

        s_w.reconfigure(bgp.speaker_config(bad, worker, blocks=blocks[2:]))
        bgp.wait_until(lambda: "Established" not in s_w.birdc("show", "protocols"), 30, "worker-0 down")
        bgp.wait_until(lambda: "Connect" in s_w.birdc("show", "protocols", "all") or
                       "Active" in s_w.birdc("show", "protocols", "all"), 30, "worker-0 retrying")
        save("node-protocols-all-wrong-password.txt", s_w.birdc("show", "protocols", "all"))
        save("router-protocols-all-wrong-password.txt", bgp.birdc(rtr_e, "show", "protocols", "all"))

        lab._birds[1].terminate()  # the router's BIRD for peer ::f
        lab._birds[1].wait(5)
        bgp.wait_until(lambda: s_cp.birdc("show", "protocols").count("Established") == 1, 30, "cp-0 loses ::f")
        save("node-protocols-all-router-stopped.txt", s_cp.birdc("show", "protocols", "all"))
    finally:
        lab.close()


if __name__ == "__main__":
    main()
