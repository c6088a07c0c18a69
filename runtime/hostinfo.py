"""What machine and which package versions produced a figure (manifests, benchmark results)."""

from __future__ import annotations

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
