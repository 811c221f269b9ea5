"""The Metal API client against the HTTP fake: auth, errors, retries, backoff, pagination, secrecy."""

from __future__ import annotations

import logging
import traceback

import pytest

import v6kube
from v6kube import console
from v6kube.errors import (
    AuthenticationError,
    NotFound,
    PermissionDenied,
    ProviderError,
    RateLimited,
    ServerError,
    Unprocessable,
    UsageError,
    ConnectionFailed,
)
from v6kube.providers.packet.client import DEFAULT_BASE_URL, MetalClient, base_url_from, token_from_env

from fakes.metal_api import FakeMetal, ManualClock

TOKEN = "client-test-token-3f9a8b7c6d5e4f30"
DEVICES = r"/projects/[^/]+/devices"


@pytest.fixture
def api():
    with FakeMetal(token=TOKEN) as fake:
        yield fake


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def client(api, sleeps):
    c = MetalClient(TOKEN, api.url, timeout=(2.0, 2.0), sleep=sleeps, rng=lambda: 1.0)
    yield c
    c.close()


def devices_path(api):
    return f"/projects/{api.project_id}/devices"


# --- configuration ------------------------------------------------------------------------------


def test_token_comes_from_metal_then_packet_variable():
    assert token_from_env({"METAL_AUTH_TOKEN": "metal-abcdef", "PACKET_AUTH_TOKEN": "packet-abcdef"}).reveal() == "metal-abcdef"
    assert token_from_env({"PACKET_AUTH_TOKEN": "packet-abcdef"}).reveal() == "packet-abcdef"


def test_missing_token_names_both_variables():
    with pytest.raises(AuthenticationError) as info:
        token_from_env({})
    assert "METAL_AUTH_TOKEN" in str(info.value) and "PACKET_AUTH_TOKEN" in str(info.value)


def test_base_url_env_then_cluster_file_then_default():
    assert base_url_from(None, {}) == DEFAULT_BASE_URL == "https://api.equinix.com/metal/v1"
    assert base_url_from("http://file.example/metal/v1/", {}) == "http://file.example/metal/v1"
    assert base_url_from("http://file.example/metal/v1", {"METAL_API_URL": "http://env.example/metal/v1"}) \
        == "http://env.example/metal/v1"


def test_every_request_carries_user_agent_and_token(api, client):
    client.get(devices_path(api))
    (request,) = api.requests
    assert request.headers["User-Agent"] == f"v6kube/{v6kube.__version__}"
    assert request.status == 200  # the fake accepted the token; it never records it
    assert all("token" not in k.lower() for k in request.headers)


def test_a_read_timeout_is_retried_for_get(api, client, sleeps):
    fast = MetalClient(TOKEN, api.url, timeout=(1.0, 1.0), sleep=sleeps, rng=lambda: 0.0)
    api.add_fault("GET", DEVICES, delay=2.5)
    assert fast.get(devices_path(api))["devices"] == []
    assert api.count("GET", DEVICES) == 2 and len(sleeps) == 1


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status, kind", [
    (401, AuthenticationError), (403, PermissionDenied), (404, NotFound), (422, Unprocessable),
    (429, RateLimited), (500, ServerError), (503, ServerError), (418, ProviderError),
])
@pytest.mark.parametrize("shape", ["error", "errors", "html", "empty"])
def test_every_failure_maps_to_a_typed_error_whatever_the_body(api, client, status, kind, shape):
    body = {"error": "the single message"} if shape == "error" else {"errors": ["first problem", "second problem"]}
    options = {"raw_body": b"<html><body><h1>502 Bad Gateway</h1></body></html>"} if shape == "html" else \
        {"raw_body": b""} if shape == "empty" else {"body": body}
    api.add_fault("POST", DEVICES, status=status, times=0, **options)
    with pytest.raises(kind) as info:
        client.post(devices_path(api), {"metro": "da"})
    error = info.value
    assert type(error) is kind and error.status == status
    assert f"POST /metal/v1/projects/{api.project_id}/devices: {status}" in str(error)
    if shape == "error":
        assert "the single message" in str(error)
    elif shape == "errors":
        assert "first problem; second problem" in str(error)
        if kind is Unprocessable:
            assert error.errors == ["first problem", "second problem"]
    elif shape == "html":
        assert "502 Bad Gateway" in str(error)


