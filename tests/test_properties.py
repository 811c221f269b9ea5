"""Property tests: arbitrary input to the cluster file loader, the address parsers and the parsers of
remote output (node facts, birdc, calicoctl, API answers) gives a value or a typed error, never
another exception, a hang or raw validator text. 500 examples each in CI (CI=true), fewer locally."""

from __future__ import annotations

import copy
import os
from ipaddress import IPv6Network
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v6kube.nodes import facts as nodeops
from v6kube.nodes.spec import os_key
from v6kube.status import parsers as status_parsers
from v6kube.config import load_cluster, parse_cluster
from v6kube.config_values import FieldProblem, check_block, parse_ipv6_address, parse_ipv6_network
from v6kube.errors import ConfigError, UnsupportedOS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = 500 if os.environ.get("CI") else 100
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JARGON = ("Input should", "String should", "Value error", "valid integer", "pattern", "pydantic", "Traceback")

# --- the cluster file ---------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
                    st.sampled_from(["auto", "2001:db8::/56", "2001:db8::1", "fe80::1", "10.0.0.1", "::",
                                     "ff02::1", "1.33", "static", "packet", "worker", "control-plane"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                      max_leaves=12)
BASES = {kind: yaml.safe_load((ROOT / "examples" / f"{kind}.yaml").read_text()) for kind in ("packet", "static")}


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


@st.composite
def mutated_files(draw):
    """A valid example with a few values replaced by arbitrary ones (or keys added/removed)."""
    doc = copy.deepcopy(BASES[draw(st.sampled_from(sorted(BASES)))])
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(values)
        if not isinstance(doc, dict) or not doc:
            break
    return yaml.safe_dump(doc, allow_unicode=True)


def _check_loaded(text: str) -> None:
    try:
        parse_cluster(text, "prop.yaml")
    except ConfigError as exc:
        assert exc.problems, exc.message
        for problem in exc.problems:
            assert problem.hint, problem  # every problem says how to fix it
            assert not any(word in str(problem) for word in JARGON), problem


@PROPERTY
@given(mutated_files())
def test_a_mutated_cluster_file_gives_a_cluster_or_a_config_error(text):
    _check_loaded(text)


@PROPERTY
@given(st.text(max_size=400))
def test_arbitrary_text_gives_a_cluster_or_a_config_error(text):
    _check_loaded(text)


@st.composite
def yamlish(draw):
    """Text built from YAML's own punctuation: anchors, aliases, tags, flow and block collections."""
    tokens = st.sampled_from(["&a ", "*a", "&b ", "*b", "!!str ", "!!binary ", "!!python/name:os.system ",
                              "<<: ", "[", "]", "{", "}", ", ", ": ", "- ", "? ", "\n", "\n  ", "\t", "'", '"',
                              "#", "---\n", "...\n", "%YAML 1.1\n", "name", "provider", "type", "2001:db8::1",
                              "\ufeff", "\x00", "\x85", "1e999", "0x1f", ".inf", "~", "yes", "1:20"])
    return "".join(draw(st.lists(tokens, max_size=40)))


@PROPERTY
@given(yamlish())
def test_yaml_punctuation_gives_a_cluster_or_a_config_error(text):
    _check_loaded(text)


@PROPERTY
@given(st.binary(max_size=400))
def test_arbitrary_bytes_give_a_cluster_or_a_config_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bytes") / "cluster.yaml"
    path.write_bytes(data)
    try:
        load_cluster(path)
    except ConfigError as exc:
        assert str(path) in exc.message and exc.problems


# --- address parsers ----------------------------------------------------------------------------

anything = st.one_of(st.text(max_size=60), st.integers(), st.floats(), st.none(), st.booleans(),
                     st.lists(st.text(max_size=5), max_size=3),
                     st.from_regex(r"\[?[0-9a-fA-F:.]{0,45}\]?(/[0-9]{0,4})?", fullmatch=True))


@PROPERTY
@given(anything)
def test_parse_ipv6_address_gives_an_address_or_a_value_error(value):
    try:
        address = parse_ipv6_address(value)
    except ValueError as exc:
        assert str(exc)
    else:
        assert address.version == 6


@PROPERTY
@given(anything)
def test_parse_ipv6_network_gives_a_network_or_a_value_error(value):
    try:
        network = parse_ipv6_network(value)
    except ValueError as exc:
        assert str(exc)
    else:
        assert network.version == 6


@PROPERTY
@given(st.integers(0, 2**128 - 1), st.integers(0, 128), st.booleans())
def test_check_block_accepts_only_routable_sensible_blocks(address, prefix, ula):
    network = IPv6Network((address, prefix), strict=False)
    try:
        check_block(network, ula=ula)
    except FieldProblem as exc:
        assert exc.hint
    else:
        assert 40 <= network.prefixlen <= 112
        assert network.subnet_of(IPv6Network("2000::/3")) or (ula and network.subnet_of(IPv6Network("fc00::/7")))


# --- remote output ------------------------------------------------------------------------------

remote_text = st.one_of(
    st.text(max_size=500),
    st.lists(st.sampled_from(["ID=ubuntu", 'VERSION_ID="24.04"', "ID='deb ian", "=", "==", "a=b=c", "# x=y",
                              "net.ipv6.conf.all.forwarding = 1", "default via fe80::1 dev eth0", "unreachable",
                              "2001:db8::/64 dev eth0", "  nexthop via fe80::2", "blackhole ::/0", "local",
                              "10.0.0.0/8 via 10.0.0.1", "via", "fe80::/64 via", "ii kubelet 1.33.1-1.1",
                              "kubelet install ok installed 1.33", "/proc/sys/net/ipv6/conf/eth0/accept_ra:2",
                              "==> /etc/x <==", "<== end", "nameserver 2001:4860:4860::8888", "nameserver",
                              "@@v6kube-fact os_release", "\t", "", "\x00", "Module Size Used",
                              "kernel/net/bridge/br_netfilter.ko"]), max_size=25).map("\n".join),
)
PARSERS = [name for name in dir(nodeops) if name.startswith("parse_") and callable(getattr(nodeops, name))]


def test_every_parser_of_remote_output_is_covered():
    assert {"parse_os_release", "parse_sysctls", "parse_routes", "parse_packages"} <= set(PARSERS)


@pytest.mark.parametrize("name", PARSERS)
def test_remote_output_parser_never_raises(name):
    parse = getattr(nodeops, name)

    @PROPERTY
    @given(remote_text)
    def check(text):
        parse(text)

    check()


@PROPERTY
@given(remote_text)
def test_gathered_facts_parse_into_facts_or_a_typed_error(text):
    raw = {k: v for k, v in nodeops.split_gathered(text).items() if k in {f.name for f in nodeops.FACTS}}
    facts = nodeops.Facts.from_raw(raw)
    try:
        facts.os.key and os_key(facts.os.key)
    except UnsupportedOS:
        pass


# --- API answers (Packet and phoenixNAP) --------------------------------------------------------

json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                     st.text(max_size=20)),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.sampled_from(["error", "errors", "x"]), inner,
                                                                   max_size=3)), max_leaves=10)
