"""A step's web page as the agent sees it: Mind2Web's ``cleaned_html`` pruned around candidates, then its text.

AgentBench shows Mind2Web pages the way Mind2Web's ``dom_utils`` does: keep each candidate element with its
ancestors, its first 50 descendants within 6 levels and 3 element siblings either side, drop the rest, fold away
attribute-less wrappers with at most one child, then write the tree as compact HTML whose elements carry only a
``meta`` summary of their salient attributes and, for candidates, an ``id`` numbered in page order. ``prune`` and
``tree_text`` reproduce that output exactly (the page a model is asked about must be AgentBench's page).

``reduce_page`` serves the task payload: it drops every node that no pruning around a subset of the given
candidates could keep, without folding or renaming anything, so pruning the reduced page around any such subset
gives the same tree as pruning the full ``cleaned_html`` (tests check this), at a fraction of the size.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable

from lxml import etree

MAX_DEPTH, MAX_CHILDREN, MAX_SIBLINGS = 5, 50, 3
"""Mind2Web's pruning limits: descendant depth (0-based, so 6 levels), descendants kept, siblings each side."""
MAX_VALUE_WORDS, MAX_WORDS = 5, 20
"""Words kept of one attribute value, and of an element's whole summary or one text node."""

ID = "backend_node_id"
_META_ATTRIBUTES = ("role", "aria_role", "type", "alt", "aria_description", "aria_label", "label", "title", "name",
                    "text_value", "value", "placeholder", "input_checked", "input_value", "option_selected", "class")
_EMPTY_VALUES = frozenset(("hidden", "none", "presentation", "null", "undefined"))
_ENTITIES = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"), ("&nbsp;", " "), ("&ndash;", "-"),
             ("&rsquo;", "'"), ("&lsquo;", "'"), ("&ldquo;", '"'), ("&rdquo;", '"'), ("&#39;", "'"), ("&#40;", "("),
             ("&#41;", ")"))
_TEXT_ELEMENT = re.compile(r"<text>(.*?)</text>")
_SPACE = re.compile(r"\s+")


def parse_page(html: str) -> etree._Element:
    """Parse a ``cleaned_html`` string (Mind2Web's pages are well-formed XML) into an lxml tree.

    >>> parse_page('<html backend_node_id="1"><text>Hi</text></html>').tag
    'html'
    """
    return etree.fromstring(html)


def _node_id(node: etree._Element) -> str:
    return node.attrib.get(ID, "")


def _descendants(node: etree._Element, depth: int = 0) -> list[etree._Element]:
    """Element descendants in document order, children of nodes up to ``MAX_DEPTH`` levels below ``node``."""
    if depth > MAX_DEPTH:
        return []
    found: list[etree._Element] = []
    for child in node.iterchildren(tag=etree.Element):
        found.append(child)
        found += _descendants(child, depth + 1)
    return found


def _find(tree: etree._Element, candidate: str) -> etree._Element:
    hits = tree.xpath(f'//*[@{ID}="{candidate}"]')
    if not hits:
        raise KeyError(f"no element with {ID}={candidate} in the page")
    return hits[0]


def keep_set(tree: etree._Element, candidates: Iterable[str]) -> set[str]:
    """The ids pruning around ``candidates`` keeps: each candidate, its ancestors, its first ``MAX_CHILDREN``
    descendants and ``MAX_SIBLINGS`` element siblings either side (``""`` stands for elements without an id).

    >>> page = parse_page('<a backend_node_id="1"><b backend_node_id="2"/><c backend_node_id="3"/></a>')
    >>> sorted(keep_set(page, ["2"]))
    ['1', '2', '3']
    """
    keep: set[str] = set()
    for candidate in candidates:
        node = _find(tree, candidate)
        keep.add(_node_id(node))
        keep.update(_node_id(a) for a in node.iterancestors())
        keep.update(_node_id(d) for d in _descendants(node)[:MAX_CHILDREN])
        parent = node.getparent()
        if parent is not None:
            siblings = [s for s in parent.iterchildren(tag=etree.Element) if s.tag != "text"]
            at = siblings.index(node)
            keep.update(_node_id(s) for s in siblings[max(0, at - MAX_SIBLINGS):at + MAX_SIBLINGS + 1])
    return keep


def _kept(node: etree._Element, keep: set[str]) -> bool:
    # A text element stands or falls with the element that holds it.
    owner = node.getparent() if node.tag == "text" else node
    return owner is not None and _node_id(owner) in keep


def _fold(node: etree._Element) -> None:
    """Replace an attribute-less wrapper with at most one child (and no text) by that child."""
    if (not node.attrib and node.tag != "text" and node.getparent() is not None and len(node) <= 1
            and not any(c.tag == "text" for c in node)):
        for child in list(node):
            node.addprevious(child)
        node.getparent().remove(node)


