"""The admin kubeconfig: renamed after the cluster, pointed at the bracketed IPv6 endpoint, written
0600, and merged into the user's kubeconfig without touching other contexts."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from v6kube.errors import UsageError
from v6kube.state import write_private


def _load(text: str | bytes, source: str) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: not a kubeconfig ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{source}: not a kubeconfig")
    return doc


def _one(doc: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    entries = doc.get(key) or []
    if len(entries) != 1 or not isinstance(entries[0], dict):
        raise UsageError(f"{source}: expected exactly one entry in {key}")
    return entries[0]


def from_admin_conf(text: str | bytes, cluster_name: str, server: str) -> str:
    """kubeadm's admin.conf with the cluster, user and context named `cluster_name` (user
    `<cluster>-admin`) and the server URL `server` (https://[addr]:6443)."""
    import yaml

    doc = _load(text, "/etc/kubernetes/admin.conf")
    cluster = _one(doc, "clusters", "admin.conf")["cluster"]
    user = _one(doc, "users", "admin.conf")["user"]
    cluster["server"] = server
    admin = f"{cluster_name}-admin"
    out = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": admin, "user": user}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": admin}}],
        "current-context": cluster_name,
        "preferences": {},
    }
    return yaml.safe_dump(out, sort_keys=False)


def default_target(environ: dict[str, str] | None = None) -> Path:
    """The first file of $KUBECONFIG, else ~/.kube/config (what kubectl writes to)."""
    env = os.environ if environ is None else environ
    first = next((p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p), None)
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


def _names(doc: dict[str, Any], key: str) -> list[str]:
    return [entry.get("name") for entry in doc.get(key) or [] if isinstance(entry, dict)]


def merge(source_text: str, target: Path) -> Path | None:
    """Merge our cluster, user and context into `target` (replacing entries of the same names only),
    keeping a timestamped backup of the old file. Returns the backup's path (None for a new file)."""
    import yaml

    ours = _load(source_text, "kubeconfig")
    backup = None
    if target.exists():
        theirs = _load(target.read_text(encoding="utf-8"), str(target))
        backup = target.with_name(f"{target.name}.v6kube-backup-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.copy2(target, backup)
        os.chmod(backup, 0o600)
    else:
        theirs = {"apiVersion": "v1", "kind": "Config", "preferences": {}}
    for key in ("clusters", "users", "contexts"):
        replaced = set(_names(ours, key))
        kept = [e for e in theirs.get(key) or [] if not (isinstance(e, dict) and e.get("name") in replaced)]
        theirs[key] = kept + list(ours.get(key) or [])
    theirs.setdefault("current-context", ours["current-context"])
    write_private(target, yaml.safe_dump(theirs, sort_keys=False))
    return backup


def unmerge(cluster_name: str, target: Path) -> bool:
    """Remove our entries from `target`; True when anything was removed."""
    import yaml

    if not target.exists():
        return False
    doc = _load(target.read_text(encoding="utf-8"), str(target))
    names = {"clusters": cluster_name, "users": f"{cluster_name}-admin", "contexts": cluster_name}
    changed = False
    for key, name in names.items():
        entries = doc.get(key) or []
        kept = [e for e in entries if not (isinstance(e, dict) and e.get("name") == name)]
        changed |= len(kept) != len(entries)
        doc[key] = kept
    if doc.get("current-context") == cluster_name:
        doc["current-context"] = ""
        changed = True
    if changed:
        write_private(target, yaml.safe_dump(doc, sort_keys=False))
    return changed
