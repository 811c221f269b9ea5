"""Steps for software: the apt repositories, the packages and their holds, containerd's config."""

from __future__ import annotations

from v6kube.nodes.facts import Facts
from v6kube.nodes.managed import (
    APT_INSTALL,
    APT_LOCK_WAIT,
    BASE_PACKAGES,
    CONTAINERD_CONFIG,
    CONTAINERD_PACKAGE,
    DOCKER_KEYRING,
    DOCKER_LIST,
    DOCKER_SOURCES,
    KEYRINGS_DIR,
    KUBERNETES_KEYRING,
    KUBERNETES_LIST,
    KUBERNETES_PACKAGES,
    pause_image,
)
from v6kube.nodes.spec import OSRelease, PrepareSpec
from v6kube.nodes.step import Step, StepResult, _all, _call, _file_problem, _result, q, write_file
from v6kube.render import render


# base packages


def base_packages_step(spec: PrepareSpec, os: OSRelease) -> Step:
    return Step(
        name="base-packages",
        summary=f"{' and '.join(BASE_PACKAGES)} are installed (the steps fetch apt keys with curl)",
        check=_all(*(_call("package_installed", p, "") for p in BASE_PACKAGES)),
        commands=(f"apt-get update -q {APT_LOCK_WAIT}", APT_INSTALL + " " + " ".join(BASE_PACKAGES)),
    )


