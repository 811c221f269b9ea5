"""Rendered files: golden copies per example, real YAML parsing, and validation against the real
references (kubeadm v1beta4 field tree, Calico and operator CRD schemas, Kubernetes core schemas)."""

from __future__ import annotations

import json
import os
from ipaddress import IPv6Address
from pathlib import Path

import pytest
import yaml

from v6kube import planner
from v6kube.config import load_cluster
from v6kube.redact import Secret

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ["packet", "static", "minimal"]
GOLDEN = ROOT / "tests" / "golden"
SCHEMAS = ROOT.parent / "shared" / "reference" / "schemas"
UPDATE = os.environ.get("V6KUBE_UPDATE_GOLDEN") == "1"


def plan_for(example: str) -> planner.ClusterPlan:
    cluster = load_cluster(ROOT / "examples" / f"{example}.yaml")
    return planner.offline_plan(cluster)


def rendered(example: str) -> dict[str, str]:
    return planner.render_files(plan_for(example))


def yaml_files(example: str) -> dict[str, list]:
    return {name: [d for d in yaml.safe_load_all(text) if d is not None]
            for name, text in rendered(example).items() if name.endswith(".yaml")}


def need_schemas():
    if not SCHEMAS.is_dir():  # reference data beside the repository, not part of it
        pytest.skip(f"{SCHEMAS} is not present")


# --- golden files ----------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES)
def test_golden_files(example):
    files = rendered(example)
    folder = GOLDEN / example
    if UPDATE:
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
    expected = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert sorted(files) == expected, "run with V6KUBE_UPDATE_GOLDEN=1 after an intended change"
    for name, text in files.items():
        assert text == (folder / name).read_text(), f"{example}/{name} differs from its golden copy"


def test_every_template_is_rendered():
    used = {"kubeadm/init.yaml.j2", "kubeadm/join.yaml.j2", "calico/installation.yaml.j2", "calico/bgp.yaml.j2"}
    templates = {str(p.relative_to(ROOT / "templates")) for p in (ROOT / "templates").rglob("*.j2")}
    assert used <= templates
    for example in EXAMPLES:
        files = rendered(example)
        assert "kubeadm/init.yaml" in files and "calico/installation.yaml" in files and "calico/bgp.yaml" in files


