"""What a benchmark produces: tables of samples per contender, summarised as median (min-max)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool


@dataclass
class Contender:
    """One contender's samples, one list per metric; ``skipped`` says why it did not run."""

    name: str
    samples: dict[str, list[float]] = field(default_factory=dict)
    skipped: str | None = None
    #: Why its figures, though measured, cannot be recommended (for example starved connections).
    disqualified: str | None = None
    note: str = ""

    def add(self, metric: str, value: float) -> None:
        self.samples.setdefault(metric, []).append(value)

    def median(self, metric: str) -> float | None:
        values = self.samples.get(metric)
        return statistics.median(values) if values else None


@dataclass
class Table:
    """A side-by-side comparison. Ratios are against ``baseline`` on the first metric."""

    key: str
    title: str
    metrics: list[Metric]
    baseline: str | None = None
    #: The metrics shown as ratios to the baseline (the first metric when empty).
    ratio_metrics: list[str] = field(default_factory=list)
    contenders: list[Contender] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def contender(self, name: str) -> Contender:
        for contender in self.contenders:
            if contender.name == name:
                return contender
        contender = Contender(name)
        self.contenders.append(contender)
        return contender

    def ratio(self, name: str, metric: str | None = None) -> float | None:
        """``name``'s median over the baseline's median (for the first metric by default)."""
        if self.baseline is None:
            return None
        key = metric or self.metrics[0].key
        mine = self.contender(name).median(key)
        theirs = self.contender(self.baseline).median(key)
        if mine is None or not theirs:
            return None
        return mine / theirs

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "baseline": self.baseline,
            "metrics": [m.key for m in self.metrics],
            "contenders": {
                c.name: {
                    "samples": c.samples,
                    "skipped": c.skipped,
                    "note": c.note,
                    "disqualified": c.disqualified,
                }
                for c in self.contenders
            },
            "notes": self.notes,
        }


def fmt(value: float) -> str:
    """Three significant figures, thousands separated."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def summary(values: list[float]) -> str:
    """``median (min-max)``; just the value for a single sample."""
    if not values:
        return "-"
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))})"
