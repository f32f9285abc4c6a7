"""The card's pictures: reward and trained-turn distributions per split, as PNG files in ``DIR/plots``.

Plots are rendered with matplotlib's Agg backend (no display needed) and
named by their content hash like the data files, so equal data gives equal
bytes and a crash never leaves the card pointing at a half-written picture.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Callable
from pathlib import Path

from agentinstruct.datasetdir.fileutil import atomic_write
from agentinstruct.datasetdir.layout import PLOTS, Asset, DataFile
from agentinstruct.datasetdir.stats import SplitStats, split_stats

KEPT, DROPPED = "#2a7ab9", "#e08a3c"
REWARD_BINS = [i / 10 for i in range(11)]


def _figure(stats: list[SplitStats], title: str, draw: Callable, xlabel: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(stats))
    rows = math.ceil(len(stats) / cols)
    # At least 7 inches wide so the title and the legend share the top line even for a single split.
    fig, axes = plt.subplots(rows, cols, figsize=(max(7.0, 4.2 * cols), 3.0 * rows), squeeze=False)
    for ax, s in zip(axes.flat, stats):
        draw(ax, s)
        ax.set_title(f"{s.split}  (kept {s.kept} of {s.scored})", fontsize=10)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel("trajectories", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.yaxis.get_major_locator().set_params(integer=True)  # counts of trajectories
    for ax in list(axes.flat)[len(stats):]:
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=KEPT), plt.Rectangle((0, 0), 1, 1, color=DROPPED)]
    fig.legend(handles, ["kept", "dropped"], loc="upper right", ncol=2, fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=12, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    buf = io.BytesIO()
    # No Software/date metadata: the bytes depend on the data alone.
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _draw_rewards(ax, s: SplitStats) -> None:
    ax.hist([s.rewards_kept, s.rewards_dropped], bins=REWARD_BINS, stacked=True, color=[KEPT, DROPPED], edgecolor="white", linewidth=0.5)
    ax.set_xlim(0, 1)


def _draw_turns(ax, s: SplitStats) -> None:
    top = max(s.turns_kept + s.turns_dropped, default=0)
    bins = [b - 0.5 for b in range(top + 2)]
    ax.hist([s.turns_kept, s.turns_dropped], bins=bins, stacked=True, color=[KEPT, DROPPED], edgecolor="white", linewidth=0.5)
    ax.xaxis.get_major_locator().set_params(integer=True)


def _save(root: Path, name: str, png: bytes) -> Asset:
    digest = hashlib.sha256(png).hexdigest()
    path = Path(root) / PLOTS / f"{name}-{digest[:12]}.png"
    if not path.exists():
        atomic_write(path, lambda tmp: tmp.write_bytes(png))
    return Asset(path.relative_to(root).as_posix(), digest, len(png))


def write_plots(root: Path, files: list[DataFile], stats: list[SplitStats] | None = None) -> list[Asset]:
    """Render the reward and turn-count plots of the data in ``files``; returns the files written.

    The reward plot is left out when no record carries a reward (imported rows). ``stats``, when the caller has
    already read them, are the numbers of ``files``.

    Example (three kg episodes of the reference policy, on the embedded graph):
        >>> import asyncio
        >>> from agentinstruct.builders.kg.builder import KgBuilder
        >>> from agentinstruct.collection.collect import build_split
        >>> from agentinstruct.datasetdir.layout import data_files
        >>> from agentinstruct.filters.base import FilterPipeline, RewardFilter
        >>> kg = KgBuilder()
        >>> outcome = asyncio.run(build_split(kg, kg.load_tasks("embedded"), Path("out"), policy="reference",
        ...                                   pipeline=FilterPipeline([RewardFilter(1.0)]), limit=3, progress=False))
        >>> [a.path for a in write_plots(Path("out"), data_files(Path("out")))]
        ['plots/rewards-....png', 'plots/turns-....png']
    """
    stats = [s for s in (split_stats(root, files) if stats is None else stats) if s.scored]
    if not stats:
        return []
    assets = []
    rewarded = [s for s in stats if s.rewards]
    if rewarded:
        png = _figure(rewarded, "Reward per trajectory (environment score, 0 to 1)", _draw_rewards, "reward")
        assets.append(_save(root, "rewards", png))
    png = _figure(stats, "Trained agent turns per trajectory", _draw_turns, "turns with loss = true")
    assets.append(_save(root, "turns", png))
    return assets