def test_wrong_token_is_an_authentication_error_with_a_hint(api):
    bad = MetalClient("not-the-right-token-123", api.url, sleep=lambda s: None)
    with pytest.raises(AuthenticationError) as info:
        bad.get(devices_path(api))
    assert "Invalid authentication token" in str(info.value)
    assert "METAL_AUTH_TOKEN" in info.value.hint
    assert api.count() == 1  # 401 is not retried


# --- retries ------------------------------------------------------------------------------------


def test_429_honours_retry_after(api, client, sleeps):
    api.add_fault("GET", DEVICES, status=429, headers={"Retry-After": "7"})
    assert client.get(devices_path(api))["devices"] == []
    assert sleeps == [7.0] and api.count("GET", DEVICES) == 2


def test_429_honours_x_ratelimit_reset(api, sleeps):
    now = 1_700_000_000.0
    c = MetalClient(TOKEN, api.url, sleep=sleeps, clock=lambda: now)
    api.add_fault("GET", DEVICES, status=429, headers={"X-RateLimit-Reset": str(int(now) + 5)})
    c.get(devices_path(api))
    assert sleeps == [5.0]


def test_retry_after_is_capped(api, sleeps):
    c = MetalClient(TOKEN, api.url, sleep=sleeps, max_wait=60)
    api.add_fault("GET", DEVICES, status=429, headers={"Retry-After": "86400"})
    c.get(devices_path(api))
    assert sleeps == [60]


def test_backoff_is_exponential_capped_and_jittered(api, sleeps):
    c = MetalClient(TOKEN, api.url, sleep=sleeps, attempts=6, backoff_base=1.0, backoff_cap=5.0, rng=lambda: 1.0)
    api.add_fault("GET", DEVICES, status=503, times=0)
    with pytest.raises(ServerError):
        c.get(devices_path(api))
    assert sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert api.count("GET", DEVICES) == 6

    low = Sleeps()
    c = MetalClient(TOKEN, api.url, sleep=low, attempts=3, backoff_base=1.0, rng=lambda: 0.0)
    with pytest.raises(ServerError):
        c.get(devices_path(api))
    assert low == [0.5, 1.0]  # jitter keeps at least half the delay


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_for_get(api, client, status):
    """A one-off 500 on a read ("Oh snap") no longer aborts a run: reads are retried on every 5xx."""
    api.add_fault("GET", DEVICES, status=status, times=2)
    assert client.get(devices_path(api))["devices"] == []
    assert api.count("GET", DEVICES) == 3


def test_500_that_persists_is_a_server_error_after_the_attempts(api, sleeps):
    c = MetalClient(TOKEN, api.url, attempts=3, sleep=sleeps, rng=lambda: 0.0)
    api.add_fault("GET", DEVICES, status=500, times=0)
    with pytest.raises(ServerError) as info:
        c.get(devices_path(api), what="cp-0 (device 1234)")
    assert api.count("GET", DEVICES) == 3
    assert str(info.value).startswith("cp-0 (device 1234): GET ")


def test_every_retry_loop_has_a_total_deadline(api):
    """A long rate limit does not mean 20 silent minutes: the retries stop at the retry budget."""
    clock = ManualClock()
    c = MetalClient(TOKEN, api.url, attempts=10, max_wait=300, retry_budget=400, sleep=clock.sleep, clock=clock)
    api.add_fault("GET", DEVICES, status=429, headers={"Retry-After": "250"}, times=0)
    with pytest.raises(RateLimited):
        c.get(devices_path(api))
    assert clock.slept == [250.0]  # the second 250 s wait would pass the 400 s budget
    assert api.count("GET", DEVICES) == 2


def test_a_long_wait_is_shown_on_the_console_without_debug(api, capsys):
    clock = ManualClock()
    c = MetalClient(TOKEN, api.url, sleep=clock.sleep, clock=clock)
    api.add_fault("GET", DEVICES, status=429, headers={"Retry-After": "60"})
    api.add_fault("GET", DEVICES, status=503, headers={"Retry-After": "1"})
    c.get(devices_path(api))
    err = capsys.readouterr().err
    assert "[provision] waiting 60 s: rate limited by the API" in err
    assert "waiting 1 s" not in err  # a short wait stays quiet


