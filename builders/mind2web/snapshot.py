"""A browser's DOM snapshot in Mind2Web's terms: the raw tree, its cleaned form and the candidate elements.

Mind2Web built every page it released from Chrome's ``DOMSnapshot.captureSnapshot``: one element per DOM node,
named by its tag (text nodes become ``<text>`` elements), carrying the node's ``backendNodeId`` as a
``backend_node_id`` attribute, its layout box as ``bounding_box_rect`` ("x,y,width,height", ``-1,-1,-1,-1`` when the
node is not rendered), its DOM attributes with every non-word character of a name turned into ``_``
(``aria-label`` -> ``aria_label``), and what the snapshot knows beyond the attributes (``text_value``,
``input_value``, ``input_checked``, ``option_selected``, ``is_clickable``). That tree serialised is ``raw_html``;
a candidate's ``attributes`` is the JSON of its element's attributes in that tree.

``cleaned_html`` is the same tree after Mind2Web's cleaning (its ``dom_utils.clean_tree``): only the salient
attributes (``SALIENT``) and ``backend_node_id`` stay, ``role`` values that say nothing (presentation, none,
link) and ``type="hidden"`` go, text is whitespace-collapsed and empty text dropped, and an element that is no
candidate, has no attribute left but its id, no text of its own and at most one child is replaced by that child.
Before that, what a user cannot see goes: ``head``, scripts and styles, and elements the browser did not lay out
(a closed ``select``'s options stay: they are what a SELECT chooses from).

Everything here works on the snapshot's JSON, so it runs without a browser (the doctests build a tiny snapshot
by hand); ``record`` takes the snapshots from Chromium.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from typing import Any

from lxml import etree

SALIENT: frozenset[str] = frozenset({
    "alt", "aria_description", "aria_label", "aria_role", "input_checked", "input_value", "label", "name",
    "option_selected", "placeholder", "role", "text_value", "title", "type", "value"})
"""The attributes Mind2Web's cleaning keeps (besides ``backend_node_id``), named as in the raw tree."""

UID = "backend_node_id"
NO_BOX = "-1,-1,-1,-1"

_INVISIBLE_TAGS = frozenset({"head", "script", "style", "noscript", "template", "meta", "link", "title"})
_INTERACTIVE_TAGS = frozenset({"a", "button", "input", "select", "textarea"})
_INTERACTIVE_ROLES = frozenset({"button", "link", "checkbox", "radio", "tab", "option", "combobox", "textbox",
                                "searchbox", "menuitem", "switch", "slider", "spinbutton", "listbox"})
_ELEMENT, _TEXT = 1, 3