def prune(tree: etree._Element, candidates: Iterable[str]) -> etree._Element:
    """A pruned copy of ``tree`` around ``candidates``: only they keep their ``backend_node_id``.

    >>> page = parse_page('<html backend_node_id="1"><div backend_node_id="2"><button backend_node_id="3" '
    ...                   'aria_label="Go"><text>Go</text></button></div></html>')
    >>> etree.tostring(prune(page, ["3"]), encoding="unicode")
    '<html><button backend_node_id="3" aria_label="Go"><text>Go</text></button></html>'
    """
    wanted = set(candidates)
    keep = keep_set(tree, wanted)
    pruned = copy.deepcopy(tree)
    for node in reversed(list(pruned.iter(tag=etree.Element))):  # children before their parents
        parent = node.getparent()
        if not _kept(node, keep) and parent is not None:
            parent.remove(node)
            continue
        if node.tag == "text" or _node_id(node) not in wanted:
            node.attrib.pop(ID, None)
        _fold(node)
    return pruned


def reduce_page(tree: etree._Element, candidates: Iterable[str]) -> etree._Element:
    """A copy of ``tree`` holding only what pruning around some subset of ``candidates`` may keep, unchanged
    otherwise: ``prune(reduce_page(t, C), S)`` equals ``prune(t, S)`` for every ``S`` within ``C``.

    >>> page = parse_page('<html backend_node_id="1"><p backend_node_id="2"/>' + ''.join(
    ...     f'<i backend_node_id="{n}"/>' for n in range(3, 9)) + '</html>')
    >>> [n.get(ID) for n in reduce_page(page, ["2"]).iter()]
    ['1', '2', '3', '4', '5']
    """
    keep = keep_set(tree, candidates)
    reduced = copy.deepcopy(tree)
    for node in reversed(list(reduced.iter(tag=etree.Element))):
        parent = node.getparent()
        if parent is not None and not _kept(node, keep):
            parent.remove(node)
    return reduced


def attribute_summary(node: etree._Element) -> str:
    """The element's salient attribute values, lowercased, short words only, each value once (its ``meta``).

    >>> attribute_summary(parse_page('<input type="text" placeholder="Where from?" class="https://x"/>'))
    'text where from?'
    """
    seen: list[str] = []
    for name in _META_ATTRIBUTES:
        value = node.attrib.get(name)
        if value is None:
            continue
        value = value.lower()
        if value in _EMPTY_VALUES or value.startswith("http"):
            continue
        value = " ".join([w for w in value.split() if len(w) < 15][:MAX_VALUE_WORDS])
        if value and value not in seen:
            seen.append(value)
    return " ".join(" ".join(seen).split()[:MAX_WORDS])


def tree_text(tree: etree._Element, ids: dict[str, int] | None = None) -> tuple[str, dict[str, int]]:
    """The tree as the agent reads it, and the page-order number given to each remaining ``backend_node_id``
    (``ids`` carries numbers already given, so a candidate's own text uses the page's numbering).

    >>> page = parse_page('<html> <button backend_node_id="7" aria_label="Search flights" type="submit"> '
    ...                   '<text>Search</text> </button> </html>')
    >>> tree_text(page)
    ('<html> <button id=0 submit search flights> Search </button> </html>', {'7': 0})
    """
    ids = {} if ids is None else ids
    shown = copy.deepcopy(tree)
    for node in shown.iter(tag=etree.Element):
        if node.tag == "text":
            node.text = " ".join((node.text or "").split()[:MAX_WORDS])
            continue
        uid = node.attrib.get(ID)
        if uid is not None:
            ids.setdefault(uid, len(ids))
        summary = attribute_summary(node)
        node.attrib.clear()
        if uid is not None:
            node.attrib["id"] = str(ids[uid])
        if summary:
            node.attrib["meta"] = summary
    text = etree.tostring(shown, encoding="unicode").replace('"', " ")
    text = text.replace("meta= ", "").replace("id= ", "id=").replace(" >", ">")
    text = _TEXT_ELEMENT.sub(r"\1", text)
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return _SPACE.sub(" ", text).strip(), ids


def candidate_choices(pruned: etree._Element, ids: dict[str, int], words: int = 10) -> list[tuple[str, str]]:
    """(backend_node_id, the first ``words`` words of its text) of every candidate left in a pruned tree, in page
    order: the lettered choices of a round.

    >>> page = prune(parse_page('<html backend_node_id="1"> <a backend_node_id="2"> <text>Deals</text> </a> '
    ...                         '<a backend_node_id="3"> <text>Flights</text> </a> </html>'), ["3", "2"])
    >>> text, ids = tree_text(page)
    >>> candidate_choices(page, ids)
    [('2', '<a id=0> Deals </a>'), ('3', '<a id=1> Flights </a>')]
    """
    return [(node.attrib[ID], " ".join(tree_text(node, ids)[0].split()[:words]))
            for node in pruned.xpath(f"//*[@{ID}]")]