def test_post_is_not_retried_after_500(api, client):
    api.add_fault("POST", DEVICES, status=500)
    with pytest.raises(ServerError):
        client.post(devices_path(api), {"hostname": "x"})
    assert api.count("POST", DEVICES) == 1


def test_connection_reset_is_retried_for_get(api, client, sleeps):
    api.add_fault("GET", DEVICES, reset=True)
    assert client.get(devices_path(api))["devices"] == []
    assert api.count("GET", DEVICES) == 2 and len(sleeps) == 1


def test_connection_refused_is_a_clear_connection_error(sleeps):
    with FakeMetal(token=TOKEN) as fake:
        url = fake.url
    c = MetalClient(TOKEN, url, attempts=2, sleep=sleeps, timeout=(0.5, 0.5))
    with pytest.raises(ConnectionFailed) as info:
        c.get("/projects/x/devices")
    assert "no answer from the Metal API" in str(info.value) and "connection failed" in str(info.value)
    assert len(sleeps) == 1


@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 503}, {"reset": True}])
def test_post_is_never_retried_blindly(api, client, fault):
    api.add_fault("POST", DEVICES, **fault)
    with pytest.raises((ServerError, ConnectionFailed)):
        client.post(devices_path(api), {"metro": "da", "plan": "c3.small.x86", "operating_system": "ubuntu_24_04",
                                        "ip_addresses": [{"address_family": 4, "public": False}]})
    assert api.count("POST", DEVICES) == 1


def test_post_read_timeout_is_not_retried(api, sleeps):
    c = MetalClient(TOKEN, api.url, timeout=(1.0, 1.0), sleep=sleeps)
    api.add_fault("POST", DEVICES, after=True, delay=2.5)
    with pytest.raises(ConnectionFailed) as info:
        c.post(devices_path(api), {"metro": "da", "plan": "c3.small.x86", "operating_system": "ubuntu_24_04"})
    assert "read timeout" in str(info.value)
    assert api.count("POST", DEVICES) == 1 and len(api.project_devices()) == 1  # it happened anyway


def test_post_is_not_retried_after_429_and_the_error_says_how_long_to_wait(api, client, sleeps):
    api.add_fault("POST", DEVICES, status=429, headers={"Retry-After": "2"})
    with pytest.raises(RateLimited) as info:
        client.post(devices_path(api), {"metro": "da", "plan": "c3.small.x86", "operating_system": "ubuntu_24_04"})
    assert info.value.retry_after == 2.0 and "retry after 2s" in str(info.value)
    assert api.count("POST", DEVICES) == 1 and sleeps == []  # the provider looks it up, then decides


def test_rate_limit_reset_is_waited_for_only_when_rate_limited(api, sleeps):
    now = 1_800_000_000.0
    c = MetalClient(TOKEN, api.url, sleep=sleeps, clock=lambda: now, rng=lambda: 0.0)
    window = {"X-RateLimit-Reset": str(int(now + 3000)), "X-RateLimit-Remaining": "4000"}
    api.add_fault("GET", DEVICES, status=503, headers=window)  # the headers ride on every answer
    c.get(devices_path(api))
    api.add_fault("GET", DEVICES, status=429, headers={"X-RateLimit-Reset": str(int(now + 40))})
    c.get(devices_path(api))
    assert sleeps == [0.5, 40.0]  # backoff for the 503, the reset for the 429


@pytest.mark.parametrize("url, allowed", [
    ("http://127.0.0.1:8080/metal/v1", True), ("http://[::1]:8080/metal/v1", True),
    ("http://localhost/metal/v1", True), ("https://api.example.net/metal/v1", True),
    ("http://api.example.net/metal/v1", False), ("http://[2001:db8::1]/metal/v1", False),
    ("ftp://api.example.net/metal/v1", False),
])
def test_the_token_goes_over_plain_http_only_to_this_machine(url, allowed):
    if allowed:
        MetalClient(TOKEN, url)
    else:
        with pytest.raises(UsageError):
            MetalClient(TOKEN, url)


