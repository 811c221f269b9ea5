"""Fakes for tests: the Equinix Metal API (metal_api.FakeMetal) and phoenixNAP's APIs (pnap_api.FakePnap), served on loopback only."""
