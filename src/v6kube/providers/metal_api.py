"""Kept for imports written before the Packet provider became a package: the Metal API client now
lives in providers/packet/client.py (on the shared layer, providers/http.py). Import from there."""

from v6kube.providers.packet.client import DEFAULT_BASE_URL, MetalClient, base_url_from, token_from_env

__all__ = ["DEFAULT_BASE_URL", "MetalClient", "base_url_from", "token_from_env"]
