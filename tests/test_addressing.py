"""The IPv6 address plan: table tests and properties (no carved ranges overlap, all inside the block)."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from v6kube import addressing
from v6kube.addressing import carve, node_cidr_mask, prefixes_per_node, server_networks
from v6kube.config import parse_cluster

N = IPv6Network


@pytest.mark.parametrize(
    "block, servers, pods, services",
    [
        # Packet: servers' /127s sit in the first /64 of the /56
        ("2604:1380:4641:c500::/56", ["2604:1380:4641:c500::3"], "2604:1380:4641:c501::/64",
         "2604:1380:4641:c502::/108"),
        # servers in a later /64: the first free ones are used, in order
        ("2001:db8:0:2a00::/56", ["2001:db8:0:2a01::10"], "2001:db8:0:2a00::/64", "2001:db8:0:2a02::/108"),
        # servers outside the block: nothing to avoid
        ("2001:db8:0:2a00::/56", ["2001:db8:ffff::10"], "2001:db8:0:2a00::/64", "2001:db8:0:2a01::/108"),
        # a /48 block behaves the same way
        ("2001:db8:7::/48", ["2001:db8:7::2", "2001:db8:7:1::2"], "2001:db8:7:2::/64", "2001:db8:7:3::/108"),
        # a /62: four /64s, one taken
        ("2001:db8:0:10::/62", ["2001:db8:0:10::1"], "2001:db8:0:11::/64", "2001:db8:0:12::/108"),
        # a /64 routed to us with no servers inside: split in two halves
        ("2001:db8:0:20::/64", [], "2001:db8:0:20::/65", "2001:db8:0:20:8000::/108"),
        # a /112 block: the second half is smaller than a /108 and becomes the service subnet
        ("2001:db8::/112", [], "2001:db8::/113", "2001:db8::8000/113"),
    ],
)
def test_carve_table(block, servers, pods, services):
    got = carve(N(block), server_networks([IPv6Address(s) for s in servers if IPv6Address(s) in N(block)]))
    assert got == (N(pods), N(services))


def test_carve_gives_up_when_the_block_is_full_of_servers():
    block = N("2001:db8::/63")
    assert carve(block, (N("2001:db8::/64"),)) == (None, None)
    assert carve(N("2001:db8::/62"), tuple(N("2001:db8::/62").subnets(new_prefix=64))[:3]) == (N("2001:db8:0:3::/64"), None)


@pytest.mark.parametrize("pod_prefix, mask", [(48, 64), (56, 72), (64, 80), (96, 112), (108, 120), (118, 120), (120, 120)])
def test_node_cidr_mask(pod_prefix, mask):
    assert node_cidr_mask(pod_prefix) == mask
    assert mask - pod_prefix <= 16  # kubeadm's PodSubnetNodeMaskMaxDiff


@pytest.mark.parametrize("block_size, extra, count", [(122, 1, 3), (116, 1, 2), (126, 1, 29), (128, 0, 110), (120, 3, 4)])
def test_prefixes_per_node(block_size, extra, count):
    assert prefixes_per_node(block_size, extra) == count


STATIC = """
name: t
provider: {type: static, block: "2001:db8:0:2a00::/56", peers: ["2001:db8:ffff::e"]}
nodes:
  - {name: cp-0, role: control-plane, address: "2001:db8:0:2a00::3", gateway: "2001:db8:0:2a00::1"}
  - {name: w-0, role: worker, address: "2001:db8:0:2a00::5", gateway: "2001:db8:0:2a00::1"}
