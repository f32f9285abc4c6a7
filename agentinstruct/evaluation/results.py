"""An evaluation's results: one figure per benchmark with its confidence interval, and what is made of them.

A ``Result`` is one benchmark's score (held-in split or general benchmark) over ``n`` items, with a 95% interval
whose method it names: Wilson's score interval for rates (success, step success, accuracy), a percentile
bootstrap for means of bounded scores (WebShop reward, KG F1). Errored items are part of ``n`` and count as
failures; ``errors`` says how many there were, so nothing leaves the denominator silently.

``DIR/results.json`` holds a run (model, revision, settings, results); ``DIR/results.md`` its table in the
paper's layout (held-in per task: ALFWorld, WebShop, Mind2Web, KG, OS, DB; general per benchmark). Several runs
make one table, one plot (``plot_runs``) and a comparison (``compare_runs``): the difference of each benchmark
against the first run, and whether the two intervals overlap, so that a difference within noise says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agentinstruct.datasetdir.fileutil import atomic_write, atomic_write_text

RESULTS = "results.json"
TABLE = "results.md"
FORMAT = "agentinstruct-evaluation/1"
KINDS = ("held-in", "general")
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: two-sided 95% intervals
WILSON = "wilson-95"
BOOTSTRAP = "bootstrap-percentile-95"
BOOTSTRAP_RESAMPLES = 10_000

HELD_IN_ORDER = ("alfworld", "webshop", "mind2web", "kg", "os", "db")
"""The paper's held-in columns (AgentTuning table 3)."""
TITLES = {"alfworld": "ALFWorld", "webshop": "WebShop", "mind2web": "Mind2Web", "kg": "KG", "os": "OS", "db": "DB",
          "mmlu": "MMLU", "humaneval": "HumanEval", "gsm8k": "GSM8K", "mt_bench": "MT-Bench"}
GENERAL_ORDER = ("mmlu", "humaneval", "gsm8k", "mt_bench")
"""The paper's general columns; other general benchmarks follow in name order."""


