"""Tokenization with per-turn loss, turn-aware truncation, and the mask checks that run before training.

Exactly the gpt turns with ``loss: true`` are trained (AgentInstruct marks the
acknowledgement and one-shot turns ``false``; ShareGPT rows from ``mix`` carry
``true`` on every assistant turn). Each conversation is rendered once, the
whole text is tokenized once with character offsets, and a token is trained
when it starts inside a trained turn's span (the reply and its end-of-turn
token). Tokens are therefore exactly what the tokenizer gives for the text
the model will see at inference; a token that starts in the role header (a
reply's leading whitespace merged with the header's newline) is not trained.

Truncation keeps the task and the answer (``truncation``): a conversation
longer than ``max_length`` loses the untrained turns after its last trained
turn, then has its longest observations shortened (with the environments'
truncation notice), then loses middle rounds; the instructions, the task turn
and the final trained round always stay, and an example that still does not
fit is dropped. Every case is counted (``EncodeStats.truncation``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentinstruct.training.chat import ChatFormat
from agentinstruct.training.truncation import middle_rounds, shorten_observations, trained_turns as _trained_turns

IGNORE = -100


class MaskError(ValueError):
    """The loss mask is wrong; training must not start."""


@dataclass
class TokenStats:
    """What every per-turn tokenization counts: rows kept, their tokens and trained tokens, and the text that ends
    each trained span (``check_masks`` wants one end-of-turn suffix across a data set)."""

    kept: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    suffixes: Counter = field(default_factory=Counter)


@dataclass
class EncodeStats(TokenStats):
    """What tokenization did: token counts (by source), truncation counts by kind, end-of-turn suffixes seen."""

    examples: int = 0
    trained_tokens_by_source: Counter = field(default_factory=Counter)
    examples_by_source: Counter = field(default_factory=Counter)
    truncation: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for logs, the model card and the mixture manifest."""
        return {
            "examples": self.examples, "kept": self.kept, "tokens": self.tokens, "trained_tokens": self.trained_tokens,
            "trained_tokens_by_source": dict(self.trained_tokens_by_source),
            "examples_by_source": dict(self.examples_by_source), "truncation": dict(sorted(self.truncation.items())),
        }

    def report(self) -> str:
        """The line the SFT entry point prints once the data is tokenized.

        Example:
            >>> EncodeStats(examples=3, kept=2, tokens=90, trained_tokens=20,
            ...             trained_tokens_by_source=Counter(os=20)).report()
            "tokenized 2 of 3 examples: 90 tokens, 20 trained; by source {'os': 20}; truncation none"
        """
        d = self.as_dict()
        return (f"tokenized {d['kept']} of {d['examples']} examples: {d['tokens']} tokens, {d['trained_tokens']} "
                f"trained; by source {d['trained_tokens_by_source']}; truncation {d['truncation'] or 'none'}")


def span_labels(ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """Each token's label: its id when the token starts inside one of the trained character ``spans`` (sorted,
    not overlapping), else ``IGNORE``; an empty token (special tokens map to (0, 0)) is never trained.

    Example (tokens at characters 0-3, 3-6 and 6-9; only 3-9 is trained):
        >>> span_labels([11, 12, 13], [(0, 3), (3, 6), (6, 9)], [(3, 9)])
        [-100, 12, 13]
    """
    starts = [s for s, _ in spans]
    labels = []
    for tok, (begin, end) in zip(ids, offsets):
        k = bisect_right(starts, begin) - 1
        inside = k >= 0 and begin < spans[k][1] and end > begin
        labels.append(tok if inside else IGNORE)
    return labels


def tokenize_with_offsets(tokenizer: Any, texts: list[str]) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
    """The token ids of each rendered text and each token's character span, with no special tokens added (the
    chat format's template has them in the text already).

    Example (needs a model's tokenizer):
        >>> (ids,), (offsets,) = tokenize_with_offsets(tokenizer, ["Hello there"])  # doctest: +SKIP
        >>> offsets  # doctest: +SKIP
        [(0, 5), (5, 11)]
    """
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False)
    return enc["input_ids"], enc["offset_mapping"]


def reply_suffix(text: str, span: tuple[int, int], reply: str) -> str:
    """What a trained span of ``text`` holds after the reply itself: the end-of-turn token(s) the template adds
    (``check_masks`` wants one suffix across a data set), or the whole span when it does not start with the reply.

    Example:
        >>> reply_suffix("[INST] Hi [/INST] Hello! </s>", (17, 29), "Hello!")
        '</s>'
    """
    body = text[span[0]:span[1]].strip()
    return body[len(reply.strip()):].strip() if body.startswith(reply.strip()) else body


