"""Contract: what the client sends and what the fake answers follow the official Metal API.

The oracle is the official generated models of `equinix==0.19.0` (test-only dependency) and,
when present, the spec itself at ../shared/metal-oas3.json (reference data, never copied here).
The traffic is real: one provisioning run (with faults) against the HTTP fake, as recorded by it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ipaddress import IPv6Network

import pytest
from pydantic import BaseModel

from v6kube.config import Cluster
from v6kube.errors import NotFound, ProviderError
from v6kube.providers import make_provider
from v6kube.providers.base import CONTROL_PLANE, WORKER, ServerSpec
from v6kube.providers.hostkeys import generate_host_key
from v6kube.providers.packet.client import MetalClient

from fakes.metal_api import FakeMetal, ManualClock

TOKEN = "contract-test-token-5a4b3c2d1e0f"
SPEC = Path(__file__).resolve().parents[1] / ".." / "shared" / "metal-oas3.json"

# Every (method, path template) v6kube uses, with the official models of request and response.
ENDPOINTS = {
    ("GET", "/projects/{id}/devices"): (None, "DeviceList"),
    ("POST", "/projects/{id}/devices"): ("CreateDeviceRequest", "Device"),
    ("GET", "/devices/{id}"): (None, "Device"),
    ("DELETE", "/devices/{id}"): (None, None),
    ("GET", "/projects/{id}/ssh-keys"): (None, "SSHKeyList"),
    ("POST", "/projects/{id}/ssh-keys"): ("SSHKeyCreateInput", "SSHKey"),
    ("GET", "/projects/{id}/bgp-config"): (None, "BgpConfig"),
    ("POST", "/projects/{id}/bgp-configs"): ("BgpConfigRequestInput", None),
    ("GET", "/devices/{id}/bgp/sessions"): (None, "BgpSessionList"),
    ("POST", "/devices/{id}/bgp/sessions"): ("BGPSessionInput", "BgpSession"),
    ("GET", "/devices/{id}/bgp/neighbors"): (None, "BgpSessionNeighbors"),
    ("GET", "/projects/{id}/ips"): (None, "IPReservationList"),
}


def template_regex(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


def endpoint_of(method: str, path: str) -> tuple[str, str]:
    for key in ENDPOINTS:
        if key[0] == method and template_regex(key[1]).match(path):
            return key
    raise AssertionError(f"the client called {method} {path}, which the contract does not list")


@pytest.fixture(scope="module")
def metal():
    """The official models (imported once: the import takes a second or two)."""
    import equinix.services.metalv1 as models

    return models


@pytest.fixture(scope="module")
def traffic():
    """Every request of two provisioning runs (BGP with and without a password), re-run and
    teardown, with faults, as the fake saw them."""
    return run_traffic(password=True) + run_traffic(password=False)


def run_traffic(password: bool) -> list:
    clock = ManualClock()
    with FakeMetal(token=TOKEN, clock=clock, durations={"queued": 30, "provisioning": 300},
                   neighbor_delay_polls=1, session_up_delay=60) as api:
        provider_block = {"type": "packet", "project": api.project_id}
        if password:
            provider_block["bgp_password_env"] = "PW"
        cluster = Cluster.model_validate({
            "name": "contract", "provider": provider_block,
            "nodes": [{"name": "cp-0", "role": "control-plane"}, {"name": "w-0", "role": "worker"}]})
        client = MetalClient(TOKEN, api.url, sleep=clock.sleep, clock=clock)
        provider = make_provider(cluster, client=client, environ={"PW": "Contract1234"}, sleep=clock.sleep,
                                 clock=clock, ssh_public_key=generate_host_key()[0])
        specs = []
        for i, node in enumerate(cluster.nodes):
            public, private = generate_host_key()
            specs.append(ServerSpec(node.name, CONTROL_PLANE if i == 0 else WORKER, public, private,
                                    subnets=(IPv6Network("2604:1380:4641:c501::/64"),)))
        api.add_fault("GET", r"/projects/[^/]+/devices", status=429, headers={"Retry-After": "1"})
        api.add_fault("POST", r"/projects/[^/]+/devices", status=500)
        for _ in range(2):
            provider.ensure_bgp()
            servers = provider.wait_servers(provider.ensure_servers(specs), 3600)
            provider.ensure_bgp_sessions(servers)
            provider.find_block()
            provider.find_taken_subnets()
            clock.sleep(60)  # the sessions come up: their status moves from "unknown" to "up"
        # a duplicate session (422), a gone device (404), a failed device (403), a bad token (401)
        api.add_fault("GET", r"/devices/[^/]+/bgp/sessions", status=200, body={"bgp_sessions": []})
        provider.ensure_bgp_session(servers[0])
        provider.delete_servers(servers)
        provider.delete_servers(servers)
        api.fail_device("w-9")
        failing = provider.ensure_servers([ServerSpec("w-9", WORKER)])
        with pytest.raises(ProviderError):
            provider.wait_servers(failing, 3600)
        with pytest.raises(NotFound):
            provider.ensure_bgp_session(servers[0])
        with pytest.raises(ProviderError):
            MetalClient("wrong-token-123456", api.url).get(f"/projects/{api.project_id}/devices")
        return api.recorded()


def unknown_keys(instance: object, data: object, where: str = "$") -> list[str]:
    """Keys in `data` the model does not declare (from_dict silently drops them), recursively."""
    if hasattr(instance, "actual_instance"):  # oneOf / anyOf wrappers
        return unknown_keys(instance.actual_instance, data, where)
    if not isinstance(instance, BaseModel) or not isinstance(data, dict):
        return []
    fields = {(f.alias or name): name for name, f in type(instance).model_fields.items()}
    problems = [f"{where}.{key}" for key in data if key not in fields]
    for key, value in data.items():
        if key not in fields:
            continue
        attr = getattr(instance, fields[key])
        if isinstance(attr, list) and isinstance(value, list):
            for i, (a, v) in enumerate(zip(attr, value)):
                problems += unknown_keys(a, v, f"{where}.{key}[{i}]")
        else:
            problems += unknown_keys(attr, value, f"{where}.{key}")
    return problems


def parse(metal, model_name: str, document: object) -> object:
    model = getattr(metal, model_name)
    instance = model.from_dict(json.loads(json.dumps(document)))
    assert instance is not None, f"{model_name}.from_dict returned None"
    return instance


def test_the_run_used_every_endpoint(traffic):
    used = {endpoint_of(r.method, r.path) for r in traffic}
    assert used == set(ENDPOINTS)


def test_every_request_body_is_valid_for_the_official_models(metal, traffic):
    checked = 0
    for request in traffic:
        request_model, _ = ENDPOINTS[endpoint_of(request.method, request.path)]
        if request.json is None:
            assert request_model is None or request.method != "POST", f"{request.method} {request.path} sent no body"
            continue
        assert request_model, f"{request.method} {request.path} sent a body the contract does not expect"
        instance = parse(metal, request_model, request.json)
        assert unknown_keys(instance, request.json) == [], f"{request.method} {request.path}"
        checked += 1
    assert checked >= 4


def test_device_create_body_is_the_metro_variant_without_unknown_keys(metal, traffic):
    bodies = [r.json for r in traffic if r.method == "POST" and r.path.endswith("/devices")]
    assert bodies
    for body in bodies:
        assert set(body) <= {f.alias or k for k, f in metal.DeviceCreateInMetroInput.model_fields.items()}
        instance = metal.DeviceCreateInMetroInput.from_dict(body)
        assert instance.metro.actual_instance == "da"
        assert unknown_keys(instance, body) == []


def test_every_response_of_the_fake_parses_with_the_official_models(metal, traffic):
    checked = 0
    for request in traffic:
        if request.response is None:
            continue
        _, response_model = ENDPOINTS[endpoint_of(request.method, request.path)]
        name = "Error" if request.status >= 400 else response_model
        assert name, f"{request.method} {request.path} answered a body the contract does not expect"
        instance = parse(metal, name, request.response)
        assert unknown_keys(instance, request.response) == [], f"{request.method} {request.path} -> {name}"
        checked += 1
    assert checked > 20


def test_device_ip_addresses_carry_assigned_to(metal, traffic):
    devices = [d for r in traffic if r.status == 200 and r.path.endswith("/devices") and r.method == "GET"
               for d in r.response["devices"]]
    addresses = [a for d in devices for a in d["ip_addresses"]]
    assert addresses and all(a["assigned_to"]["href"].startswith("/metal/v1/devices/") for a in addresses)


def test_statuses_seen_cover_the_faults(traffic):
    statuses = {r.status for r in traffic}
    assert {200, 201, 204, 401, 403, 404, 422, 429, 500} <= statuses


@pytest.fixture(scope="module")
def spec():
    if not SPEC.is_file():
        pytest.skip(f"{SPEC} not present (reference data, kept outside the repository)")
    return json.loads(SPEC.read_text())


def _operation(spec: dict, method: str, path: str) -> tuple[str, dict]:
    for template, operations in spec["paths"].items():
        if template_regex(template).match(path) and method.lower() in operations:
            return template, operations[method.lower()]
    raise AssertionError(f"{method} {path} is not in the official spec")


def test_every_method_and_path_the_client_uses_is_in_the_spec(spec, traffic):
    for method, template in ENDPOINTS:
        assert template in spec["paths"] and method.lower() in spec["paths"][template], f"{method} {template}"
    for request in traffic:
        template, _ = _operation(spec, request.method, request.path)
        assert (request.method, template) in ENDPOINTS


def test_every_query_parameter_and_success_status_is_in_the_spec(spec, traffic):
    def resolve(parameter: dict) -> dict:
        if "$ref" in parameter:
            return spec["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[-1]]
        return parameter

    for request in traffic:
        template, operation = _operation(spec, request.method, request.path)
        declared = {resolve(p)["name"] for p in operation.get("parameters", []) if resolve(p)["in"] == "query"}
        assert set(request.query) <= declared, f"{request.method} {template}: {set(request.query) - declared}"
        if request.status and request.status < 300:
            assert str(request.status) in operation["responses"], f"{request.method} {template}: {request.status}"


# Where the live API is known to answer outside its own spec, the fake answers like the live API.
# Each entry: (method, path template, "request" | "response", JSON path, value), with its source.
SPEC_DEVIATIONS = {
    # ../shared/reference/metal-api.md section 3.6: a real BgpConfig of a Local BGP project has
    # "route_object": null, which the spec types as a plain string.
    ("GET", "/projects/{id}/bgp-config", "response", "route_object", None),
}


def _openapi_to_jsonschema(node: object) -> object:
    """OpenAPI 3.0 schema objects to JSON Schema (draft 4 semantics): `nullable: true` becomes an
    explicit null alternative; everything else is the same vocabulary."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(v) for v in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _openapi_to_jsonschema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def format_checker():
    """uuid and date-time checked for real (jsonschema checks date-time only with an optional extra)."""
    import uuid as _uuid
    from datetime import datetime

    from jsonschema import FormatChecker

    checker = FormatChecker()

    @checker.checks("uuid", raises=ValueError)
    def _is_uuid(value: object) -> bool:
        return not isinstance(value, str) or str(_uuid.UUID(value)) == value.lower()

    @checker.checks("date-time", raises=ValueError)
    def _is_date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if "T" not in value.upper() or not (value.endswith("Z") or value[-6] in "+-"):
            raise ValueError("RFC 3339 date-time needs a T and a time zone")
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True

    return checker


