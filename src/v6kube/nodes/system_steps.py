"""Steps for the operating system: swap, kernel modules, sysctls, resolvers, routes to the BGP peers."""

from __future__ import annotations

from ipaddress import IPv6Network

from v6kube.nodes.facts import Facts
from v6kube.nodes.managed import (
    KUBELET_RESOLV_CONF,
    MODULES,
    MODULES_FILE,
    NETWORKD_DROPIN,
    NETWORKD_UNIT,
    PEER_ROUTES_SCRIPT,
    PEER_ROUTES_UNIT,
    PEER_ROUTES_UNIT_FILE,
    RESOLV_CONF,
    RESOLVED_DROPIN,
    SYSCTL_FILE,
    SYSCTLS,
)
from v6kube.nodes.spec import OSRelease, PrepareSpec
from v6kube.nodes.step import (
    Step,
    StepResult,
    _all,
    _call,
    _file_problem,
    _module_loaded,
    _resolved_in_use,
    _result,
    _route_via,
    q,
    write_file,
)
from v6kube.render import render


# swap-off


def swap_off_step(spec: PrepareSpec, os: OSRelease) -> Step:
    rewrite = ("awk '{ if ($1 !~ /^#/ && $3 == \"swap\") print \"#\" $0; else print }' /etc/fstab "
               "> /etc/fstab.v6kube-new")
    return Step(
        name="swap-off",
        summary="swap is off now and stays off after a reboot",
        check=_all("swap_is_off", _call("unit_is", "swap.target", "masked")),
        commands=("swapoff -a", rewrite,
                  "cat /etc/fstab.v6kube-new > /etc/fstab",  # keeps the file's owner and mode
                  "rm -f /etc/fstab.v6kube-new",
                  "systemctl mask swap.target"),
    )


