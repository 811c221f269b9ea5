"""Report rows from provider servers and Kubernetes API objects; the objects used here are checked
against the real schemas first (kubernetes-validate --strict for Node and Service, the Calico CRD
schemas for BlockAffinity and CalicoNodeStatus), so the parsers read what the API really returns."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, IPv6Network

import kubernetes_validate
import pytest

from v6kube.announce import LocalService, ServiceRef
from v6kube.providers.base import Server
from v6kube.status import cluster as c
from v6kube.status.report import Report

from test_render import crd_schema, need_schemas, unknown_fields, validate_crd


def k8s_node(name: str, ready: str, version: str = "v1.33.4") -> dict:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {"podCIDR": "2001:db8:0:2a01::/80", "podCIDRs": ["2001:db8:0:2a01::/80"]},
            "status": {"conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                 "lastHeartbeatTime": "2026-12-03T15:00:00Z", "lastTransitionTime": "2026-12-03T14:00:00Z"},
                {"type": "Ready", "status": ready, "reason": "KubeletReady" if ready == "True" else "KubeletNotReady",
                 "lastHeartbeatTime": "2026-12-03T15:00:00Z", "lastTransitionTime": "2026-12-03T14:00:00Z"}],
                "addresses": [{"type": "InternalIP", "address": "2001:db8:0:2a00::3"}, {"type": "Hostname", "address": name}],
                "nodeInfo": {"kubeletVersion": version, "kubeProxyVersion": version, "architecture": "amd64",
                             "operatingSystem": "linux", "osImage": "Ubuntu 24.04.3 LTS", "kernelVersion": "6.8.0-45-generic",
                             "containerRuntimeVersion": "containerd://2.1.4", "machineID": "0" * 32,
                             "systemUUID": "4c4c4544-0000-0000-0000-000000000000", "bootID": "b" * 32}}}
    kubernetes_validate.validate(node, "1.33", strict=True)
    return node


def test_servers_in_cluster_file_order_and_a_missing_one_is_an_error():
    servers = [Server("id-1", "worker-0", "worker", "provisioning", IPv6Address("2001:db8::5")),
               Server("id-0", "cp-0", "control-plane", "active", IPv6Address("2001:db8::3"), ipv4_public=IPv4Address("192.0.2.3"))]
    rows = c.server_rows(["cp-0", "worker-0", "worker-1"], servers)
    assert [(r.name, r.provider_state, r.addresses, r.error) for r in rows] == [
        ("cp-0", "active", ("2001:db8::3", "192.0.2.3"), None), ("worker-0", "provisioning", ("2001:db8::5",), None),
        ("worker-1", None, (), "not found at the provider")]
    reasons = Report("x", servers=rows).degraded
    assert reasons == ["server worker-0: provider state provisioning", "server worker-1: not found at the provider"]


def test_nodes_ready_not_ready_missing_and_unreachable():
    doc = {"apiVersion": "v1", "kind": "List", "items": [k8s_node("cp-0", "True"), k8s_node("worker-0", "False"),
                                                          k8s_node("worker-1", "Unknown", "v1.33.1")]}
    rows = c.node_rows(["cp-0", "worker-0", "worker-1", "worker-2"], doc, unreachable={"worker-1": "SSH: connection refused"})
    assert [(r.name, r.ready, r.version, r.reachable, r.error) for r in rows] == [
        ("cp-0", True, "v1.33.4", True, None), ("worker-0", False, "v1.33.4", True, None),
        ("worker-1", None, "v1.33.1", False, "SSH: connection refused"),
        ("worker-2", None, None, True, "not registered in Kubernetes")]
    reasons = Report("x", nodes=rows).degraded
    assert "node worker-0: not Ready" in reasons and "node worker-2: Ready unknown (not registered in Kubernetes)" in reasons
    assert "node worker-1: unreachable, its BGP sessions are unknown (SSH: connection refused)" in reasons
    assert not any(r.startswith("node cp-0") for r in reasons)
    down = c.node_rows(["cp-0"], None, api_error="connection refused")
    assert down[0].ready is None and "the API server did not answer: connection refused" in down[0].error


@pytest.mark.parametrize("api", ["crd.projectcalico.org/v1", "projectcalico.org/v3"])
def test_node_blocks_from_block_affinities(api):
    need_schemas()
    v1 = api.startswith("crd.")

    def affinity(name, node, cidr, state="confirmed", deleted=False, kind="host"):
        doc = {"apiVersion": api, "kind": "BlockAffinity", "metadata": {"name": name},
               "spec": {"node": node, "cidr": cidr, "state": state, "type": kind,
                        "deleted": str(deleted).lower() if v1 else deleted}}
        schema = crd_schema((api, "BlockAffinity"))
        validate_crd(doc, schema)
        assert unknown_fields(doc, schema) == []
        return doc

    doc = {"items": [affinity("a", "cp-0", "2001:db8:0:2a01::40/122"), affinity("b", "cp-0", "2001:db8:0:2a01::/122"),
                     affinity("c", "worker-0", "2001:db8:0:2a01::80/122"),
                     affinity("d", "worker-0", "2001:db8:0:2a01::c0/122", state="pending"),
                     affinity("e", "worker-1", "2001:db8:0:2a01::100/122", deleted=True),
                     affinity("f", "load-balancer", "2001:db8:0:2a03::/122", kind="virtual"),
                     affinity("g", "cp-0", "10.244.0.0/26")]}
    assert c.node_blocks(doc) == {"cp-0": [IPv6Network("2001:db8:0:2a01::/122"), IPv6Network("2001:db8:0:2a01::40/122")],
                                  "worker-0": [IPv6Network("2001:db8:0:2a01::80/122")]}


def test_sessions_from_a_calico_node_status_object():
    need_schemas()
    obj = {"apiVersion": "projectcalico.org/v3", "kind": "CalicoNodeStatus", "metadata": {"name": "v6kube-cp-0"},
           "spec": {"node": "cp-0", "classes": ["Agent", "BGP"], "updatePeriodSeconds": 10},
           "status": {"lastUpdated": "2026-12-03T15:00:00Z",
                      "agent": {"birdV6": {"state": "Ready", "version": "v0.3.3+birdv1.6.8", "routerID": "10.0.0.3",
                                           "lastBootTime": "2026-12-03 14:00:00", "lastReconfigurationTime": "2026-12-03 14:00:01"}},
                      "bgp": {"numberEstablishedV6": 1, "numberNotEstablishedV6": 1, "numberEstablishedV4": 0,
                              "numberNotEstablishedV4": 0,
                              "peersV6": [{"peerIP": "fc00::e", "state": "Established", "since": "14:00:05", "type": "NodePeer"},
                                          {"peerIP": "fc00::f", "state": "Active", "since": "14:00:05", "type": "NodePeer"}]}}}
    schema = crd_schema(("projectcalico.org/v3", "CalicoNodeStatus"))
    validate_crd(obj, schema)
    assert unknown_fields(obj, schema) == []
    rows = c.sessions_from_calico_node_status(obj)
    assert [(r.node, r.peer, r.state, r.established) for r in rows] == [
        ("cp-0", "fc00::e", "Established", True), ("cp-0", "fc00::f", "Active", False)]
    assert Report("x", sessions=rows).degraded == ["cp-0: BGP session with fc00::f is Active on the node side (since 14:00:05)"]
    obj["status"]["agent"]["birdV6"]["state"] = "NotReady"
    [row] = c.sessions_from_calico_node_status(obj)
    assert row.established is False and "not ready" in row.info


def test_local_service_addresses_from_a_real_service_object():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
           "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ipFamilies": ["IPv6"],
                    "ipFamilyPolicy": "SingleStack", "clusterIP": "2001:db8:0:2a02::5b", "clusterIPs": ["2001:db8:0:2a02::5b"],
                    "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 31080}],
                    "healthCheckNodePort": 32000, "selector": {"app": "web"}},
           "status": {"loadBalancer": {"ingress": [{"ip": "2001:db8:0:2a03::7", "ipMode": "VIP"}]}}}
    kubernetes_validate.validate(svc, "1.33", strict=True)
    local = LocalService.from_object(svc)
    assert local == LocalService(ServiceRef("shop", "web"), (IPv6Address("2001:db8:0:2a02::5b"), IPv6Address("2001:db8:0:2a03::7")))