def ensure_base_packages(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = base_packages_step(spec, facts.os)
    missing = [p for p in BASE_PACKAGES if facts.packages.get(p, ("", ""))[0] != "installed"]
    return _result(step, [f"not installed: {', '.join(missing)}"] if missing else [])


# apt repositories


def _fetch_key(url: str, keyring: str) -> tuple[str, ...]:
    new = f"{keyring}.v6kube-new"
    return (f"install -d -m 0755 {q(KEYRINGS_DIR)}", f"curl -fsSL --retry 5 -o {q(new)} {q(url)}",
            f"chmod 0644 {q(new)}", f"mv -f {q(new)} {q(keyring)}")


def docker_sources(spec: PrepareSpec, os: OSRelease) -> str:
    return render("node/docker.sources.j2", os_id=os.id, codename=os.codename, keyring=DOCKER_KEYRING,
                  architecture=spec.architecture)


def docker_repo_step(spec: PrepareSpec, os: OSRelease) -> Step:
    content = docker_sources(spec, os)
    return Step(
        name="docker-repo",
        summary=f"apt has the Docker repository for {os.id} {os.codename} (containerd 2.x)",
        check=_all(_call("nonempty", DOCKER_KEYRING), _call("file_is", DOCKER_SOURCES, content),
                   _call("absent", DOCKER_LIST)),
        # The old one-line list would name the repository twice (apt warns, or errors on a
        # different signed-by).
        commands=(*_fetch_key(f"https://download.docker.com/linux/{os.id}/gpg", DOCKER_KEYRING),
                  *write_file(DOCKER_SOURCES, content), f"rm -f {q(DOCKER_LIST)}"),
    )


def ensure_docker_repo(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = docker_repo_step(spec, facts.os)
    problems = [] if DOCKER_KEYRING in facts.keyrings else [f"{DOCKER_KEYRING} is missing"]
    problems += _file_problem(facts, DOCKER_SOURCES, docker_sources(spec, facts.os))
    if DOCKER_LIST in facts.files:
        problems.append(f"the old {DOCKER_LIST} is still there")
    return _result(step, problems)


def kubernetes_list(spec: PrepareSpec) -> str:
    return render("node/kubernetes.list.j2", minor=spec.kubernetes_minor, keyring=KUBERNETES_KEYRING)


def kubernetes_repo_step(spec: PrepareSpec, os: OSRelease) -> Step:
    content = kubernetes_list(spec)
    url = f"https://pkgs.k8s.io/core:/stable:/v{spec.kubernetes_minor}/deb/Release.key"
    return Step(
        name="kubernetes-repo",
        summary=f"apt has the pkgs.k8s.io repository for Kubernetes {spec.kubernetes_minor}",
        check=_all(_call("nonempty", KUBERNETES_KEYRING), _call("file_is", KUBERNETES_LIST, content)),
        commands=(*_fetch_key(url, KUBERNETES_KEYRING), *write_file(KUBERNETES_LIST, content)),
    )


def ensure_kubernetes_repo(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = kubernetes_repo_step(spec, facts.os)
    problems = [] if KUBERNETES_KEYRING in facts.keyrings else [f"{KUBERNETES_KEYRING} is missing"]
    return _result(step, problems + _file_problem(facts, KUBERNETES_LIST, kubernetes_list(spec)))


# packages


def _wanted_packages(spec: PrepareSpec) -> list[tuple[str, str]]:
    """(package, version prefix) pairs."""
    return [(CONTAINERD_PACKAGE, f"{spec.containerd_major}.")] + [
        (p, f"{spec.kubernetes_minor}.") for p in KUBERNETES_PACKAGES]


def packages_step(spec: PrepareSpec, os: OSRelease) -> Step:
    wanted = _wanted_packages(spec)
    held = " ".join(KUBERNETES_PACKAGES)
    return Step(
        name="packages",
        summary="containerd " + f"{spec.containerd_major}.x and kubelet, kubeadm, kubectl "
                f"{spec.kubernetes_minor} are installed",
        check=_all(*(_call("package_installed", p, prefix) for p, prefix in wanted)),
        # As kubeadm's upgrade docs do: unhold, install the wanted minor, hold again. A held
        # package at another version would otherwise stop apt-get (held packages are not changed).
        commands=(f"apt-get update -q {APT_LOCK_WAIT}", f"apt-mark unhold {held}",
                  APT_INSTALL + " " + " ".join(q(f"{p}={prefix}*") for p, prefix in wanted),
                  f"apt-mark hold {held}"),
    )


def ensure_packages(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = packages_step(spec, facts.os)
    problems = []
    for package, prefix in _wanted_packages(spec):
        status, version = facts.packages.get(package, ("", ""))
        if status != "installed":
            problems.append(f"{package} is not installed")
        elif not version.startswith(prefix):
            problems.append(f"{package} {version} is installed, {prefix}* wanted")
    return _result(step, problems)


def packages_held_step(spec: PrepareSpec, os: OSRelease) -> Step:
    return Step(
        name="packages-held",
        summary="kubelet, kubeadm and kubectl are held (upgrades go through kubeadm)",
        check=_all(*(_call("package_held", p) for p in KUBERNETES_PACKAGES)),
        commands=("apt-mark hold " + " ".join(KUBERNETES_PACKAGES),),
    )


def ensure_packages_held(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = packages_held_step(spec, facts.os)
    loose = [p for p in KUBERNETES_PACKAGES if p not in facts.holds]
    return _result(step, [f"not held: {', '.join(loose)}"] if loose else [])


# containerd


def containerd_config(spec: PrepareSpec) -> str:
    return render("node/containerd-config.toml.j2", pause_image=pause_image(spec.kubernetes_minor),
                  minor=spec.kubernetes_minor)


def containerd_config_step(spec: PrepareSpec, os: OSRelease) -> Step:
    content = containerd_config(spec)
    return Step(
        name="containerd-config",
        summary="containerd uses the systemd cgroup driver and the pause image of Kubernetes "
                f"{spec.kubernetes_minor} (config version 3)",
        check=_call("file_is", CONTAINERD_CONFIG, content),
        commands=(*write_file(CONTAINERD_CONFIG, content), "systemctl restart containerd"),
    )


def ensure_containerd_config(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = containerd_config_step(spec, facts.os)
    return _result(step, _file_problem(facts, CONTAINERD_CONFIG, containerd_config(spec)))