def test_delete_is_retried_on_503(api, client):
    device = api.add_device("w-0")
    api.add_fault("DELETE", r"/devices/[^/]+", status=503)
    client.delete(f"/devices/{device['id']}", {"force_delete": "true"})
    assert api.count("DELETE") == 2 and api.project_devices() == []


# --- pagination ---------------------------------------------------------------------------------


def test_list_all_follows_meta_next_and_keeps_filters(api, client):
    for i in range(25):
        api.add_device(f"n-{i}", tags=["mine"] if i % 5 else ["other"])
    items = client.list_all(devices_path(api), "devices", {"tag": "mine"}, page_size=7)
    assert sorted(d["hostname"] for d in items) == sorted(f"n-{i}" for i in range(25) if i % 5)
    pages = api.recorded("GET", DEVICES)
    assert len(pages) == 3  # 20 devices, 7 a page
    for n, request in enumerate(pages, start=1):
        assert request.query["tag"] == ["mine"] and request.query["per_page"] == ["7"]
        assert request.query.get("page", ["1"]) == [str(n)]


def test_list_all_asks_for_large_pages(api, client):
    for i in range(30):
        api.add_device(f"n-{i}")
    assert len(client.list_all(devices_path(api), "devices")) == 30
    (request,) = api.recorded("GET", DEVICES)
    assert int(request.query["per_page"][0]) >= 100


def test_hrefs_join_with_the_origin_of_the_base_url(api, client):
    device = api.add_device("w-0")
    href = api.project_devices()[0]["href"]
    assert href.startswith("/metal/v1/")
    assert client.get(href)["id"] == device["id"]
    assert api.recorded("GET")[-1].path == f"/devices/{device['id']}"


# --- secrecy ------------------------------------------------------------------------------------


def test_the_token_never_appears_in_output_logs_errors_or_reprs(api, capsys, caplog, monkeypatch):
    monkeypatch.setattr(console, "debug_enabled", True)
    caplog.set_level(logging.DEBUG)
    c = MetalClient(TOKEN, api.url, attempts=2, sleep=lambda s: None, timeout=(1.0, 1.0))
    errors: list[BaseException] = []
    # The API echoing the token back in an error must not leak it either.
    api.add_fault("GET", DEVICES, status=422, body={"errors": [f"token {TOKEN} is not allowed here"]})
    api.add_fault("GET", r"/devices/x", reset=True, times=0)
    api.add_fault("GET", r"/devices/slow", delay=2.5, times=0)
    for path in (devices_path(api), "/devices/x", "/devices/slow", "/devices/unknown"):
        try:
            c.get(path)
        except ProviderError as exc:
            errors.append(exc)
    try:
        MetalClient("wrong-token-value-xyz", api.url).get(devices_path(api))
    except ProviderError as exc:
        errors.append(exc)
    assert len(errors) == 5
    captured = capsys.readouterr()
    texts = [captured.out, captured.err, caplog.text, repr(c), repr(c.session.auth)]
    for error in errors:
        texts += [str(error), repr(error), "".join(traceback.format_exception(error)), repr(error.args)]
        assert error.__context__ is None and error.__cause__ is None  # no requests object rides along
    assert "debug: GET" in captured.err  # debug output was on
    for text in texts:
        assert TOKEN not in text
    assert "***" in str(errors[0])


def test_a_success_that_is_not_json_is_a_provider_error(api, client):
    api.add_fault("GET", DEVICES, status=200, raw_body=b"<html>maintenance</html>")
    with pytest.raises(ProviderError, match="not JSON") as info:
        client.get(devices_path(api))
    assert info.value.__context__ is None


def test_redirects_are_not_followed(api, client):
    # Following one would send X-Auth-Token to whatever host the redirect names.
    api.add_fault("GET", DEVICES, status=302, raw_body=b"", headers={"Location": "http://127.0.0.1:9/steal"})
    with pytest.raises(ProviderError) as info:
        client.get(devices_path(api))
    assert info.value.status == 302 and api.count() == 1
