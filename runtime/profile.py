"""Per-host tuning profiles: what ``distilrt tune`` measured fastest on this machine, per bundle.

A profile is a JSON file under the user cache directory (``$DISTILRT_CACHE_DIR`` overrides it), never
inside the bundle: bundles are portable, timings are not.  Its file name is a key over what the
timings depend on — CPU model, ISA flags, core count, and the versions of distilrt, onnxruntime and
openvino — so a profile written on another CPU, or before an upgrade, is simply not found (stale).
Inside, entries are keyed by the bundle's variant SHA-256s: a re-exported bundle is not tuned yet.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .hostinfo import cpu_info, package_versions, physical_cores
from .manifest import Manifest
from .userdirs import cache_root

logger = logging.getLogger(__name__)

FORMAT = 1
#: Packages whose versions change timings (a new version means a new, untuned profile).
VERSIONED = ("distilrt", "onnxruntime", "onnxruntime-gpu", "openvino")
#: ISA flags that decide kernels; only these enter the key, so an unrelated flag (a new mitigation
#: shown by the kernel) does not throw a profile away.
KEY_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8",
             "amx_bf16", "amx_fp16", "asimd", "sve", "i8mm", "bf16")


def host_facts() -> dict[str, Any]:
    """What a profile's timings depend on, as recorded in it."""
    model, flags = cpu_info()
    return {"cpu": model, "machine": platform.machine(), "flags": sorted(f for f in flags if f in KEY_FLAGS),
            "physical_cores": physical_cores(), "logical_cpus": os.cpu_count() or 1,
            "versions": package_versions(VERSIONED)}


def host_key(facts: dict[str, Any] | None = None) -> str:
    facts = host_facts() if facts is None else facts
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def profile_path(facts: dict[str, Any] | None = None) -> Path:
    return cache_root() / "profiles" / f"host-{host_key(facts)}.json"


def bundle_key(manifest: Manifest) -> str:
    """The bundle's identity for tuning: its variants' SHA-256s (a re-export gives a new key)."""
    digests = "|".join(f"{name}:{v.sha256}" for name, v in sorted(manifest.variants.items()))
    return hashlib.sha256(digests.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Setting:
    """One way to run a bundle: engine, precision, graph, threads, streams.

    ``graph`` is the manifest key of the file run (``"fp32"`` for the standard file, ``"fp32-flash"``
    for an extra graph); empty means the engine's default file for the precision.
    """

    engine: str
    precision: str
    threads: int
    streams: int = 1
    graph: str = ""

    @property
    def label(self) -> str:
        graph = f":{self.graph}" if self.graph and self.graph != self.precision else ""
        return f"{self.engine}/{self.precision}{graph}/t{self.threads}/s{self.streams}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Setting":
        return cls(str(data["engine"]), str(data["precision"]), int(data["threads"]), int(data.get("streams", 1)),
                   str(data.get("graph") or ""))


@dataclass(frozen=True)
class TunedEntry:
    """A bundle's tuning on this host: the setting for single calls and the one for bulk work."""

    latency: Setting
    bulk: Setting | None
    tuned_at: str
    path: Path  # the profile file it came from


def read_profile(path: Path | None = None) -> dict[str, Any] | None:
    """The profile JSON of this host, or None when there is none (or it is unreadable / another format)."""
    path = profile_path() if path is None else path
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        logger.warning("ignoring unreadable tuning profile %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("bundles"), dict):
        logger.warning("ignoring tuning profile %s: not format %d", path, FORMAT)
        return None
    return data


def lookup(manifest: Manifest) -> tuple[TunedEntry | None, str]:
    """This host's tuned entry for a bundle, and a sentence saying why there is or is not one."""
    path = profile_path()
    data = read_profile(path)
    if data is None:
        return None, f"no tuning profile for this host ({path} not found); run `distilrt tune BUNDLE`"
    entry = data["bundles"].get(bundle_key(manifest))
    if not isinstance(entry, dict):
        return None, (f"this host's profile {path} has no entry for bundle {manifest.name!r} with these files "
                      "(not tuned, or re-exported since); run `distilrt tune BUNDLE`")
    try:
        latency = Setting.from_dict(entry["choice"]["latency"])
        bulk = Setting.from_dict(entry["choice"]["bulk"]) if entry["choice"].get("bulk") else None
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"ignoring malformed entry for {manifest.name!r} in {path} ({exc}); run `distilrt tune` again"
    for setting in (latency, bulk):
        if setting is not None and setting.graph and setting.graph not in {**manifest.variants, **manifest.graphs}:
            return None, f"ignoring the entry for {manifest.name!r} in {path}: it names graph {setting.graph!r}, " \
                         "which the bundle does not have; run `distilrt tune` again"
    return TunedEntry(latency, bulk, str(entry.get("tuned_at", "")), path), f"tuned on this host ({path})"


def write_entry(manifest: Manifest, *, latency: Setting, bulk: Setting | None, workloads: dict[str, Any],
                extra: dict[str, Any] | None = None) -> Path:
    """Record a bundle's tuning in this host's profile (other bundles' entries are kept)."""
    facts = host_facts()
    path = profile_path(facts)
    data = read_profile(path) or {"format": FORMAT, "host": facts, "bundles": {}}
    data["host"] = facts
    data["bundles"][bundle_key(manifest)] = {
        "name": manifest.name, "task": manifest.task, "tuned_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "choice": {"latency": asdict(latency), "bulk": asdict(bulk) if bulk else None},
        "workloads": workloads, **(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(f".{os.getpid()}.partial")
    staged.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(staged, path)
    return path