# --- what the YAML says ----------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES)
def test_rendered_yaml_parses_and_keeps_ipv6_literals_as_strings(example):
    plan = plan_for(example)
    docs = yaml_files(example)
    init = {d["kind"]: d for d in docs["kubeadm/init.yaml"]}
    cp = plan.addresses.node(plan.cluster.control_plane.name)
    assert init["InitConfiguration"]["localAPIEndpoint"]["advertiseAddress"] == str(cp.address)
    assert init["InitConfiguration"]["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "node-ip", "value": str(cp.address)}]
    assert init["InitConfiguration"]["nodeRegistration"]["criSocket"] == "unix:///run/containerd/containerd.sock"
    assert "bootstrapTokens" not in init["InitConfiguration"]  # offline: never a well-known token
    cc = init["ClusterConfiguration"]
    assert cc["controlPlaneEndpoint"] == f"[{cp.address}]:6443"
    assert cc["networking"] == {"podSubnet": str(plan.addresses.pod_subnet),
                                "serviceSubnet": str(plan.addresses.service_subnet), "dnsDomain": "cluster.local"}
    assert {"name": "node-cidr-mask-size-ipv6", "value": str(plan.addresses.node_cidr_mask)} in cc["controllerManager"]["extraArgs"]
    assert cc["kubernetesVersion"] == f"stable-{plan.cluster.kubernetes.version}"
    # pods resolve through the IPv6-only file node preparation writes, on every node
    from v6kube.nodes import KUBELET_RESOLV_CONF

    assert init["KubeletConfiguration"] == {"apiVersion": "kubelet.config.k8s.io/v1beta1",
                                            "kind": "KubeletConfiguration", "cgroupDriver": "systemd",
                                            "resolvConf": KUBELET_RESOLV_CONF}
    script = rendered(example)[f"nodes/{cp.name}/prepare.sh"]
    assert KUBELET_RESOLV_CONF in script and all(f"nameserver {r}" in script
                                                  for r in plan.cluster.kubernetes.dns_resolvers)

    for node in plan.addresses.nodes:
        if node.role != "worker":
            continue
        (join,) = docs[f"kubeadm/join-{node.name}.yaml"]
        discovery = join["discovery"]["bootstrapToken"]
        assert discovery["apiServerEndpoint"] == f"[{cp.address}]:6443"
        assert discovery["caCertHashes"][0].startswith("sha256:")
        assert join["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "node-ip", "value": str(node.address)}]
        assert join["nodeRegistration"]["name"] == node.name

    (installation, apiserver) = docs["calico/installation.yaml"]
    network = installation["spec"]["calicoNetwork"]
    assert network["bgp"] == "Enabled"
    assert network["ipPools"] == [{"name": "default-ipv6-ippool", "cidr": str(plan.addresses.pod_subnet),
                                   "blockSize": plan.addresses.block_size, "encapsulation": "None",
                                   "natOutgoing": "Disabled", "nodeSelector": "all()"}]
    assert network["nodeAddressAutodetectionV6"] == {"kubernetes": "NodeInternalIP"}
    assert "nodeAddressAutodetectionV4" not in network
    assert apiserver["kind"] == "APIServer"

    bgp = docs["calico/bgp.yaml"]
    config = bgp[0]
    assert config["kind"] == "BGPConfiguration" and config["metadata"]["name"] == "default"
    assert config["spec"]["nodeToNodeMeshEnabled"] is False
    assert config["spec"]["asNumber"] == plan.bgp.local_asn
    assert config["spec"]["serviceClusterIPs"] == [{"cidr": str(plan.addresses.service_subnet)}]
    peers = [d for d in bgp if d["kind"] == "BGPPeer"]
    assert len(peers) == len(plan.addresses.nodes) * len(plan.bgp.peers)
    assert {(p["spec"]["node"], p["spec"]["peerIP"]) for p in peers} == {
        (n.name, str(ip)) for n in plan.addresses.nodes for ip in plan.bgp.peers}
    assert len({p["metadata"]["name"] for p in peers}) == len(peers)
    for peer in peers:
        assert peer["spec"]["asNumber"] == plan.bgp.peer_asn
        if "password" in peer["spec"]:
            assert peer["spec"]["password"] == {"secretKeyRef": {"name": planner.BGP_SECRET_NAME, "key": "password"}}


def test_bgp_password_only_through_a_secret_with_rbac():
    plan = plan_for("static")  # names bgp_password_env
    text = planner.render_bgp(plan, planner.Secrets(bgp_password=Secret("Abcdef12345XyZ")))
    docs = list(yaml.safe_load_all(text))
    kinds = [d["kind"] for d in docs]
    assert kinds.count("Secret") == 1 and "Role" in kinds and "RoleBinding" in kinds
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert secret["metadata"]["namespace"] == "calico-system"
    assert secret["stringData"]["password"] == "Abcdef12345XyZ"
    role = next(d for d in docs if d["kind"] == "Role")
    assert role["rules"][0]["resourceNames"] == [planner.BGP_SECRET_NAME]
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "calico-node", "namespace": "calico-system"}]
    # the password appears exactly once: in the Secret, never inline in a BGPPeer
    assert text.count("Abcdef12345XyZ") == 1


def test_bgp_peer_names_are_unique_and_valid():
    import re

    peers = [IPv6Address("2001:db8:1::e"), IPv6Address("2001:db8:2::e"), IPv6Address("fc00::e")]
    names = {planner.bgp_peer_name("worker-10", p) for p in peers}
    assert len(names) == 3
    assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", n) and len(n) <= 253 for n in names)


def test_no_password_means_no_secret():
    plan = plan_for("minimal")
    plan = planner.ClusterPlan(plan.cluster, plan.addresses,
                               planner.BGPPlan(65000, 65530, plan.bgp.peers, True, None), plan.assumed)
    docs = list(yaml.safe_load_all(planner.render_bgp(plan, planner.Secrets())))
    assert "Secret" not in [d["kind"] for d in docs]
    assert all("password" not in d["spec"] for d in docs if d["kind"] == "BGPPeer")


def test_offline_packet_plan_without_a_password_variable_assumes_no_md5():
    plan = plan_for("packet")  # names no bgp_password_env
    assert plan.bgp.password_source is None
    assert plan.assumed["bgp_password"].startswith("no MD5 password: v6kube enables Local BGP without one")
    docs = list(yaml.safe_load_all(planner.render_bgp(plan, planner.Secrets())))
    assert {d["kind"] for d in docs} == {"BGPConfiguration", "BGPPeer"}
    assert all("password" not in d["spec"] for d in docs if d["kind"] == "BGPPeer")
    assert planner.plan_document(plan, [])["placeholders"]["bgp_password"] is None


def test_offline_packet_plan_with_a_password_variable_renders_the_placeholder(tmp_path):
    text = (ROOT / "examples" / "packet.yaml").read_text().replace(
        "# bgp_password_env: V6KUBE_BGP_PASSWORD", "bgp_password_env: V6KUBE_BGP_PASSWORD")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    plan = planner.offline_plan(load_cluster(path))
    assert plan.bgp.password_source == "$V6KUBE_BGP_PASSWORD" and "bgp_password" not in plan.assumed
    docs = list(yaml.safe_load_all(planner.render_bgp(plan, planner.Secrets())))
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert secret["stringData"]["password"] == planner.PLACEHOLDER_BGP_PASSWORD