def require_offsets(tokenizer: Any) -> None:
    """Refuse (``ValueError``) a tokenizer that cannot give character offsets: the per-turn masks come from them.

    Example:
        >>> require_offsets(object())
        Traceback (most recent call last):
        ...
        ValueError: per-turn loss masks need a fast tokenizer (character offsets)
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("per-turn loss masks need a fast tokenizer (character offsets)")


class Encoder:
    """Turns conversations into ``input_ids`` + ``labels`` under one chat format and length limit.

    Example (needs a model's tokenizer):
        >>> enc = Encoder(tokenizer, llama2_chat(), max_length=4096)  # doctest: +SKIP
        >>> rows = enc.encode(mixed_rows)  # doctest: +SKIP
        >>> enc.stats.truncation  # doctest: +SKIP
        Counter({'examples_truncated': 12, 'observations_shortened': 9, 'examples_middle_rounds_dropped': 3, ...})
    """

    def __init__(self, tokenizer: Any, fmt: ChatFormat, max_length: int | None):
        require_offsets(tokenizer)
        self.tokenizer, self.fmt, self.max_length = tokenizer, fmt, max_length
        self.stats = EncodeStats()

    def _measure(self, conv: list[dict[str, Any]]) -> tuple[str, list[tuple[int, int]], list[int], list[tuple[int, int]], list[int]]:
        """Render and tokenize ``conv``: text, trained spans, ids, offsets, and each turn's token count."""
        text, spans, ends = self.fmt.render_spans(self.tokenizer, conv)
        (ids,), (offs,) = tokenize_with_offsets(self.tokenizer, [text])
        token_starts = [o[0] for o in offs]
        token_ends = [bisect_right(token_starts, e) for e in ends]
        per_turn = [b - a for a, b in zip([0] + token_ends[:-1], token_ends)]
        return text, spans, ids, offs, per_turn

    def _fit(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """Shorten an over-long conversation (see ``truncation``); None, counted, when it still does not fit.

        What was shortened or dropped is counted only for examples kept; a dropped one counts once, as too long.
        """
        counts: Counter = Counter({"examples_truncated": 1})
        conv = row["conversations"]
        last = _trained_turns(conv)[-1]
        if last + 1 < len(conv):
            counts["trailing_turns_dropped"] += len(conv) - last - 1
            conv = conv[: last + 1]
        text, spans, ids, offs, per_turn = self._measure(conv)
        # general chat rows have user messages, not environment output: they lose whole rounds only
        if len(ids) > self.max_length and row.get("source") != "general":
            original, excess, cut = conv, len(ids) - self.max_length, 0
            for _ in range(4):  # the notices and tokenization make the first estimate a little short
                conv, cut = shorten_observations(original, per_turn, excess)
                text, spans, ids, offs, _ = self._measure(conv)
                if len(ids) <= self.max_length or not cut:
                    break
                excess += len(ids) - self.max_length
            if cut:
                counts["examples_observations_shortened"] += 1
                counts["observations_shortened"] += cut
            per_turn = self._measure(conv)[4]
        dropped = []
        while len(ids) > self.max_length:
            rounds = middle_rounds(conv)
            if not rounds:
                break
            # drop as few of the earliest middle rounds as the per-turn token counts say are needed
            excess, saved, k = len(ids) - self.max_length, 0, 0
            while k < len(rounds) and saved < excess:
                saved += per_turn[rounds[k][0]] + per_turn[rounds[k][1]]
                k += 1
            gone = {i for pair in rounds[:k] for i in pair}
            dropped += [conv[i] for i in sorted(gone)]
            conv = [t for i, t in enumerate(conv) if i not in gone]
            text, spans, ids, offs, per_turn = self._measure(conv)
        if dropped:
            counts["examples_middle_rounds_dropped"] += 1
            counts["middle_rounds_dropped"] += len(dropped) // 2
            counts["trained_turns_dropped"] += sum(1 for t in dropped if t["from"] == "gpt" and t["loss"] is True)
        if len(ids) > self.max_length:
            self.stats.truncation["examples_dropped_too_long"] += 1
            return None
        self.stats.truncation.update(counts)
        self._count_suffixes(text, spans, conv)
        return {"input_ids": ids, "labels": span_labels(ids, offs, spans)}

    def _count_suffixes(self, text: str, spans: list[tuple[int, int]], conv: list[dict[str, Any]]) -> None:
        """Count what follows each trained reply in its span, for check_masks' one-suffix rule."""
        for span, i in zip(spans, _trained_turns(conv)):
            self.stats.suffixes[reply_suffix(text, span, conv[i]["value"])] += 1

    def encode(self, rows: Iterable[dict[str, Any]], batch_size: int = 256) -> list[dict[str, Any]]:
        """Encode rows (``id``, ``conversations``, optional ``source``) into ``id``, ``source``, ``input_ids``, ``labels``.

        Rows without a trained turn are dropped and counted under
        ``examples_without_trained_turn``.
        """
        out: list[dict[str, Any]] = []
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == batch_size:
                out.extend(self._encode_batch(batch))
                batch = []
        if batch:
            out.extend(self._encode_batch(batch))
        return out

    def _encode_batch(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rendered, todo = [], []
        for row in rows:
            self.stats.examples += 1
            if not _trained_turns(row["conversations"]):
                self.stats.truncation["examples_without_trained_turn"] += 1
                continue
            rendered.append(self.fmt.render_spans(self.tokenizer, row["conversations"]))
            todo.append(row)
        texts = [r[0] for r in rendered]
        ids_list, offsets_list = tokenize_with_offsets(self.tokenizer, texts) if rendered else ([], [])
        out = []
        for row, (text, spans, ends), ids, offsets in zip(todo, rendered, ids_list, offsets_list):
            if self.max_length is not None and len(ids) > self.max_length:
                encoded = self._fit(row)
                if encoded is None:
                    continue
            else:
                encoded = {"input_ids": ids, "labels": span_labels(ids, offsets, spans)}
                self._count_suffixes(text, spans, row["conversations"])
            source = row.get("source", "unknown")
            trained = sum(1 for label in encoded["labels"] if label != IGNORE)
            self.stats.kept += 1
            self.stats.tokens += len(encoded["input_ids"])
            self.stats.trained_tokens += trained
            self.stats.trained_tokens_by_source[source] += trained
            self.stats.examples_by_source[source] += 1
            out.append({"id": row.get("id"), "source": source, **encoded})
        return out


def check_masks(rows: list[dict[str, Any]], stats: TokenStats) -> None:
    """Fail loudly before training when the loss mask cannot be right.

    Raises ``MaskError`` on: no examples; an example with no trained token;
    an example whose every token is trained (the prompt is trained); a data set
    with no trained token at all or every token trained; trained spans that end
    in more than one distinct suffix (the template puts prompt text in them).

    Example:
        >>> check_masks([{"id": "a", "input_ids": [1, 2], "labels": [-100, 2]}], EncodeStats(suffixes=Counter({"</s>": 1})))
    """
    if not rows:
        raise MaskError("no examples left to train on")
    total = trained = 0
    for row in rows:
        n = sum(1 for label in row["labels"] if label != IGNORE)
        if n == 0:
            raise MaskError(f"example {row.get('id')}: no trained token (all-zero mask)")
        if n == len(row["labels"]):
            raise MaskError(f"example {row.get('id')}: every token is trained (all-one mask): prompt text would be trained")
        for tok, label in zip(row["input_ids"], row["labels"]):
            if label != IGNORE and label != tok:
                raise MaskError(f"example {row.get('id')}: a label differs from its input token")
        total += len(row["labels"])
        trained += n
    if len(stats.suffixes) > 1:
        shown = ", ".join(repr(s[:40]) for s, _ in stats.suffixes.most_common(3))
        raise MaskError(f"trained turns end in {len(stats.suffixes)} different suffixes ({shown}): the template puts "
                        "text other than the reply and its end-of-turn token in the trained spans")
    if trained == total:
        raise MaskError("every token of the data set is trained: the mask is all ones")


def render_mask(tokenizer: Any, row: dict[str, Any], open_mark: str = "[[", close_mark: str = "]]") -> str:
    """The example's text with each trained span of tokens wrapped in ``open_mark`` ... ``close_mark``.

    Example (needs a model's tokenizer):
        >>> render_mask(tok, {"input_ids": ids, "labels": labels})  # doctest: +SKIP
        '<s>[INST] ... [/INST][[ Ok. </s>]]<s>[INST] ...'
    """
    parts, run, trained = [], [], False
    for tok, label in zip(row["input_ids"], row["labels"]):
        now = label != IGNORE
        if now != trained and run:
            text = tokenizer.decode(run)
            parts.append(f"{open_mark}{text}{close_mark}" if trained else text)
            run = []
        trained = now
        run.append(tok)
    if run:
        text = tokenizer.decode(run)
        parts.append(f"{open_mark}{text}{close_mark}" if trained else text)
    return "".join(parts)
