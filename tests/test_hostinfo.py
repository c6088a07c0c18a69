"""Host facts: /proc/cpuinfo parsed once, physical cores counted from (physical id, core id) pairs."""

from __future__ import annotations

import os

from distilrt.runtime import hostinfo


def _processor(n: int, socket: int, core: int) -> str:
    return (f"processor\t: {n}\nmodel name\t: Test CPU @ 2.0GHz\nflags\t\t: fpu avx2 avx512_vnni\n"
            f"physical id\t: {socket}\ncore id\t\t: {core}\n\n")


def test_cores_are_distinct_socket_core_pairs_and_flags_come_from_the_first_processor() -> None:
    # Two sockets x two cores x two hyper-threads: eight processors, four physical cores.
    text = "".join(_processor(n, socket=n // 4, core=(n // 2) % 2) for n in range(8))
    found = hostinfo.parse_cpuinfo(text.splitlines(keepends=True))
    assert found == hostinfo.CpuInfo("Test CPU @ 2.0GHz", frozenset({"fpu", "avx2", "avx512_vnni"}), 4)
    # A text without core ids (some virtual machines, other platforms): no cores known, the platform's name.
    bare = hostinfo.parse_cpuinfo(["processor\t: 0\n"])
    assert bare.cores == 0 and bare.flags == frozenset() and bare.model


def test_host_facts_are_read_once_and_agree() -> None:
    assert hostinfo.read_cpuinfo() is hostinfo.read_cpuinfo()
    model, flags = hostinfo.cpu_info()
    assert model == hostinfo.cpu_name() and flags == hostinfo.cpu_flags()
    assert 1 <= hostinfo.physical_cores() <= (os.cpu_count() or 1)