@dataclass(frozen=True)
class Result:
    """One benchmark's score: ``value`` over ``n`` items with its 95% interval ``[ci_low, ci_high]``."""

    benchmark: str
    """The split (``os``, ``webshop``, ...) or the general benchmark (``mmlu``, ``gsm8k``, ...)."""
    kind: str
    """``held-in`` (an AgentBench-style split run in its environment) or ``general`` (lm-eval-harness)."""
    metric: str
    """The paper's metric: ``success``, ``reward``, ``step_success``, ``f1``, ``acc``, ``exact_match``, ..."""
    value: float
    n: int
    """Items scored, errored ones included (they count as failures)."""
    ci_low: float
    ci_high: float
    errors: int = 0
    """Items that errored after every retry (counted in ``n`` as failures)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """What the figure depends on: task source, builder options, sampling, lm-eval task and backend, ..."""
    ci_method: str = ""
    """How the interval was computed: ``wilson-95``, ``bootstrap-percentile-95``, or the harness's (``stderr-95``)."""
    details: dict[str, float] = field(default_factory=dict)
    """Secondary figures: success rate and mean reward side by side, format-error rate, mean turns, ..."""
    unit: str = "fraction"
    """``fraction`` (shown x100 as the paper does) or ``score`` (shown as is, e.g. MT-Bench's 1-10)."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"result {self.benchmark}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not (self.ci_low <= self.value <= self.ci_high) and self.n:
            raise ValueError(f"result {self.benchmark}: value {self.value} lies outside its interval "
                             f"[{self.ci_low}, {self.ci_high}]")

    def shown(self, x: float | None = None) -> str:
        """``value`` (or ``x``) as the table prints it.

        Example:
            >>> rate_result("os", "held-in", "success", [True, False, False, True]).shown()
            '50.0'
        """
        x = self.value if x is None else x
        return f"{x * 100:.1f}" if self.unit == "fraction" else f"{x:.2f}"

    def overlaps(self, other: "Result") -> bool:
        """Whether the two 95% intervals share a point (then a difference is within noise).

        Example:
            >>> a = rate_result("os", "held-in", "success", [True] * 3 + [False] * 7)
            >>> b = rate_result("os", "held-in", "success", [True] * 5 + [False] * 5)
            >>> a.overlaps(b)
            True
        """
        return self.ci_low <= other.ci_high and other.ci_low <= self.ci_high


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a rate of ``successes`` in ``n`` (95% by default); (0, 1) for ``n == 0``.

    Example:
        >>> [round(x, 4) for x in wilson_interval(5, 10)]
        [0.2366, 0.7634]
        >>> [round(x, 4) for x in wilson_interval(0, 20)]
        [0.0, 0.1611]
    """
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(values: Sequence[float], *, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap's 95% interval of the mean of ``values`` (fixed seed: the same values give the
    same interval).

    Example:
        >>> bootstrap_interval([0.5] * 8)
        (0.5, 0.5)
        >>> lo, hi = bootstrap_interval([0.0, 1.0] * 10); round(lo, 2), round(hi, 2)
        (0.3, 0.7)
    """
    import numpy as np

    if not len(values):
        return 0.0, 1.0
    data = np.asarray(values, dtype=float)
    picks = np.random.default_rng(seed).integers(0, len(data), size=(resamples, len(data)))
    means = data[picks].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    mean = float(data.mean())
    return min(float(lo), mean), max(float(hi), mean)


def rate_result(benchmark: str, kind: str, metric: str, hits: Sequence[bool], *, errors: int = 0,
                settings: dict[str, Any] | None = None, details: dict[str, float] | None = None) -> Result:
    """A rate over ``hits`` (one bool per item, errored items False) with Wilson's interval.

    Example:
        >>> r = rate_result("os", "held-in", "success", [True, False, False, False], errors=1)
        >>> r.value, r.n, r.errors, r.ci_method, round(r.ci_high, 4)
        (0.25, 4, 1, 'wilson-95', 0.6994)
    """
    n, k = len(hits), sum(1 for h in hits if h)
    lo, hi = wilson_interval(k, n)
    return Result(benchmark, kind, metric, k / n if n else 0.0, n, lo, hi, errors, dict(settings or {}), WILSON,
                  dict(details or {}))


def mean_result(benchmark: str, kind: str, metric: str, values: Sequence[float], *, errors: int = 0,
                settings: dict[str, Any] | None = None, details: dict[str, float] | None = None) -> Result:
    """A mean of per-item scores in [0, 1] (errored items 0) with the percentile bootstrap's interval.

    Example:
        >>> r = mean_result("kg", "held-in", "f1", [1.0, 0.5, 0.0, 0.5])
        >>> r.value, r.ci_method
        (0.5, 'bootstrap-percentile-95')
    """
    n = len(values)
    lo, hi = bootstrap_interval(values)
    return Result(benchmark, kind, metric, sum(values) / n if n else 0.0, n, lo, hi, errors, dict(settings or {}),
                  BOOTSTRAP, dict(details or {}))


@dataclass(frozen=True)
class EvalRun:
    """One model's evaluation: what ``DIR/results.json`` holds."""

    model: str
    """The model as given (``--model``): a served name, ``local``, or a checkpoint dir."""
    revision: str | None
    """What pins the weights: a Hub commit, a checkpoint dir's or GGUF's sha256, or None (an opaque server)."""
    results: tuple[Result, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    name: str = ""
    """How tables and plots label the run (default: the model)."""

    @property
    def label(self) -> str:
        """The run's name in tables and plots."""
        return self.name or self.model

    def get(self, kind: str, benchmark: str) -> Result | None:
        """The result of ``benchmark``, or None."""
        return next((r for r in self.results if r.kind == kind and r.benchmark == benchmark), None)

    def merged(self, newer: Sequence[Result]) -> "EvalRun":
        """This run with ``newer`` results replacing those of the same benchmark (a split re-run, general added)."""
        keys = {(r.kind, r.benchmark) for r in newer}
        kept = tuple(r for r in self.results if (r.kind, r.benchmark) not in keys)
        return replace(self, results=kept + tuple(newer))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_dict(run: EvalRun) -> dict[str, Any]:
    """The JSON object of ``results.json``.

    Example:
        >>> d = run_dict(EvalRun("m", None, (rate_result("os", "held-in", "success", [True]),)))
        >>> d["format"], d["results"][0]["benchmark"], sorted(d["results"][0])[:3]
        ('agentinstruct-evaluation/1', 'os', ['benchmark', 'ci_high', 'ci_low'])
    """
    return {"format": FORMAT, "model": run.model, "revision": run.revision, "name": run.name,
            "created_at": run.created_at, "settings": run.settings, "results": [asdict(r) for r in run.results]}


def write_results(out: Path, run: EvalRun) -> Path:
    """Write ``out/results.json`` and ``out/results.md``, merging with a run already there for the same model
    (newer results replace older ones of the same benchmark); returns the JSON file's path.

    A run of another model in ``out`` is refused (one directory, one model).

    Example:
        >>> r = rate_result("os", "held-in", "success", [True, False])
        >>> path = write_results(Path("run"), EvalRun("m", None, (r,)))
        >>> read_results(path).results[0].value
        0.5
        >>> write_results(Path("run"), EvalRun("other", None, (r,)))
        Traceback (most recent call last):
        ...
        ValueError: run/results.json: holds results of model 'm', not 'other'; write each model's evaluation to its own --out
    """
    out = Path(out)
    path = out / RESULTS
    old = check_owner(out, run.model, run.revision)
    if old is not None:
        run = replace(old.merged(run.results), settings={**old.settings, **run.settings},
                      name=run.name or old.name)
    run = replace(run, created_at=run.created_at or _now())
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(run_dict(run), indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(out / TABLE, render_table([run]))
    return path


def check_owner(out: Path, model: str, revision: str | None = None, *, any_revision: bool = False) -> EvalRun | None:
    """The run already in ``out`` (None when there is none); ``ValueError`` when it is another model's, or with
    ``any_revision`` unset another revision's: a command checks this before it evaluates anything.

    Example:
        >>> check_owner(Path("nothing-here"), "m") is None
        True
    """
    path = Path(out) / RESULTS
    if not path.exists():
        return None
    old = read_results(path)
    if old.model != model or (old.revision != revision and not any_revision):
        what = repr(old.model) if old.model != model else f"{old.model!r} at revision {old.revision}"
        raise ValueError(f"{path}: holds results of model {what}, not {model!r}"
                         + (f" at revision {revision}" if old.model == model else "")
                         + "; write each model's evaluation to its own --out")
    return old


def read_results(path: Path) -> EvalRun:
    """The run in ``path`` (a ``results.json`` or the directory holding one); errors name the file and field.

    Example:
        >>> _ = Path("bad.json").write_text('{"format": "agentinstruct-evaluation/1", "model": "m", "results": [{}]}')
        >>> read_results(Path("bad.json"))
        Traceback (most recent call last):
        ...
        ValueError: bad.json: results[0]: missing field benchmark
    """
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no evaluation results (run `agentinstruct evaluate --out DIR` first)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: format is not {FORMAT!r}; not an `agentinstruct evaluate` results file")
    results = []
    names = [f for f in Result.__dataclass_fields__]
    for i, item in enumerate(data.get("results") or []):
        missing = next((f for f in ("benchmark", "kind", "metric", "value", "n", "ci_low", "ci_high")
                        if not isinstance(item, dict) or f not in item), None)
        if missing:
            raise ValueError(f"{path}: results[{i}]: missing field {missing}")
        unknown = sorted(set(item) - set(names))
        if unknown:
            raise ValueError(f"{path}: results[{i}]: unknown field {unknown[0]}")
        try:
            results.append(Result(**item))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: results[{i}]: {exc}") from None
    if not isinstance(data.get("model"), str):
        raise ValueError(f"{path}: field model: missing or not a string")
    return EvalRun(data["model"], data.get("revision"), tuple(results), data.get("settings") or {},
                   data.get("created_at") or "", data.get("name") or "")


def _order(runs: Sequence[EvalRun], kind: str) -> list[str]:
    present = {r.benchmark for run in runs for r in run.results if r.kind == kind}
    first = HELD_IN_ORDER if kind == "held-in" else GENERAL_ORDER
    return [b for b in first if b in present] + sorted(present - set(first))


def _cell(r: Result | None) -> str:
    if r is None:
        return "–"
    mark = f" ({r.errors} errored)" if r.errors else ""
    return f"{r.shown()} [{r.shown(r.ci_low)}, {r.shown(r.ci_high)}]{mark}"


def render_table(runs: Sequence[EvalRun]) -> str:
    """Markdown tables in the paper's layout, one row per run: held-in per split, then general per benchmark;
    each cell ``value [95% interval]`` (rates and F1 x100), with the metrics and n below.

    Example:
        >>> run = EvalRun("base", None, (rate_result("os", "held-in", "success", [True, False]),
        ...                              mean_result("kg", "held-in", "f1", [1.0, 0.0, 0.5])))
        >>> print(render_table([run]).splitlines()[4:7])
        ['| model | KG | OS |', '|---|---|---|', '| base | 50.0 [0.0, 100.0] | 50.0 [9.5, 90.5] |']
    """
    lines = ["# Evaluation results", ""]
    for kind, heading in (("held-in", "Held-in tasks"), ("general", "General benchmarks")):
        names = _order(runs, kind)
        if not names:
            continue
        lines += [f"## {heading}", "", "| model | " + " | ".join(TITLES.get(b, b) for b in names) + " |",
                  "|---" * (len(names) + 1) + "|"]
        lines += [f"| {run.label} | " + " | ".join(_cell(run.get(kind, b)) for b in names) + " |" for run in runs]
        lines.append("")
        metrics = []
        for b in names:
            r = next(run.get(kind, b) for run in runs if run.get(kind, b) is not None)
            ns = sorted({run.get(kind, b).n for run in runs if run.get(kind, b) is not None})
            metrics.append(f"{TITLES.get(b, b)}: {r.metric}, n = {'/'.join(map(str, ns))}, {r.ci_method or 'no'} interval")
        lines += ["Metrics: " + "; ".join(metrics) + ".", ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class Difference:
    """One benchmark of a run against the base run: the change and whether it stands out of the noise."""

    kind: str
    benchmark: str
    metric: str
    base: Result
    other: Result

    @property
    def delta(self) -> float:
        """``other - base`` in the metric's own units."""
        return self.other.value - self.base.value

    @property
    def within_noise(self) -> bool:
        """True when the two 95% intervals overlap: the data do not tell the runs apart."""
        return self.base.overlaps(self.other)

    @property
    def verdict(self) -> str:
        """``within noise``, ``better`` or ``worse``."""
        if self.within_noise:
            return "within noise"
        return "better" if self.delta > 0 else "worse"


def compare_runs(base: EvalRun, other: EvalRun) -> list[Difference]:
    """Each benchmark both runs scored with the same metric, ``other`` against ``base``, in table order.

    Example:
        >>> base = EvalRun("base", None, (rate_result("os", "held-in", "success", [True] * 2 + [False] * 18),
        ...                               rate_result("db", "held-in", "success", [True] * 2 + [False] * 18)))
        >>> tuned = EvalRun("tuned", None, (rate_result("os", "held-in", "success", [True] * 4 + [False] * 16),
        ...                                 rate_result("db", "held-in", "success", [True] * 15 + [False] * 5)))
        >>> [(d.benchmark, round(d.delta, 2), d.verdict) for d in compare_runs(base, tuned)]
        [('os', 0.1, 'within noise'), ('db', 0.65, 'better')]
    """
    out = []
    for kind in KINDS:
        for b in _order([base, other], kind):
            x, y = base.get(kind, b), other.get(kind, b)
            if x is not None and y is not None and x.metric == y.metric:
                out.append(Difference(kind, b, x.metric, x, y))
    return out


def render_comparison(runs: Sequence[EvalRun]) -> str:
    """The table of ``runs`` and, for each run after the first, its differences against the first (x100 for
    rates), each marked ``within noise`` when the intervals overlap.

    Example:
        >>> base = EvalRun("base", None, (rate_result("os", "held-in", "success", [True] * 2 + [False] * 18),))
        >>> tuned = EvalRun("tuned", None, (rate_result("os", "held-in", "success", [True] * 4 + [False] * 16),))
        >>> print(render_comparison([base, tuned]).splitlines()[-3])
        | OS | success | 10.0 | 20.0 | +10.0 | within noise (95% intervals overlap) |
    """
    if len(runs) < 2:
        raise ValueError("--compare needs at least two runs: the base first, then the runs to compare with it")
    lines = [render_table(runs)]
    base = runs[0]
    for other in runs[1:]:
        lines += [f"## {other.label} against {base.label}", "",
                  f"| benchmark | metric | {base.label} | {other.label} | difference | verdict |",
                  "|---|---|---|---|---|---|"]
        diffs = compare_runs(base, other)
        for d in diffs:
            sign = "+" if d.delta >= 0 else "-"
            why = "within noise (95% intervals overlap)" if d.within_noise else f"{d.verdict} (95% intervals apart)"
            lines.append(f"| {TITLES.get(d.benchmark, d.benchmark)} | {d.metric} | {d.base.shown()} | "
                         f"{d.other.shown()} | {sign}{d.base.shown(abs(d.delta))} | {why} |")
        if not diffs:
            lines.append("| (no benchmark scored by both runs with the same metric) | | | | | |")
        apart = sum(1 for d in diffs if not d.within_noise)
        lines += ["", f"{apart} of {len(diffs)} differences lie outside the noise (non-overlapping 95% intervals).",
                  ""]
    return "\n".join(lines)


def plot_runs(runs: Sequence[EvalRun], path: Path) -> Path:
    """A PNG of every benchmark's score per run (bars) with its 95% interval (error bars), held-in then general.

    Example:
        >>> base = EvalRun("base", None, (rate_result("os", "held-in", "success", [True, False]),))
        >>> plot_runs([base], Path("runs.png")).stat().st_size > 1000
        True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [(kind, b) for kind in KINDS for b in _order(runs, kind)]
    if not columns:
        raise ValueError("no results to plot")
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(columns) * max(1, len(runs)) ** 0.5 + 2), 3.8))
    for i, run in enumerate(runs):
        xs, ys, lo, hi = [], [], [], []
        for x, (kind, b) in enumerate(columns):
            r = run.get(kind, b)
            if r is None:
                continue
            scale = 100.0 if r.unit == "fraction" else 1.0
            xs.append(x - 0.4 + width * (i + 0.5))
            ys.append(r.value * scale)
            lo.append((r.value - r.ci_low) * scale)
            hi.append((r.ci_high - r.value) * scale)
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=run.label)
    ax.set_xticks(range(len(columns)), [TITLES.get(b, b) for _, b in columns], fontsize=9)
    ax.set_ylabel("score (x100 for rates; 95% intervals)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None}))
    plt.close(fig)
    return path
