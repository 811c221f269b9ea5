"""v6kube: IPv6-only Kubernetes on bare metal, announced over BGP."""

__version__ = "0.1.0"
