"""Machine facts and the Markdown report."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

from benchmarks.results import Table, summary

PYTHON_PACKAGES = (
    "flask",
    "werkzeug",
    "pyjwt",
    "azure-messaging-webpubsubservice",
    "gunicorn",
    "granian",
    "bjoern",
    "uwsgi",
    "waitress",
    "socketify",
    "fastwsgi",
)


def cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gib() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _output(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return ""
    return (result.stdout or result.stderr).strip()


def python_versions(python: str) -> dict[str, str]:
    """Versions of the interesting packages as ``python`` sees them (missing ones left out)."""
    probe = (
        "import importlib.metadata as m, platform\n"
        "print('python', platform.python_version())\n"
        f"for name in {PYTHON_PACKAGES!r}:\n"
        "    try: print(name, m.version(name))\n"
        "    except m.PackageNotFoundError: pass\n"
    )
    lines = _output([python, "-c", probe]).splitlines()
    return dict(line.split(" ", 1) for line in lines if " " in line)


def node_versions(node_modules: Path) -> dict[str, str]:
    versions = {}
    node = _output(["node", "--version"])
    if node:
        versions["node"] = node.lstrip("v")
    for package in ("@azure/web-pubsub-express", "express"):
        manifest = node_modules / package / "package.json"
        if manifest.exists():
            versions[package] = _output(["node", "-p", f"require({str(manifest)!r}).version"])
    return versions


def machine() -> dict[str, str]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": f"{memory_gib():.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "wrk": _output(["wrk", "--version"]).split(" [")[0] or "not installed",
    }


def load_average() -> str:
    """The 1-minute load average: other work on the machine skews every absolute figure."""
    with open("/proc/loadavg") as loadavg:
        return loadavg.read().split()[0]


def render_table(table: Table) -> list[str]:
    lines = [f"### {table.title}", ""]
    if not table.contenders:
        return [*lines, *table.notes, ""]
    labels = {m.key: m.label for m in table.metrics}
    ratio_keys = (table.ratio_metrics or [table.metrics[0].key]) if table.baseline else []
    header = ["contender", *(f"{m.label} ({m.unit})" if m.unit else m.label for m in table.metrics)]
    header += [f"{labels[key]} vs {table.baseline}" for key in ratio_keys]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for contender in table.contenders:
        if contender.skipped:
            cells = [contender.name, f"skipped: {contender.skipped}"]
            cells += [""] * (len(header) - 2)
        else:
            remarks = [r for r in (contender.note, contender.disqualified) if r]
            cells = [contender.name + "".join(f" ({r})" for r in remarks)]
            cells += [summary(contender.samples.get(m.key, [])) for m in table.metrics]
            for key in ratio_keys:
                ratio = table.ratio(contender.name, key)
                cells.append(f"{ratio:.2f}x" if ratio is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"{note}" for note in table.notes]
    if table.notes:
        lines.append("")
    return lines


def render(
    *,
    facts: dict[str, str],
    versions: dict[str, str],
    headline: list[str],
    sections: list[tuple[str, list[str], list[Table]]],
    method: list[str],
) -> str:
    lines = [
        "# flask_webpubsub benchmarks",
        "",
        f"Written by `python -m benchmarks` on {facts['date']}. Do not edit by hand: rerun it.",
        "Figures are medians over the repeats with (min-max); ratios are what to quote, since",
        "absolute figures drift on shared machines.",
        "",
        "## Headline",
        "",
        *headline,
        "",
        "## Machine and versions",
        "",
        f"- CPU: {facts['cpu']}, {facts['cores']} cores; memory {facts['memory']}; {facts['os']}",
        "- " + ", ".join(f"{name} {version}" for name, version in versions.items()),
        f"- load generator: {facts['wrk']}",
        f"- load average before the run: {facts['load']} (well above 0: other work shared the "
        "cores, and absolute figures suffer more than ratios)",
        "",
    ]
    for title, text, tables in sections:
        lines += [f"## {title}", "", *text]
        if text:
            lines.append("")
        for table in tables:
            lines += render_table(table)
    lines += ["## Method", "", *method, ""]
    return "\n".join(lines)