"""


def test_plan_from_static_cluster():
    cluster = parse_cluster(STATIC)
    plan, problems = addressing.plan_addresses(cluster, cluster.provider.block,
                                               addressing.static_node_addresses(cluster), 10)
    assert problems == []
    assert plan.pod_subnet == N("2001:db8:0:2a01::/64")
    assert plan.service_subnet == N("2001:db8:0:2a02::/108")
    assert plan.api_service_ip == IPv6Address("2001:db8:0:2a02::1")
    assert plan.dns_service_ip == IPv6Address("2001:db8:0:2a02::a")
    assert plan.node_cidr_mask == 80 and plan.node_ranges == 65536
    assert plan.announced == (plan.service_subnet,)
    assert plan.prefixes_per_node == 3


def test_assumed_packet_addresses_are_127s_in_the_first_64():
    cluster = parse_cluster(STATIC.replace('type: static, block: "2001:db8:0:2a00::/56", peers: ["2001:db8:ffff::e"]',
                                           "type: packet, project: 0c6a1d3e-2b4f-4d8a-9c71-5e3f2a1b7c90").replace(
        ', address: "2001:db8:0:2a00::3", gateway: "2001:db8:0:2a00::1"', "").replace(
        ', address: "2001:db8:0:2a00::5", gateway: "2001:db8:0:2a00::1"', ""))
    nodes = addressing.assumed_packet_addresses(cluster, N("2604:1380:4641:c500::/56"))
    assert [(str(n.address), str(n.gateway), n.prefixlen) for n in nodes] == [
        ("2604:1380:4641:c500::3", "2604:1380:4641:c500::2", 127),
        ("2604:1380:4641:c500::5", "2604:1380:4641:c500::4", 127),
    ]


@st.composite
def blocks_and_servers(draw):
    prefixlen = draw(st.integers(min_value=40, max_value=62))
    base = draw(st.integers(min_value=0, max_value=2**128 - 1))
    block = IPv6Network((base >> (128 - prefixlen) << (128 - prefixlen), prefixlen))
    size = block.num_addresses
    offsets = draw(st.lists(st.integers(min_value=0, max_value=size - 1), max_size=6))
    # a few servers packed into the first /64s, as providers do
    packed = draw(st.lists(st.integers(min_value=0, max_value=min(3, size // 2**64 - 1)), max_size=3))
    servers = [block[o] for o in offsets] + [block[p * 2**64 + 3] for p in packed]
    return block, servers


@settings(max_examples=300, deadline=None)
@given(blocks_and_servers())
def test_carved_ranges_never_overlap_and_stay_inside_the_block(case):
    block, servers = case
    nets = server_networks(servers)
    pods, services = carve(block, nets)
    if pods is None or services is None:
        # only when the servers really fill the block
        assert len(nets) >= block.num_addresses // 2**64 - 1
        return
    assert pods.subnet_of(block) and services.subnet_of(block)
    assert not pods.overlaps(services)
    for net in nets:
        assert not pods.overlaps(net) and not services.overlaps(net)
    assert pods.prefixlen == 64 and services.prefixlen == 108
    assert not addressing.check_subnet_shapes(pods, services, 122, 100)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=63, max_value=118), st.integers(min_value=0, max_value=2**64 - 1))
def test_small_blocks_split_without_overlap(prefixlen, seed):
    block = IPv6Network(((0x20010DB8 << 96) | (seed << 64 >> 64 >> (128 - prefixlen) << (128 - prefixlen)), prefixlen))
    pods, services = carve(block, ())
    assert pods is not None and services is not None
    assert pods.subnet_of(block) and services.subnet_of(block)
    assert not pods.overlaps(services)
    assert services.prefixlen >= 108


def test_checks_run_on_the_inputs_that_are_known():
    cluster = parse_cluster(STATIC)
    block, pods, services = N("2001:db8:0:2a00::/56"), N("2001:db8:1::/64"), N("2001:db8:2::/108")
    # the service subnet is unknown (invalid, reported elsewhere): the pod subnet is still checked
    problems = addressing.check_subnets(cluster, pods, None, block=block, max_prefix=10)
    assert [(p.path, p.message) for p in problems] == [
        ("kubernetes.pod_subnet", "2001:db8:1::/64 is outside the announced block 2001:db8:0:2a00::/56")]
    # no block (Packet, offline): nothing can be outside it
    assert addressing.check_subnets(cluster, pods, services) == []
    # a Calico block size that leaves too many prefixes is found only once the limit is known
    small_blocks = cluster.model_copy(update={"calico": cluster.calico.model_copy(update={"block_size": 128})})
    assert addressing.check_subnets(small_blocks, pods, services) == []
    assert [p.path for p in addressing.check_subnets(small_blocks, pods, services, max_prefix=10)] == ["calico.block_size"]


def test_a_peer_inside_the_pod_or_service_subnet_is_a_problem():
    cluster = parse_cluster(STATIC)
    pods, services = N("2001:db8:1::/64"), N("2001:db8:2::/108")
    peers = [("provider.peers[0]", IPv6Address("2001:db8:1::e")), ("provider.peers[1]", IPv6Address("2001:db8:2::e")),
             ("provider.peers[2]", IPv6Address("2001:db8:3::e"))]
    problems = addressing.check_subnets(cluster, pods, services, peers=peers)
    assert [(p.path, p.message) for p in problems] == [
        ("provider.peers[0]", "the BGP peer 2001:db8:1::e is inside the pod subnet 2001:db8:1::/64"),
        ("provider.peers[1]", "the BGP peer 2001:db8:2::e is inside the service subnet 2001:db8:2::/108"),
    ]
