"""The active return policy: a TOML file in the instance folder, written from the default once."""

from __future__ import annotations

import os
import threading
from importlib.resources import files
from pathlib import Path

from portal.domain.policy import Policy, load_policy

_cache: dict[str, tuple[float, Policy]] = {}
_lock = threading.Lock()


def default_policy_text() -> str:
    return files("portal").joinpath("default_policy.toml").read_text(encoding="utf-8")


def active_policy(path: str | os.PathLike[str]) -> Policy:
    """Load the policy file (creating it from the default when absent); reloads when it changes."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(default_policy_text(), encoding="utf-8")
    key = str(path.resolve())
    mtime = path.stat().st_mtime
    with _lock:
        cached = _cache.get(key)
        if cached and cached[0] == mtime:
            return cached[1]
        policy = load_policy(path.read_text(encoding="utf-8"))
        _cache[key] = (mtime, policy)
        return policy


def policy_from_file(path: str | os.PathLike[str]) -> Policy:
    return load_policy(Path(path).read_text(encoding="utf-8"))
