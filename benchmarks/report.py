"""Results to disk: ratios, targets, JSON, a Markdown table and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PEERS = ("torch-fp32", "torch-int8", "torch-bf16", "optimum-fp32", "optimum-int8", "openvino-default",
         "openvino-int8")
SYSTEM_ORDER = (*PEERS, "distilrt-fp32", "distilrt-fp16", "distilrt-int8", "distilrt-ov-bf16", "distilrt-ov-int8",
                "distilrt-auto")
#: Workloads where the tuned row is held against the fastest peer, and the goal for each.
FASTEST_PEER_GOALS = {"qa-b1-128": 1.3, "qa-b1-384": 1.3, "qa-b8-128": 1.3, "qa-256-mixed": 1.5}
PEERS_NOTE = ("Peers, each in the `transformers` pipeline: PyTorch fp32, dynamic int8 and bf16; optimum ORTModel "
              "fp32 and int8; OpenVINO on optimum's plain export at its default precision (bf16 on AMX) and int8 "
              "from `nncf.quantize` defaults (the `bench` extra installs openvino and nncf; without them those rows "
              "are skipped with the reason).")


def _index(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["model"], r["workload"], r["system"]): r for r in rows}


def _speed(row: dict[str, Any]) -> float:
    """Higher is better: 1/p50 for latency rows, items per second for throughput rows."""
    if row["kind"] == "latency":
        return 1000.0 / row["latency_ms"]["p50"]
    return float(row["throughput"])


def add_ratios(result: dict[str, Any]) -> None:
    """Each distilrt row gets ``speedup_vs[peer]`` = how many times faster it is than that peer, and
    ``fastest_peer`` / ``speedup_vs_fastest`` against the fastest peer measured on the same workload."""
    index = _index(result["rows"])
    for row in result["rows"]:
        if row["family"] != "distilrt":
            continue
        row["speedup_vs"] = {peer: round(_speed(row) / _speed(index[(row["model"], row["workload"], peer)]), 3)
                             for peer in PEERS if (row["model"], row["workload"], peer) in index}
        if row["speedup_vs"]:
            fastest = min(row["speedup_vs"], key=row["speedup_vs"].__getitem__)
            row["fastest_peer"], row["speedup_vs_fastest"] = fastest, row["speedup_vs"][fastest]


def _target(name: str, measured: float | None, goal: float, *, at_most: bool = False, how: str = "") -> dict[str, Any]:
    met = None if measured is None else (measured <= goal if at_most else measured >= goal)
    return {"target": name, "goal": goal, "measured": None if measured is None else round(measured, 3),
            "met": met, "comparison": "<=" if at_most else ">=", "how": how}


def evaluate_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """distilrt's goals on DistilBERT-QA (speed against its peers, share of the GEMM peak, cold start and memory),
    each with the measured figure (None when the run did not measure it)."""
    index = _index(result["rows"])

    def ratio(workload: str, system: str, peer: str) -> float | None:
        row = index.get(("distilbert-qa", workload, system))
        return None if row is None else row.get("speedup_vs", {}).get(peer)

    targets = [
        _target("int8 QA b1x128 vs transformers PyTorch fp32", ratio("qa-b1-128", "distilrt-int8", "torch-fp32"), 6.0),
        _target("int8 QA b1x128 vs optimum int8", ratio("qa-b1-128", "distilrt-int8", "optimum-int8"), 1.3),
        _target("fp32 QA b1x384 vs optimum fp32", ratio("qa-b1-384", "distilrt-fp32", "optimum-fp32"), 1.5),
        _target("int8 QA b1x384 vs optimum int8", ratio("qa-b1-384", "distilrt-int8", "optimum-int8"), 1.5),
        _target("int8 throughput, 256 mixed pairs, vs optimum int8 (each at its best batch)",
                ratio("qa-256-mixed", "distilrt-int8", "optimum-int8"), 1.5),
    ]
    for workload, goal in FASTEST_PEER_GOALS.items():
        row = index.get(("distilbert-qa", workload, "distilrt-auto"))
        targets.append(_target(f"tuned (auto) {workload} vs the fastest peer"
                               + (f" ({row['fastest_peer']})" if row and "fastest_peer" in row else ""),
                               None if row is None else row.get("speedup_vs_fastest"), goal,
                               how="distilrt-auto against the best peer row of the same workload"))
    tuned = index.get(("distilbert-qa", "qa-b1-384", "distilrt-auto"))
    targets.append(_target("tuned (auto) int8 efficiency end to end, qa-b1-384",
                           None if tuned is None else tuned.get("efficiency"), 0.5,
                           how="matmul ops / p50 / the best bare int8 GEMM measured on this host"))
    for workload in ("qa-b1-128", "qa-b1-384", "qa-b8-128"):
        for precision, goal in (("int8", 0.7), ("fp32", 0.8)):
            row = index.get(("distilbert-qa", workload, f"distilrt-{precision}"))
            targets.append(_target(f"{precision} efficiency end to end, {workload}",
                                   None if row is None else row.get("efficiency"), goal,
                                   how=f"matmul ops / p50 / measured {precision} GEMM peak"))
    for kernel in result.get("kernel", []):
        if kernel["source"] == "distilrt" and "efficiency" in kernel:
            goal = 0.7 if kernel["precision"] == "int8" else 0.8
            targets.append(_target(f"{kernel['precision']} efficiency, session only, {kernel['batch']}x{kernel['seq']}",
                                   kernel["efficiency"], goal, how="ORT session on the bundle file, no tokenizer"))
    ratio = result.get("footprint", {}).get("cold_start_engines", {}).get("openvino_vs_onnxruntime", {})
    targets.append(_target("OpenVINO static int8 cold start to first answer / ONNX Runtime int8's (cache warm)",
                           ratio.get("to_first_answer"), 2.0, at_most=True))
    cold = result.get("footprint", {}).get("cold_start", {})
    # The default configuration (no optimised-model cache) is the one held to the goal.
    ours = next((v for k, v in cold.items() if k.startswith("distilrt") and "cache" not in k), None)
    theirs = cold.get("transformers-fp32")
    if ours and theirs:
        targets.append(_target("cold start to first answer / transformers'", ours["process_s"] / theirs["process_s"],
                               0.2, at_most=True))
        targets.append(_target("peak RSS / transformers'", ours["rss_mb"] / theirs["rss_mb"], 1 / 3, at_most=True))
    return targets


def _int8_line(choice: dict[str, Any]) -> str:
    """What the distilrt int8 rows ran: the exporter's chosen graph and the agreement it recorded."""
    if "top1_agreement" in choice:
        agreement = (f"top-1 agreement with PyTorch {round(choice['top1_agreement'] * choice['top1_compared'])}"
                     f" of {choice['top1_compared']}")
    elif "embedding_cosine_min" in choice:
        agreement = f"embedding cosine to PyTorch >= {choice['embedding_cosine_min']:.4f}"
    else:
        agreement = "agreement not recorded"
    why = (" (seeded random weights: no trained decisions to keep, so the fastest graph)"
           if choice.get("policy") == "speed" else "")
    return f"distilrt int8 graph: {choice.get('chosen')}, exporter policy {choice.get('policy')}{why}; {agreement}."


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "—"
    if row["kind"] == "latency":
        lat = row["latency_ms"]
        return f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f}"
    streams = row.get("streams", 1)
    return f"{row['throughput']:.1f}/s (b{row['batch_size']}{f' x{streams} streams' if streams > 1 else ''})"