def test_only_an_offline_plan_may_carry_the_password_placeholder():
    import dataclasses

    from v6kube.errors import UsageError

    real = dataclasses.replace(plan_for("static"), offline=False)  # as create would build it
    with pytest.raises(UsageError, match=r"BGP MD5 password \(from \$V6KUBE_BGP_PASSWORD\) is missing"):
        planner.render_bgp(real, planner.Secrets())
    text = planner.render_bgp(real, planner.Secrets(bgp_password=Secret("Abcdef12345XyZ")))
    assert planner.PLACEHOLDER_BGP_PASSWORD not in text and "Abcdef12345XyZ" in text


def test_real_secrets_are_rendered_when_given():
    plan = plan_for("packet")
    secrets = planner.Secrets(bootstrap_token=Secret("abcdef.0123456789abcdef"),
                              ca_cert_hash="sha256:" + "ab" * 32)
    node = plan.addresses.node("worker-0")
    join = yaml.safe_load(planner.render_join(plan, node, secrets))
    assert join["discovery"]["bootstrapToken"]["token"] == "abcdef.0123456789abcdef"
    init = list(yaml.safe_load_all(planner.render_init(plan, secrets)))
    assert init[0]["bootstrapTokens"][0]["token"] == "abcdef.0123456789abcdef"


def test_values_with_yaml_specials_stay_strings(tmp_path):
    """A cluster name is a DNS label, but values like 'on', 'no' or '1e3' must not turn into bools or numbers."""
    text = (ROOT / "examples" / "minimal.yaml").read_text().replace("name: tiny", 'name: "no"')
    path = tmp_path / "c.yaml"
    path.write_text(text)
    plan = planner.offline_plan(load_cluster(path))
    cc = list(yaml.safe_load_all(planner.render_init(plan, planner.Secrets())))[1]
    assert cc["clusterName"] == "no"


# --- kubeadm v1beta4 field tree --------------------------------------------------------------


def check_kubeadm(doc, type_name: str, tree: dict, path: str) -> list[str]:
    types, errors = tree["types"], []
    fields = dict(types[type_name])
    for inline in fields.pop("@inline", []):
        fields.update(types[inline])
    for key, value in doc.items():
        if key not in fields:
            errors.append(f"{path}.{key}: not a field of {type_name}")
            continue
        errors += check_kubeadm_value(value, fields[key], tree, f"{path}.{key}")
    return errors


def check_kubeadm_value(value, type_text: str, tree: dict, path: str) -> list[str]:
    if type_text.startswith("[]"):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [e for i, v in enumerate(value) for e in check_kubeadm_value(v, type_text[2:], tree, f"{path}[{i}]")]
    if type_text.startswith("map["):
        return [] if isinstance(value, dict) else [f"{path}: expected a map"]
    python_type = {"string": str, "bool": bool, "int32": int, "int": int, "Duration": str, "Time": str}.get(type_text)
    if python_type:
        return [] if isinstance(value, python_type) else [f"{path}: expected {type_text}, got {value!r}"]
    if type_text in tree.get("enums", {}):
        return [] if value in tree["enums"][type_text] else [f"{path}: {value!r} not in {type_text}"]
    if type_text in tree["types"]:
        return check_kubeadm(value, type_text, tree, path) if isinstance(value, dict) else [f"{path}: expected {type_text}"]
    return []  # external types (core/v1) are not descended into


@pytest.mark.parametrize("example", EXAMPLES)
def test_kubeadm_configs_match_the_v1beta4_field_tree(example):
    need_schemas()
    tree = json.loads((SCHEMAS / "kubeadm-v1beta4-fields.json").read_text())
    for name, docs in yaml_files(example).items():
        if not name.startswith("kubeadm/"):
            continue
        for doc in docs:
            if doc["kind"] in tree["componentConfigs"]:  # not kubeadm's own type: checked below
                assert doc["apiVersion"] == tree["componentConfigs"][doc["kind"]]
                continue
            assert doc["apiVersion"] == tree["apiVersion"]
            assert doc["kind"] in tree["documentKinds"]
            assert check_kubeadm(doc, doc["kind"], tree, f"{name}:{doc['kind']}") == []


