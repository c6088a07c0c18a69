"""What machine and which package versions produced a figure (manifests, benchmark results)."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Iterable


def cpu_info() -> tuple[str, set[str]]:
    """(CPU model name, ISA flags) from /proc/cpuinfo; the platform's name and no flags elsewhere."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, flags


def cpu_flags() -> set[str]:
    return cpu_info()[1]


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the distributions in ``names`` (missing ones are left out)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def physical_cores() -> int:
    """Physical CPU cores this process may use (hyper-threads share a core's execution units)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    try:
        physical = core = None
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    physical = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not line.strip():
                    if core is not None:
                        cores.add((physical or "0", core))
                    physical = core = None
            if core is not None:
                cores.add((physical or "0", core))
    except OSError:
        pass
    return max(1, min(usable, len(cores) or usable))