bodies = st.one_of(st.none(), st.binary(max_size=300), st.text(max_size=300),
                   json_values.map(lambda v: __import__("json").dumps(v)))
header_values = st.one_of(st.text(max_size=30), st.sampled_from(["nan", "inf", "-inf", "1e999", "-5", "0", "120",
                                                                 "Wed, 21 Oct 2015 07:28:00 GMT", "9999999999"]))


@PROPERTY
@given(st.integers(100, 599), st.text(max_size=20) | st.none(), bodies,
       st.dictionaries(st.sampled_from(["Retry-After", "X-RateLimit-Reset", "X-RateLimit-Remaining"]), header_values))
def test_any_api_failure_answer_becomes_a_typed_error(status, reason, body, headers):
    from v6kube.errors import ProviderError
    from v6kube.providers.api_errors import api_messages, error_for, retry_delay

    assert all(isinstance(m, str) for m in api_messages(body))
    assert isinstance(error_for("GET", "/x", status, reason, headers, body), ProviderError)
    wait = retry_delay(status, headers, clock=lambda: 1_700_000_000.0)
    assert wait is None or (wait >= 0 and wait != float("inf") and wait == wait)  # finite, never NaN


# --- birdc, calicoctl and the provider's BGP sessions (status) ------------------------------------

bird_text = st.one_of(
    st.text(max_size=400),
    st.lists(st.sampled_from(["BIRD 2.0.12 ready.", "Name       Proto      Table      State  Since         Info",
                              "v6k_cp_0   BGP        ---        up     12:00:00.000  Established",
                              "peer1      BGP        ---        start  12:00:00.000  Active        Socket: Connection refused",
                              "2001:db8::/64        unicast [peer1 12:00:00.000] * (100) [AS65000i]",
                              "\tvia fe80::1 on eth0", "                     unicast [x] (100)", "1007-", "0001 BIRD",
                              "+--------------+-------------------+-------+----------+-------------+",
                              "| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |",
                              "| 2001:db8::e  | node specific     | up    | 12:00:00 | Established |",
                              "| fc00::f      | global            | start | 12:00:00 | Active      |",
                              "Calico process is running.", "IPv6 BGP status", "No IPv6 peers found.", "|", "| | |",
                              "", "\x00"]), max_size=20).map("\n".join),
)
STATUS_PARSERS = ["parse_bird_protocols", "parse_bird_routes", "parse_calicoctl_node_status"]


@pytest.mark.parametrize("name", STATUS_PARSERS)
def test_birdc_and_calicoctl_parsers_never_raise(name):
    parse = getattr(status_parsers, name)

    @PROPERTY
    @given(bird_text)
    def check(text):
        parse(text)

    check()


@PROPERTY
@given(st.dictionaries(st.sampled_from(["bgp_sessions", "sessions", "x"]),
                       st.one_of(json_values, st.lists(st.dictionaries(
                           st.sampled_from(["address_family", "status", "learned_routes", "id", "default_route"]),
                           json_values, max_size=5), max_size=4)), max_size=3))
def test_provider_sessions_parser_never_raises(body):
    status_parsers.parse_metal_sessions(body)
