"""The shop's search engine: BM25 over WebShop's document text, Lucene's scoring and parameters by default.

WebShop indexes each product with pyserini as the lowercased Title, Description, first bullet point and option
text (``search_engine/convert_product_file_format.py``) and returns the top 50. pyserini needs a JVM (Java 21 for
pyserini 1.x) and a prebuilt Lucene index, the setup step users most often fail at; ``Bm25sSearch`` computes
Lucene's BM25 (``bm25s`` with ``method="lucene"``, k1 0.9, b 0.4: Anserini's defaults) in-process over the same
text, analysed as Lucene's English analyser does (its 33 stop words, Porter stemming). ``PyseriniSearch`` uses a
real Lucene index where the user has one (and Java).

Ties are broken by catalogue order, as Lucene breaks them by document id.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

SEARCH_RETURN_N = 50
"""How many products a search returns (WebShop's ``SEARCH_RETURN_N``)."""
K1, B = 0.9, 0.4

LUCENE_STOP_WORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will",
    "with"))
"""Lucene's English stop words (``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET``), which Anserini's analyser drops."""

_TOKEN = re.compile(r"\w+", re.UNICODE)


def document_text(product: dict[str, Any]) -> str:
    """The text WebShop indexes for a product: Title, Description, first bullet and options, lowercased.

    >>> document_text({"Title": "Trail Boots", "Description": "Waterproof.", "BulletPoints": ["Grippy"],
    ...                "options": {"color": ["black", "brown"], "size": ["9"]}})
    'trail boots waterproof. grippy color: black, brown, and size: 9'
    """
    option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in product.get("options", {}).items())
    first_bullet = product["BulletPoints"][0] if product["BulletPoints"] else ""
    return " ".join([product["Title"], product["Description"], first_bullet, option_text]).lower()


class Analyzer:
    """Lucene-like analysis: word tokens, lowercased, stop words dropped, Porter-stemmed.

    >>> Analyzer()("The Running Shoes, for trails")
    ['run', 'shoe', 'trail']
    """

    def __init__(self) -> None:
        import Stemmer

        self._stemmer = Stemmer.Stemmer("porter")

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _TOKEN.findall(text.lower()) if w not in LUCENE_STOP_WORDS]
        return self._stemmer.stemWords(words)


class SearchEngine(ABC):
    """Ranks a catalogue's products for a query."""

    name: str

    @abstractmethod
    def search(self, query: str, k: int = SEARCH_RETURN_N) -> list[str]:
        """The ASINs of the best ``k`` matches, best first; only products that match a query term."""


class Bm25sSearch(SearchEngine):
    """Lucene's BM25 computed by ``bm25s`` over ``document_text`` of every product.

    >>> products = [{"asin": "A1", "Title": "Trail Boots", "Description": "", "BulletPoints": [], "options": {}},
    ...             {"asin": "A2", "Title": "Rain Jacket", "Description": "for trail walks", "BulletPoints": [],
    ...              "options": {}}]
    >>> Bm25sSearch(products).search("trail boots"), Bm25sSearch(products).search("umbrella")
    (['A1', 'A2'], [])
    """

    name = "bm25s"

    def __init__(self, products: list[dict[str, Any]], k1: float = K1, b: float = B) -> None:
        import bm25s

        self.asins = [p["asin"] for p in products]
        self.analyze = Analyzer()
        corpus = [self.analyze(document_text(p)) for p in products]
        self.retriever = bm25s.BM25(method="lucene", k1=k1, b=b)
        self.retriever.index(corpus, show_progress=False)
        self.vocabulary = self.retriever.vocab_dict

    def search(self, query: str, k: int = SEARCH_RETURN_N) -> list[str]:
        import numpy as np

        terms = [t for t in self.analyze(query) if t in self.vocabulary]
        if not terms:
            return []
        scores = self.retriever.get_scores(terms)
        hits = np.flatnonzero(scores > 0)
        # Best score first; equal scores in catalogue order (Lucene: by document id).
        order = hits[np.lexsort((hits, -scores[hits]))][:k]
        return [self.asins[i] for i in order]


class PyseriniSearch(SearchEngine):
    """A Lucene index built by WebShop's ``search_engine/run_indexing.sh`` (documents with ``id`` = ASIN), searched
    with pyserini's ``LuceneSearcher`` at Anserini's BM25 defaults; needs ``pip install pyserini`` and Java 21.

    Example (needs pyserini, Java and an index):
        >>> PyseriniSearch(Path("search_engine/indexes")).search("hiking boots")[:1]  # doctest: +SKIP
        ['B07XYZ1234']
    """

    name = "pyserini"

    def __init__(self, index: Path) -> None:
        try:
            from pyserini.search.lucene import LuceneSearcher
        except Exception as exc:  # ImportError, or the JVM failing to start inside the import
            raise ValueError(f"--search pyserini needs pyserini and Java 21 (pip install pyserini): {exc}") from None
        if not Path(index).is_dir():
            raise ValueError(f"--index {index}: no Lucene index there (build one with WebShop's "
                             "search_engine/run_indexing.sh)")
        self.searcher = LuceneSearcher(str(index))
        self.searcher.set_bm25(K1, B)

    def search(self, query: str, k: int = SEARCH_RETURN_N) -> list[str]:
        import json

        hits = self.searcher.search(query, k=k)
        return [json.loads(self.searcher.doc(hit.docid).raw())["id"] for hit in hits]
