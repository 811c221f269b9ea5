"""Contract: what the phoenixNAP provider sends and what the fake answers follow the official specs
(reference/phoenixnap/pnap_*_api.spec.yaml, JSON Schema with formats) and the official SDK models
(`pnap-bmc-api`, `pnap-network-api`, `pnap-ip-api`, test-only) as a second oracle.

The traffic is real: provisioning, a re-run and teardown with faults, plus the error answers
(400, 401, 404, 406, 409), as the fake recorded them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from v6kube.errors import ProviderError
from v6kube.providers.base import Server

from fakes.metal_api import ManualClock
from fakes.pnap_api import FakePnap
from test_metal_contract import _openapi_to_jsonschema, format_checker, unknown_keys
from test_phoenixnap_provider import CLIENT_ID, SECRET, destroy, provider_for, provision

SPECS = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "phoenixnap"
SERVICES = {"/bmc/v1": ("pnap_bmc_api.spec.yaml", "pnap_bmc_api"),
            "/networks/v1": ("pnap_network_api.spec.yaml", "pnap_network_api"),
            "/ips/v1": ("pnap_ip_api.spec.yaml", "pnap_ip_api")}
# Where the fake answers outside the specs, on purpose (see the fake's docstring): status codes.
STATUS_DEVIATIONS = {("GET", "/servers/{serverId}", "404"), ("POST", "/servers/{serverId}/actions/deprovision", "404")}


@pytest.fixture(scope="module")
def traffic():
    clock = ManualClock()
    with FakePnap(CLIENT_ID, SECRET, clock=clock, durations={"creating": 600, "deleting": 60, "bgp": 120}) as api:
        provider = provider_for(api, clock, timeout=(1.0, 1.0), loadbalancer_block=True)
        api.add_fault("POST", r"/bmc/v1/servers", status=500, after=True)
        api.add_fault("GET", r"/ips/v1/ip-blocks", status=500)
        for _ in range(2):
            _, servers, _ = provision(provider)
        provider.find_taken_subnets()
        destroy(provider)
        gone = Server(id=servers[0].id, hostname="cp-0", role="control-plane", state="unknown")
        provider.delete_servers([gone])  # 404: gone
        with pytest.raises(ProviderError):
            provider.clients.networks.post("/bgp-peer-groups", {"location": "SEA", "asn": 65401,
                                                                 "advertisedRoutes": "NONE"})  # 406
        with pytest.raises(ProviderError):
            provider.clients.networks.post("/bgp-peer-groups", {"location": "PHX", "asn": 65401,
                                                                 "advertisedRoutes": "NONE"})  # 409
        with pytest.raises(ProviderError):
            provider.clients.ips.post("/ip-blocks", {"location": "PHX", "cidrBlockSize": "/48", "ipVersion": "V6"})
        api.expire_tokens()
        provider.find_servers()  # 401, then a fresh token
        return api.recorded()


def _service(path: str) -> tuple[str, str, str]:
    for prefix, (spec_file, package) in SERVICES.items():
        if path.startswith(prefix + "/") or path == prefix:
            return prefix, spec_file, package
    raise AssertionError(f"{path} is not a phoenixNAP API path")


@pytest.fixture(scope="module")
def specs_by_file():
    if not SPECS.is_dir():
        pytest.skip(f"{SPECS} not present (reference data, kept outside the repository)")
    return {name: yaml.safe_load((SPECS / name).read_text()) for name, _ in SERVICES.values()}


def _operation(spec: dict, method: str, path: str) -> tuple[str, dict]:
    for template, operations in spec["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            return template, operations[method.lower()]
    raise AssertionError(f"{method} {path} is not in the spec")


def _validator(spec: dict, schema: dict):
    from jsonschema import Draft4Validator

    document = {**_openapi_to_jsonschema(schema), "components": _openapi_to_jsonschema(spec["components"])}
    return Draft4Validator(document, format_checker=format_checker())


def _api(traffic):
    return [r for r in traffic if not r.path.startswith("/auth/")]


def test_the_run_covers_every_call_the_provider_makes_and_the_error_answers(traffic):
    used = {(r.method, re.sub(r"/[0-9a-f]{24}", "/{id}", r.path)) for r in _api(traffic)}
    assert ("POST", "/bmc/v1/servers/{id}/actions/deprovision") in used and ("DELETE", "/ips/v1/ip-blocks/{id}") in used
    statuses = {r.status for r in traffic}
    assert {200, 201, 202, 204, 400, 401, 404, 406, 409, 500} <= statuses


def test_every_call_and_query_parameter_is_in_the_specs(specs_by_file, traffic):
    for r in _api(traffic):
        prefix, spec_file, _ = _service(r.path)
        template, operation = _operation(specs_by_file[spec_file], r.method, r.path[len(prefix):])
        declared = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
        assert set(r.query) <= declared, f"{r.method} {template}: {set(r.query) - declared}"
        if r.status and str(r.status) not in operation["responses"]:
            assert (r.method, template, str(r.status)) in STATUS_DEVIATIONS or r.status in (401, 500), \
                f"{r.method} {template} answered {r.status}"


def test_every_body_is_valid_for_the_spec_schemas_formats_included(specs_by_file, traffic):
    checked, problems = 0, []
    for r in _api(traffic):
        prefix, spec_file, _ = _service(r.path)
        spec = specs_by_file[spec_file]
        template, operation = _operation(spec, r.method, r.path[len(prefix):])
        documents = []
        if r.json is not None:
            documents.append(("request", operation["requestBody"]["content"]["application/json"]["schema"], r.json))
        if r.response is not None:
            status = str(r.status)
            schema = (operation["responses"].get(status, {}).get("content") or {}).get("application/json", {}).get("schema") \
                if status in operation["responses"] else {"$ref": "#/components/schemas/Error"}
            if schema:
                documents.append((f"response {status}", schema, r.response))
        for what, schema, body in documents:
            for error in _validator(spec, schema).iter_errors(body):
                problems.append(f"{r.method} {template} {what} {'/'.join(map(str, error.absolute_path))}: {error.message}")
            checked += 1
    assert sorted(set(problems)) == []
    assert checked > 40


def _model_name(schema: dict) -> str | None:
    ref = schema.get("$ref") or (schema.get("items") or {}).get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


def test_every_body_parses_with_the_official_sdk_models_without_unknown_keys(specs_by_file, traffic):
    import importlib

    checked = 0
    for r in _api(traffic):
        prefix, spec_file, package = _service(r.path)
        models = importlib.import_module(f"{package}.models")
        template, operation = _operation(specs_by_file[spec_file], r.method, r.path[len(prefix):])
        pairs = []
        if r.json is not None:
            pairs.append((_model_name(operation["requestBody"]["content"]["application/json"]["schema"]), r.json))
        if r.response is not None and r.status < 300:
            schema = operation["responses"][str(r.status)].get("content", {}).get("application/json", {}).get("schema", {})
            pairs.append((_model_name(schema), r.response))
        elif r.response is not None:
            pairs.append(("Error", r.response))
        for name, body in pairs:
            if name is None:
                continue
            model = getattr(models, name)
            for item in body if isinstance(body, list) else [body]:
                instance = model.from_dict(json.loads(json.dumps(item)))
                assert instance is not None
                assert unknown_keys(instance, item) == [], f"{r.method} {template} {name}"
                checked += 1
    assert checked > 40


def test_the_token_request_is_the_client_credentials_grant_and_keeps_no_secret(traffic):
    tokens = [r for r in traffic if r.path.startswith("/auth/")]
    assert tokens and all(r.method == "POST" and r.json is None and r.response is None for r in tokens)
    assert all("authorization" not in {k.lower() for k in r.headers} for r in traffic)


def test_the_spec_check_catches_a_wrong_body(specs_by_file):
    spec = specs_by_file["pnap_ip_api.spec.yaml"]
    _, operation = _operation(spec, "POST", "/ip-blocks")
    validator = _validator(spec, operation["requestBody"]["content"]["application/json"]["schema"])
    assert list(validator.iter_errors({"location": "PHX", "cidrBlockSize": "/64", "ipVersion": "V6"})) == []
    assert list(validator.iter_errors({"location": "PHX", "tags": [{"value": "x"}]}))