def test_the_field_tree_check_catches_mistakes():
    need_schemas()
    tree = json.loads((SCHEMAS / "kubeadm-v1beta4-fields.json").read_text())
    bad = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
           "networking": {"podSubnet": "x", "podCIDR": "y"},
           "controllerManager": {"extraArgs": {"node-cidr-mask-size-ipv6": "80"}}}
    errors = check_kubeadm(bad, "ClusterConfiguration", tree, "c")
    assert any("podCIDR" in e for e in errors) and any("extraArgs" in e for e in errors)


# --- Calico and operator CRD schemas ---------------------------------------------------------

CRD_FILES = {
    ("operator.tigera.io/v1", "Installation"): "operator.tigera.io/Installation.json",
    ("operator.tigera.io/v1", "APIServer"): "operator.tigera.io/APIServer.json",
    ("projectcalico.org/v3", "BGPConfiguration"): "projectcalico.org/BGPConfiguration.json",
    ("projectcalico.org/v3", "BGPPeer"): "projectcalico.org/BGPPeer.json",
    ("projectcalico.org/v3", "IPPool"): "projectcalico.org/IPPool.json",
    ("projectcalico.org/v3", "BlockAffinity"): "projectcalico.org/BlockAffinity.json",
    ("crd.projectcalico.org/v1", "BlockAffinity"): "crd.projectcalico.org/BlockAffinity.json",
    ("projectcalico.org/v3", "CalicoNodeStatus"): "projectcalico.org/CalicoNodeStatus.json",
}


def crd_schema(key) -> dict:
    """A CRD's openAPIV3Schema with Go regexes made Python ones ("^(?i)x" -> "(?i)^x")."""

    def fix(node):
        if isinstance(node, list):
            return [fix(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str) and "(?i)" in value:
                value = "(?i)" + value.replace("(?i)", "")
            out[key] = fix(value)
        return out

    return fix(json.loads((SCHEMAS / "crds" / CRD_FILES[key]).read_text())["openAPIV3Schema"])


def validate_crd(doc, schema) -> None:
    import jsonschema

    jsonschema.Draft7Validator(schema).validate(doc)


def unknown_fields(doc, schema, path="") -> list[str]:
    """Keys the schema does not define (the API server would prune them silently)."""
    errors = []
    if isinstance(doc, dict) and "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        for key, value in doc.items():
            if key in schema["properties"]:
                errors += unknown_fields(value, schema["properties"][key], f"{path}.{key}")
            elif not schema.get("additionalProperties"):
                errors.append(f"{path}.{key}")
    elif isinstance(doc, list) and "items" in schema:
        for i, item in enumerate(doc):
            errors += unknown_fields(item, schema["items"], f"{path}[{i}]")
    return errors


@pytest.mark.parametrize("example", EXAMPLES)
def test_calico_resources_match_their_crd_schemas(example):
    need_schemas()
    checked = 0
    for name, docs in yaml_files(example).items():
        if not name.startswith("calico/"):
            continue
        for doc in docs:
            key = (doc["apiVersion"], doc["kind"])
            if key not in CRD_FILES:
                assert doc["apiVersion"] in ("v1", "rbac.authorization.k8s.io/v1"), key
                continue
            schema = crd_schema(key)
            validate_crd(doc, schema)  # types, enums, patterns, required
            assert unknown_fields(doc, schema) == [], f"{name}: {doc['kind']}"
            checked += 1
    assert checked >= 4


def test_crd_check_catches_mistakes():
    need_schemas()
    import jsonschema

    schema = crd_schema(("operator.tigera.io/v1", "Installation"))
    doc = {"apiVersion": "operator.tigera.io/v1", "kind": "Installation", "metadata": {"name": "default"},
           "spec": {"calicoNetwork": {"ipPools": [{"cidr": "x", "encapsulation": "GRE", "natOutgoin": "Disabled"}]}}}
    with pytest.raises(jsonschema.ValidationError):
        validate_crd(doc, schema)
    assert unknown_fields(doc, schema) == [".spec.calicoNetwork.ipPools[0].natOutgoin"]


# --- core Kubernetes objects: kubernetes-validate --strict ------------------------------------


@pytest.mark.parametrize("example", ["static"])
def test_core_objects_pass_kubernetes_validate_strict(example):
    import kubernetes_validate

    plan = plan_for(example)
    docs = list(yaml.safe_load_all(planner.render_bgp(plan, planner.Secrets(bgp_password=Secret("Abcdef12345")))))
    core = [d for d in docs if d["apiVersion"] in ("v1", "rbac.authorization.k8s.io/v1")]
    assert {d["kind"] for d in core} == {"Secret", "Role", "RoleBinding"}
    for doc in core:
        kubernetes_validate.validate(doc, plan.cluster.kubernetes.version, strict=True)
    broken = dict(core[0], metadata={"name": "x", "namespac": "calico-system"})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, plan.cluster.kubernetes.version, strict=True)
