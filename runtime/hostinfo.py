"""Facts about this host: CPU model, ISA flags, physical cores, package versions.

The one place that reads ``/proc/cpuinfo`` (once per process); the runtime's session defaults, its
optimised-model cache key, the exporter's int8 preset and manifests, and benchmark results all ask here.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from typing import Iterable


@dataclass(frozen=True)
class CpuInfo:
    """What ``/proc/cpuinfo`` says (the platform's name, no flags and no cores where it is not there)."""

    model: str
    flags: frozenset[str]
    cores: int  # distinct (physical id, core id) pairs; 0 when unknown


@lru_cache(maxsize=1)
def read_cpuinfo() -> CpuInfo:
    """``/proc/cpuinfo``, parsed once per process."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return parse_cpuinfo(handle)
    except OSError:
        return parse_cpuinfo(())


def parse_cpuinfo(lines: Iterable[str]) -> CpuInfo:
    """The first model name and flags line of a ``/proc/cpuinfo`` text, and its distinct physical cores."""
    model, flags = "", frozenset[str]()
    cores: set[tuple[str, str]] = set()
    physical = core = None
    for line in lines:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
        elif key == "physical id":
            physical = value.strip()
        elif key == "core id":
            core = value.strip()
        elif not line.strip():
            if core is not None:
                cores.add((physical or "0", core))
            physical = core = None
    if core is not None:
        cores.add((physical or "0", core))
    return CpuInfo(model or platform.processor() or platform.machine(), flags, len(cores))


def cpu_info() -> tuple[str, set[str]]:
    """(CPU model name, ISA flags)."""
    found = read_cpuinfo()
    return found.model, set(found.flags)


def cpu_name() -> str:
    return read_cpuinfo().model


def cpu_flags() -> set[str]:
    return set(read_cpuinfo().flags)


def physical_cores() -> int:
    """Physical CPU cores this process may use (hyper-threads share a core's execution units)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return max(1, min(usable, read_cpuinfo().cores or usable))


def available_memory() -> int | None:
    """Bytes of memory available to new work (``MemAvailable`` in /proc/meminfo), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the distributions in ``names`` (missing ones are left out)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