def _number(x: float) -> str:
    """A layout coordinate as Mind2Web wrote it: integers without a fraction, others in full."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _attribute_name(name: str) -> str:
    clean = re.sub(r"[^\w]", "_", name)
    return "_" + clean if clean[:1].isdigit() else clean


def raw_tree(snapshot: dict[str, Any]) -> etree._Element:
    """The raw Mind2Web tree of the snapshot's main document (``DOMSnapshot.captureSnapshot`` with
    ``computedStyles=[]``): its ``html`` element. Comments, the doctype and pseudo-elements have no place in it.

    Example (a snapshot with a document, its ``html`` element and one text node):
        >>> snap = {"strings": ["#document", "HTML", "#text", "Hi", "lang", "en"], "documents": [{
        ...     "nodes": {"parentIndex": [-1, 0, 1], "nodeType": [9, 1, 3], "nodeName": [0, 1, 2],
        ...               "nodeValue": [-1, -1, 3], "backendNodeId": [1, 2, 3], "attributes": [[], [4, 5], []],
        ...               "isClickable": {"index": []}},
        ...     "layout": {"nodeIndex": [1, 2], "bounds": [[0, 0, 800, 600], [8, 8, 12.5, 17]]}}]}
        >>> etree.tostring(raw_tree(snap), encoding="unicode")
        '<html backend_node_id="2" bounding_box_rect="0,0,800,600" lang="en"><text backend_node_id="3" bounding_box_rect="8,8,12.5,17">Hi</text></html>'
    """
    strings: list[str] = snapshot["strings"]
    doc = snapshot["documents"][0]
    nodes = doc["nodes"]

    def text(i: int) -> str:
        return "" if i == -1 else strings[i]

    def sparse(name: str) -> dict[int, Any]:
        entry = nodes.get(name) or {"index": []}
        return dict(zip(entry["index"], entry.get("value", [None] * len(entry["index"]))))

    boxes = {i: ",".join(_number(v) for v in b) for i, b in zip(doc["layout"]["nodeIndex"], doc["layout"]["bounds"])}
    extras = [("text_value", sparse("textValue")), ("input_value", sparse("inputValue")),
              ("input_checked", sparse("inputChecked")), ("option_selected", sparse("optionSelected")),
              ("is_clickable", sparse("isClickable"))]
    pseudo = sparse("pseudoType")
    made: dict[int, etree._Element] = {}
    root = None
    for i, kind in enumerate(nodes["nodeType"]):
        parent = made.get(nodes["parentIndex"][i])
        if kind not in (_ELEMENT, _TEXT) or i in pseudo or (parent is None and root is not None):
            continue
        if kind == _TEXT:
            if parent is None:
                continue
            node = etree.SubElement(parent, "text")
            node.text = text(nodes["nodeValue"][i])
        else:
            tag = re.sub(r"[^\w]", "-", text(nodes["nodeName"][i]).lower())
            node = etree.Element(tag) if parent is None else etree.SubElement(parent, tag)
            root = node if root is None else root
        node.set(UID, str(nodes["backendNodeId"][i]))
        node.set("bounding_box_rect", boxes.get(i, NO_BOX))
        if kind == _ELEMENT:
            pairs = nodes["attributes"][i]
            for k in range(0, len(pairs), 2):
                node.set(_attribute_name(text(pairs[k])), text(pairs[k + 1]))
            for name, values in extras:
                if i in values:
                    value = values[i]
                    node.set(name, "true" if value is None else text(value))
        made[i] = node
    if root is None:
        raise ValueError("the DOM snapshot has no element")
    return root


def to_html(tree: etree._Element) -> str:
    """A tree as Mind2Web's HTML text: one space between tags, as the released pages have it (a page's text reads
    ``<button id=0> Search </button>`` once pruned, as in AgentInstruct's rows).

    Example:
        >>> to_html(etree.fromstring('<div backend_node_id="4"><text backend_node_id="5">a &amp; b</text></div>'))
        '<div backend_node_id="4"> <text backend_node_id="5">a &amp; b</text> </div>'
    """
    tree = copy.deepcopy(tree)
    for node in tree.iter():
        if len(node):
            node.text = f"{node.text or ''} " if not (node.text or "").endswith(" ") else node.text
            for child in node:
                child.tail = f"{child.tail or ''} " if not (child.tail or "").endswith(" ") else child.tail
    return etree.tostring(tree, encoding="unicode")


def _visible(node: etree._Element) -> bool:
    return node.get("bounding_box_rect", NO_BOX) != NO_BOX


def _in_select(node: etree._Element) -> bool:
    return any(a.tag == "select" for a in node.iterancestors())


def interactive(tree: etree._Element) -> list[etree._Element]:
    """The elements a user can act on, in document order: links, buttons, form fields, elements with a widget
    role or a click handler (the snapshot's ``is_clickable``), and only those laid out with a non-empty box.

    Example:
        >>> page = etree.fromstring('<body backend_node_id="1" bounding_box_rect="0,0,9,9">'
        ...     '<a backend_node_id="2" bounding_box_rect="0,0,5,5" href="/x"/>'
        ...     '<input backend_node_id="3" bounding_box_rect="-1,-1,-1,-1"/>'
        ...     '<span backend_node_id="4" bounding_box_rect="1,1,2,2" is_clickable="true"/></body>')
        >>> [e.get("backend_node_id") for e in interactive(page)]
        ['2', '4']
    """
    found = []
    for node in tree.iter():
        if node.tag == "text" or not isinstance(node.tag, str):
            continue
        box = node.get("bounding_box_rect", NO_BOX).split(",")
        if box == NO_BOX.split(",") or float(box[2]) <= 0 or float(box[3]) <= 0:
            continue
        if node.tag == "input" and node.get("type", "").lower() == "hidden":
            continue
        if (node.tag in _INTERACTIVE_TAGS or node.get("role", "").lower() in _INTERACTIVE_ROLES
                or node.get("is_clickable") == "true"):
            found.append(node)
    return found


def _clean_attributes(node: etree._Element) -> None:
    for name in list(node.attrib):
        value = node.get(name, "")
        if name == "class" and node.tag == "svg":
            icons = " ".join(re.findall(r"\S*icon\S*", value, re.IGNORECASE))
            if icons:
                node.set(name, icons)
            else:
                del node.attrib[name]
        elif name in SALIENT:
            value = " ".join(value.split())
            pointless = ((name == "role" and value in ("presentation", "none", "link"))
                         or (name == "type" and value == "hidden"))
            if pointless or not value:
                del node.attrib[name]
            else:
                node.set(name, value)
        elif name != UID:
            del node.attrib[name]


def cleaned_tree(tree: etree._Element, candidates: Iterable[str]) -> etree._Element:
    """Mind2Web's cleaned page: what is not shown removed, salient attributes only, empty wrappers unwrapped;
    every element whose ``backend_node_id`` is in ``candidates`` stays (with its id).

    Example:
        >>> page = etree.fromstring('<html backend_node_id="1" bounding_box_rect="0,0,9,9">'
        ...     '<head backend_node_id="2"><title backend_node_id="3">T</title></head>'
        ...     '<div backend_node_id="4" bounding_box_rect="0,0,9,9" class="wrap">'
        ...     '<button backend_node_id="5" bounding_box_rect="1,1,5,5" type="submit" data-x="1">'
        ...     '<text backend_node_id="6" bounding_box_rect="1,1,4,4">  Go  now </text></button></div></html>')
        >>> to_html(cleaned_tree(page, ["5"]))
        '<html backend_node_id="1"> <button backend_node_id="5" type="submit"> <text backend_node_id="6">Go now</text> </button> </html>'
    """
    keep = set(candidates)
    tree = copy.deepcopy(tree)
    for node in list(tree.iter()):
        parent = node.getparent()
        if parent is None or node.get(UID) in keep:
            continue
        if node.tag in _INVISIBLE_TAGS or (not _visible(node) and node.tag != "text" and not _in_select(node)):
            parent.remove(node)
    # Children before parents (reverse document order), as Mind2Web's cleaning walks, so unwrapping cascades.
    for node in reversed(list(tree.iter())):
        parent = node.getparent()
        _clean_attributes(node)
        if node.tag == "text":
            value = " ".join((node.text or "").split())
            if value:
                node.text = value
            elif parent is not None:
                parent.remove(node)
            continue
        children = list(node)
        if (parent is not None and node.get(UID) not in keep and len(node.attrib) == 1
                and not any(c.tag == "text" for c in children) and len(children) <= 1):
            for child in children:
                node.addprevious(child)
            parent.remove(node)
    return tree


def _candidate(node: etree._Element, target: bool) -> dict[str, Any]:
    return {"tag": node.tag, "attributes": json.dumps(dict(node.attrib)), "backend_node_id": node.get(UID),
            "is_original_target": target, "is_top_level_target": target}


def step_fields(tree: etree._Element, target: str) -> dict[str, Any]:
    """``raw_html``, ``cleaned_html``, ``pos_candidates`` and ``neg_candidates`` of a Mind2Web action for a page
    whose acted-on element has ``backend_node_id`` ``target``; the negatives are the page's other interactive
    elements. The target must be laid out (a user can see it), or its step could not be shown.

    Example:
        >>> page = etree.fromstring('<body backend_node_id="1" bounding_box_rect="0,0,9,9">'
        ...     '<a backend_node_id="2" bounding_box_rect="0,0,5,5" href="/x"><text backend_node_id="3"'
        ...     ' bounding_box_rect="0,0,5,5">Home</text></a>'
        ...     '<button backend_node_id="4" bounding_box_rect="5,0,4,5"/></body>')
        >>> fields = step_fields(page, "4")
        >>> [c["backend_node_id"] for c in fields["pos_candidates"]], [c["tag"] for c in fields["neg_candidates"]]
        (['4'], ['a'])
        >>> fields["pos_candidates"][0]["attributes"]
        '{"backend_node_id": "4", "bounding_box_rect": "5,0,4,5"}'
        >>> fields["cleaned_html"]
        '<body backend_node_id="1"> <a backend_node_id="2"> <text backend_node_id="3">Home</text> </a> <button backend_node_id="4"/> </body>'
    """
    found = tree.xpath(f'//*[@{UID}="{target}"]')
    if not found:
        raise ValueError(f"the page has no element with backend_node_id {target}")
    node = found[0]
    if not _visible(node):
        raise ValueError(f"the element acted on (<{node.tag}> backend_node_id {target}) is not shown on the page")
    others = [e for e in interactive(tree) if e.get(UID) != target]
    ids = [target] + [e.get(UID) for e in others]
    return {"raw_html": to_html(tree), "cleaned_html": to_html(cleaned_tree(tree, ids)),
            "pos_candidates": [_candidate(node, True)], "neg_candidates": [_candidate(e, False) for e in others]}


_ID = re.compile(r'(backend_node_id(?:=|": )")(\d+)(")')


def renumber(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tasks with every ``backend_node_id`` renumbered 1, 2, ... in order of first appearance in the task's
    ``raw_html`` pages (one numbering per task, so an element keeps its id from step to step): two recordings of
    the same pages are equal after this, whatever ids the browser handed out.

    Example:
        >>> step = {"raw_html": '<a backend_node_id="70"><text backend_node_id="71">x</text></a>',
        ...         "cleaned_html": '<a backend_node_id="70">x</a>',
        ...         "pos_candidates": [{"backend_node_id": "70", "attributes": '{"backend_node_id": "70"}'}],
        ...         "neg_candidates": []}
        >>> out = renumber([{"actions": [step]}])[0]["actions"][0]
        >>> out["cleaned_html"], out["pos_candidates"]
        ('<a backend_node_id="1">x</a>', [{'backend_node_id': '1', 'attributes': '{"backend_node_id": "1"}'}])
    """
    result = []
    for task in tasks:
        order: dict[str, str] = {}
        for step in task["actions"]:
            for m in _ID.finditer(step["raw_html"]):
                order.setdefault(m.group(2), str(len(order) + 1))

        def swap(text: str) -> str:
            return _ID.sub(lambda m: m.group(1) + order[m.group(2)] + m.group(3), text)

        actions = []
        for step in task["actions"]:
            candidates = {kind: [{**c, "backend_node_id": order[c["backend_node_id"]],
                                  "attributes": swap(c["attributes"])} for c in step[kind]]
                          for kind in ("pos_candidates", "neg_candidates")}
            actions.append({**step, "raw_html": swap(step["raw_html"]), "cleaned_html": swap(step["cleaned_html"]),
                            **candidates})
        result.append({**task, "actions": actions})
    return result