def ensure_swap_off(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = swap_off_step(spec, facts.os)
    problems = []
    if facts.swaps:
        problems.append(f"swap is on ({', '.join(facts.swaps)})")
    if facts.fstab:
        problems.append(f"/etc/fstab turns swap on at boot ({len(facts.fstab)} line(s))")
    if facts.units.get("swap.target") != "masked":
        problems.append("swap.target is not masked")
    return _result(step, problems)


# kernel-modules


def modules_conf(spec: PrepareSpec) -> str:
    return render("node/modules.conf.j2", modules=MODULES)


def kernel_modules_step(spec: PrepareSpec, os: OSRelease) -> Step:
    content = modules_conf(spec)
    return Step(
        name="kernel-modules",
        summary=f"{' and '.join(MODULES)} are loaded and load at boot",
        check=_all(_call("file_is", MODULES_FILE, content), *(_call("module_loaded", m) for m in MODULES)),
        commands=(*write_file(MODULES_FILE, content), *(f"modprobe {q(m)}" for m in MODULES)),
    )


def ensure_kernel_modules(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = kernel_modules_step(spec, facts.os)
    problems = _file_problem(facts, MODULES_FILE, modules_conf(spec))
    missing = [m for m in MODULES if not _module_loaded(facts, m)]
    if missing:
        problems.append(f"not loaded: {', '.join(missing)}")
    return _result(step, problems)


# sysctls


def sysctl_conf(spec: PrepareSpec) -> str:
    return render("node/sysctl.conf.j2", sysctls=SYSCTLS)


# all.accept_ra does not reach interfaces that exist already: with forwarding on, one still at 1
# ignores router advertisements, and a default route learned from them expires. Those go to 2
# (interfaces at 0 have their RAs handled elsewhere, e.g. by systemd-networkd, and stay).
RA_FIX = ('for f in /proc/sys/net/ipv6/conf/*/accept_ra; do '
          'if [ "$(cat "$f")" = 1 ]; then echo 2 > "$f"; fi; done')


def sysctls_step(spec: PrepareSpec, os: OSRelease) -> Step:
    content = sysctl_conf(spec)
    return Step(
        name="sysctls",
        summary="IPv6 forwarding is on (accept_ra 2), now and after a reboot",
        check=_all(_call("file_is", SYSCTL_FILE, content), *(_call("sysctl_is", k, v) for k, v in SYSCTLS),
                   "ra_kept"),
        # Only this file: `sysctl --system` would also re-apply every other file's global settings.
        commands=(*write_file(SYSCTL_FILE, content), f"sysctl -p {q(SYSCTL_FILE)}", RA_FIX),
    )


def ensure_sysctls(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = sysctls_step(spec, facts.os)
    problems = _file_problem(facts, SYSCTL_FILE, sysctl_conf(spec))
    wrong = [f"{k} = {facts.sysctls.get(k, '?')}" for k, v in SYSCTLS if facts.sysctls.get(k) != v]
    wrong += [f"{k} = 1" for k, v in sorted(facts.accept_ra.items()) if v == "1"]
    if wrong:
        problems.append("live values differ: " + ", ".join(wrong))
    return _result(step, problems)


# resolvers


def resolved_conf(spec: PrepareSpec) -> str:
    return render("node/resolved.conf.j2", resolvers=[str(r) for r in spec.resolvers])


def resolvers_resolved_step(spec: PrepareSpec, os: OSRelease) -> Step:
    content = resolved_conf(spec)
    return Step(
        name="resolvers-resolved",
        summary="systemd-resolved uses the IPv6 resolvers " + ", ".join(map(str, spec.resolvers)),
        check=_call("file_is", RESOLVED_DROPIN, content),
        commands=(*write_file(RESOLVED_DROPIN, content), "systemctl restart systemd-resolved"),
        applies="resolved_in_use",
        not_applicable="systemd-resolved does not manage /etc/resolv.conf",
    )


def ensure_resolvers_resolved(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = resolvers_resolved_step(spec, facts.os)
    if not _resolved_in_use(facts):
        return StepResult(step.name, (), step.not_applicable)
    return _result(step, _file_problem(facts, RESOLVED_DROPIN, resolved_conf(spec)))


def resolvers_resolv_conf_step(spec: PrepareSpec, os: OSRelease) -> Step:
    servers = [str(r) for r in spec.resolvers]
    new = f"{RESOLV_CONF}.v6kube-new"
    return Step(
        name="resolvers-resolv-conf",
        summary="/etc/resolv.conf names the IPv6 resolvers " + ", ".join(servers),
        check=_call("nameservers_are", *servers),
        commands=(
            "{ printf 'nameserver %s\\n' " + " ".join(q(s) for s in servers) + "; "
            f"grep -v '^[[:space:]]*nameserver[[:space:]]' {RESOLV_CONF} || true; }} > {new}",
            # Written in place, not renamed: /etc/resolv.conf may be a bind mount (containers, netns).
            f"cat {new} > {RESOLV_CONF}",
            f"rm -f {new}",
        ),
        applies="! resolved_in_use",
        not_applicable="systemd-resolved manages /etc/resolv.conf",
    )


def ensure_resolvers_resolv_conf(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = resolvers_resolv_conf_step(spec, facts.os)
    if _resolved_in_use(facts):
        return StepResult(step.name, (), step.not_applicable)
    wanted = tuple(str(r) for r in spec.resolvers)
    if facts.resolv_conf != wanted:
        shown = ", ".join(facts.resolv_conf) or "none"
        return _result(step, [f"/etc/resolv.conf names {shown}"])
    return _result(step, [])


def kubelet_resolv_conf(spec: PrepareSpec) -> str:
    return render("node/kubelet-resolv.conf.j2", resolvers=[str(r) for r in spec.resolvers])


def kubelet_resolvers_step(spec: PrepareSpec, os: OSRelease) -> Step:
    content = kubelet_resolv_conf(spec)
    return Step(
        name="kubelet-resolvers",
        summary=f"{KUBELET_RESOLV_CONF} (the pods' resolv.conf) names only the IPv6 resolvers",
        check=_call("file_is", KUBELET_RESOLV_CONF, content),
        commands=write_file(KUBELET_RESOLV_CONF, content),
    )


def ensure_kubelet_resolvers(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = kubelet_resolvers_step(spec, facts.os)
    return _result(step, _file_problem(facts, KUBELET_RESOLV_CONF, kubelet_resolv_conf(spec)))


# peer routes


def networkd_conf(spec: PrepareSpec) -> str:
    return render("node/networkd-foreign-routes.conf.j2")


def networkd_keeps_routes_step(spec: PrepareSpec, os: OSRelease) -> Step:
    content = networkd_conf(spec)
    return Step(
        name="networkd-keeps-routes",
        summary="systemd-networkd leaves the routes it did not make (the peer routes, Calico's) alone",
        check=_call("file_is", NETWORKD_DROPIN, content),
        # networkd reads the setting when it starts: restarted now (only if it runs), it will not
        # drop foreign routes on the next `networkctl reload` either. A restart keeps the links up.
        commands=(*write_file(NETWORKD_DROPIN, content), f"systemctl try-restart {NETWORKD_UNIT}"),
    )


def ensure_networkd_keeps_routes(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = networkd_keeps_routes_step(spec, facts.os)
    return _result(step, _file_problem(facts, NETWORKD_DROPIN, networkd_conf(spec)))


def _peer_networks(spec: PrepareSpec) -> list[IPv6Network]:
    return [IPv6Network(f"{peer}/128") for peer in spec.peers]


def peer_routes_step(spec: PrepareSpec, os: OSRelease) -> Step:
    return Step(
        name="peer-routes",
        summary="the BGP peers are routed via the gateway " + str(spec.gateway),
        check=_all(*(_call("route_via", net, spec.gateway) for net in _peer_networks(spec))),
        commands=tuple(f"ip -6 route replace {q(str(net))} via {q(str(spec.gateway))}" for net in _peer_networks(spec)),
    )


def ensure_peer_routes(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = peer_routes_step(spec, facts.os)
    missing = [str(net) for net in _peer_networks(spec) if not _route_via(facts, net, spec.gateway)]
    return _result(step, [f"no route via {spec.gateway} to {', '.join(missing)}"] if missing else [])


def peer_routes_script(spec: PrepareSpec) -> str:
    return render("node/peer-routes.sh.j2", peers=[str(p) for p in spec.peers], gateway=str(spec.gateway))


def peer_routes_unit(spec: PrepareSpec) -> str:
    return render("node/v6kube-peer-routes.service.j2", script=PEER_ROUTES_SCRIPT)


def peer_routes_at_boot_step(spec: PrepareSpec, os: OSRelease) -> Step:
    script, unit = peer_routes_script(spec), peer_routes_unit(spec)
    return Step(
        name="peer-routes-at-boot",
        summary=f"{PEER_ROUTES_UNIT} restores the peer routes at boot",
        check=_all(_call("file_is", PEER_ROUTES_SCRIPT, script), _call("file_is", PEER_ROUTES_UNIT_FILE, unit),
                   _call("unit_is", PEER_ROUTES_UNIT, "enabled")),
        commands=(*write_file(PEER_ROUTES_SCRIPT, script, "0755"), *write_file(PEER_ROUTES_UNIT_FILE, unit),
                  "systemctl daemon-reload", f"systemctl enable {PEER_ROUTES_UNIT}"),
    )


def ensure_peer_routes_at_boot(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = peer_routes_at_boot_step(spec, facts.os)
    problems = _file_problem(facts, PEER_ROUTES_SCRIPT, peer_routes_script(spec))
    problems += _file_problem(facts, PEER_ROUTES_UNIT_FILE, peer_routes_unit(spec))
    if facts.units.get(PEER_ROUTES_UNIT) != "enabled":
        problems.append(f"{PEER_ROUTES_UNIT} is not enabled")
    return _result(step, problems)