def _spec_validator(spec: dict, schema: dict):
    from jsonschema import Draft4Validator

    document = {**_openapi_to_jsonschema(schema), "components": _openapi_to_jsonschema(spec["components"])}
    return Draft4Validator(document, format_checker=format_checker())


def test_every_request_body_and_success_response_is_valid_for_the_spec_schemas(spec, traffic):
    """The same traffic, validated against the spec's own JSON schemas (request bodies and 2xx
    bodies), independently of the generated models."""
    checked, problems = 0, []
    for request in traffic:
        template, operation = _operation(spec, request.method, request.path)
        documents = []
        if request.json is not None:
            documents.append(("request", operation["requestBody"]["content"]["application/json"]["schema"],
                              request.json))
        if request.response is not None and request.status < 300:
            documents.append(("response", operation["responses"][str(request.status)]["content"]
                              ["application/json"]["schema"], request.response))
        for what, schema, body in documents:
            for error in _spec_validator(spec, schema).iter_errors(body):
                where = "/".join(map(str, error.absolute_path))
                if (request.method, template, what, where, error.instance) not in SPEC_DEVIATIONS:
                    problems.append(f"{request.method} {template} {what} {where}: {error.message}")
            checked += 1
    assert sorted(set(problems)) == []
    assert checked > 20