def markdown(result: dict[str, Any]) -> str:
    """The human-readable summary: per-model tables, efficiency, footprint and the targets."""
    machine, settings = result["machine"], result["settings"]
    lines = [
        "# distilrt benchmark",
        "",
        f"{machine['cpu']}, {machine['logical_cores']} logical cores, ISA {' '.join(machine['isa'])}; "
        f"{settings['threads']} threads for every system; load average at start {machine.get('load_average')}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()) + ".",
        f"Mode: {'quick (smoke check)' if settings['quick'] else 'full'}. Stand-in models have the full-size "
        "architecture with seeded random weights (latency depends on shapes, not weight values); "
        "all-MiniLM-L6-v2 has its real weights.",
        "",
        "Latency cells: p50 / p95 / p99 in ms, end to end (tokenize + run + post-process). "
        "Throughput cells: items per second at the system's best batch size (in brackets; distilrt also tries "
        "running batches on one stream per thread, shown as \"x2 streams\").",
        "",
    ]
    lines += _peak_lines(result.get("peaks", {}), settings["threads"])
    lines += _tuned_lines(result.get("tuned", {}))
    index = _index(result["rows"])
    for key, info in result["models"].items():
        loads = list(dict.fromkeys(r["workload"] for r in result["rows"] if r["model"] == key))
        systems = [s for s in SYSTEM_ORDER if any((key, w, s) in index for w in loads)]
        lines += [f"## {info['label']} — {info['task']}", ""]
        if info.get("int8"):
            lines += [_int8_line(info["int8"]), ""]
        lines += ["| system | " + " | ".join(loads) + " |", "|---|" + "---|" * len(loads)]
        for system in systems:
            label = index[next((key, w, system) for w in loads if (key, w, system) in index)]["label"]
            lines.append(f"| {label} | " + " | ".join(_cell(index.get((key, w, system))) for w in loads) + " |")
        lines.append("")
        ours = [s for s in systems if s.startswith("distilrt")]
        if ours:
            lines += ["Speed-up of distilrt (x, higher is better):", "",
                      "| distilrt | workload | " + " | ".join(p for p in PEERS) + " | vs fastest peer | efficiency |",
                      "|---|---|" + "---|" * (len(PEERS) + 2)]
            for system in ours:
                for w in loads:
                    row = index.get((key, w, system))
                    if row is None:
                        continue
                    ratios = row.get("speedup_vs", {})
                    eff = f"{row['efficiency']:.0%} of {row['efficiency_peak']}" if "efficiency" in row else ""
                    fastest = (f"{row['speedup_vs_fastest']:.2f} ({row['fastest_peer']})"
                               if "fastest_peer" in row else "—")
                    lines.append(f"| {system} | {w} | " + " | ".join(
                        f"{ratios[p]:.2f}" if p in ratios else "—" for p in PEERS) + f" | {fastest} | {eff} |")
            lines.append("")
    if result.get("kernel"):
        lines += ["## Session only (the model alone, no tokenizer: ONNX Runtime for distilrt's and optimum's files, "
                  "OpenVINO's compiled model, PyTorch bf16 forward)", "",
                  "| graph | precision | shape | p50 ms | matmul GOP | efficiency |", "|---|---|---|---|---|---|"]
        for k in result["kernel"]:
            eff = f"{k['efficiency']:.0%} of {k['efficiency_peak']}" if "efficiency" in k else "—"
            lines.append(f"| {k['source']} | {k['precision']} | {k['batch']}x{k['seq']} | {k['latency_ms']['p50']:.2f} "
                         f"| {k['matmul_gops']:.2f} | {eff} |")
        lines.append("")
    lines += _footprint_lines(result.get("footprint", {}))
    lines += gpu_lines(result.get("gpu", {}))
    for skipped in result.get("skipped", []):
        lines += [f"Skipped {', '.join(skipped['systems'])}: {skipped['reason']}.", ""]
    lines += _targets_table(result.get("targets", []), "## Targets", unmeasured="not measured", miss="**no**")
    return "\n".join(lines)


