"""Fakes for tests: the Equinix Metal API (metal_api.FakeMetal), served on loopback only."""