def test_the_spec_schema_check_catches_a_wrong_body(spec):
    _, operation = _operation(spec, "POST", "/devices/x/bgp/sessions")
    validator = _spec_validator(spec, operation["requestBody"]["content"]["application/json"]["schema"])
    assert list(validator.iter_errors({"address_family": "ipv6", "default_route": False})) == []
    assert list(validator.iter_errors({"address_family": "inet6", "default_route": "no"}))


def test_the_spec_schema_check_catches_bad_formats(spec):
    """The drift the format check exists for: an empty id and a date without a time zone."""
    _, operation = _operation(spec, "GET", "/projects/x/bgp-config")
    validator = _spec_validator(spec, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert list(validator.iter_errors({"id": str(__import__("uuid").uuid4()), "created_at": "2026-01-02T03:04:05Z"})) == []
    assert list(validator.iter_errors({"id": ""}))
    assert list(validator.iter_errors({"created_at": "2026-01-02 03:04"}))


def test_both_bgp_cases_were_exercised(traffic):
    neighbours = [n for r in traffic if r.path.endswith("/bgp/neighbors") and r.status == 200
                  for n in r.response["bgp_neighbors"]]
    assert any(n.get("md5_enabled") and n.get("md5_password") for n in neighbours)
    assert any(not n["md5_enabled"] and "md5_password" not in n for n in neighbours)


def test_session_status_moved_through_the_documented_values(traffic):
    statuses = {r.response["status"] for r in traffic if r.method == "POST" and r.path.endswith("/bgp/sessions")
                and r.status == 201}
    statuses |= {s["status"] for r in traffic if r.method == "GET" and r.path.endswith("/bgp/sessions")
                 and r.status == 200 for s in r.response["bgp_sessions"]}
    assert "unknown,unknown" in statuses and "up,up" in statuses
    assert all(set(s.split(",")) <= {"unknown", "up", "down"} for s in statuses)