def _load(load: list[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def _peak_lines(peaks: dict[str, Any], threads: int) -> list[str]:
    """The measured GEMM peaks, per engine, and which one efficiency figures are held against."""
    if not peaks:
        return []
    per_engine = {k: v for k, v in peaks.items() if "-" in k}
    if not per_engine:  # results written before peaks were measured per engine
        per_engine = peaks
    line = (f"Measured bare GEMM peak ({threads} threads): "
            + ", ".join(f"{k} {v['gops']:.1f} GOP/s" for k, v in per_engine.items()) + ".")
    if "int8" in peaks and "engine" in peaks["int8"]:
        line += f" int8 efficiency is held against the best of them ({peaks['int8']['engine']})."
    return [line, ""]


def _tuned_lines(tuned: dict[str, Any]) -> list[str]:
    """What ``distilrt tune`` chose for each model's bundle (the distilrt-auto rows run it)."""
    lines = []
    for key, found in tuned.items():
        ran = found.get("tuned_now")
        how = f"tuned in this run, {ran['seconds']:.0f} s" if ran else "profile found"
        if ran and ran.get("ignore_recorded_agreement"):
            how += "; random-weight stand-in, so int8 variants were kept whatever their recorded agreement"
        lines.append(f"- distilrt-auto on {key}: single calls {found['latency']}, bulk {found['bulk']} ({how})")
    return lines + [""] if lines else []


def gpu_lines(gpu: dict[str, Any]) -> list[str]:
    """The GPU section: measured rows as a table, then one line per skipped system with its reason."""
    if not gpu:
        return []
    skipped = gpu.get("skipped")
    if skipped is None:  # written before GPU rows were measured per system: one reason for all of them
        return [] if gpu.get("measured") else [f"GPU rows ({', '.join(gpu['systems'])}) skipped: {gpu['reason']}.", ""]
    rows = gpu.get("rows", [])
    builds = gpu.get("builds", {})
    lines = ["## GPU" + (f" — {gpu['device']}" if gpu.get("device") else ""), ""]
    if rows:
        loads = list(dict.fromkeys(r["workload"] for r in rows))
        index = {(r["system"], r["workload"]): r for r in rows}
        systems = [s for s in dict.fromkeys([*gpu.get("systems", []), *(r["system"] for r in rows)])
                   if any((s, w) in index for w in loads)]
        lines += ["Latency cells: p50 / p95 / p99 in ms, end to end (tokenize + run + post-process), timed after "
                  "each shape's first call; load is model or session creation.", "",
                  "| system | " + " | ".join(loads) + " | load s |", "|---|" + "---|" * (len(loads) + 1)]
        for system in systems:
            label = next(index[(system, w)]["label"] for w in loads if (system, w) in index)
            load = builds.get(system, {}).get("load_s")
            lines.append(f"| {label} | " + " | ".join(_cell(index.get((system, w))) for w in loads)
                         + f" | {'—' if load is None else f'{load:.1f}'} |")
        lines.append("")
        for system in systems:
            build = builds.get(system, {})
            agreed = build.get("agreement_vs_cpu_fp32")
            if agreed and agreed.get("compared"):
                lines.append(f"- {system}: top-1 answer agreement with distilrt CPU fp32 "
                             f"{agreed['top1_agreement']:.1%} of {agreed['compared']} questions")
            if "engine_build_s" in build:
                lines.append(f"- {system}: TensorRT engine {build.get('engine_cache', 'built')} in "
                             f"{build['engine_build_s']:.1f} s (session creation plus each shape's first call), "
                             f"cache {build.get('cache_dir', '?')}")
    for item in skipped:
        lines.append(f"- {item['system']} skipped: {item['reason']}")
    return lines + [""]


def _targets_table(targets: list[dict[str, Any]], title: str, *, unmeasured: str, miss: str) -> list[str]:
    """The targets as a Markdown table under ``title`` (nothing when there are none)."""
    if not targets:
        return []
    lines = [title, "", "| target | goal | measured | met |", "|---|---|---|---|"]
    for t in targets:
        measured = unmeasured if t["measured"] is None else f"{t['measured']:.3g}"
        met = "—" if t["met"] is None else ("yes" if t["met"] else miss)
        lines.append(f"| {t['target']} | {t['comparison']} {t['goal']:.3g} | {measured} | {met} |")
    return lines + [""]


def _footprint_lines(found: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if not found:
        return lines
    lines += ["## Footprint", ""]
    for name, figures in found.get("cold_start", {}).items():
        if name == "skipped":
            lines.append(f"- cold start not measured: {figures}")
            continue
        lines.append(f"- {name}: {figures['process_s']:.2f} s from process start to first answer "
                     f"(imports {figures['import_s']:.2f} s, load {figures['load_s']:.2f} s), "
                     f"peak RSS {figures['rss_mb']:.0f} MB")
    engines = found.get("cold_start_engines", {})
    if engines:
        from .coldstart_engines import table

        lines += ["", "Cold start per engine (new process, launch to first answer; compiled-model cache warm "
                  "unless marked cold):", "", table(engines) if "skipped" not in engines else engines["skipped"], ""]
    sizes = found.get("bundle_bytes", {})
    if sizes:
        lines.append("- on disk (distilbert-qa): " + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in sizes.items()))
    installed = found.get("installed")
    if installed:
        lines.append(f"- installed: runtime only {installed['runtime_only_mb']:.0f} MB; with torch + transformers "
                     f"+ optimum {installed['torch_transformers_optimum_mb']:.0f} MB (as installed here)")
    lines.append("")
    return lines


def plots(result: dict[str, Any], out: Path) -> list[Path]:
    """One bar chart per model: speed relative to the transformers PyTorch fp32 pipeline, per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = _index(result["rows"])
    written = []
    for key, info in result["models"].items():
        loads = list(dict.fromkeys(r["workload"] for r in result["rows"] if r["model"] == key))
        systems = [s for s in SYSTEM_ORDER if any((key, w, s) in index for w in loads)]
        if not loads or not systems:
            continue
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(loads) + 2), 4.2))
        width = 0.8 / len(systems)
        for i, system in enumerate(systems):
            values = []
            for w in loads:
                row, base = index.get((key, w, system)), index.get((key, w, "torch-fp32"))
                values.append(_speed(row) / _speed(base) if row and base else 0.0)
            ax.bar([x + i * width for x in range(len(loads))], values, width, label=system)
        ax.set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(loads))], loads)
        ax.set_ylabel("speed vs transformers PyTorch fp32 (x)")
        ax.set_title(f"{info['label']}, {result['settings']['threads']} threads")
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.legend(fontsize=8, ncol=2)
        fig.tight_layout()
        path = out / f"speedup_{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def write(result: dict[str, Any], out: Path) -> dict[str, Path]:
    """Add ratios and targets to ``result`` and write ``results.json``, ``results.md`` and the plots."""
    out.mkdir(parents=True, exist_ok=True)
    add_ratios(result)
    result["targets"] = evaluate_targets(result)
    json_path = out / "results.json"
    json_path.write_text(json.dumps(result, indent=1, sort_keys=False, default=str) + "\n", encoding="utf-8")
    md_path = out / "results.md"
    md_path.write_text(markdown(result), encoding="utf-8")
    readme_path = out / "README_section.md"
    readme_path.write_text(readme_section(result, results_dir=str(out)), encoding="utf-8")
    written = {"json": json_path, "markdown": md_path, "readme_section": readme_path}
    for path in plots(result, out):
        written[path.stem] = path
    return written


def readme_section(result: dict[str, Any], *, results_dir: str = "benchmarks/results") -> str:
    """The README's "Benchmarks" section: the headline QA table, the other models' rows, targets, plot."""
    machine, settings = result["machine"], result["settings"]
    index = _index(result["rows"])
    command = result.get("command") or f"distilrt bench --output {results_dir}"
    isa = ", ".join(i for i in machine["isa"] if "vnni" in i or i in ("avx512f", "amx_int8", "amx_bf16"))
    load = machine.get("load_average")
    lines = ["## Benchmarks", "",
             f"`{command}` on {machine['cpu']} ({machine['logical_cores']} cores, {isa}), {settings['threads']} "
             f"threads for every system, one run" + (f", load average {_load(load)} at the start" if load else "")
             + (f" and {_load(result['load_average_end'])} at the end" if result.get("load_average_end") else "")
             + (f" ({result['seconds'] / 60:.0f} min)" if result.get("seconds") else "")
             + ". Models: " + ", ".join(info["label"] for info in result["models"].values())
             + " (stand-ins have the full-size architecture; speed depends on shapes, not weight values). "
             "Latency: p50 in ms end to end (tokenize + run + post-process); throughput: items/s at each "
             f"system's best batch size. Full figures, p95/p99, efficiency and footprint: `{results_dir}/results.md`.",
             "", PEERS_NOTE, ""]
    for key, info in result["models"].items():
        loads = list(dict.fromkeys(r["workload"] for r in result["rows"] if r["model"] == key))
        systems = [s for s in SYSTEM_ORDER if any((key, w, s) in index for w in loads)]
        lines += [f"**{key}** ({info['task']})", "", "| system | " + " | ".join(loads) + " |",
                  "|---|" + "---|" * len(loads)]
        for system in systems:
            cells = []
            for w in loads:
                row = index.get((key, w, system))
                if row is None:
                    cells.append("—")
                elif row["kind"] == "latency":
                    cells.append(f"{row['latency_ms']['p50']:.1f} ms")
                else:
                    cells.append(f"{row['throughput']:.1f}/s")
            lines.append(f"| {system} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += _tuned_lines(result.get("tuned", {}))
    lines += _targets_table(result.get("targets", []), "Targets (distilbert-qa):", unmeasured="—", miss="no")
    if "distilbert-qa" in result["models"]:
        lines += [f"![speed vs the transformers PyTorch fp32 pipeline]({results_dir}/speedup_distilbert-qa.png)", ""]
    return "\n".join(lines)
