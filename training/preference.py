"""DPO with per-turn loss: preference pairs tokenized with a token mask that trains only the agent's turns.

TRL's ``DPOTrainer`` (1.16) sums log-probabilities over every completion
token: its collator sets ``completion_mask`` to 1 on all of ``chosen_ids`` /
``rejected_ids``, and its loss masks the labels with it. An agent completion
holds environment observations between the agent's turns (the human turns
of ``chosen`` / ``rejected``), which must never be trained, and TRL's
``assistant_only_loss`` exists for ``SFTConfig`` only. So here:

- ``PairEncoder`` renders ``prompt + chosen`` and ``prompt + rejected`` in the
  run's chat format (``chat.ChatFormat``, as SFT does), tokenizes each once
  with character offsets, and marks a completion token trained exactly when
  it starts inside the span of a ``loss: true`` agent turn (its reply and
  end-of-turn token, never the role header; ``masking`` decides the same way
  for SFT). Prompt tokens are the ones both sides share before the first
  completion turn. A pair longer than ``max_length`` is dropped and counted,
  never cut: chosen and rejected differ at their ends.
- ``PerTurnPreferenceCollator`` is TRL's collator with ``completion_mask``
  multiplied by those per-token masks (same truncation and padding), so an
  observation token has ``completion_mask`` 0, label -100 and no log-prob
  in the DPO loss, for the policy and the reference model alike.
- ``PerTurnDPOTrainer`` is ``DPOTrainer`` taking the pre-tokenized pairs as
  they are (its own tokenization would drop the masks) and keeping the mask
  columns through ``remove_unused_columns``.

``check_pair_masks`` stops the run before training when a mask cannot be
right (``masking.check_masks`` on both sides of every pair).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agentinstruct.training.chat import ChatFormat, TemplateError
from agentinstruct.training.masking import (IGNORE, TokenStats, check_masks, reply_suffix, require_offsets,
                                            span_labels, tokenize_with_offsets)

SENDER = {"user": "human", "assistant": "gpt"}
COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids", "chosen_mask", "rejected_mask")
"""What ``PairEncoder`` gives the trainer for each pair."""


@dataclass
class PairStats(TokenStats):
    """What pair tokenization did: pairs kept and dropped, tokens, trained tokens and observation tokens masked."""

    pairs: int = 0
    dropped: Counter = field(default_factory=Counter)
    completion_tokens: int = 0
    pairs_by_split: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the log, ``training_summary.json`` and the model card.

        ``masked_completion_tokens`` counts the completion tokens plain TRL would train and this path does not
        (observations, their headers, untrained agent turns).
        """
        return {"pairs": self.pairs, "kept": self.kept, "dropped": dict(sorted(self.dropped.items())),
                "tokens": self.tokens, "completion_tokens": self.completion_tokens,
                "trained_tokens": self.trained_tokens,
                "masked_completion_tokens": self.completion_tokens - self.trained_tokens,
                "pairs_by_split": dict(self.pairs_by_split)}

    def report(self) -> str:
        """The line the DPO entry point prints once the pairs are tokenized.

        Example:
            >>> PairStats(pairs=3, kept=3, tokens=90, completion_tokens=50, trained_tokens=20).report()
            'tokenized 3 of 3 pairs: 90 tokens, 20 trained, 30 completion tokens masked (observations); dropped none'
        """
        d = self.as_dict()
        return (f"tokenized {d['kept']} of {d['pairs']} pairs: {d['tokens']} tokens, {d['trained_tokens']} trained, "
                f"{d['masked_completion_tokens']} completion tokens masked (observations); dropped "
                f"{d['dropped'] or 'none'}")


def _turns(messages: list[dict[str, str]], loss: list[bool] | None) -> list[dict[str, Any]]:
    """Role/content messages as ShareGPT turns; ``loss`` None (the prompt) trains nothing."""
    turns = []
    for i, m in enumerate(messages):
        sender = SENDER[m["role"]]
        trained = bool(loss[i]) if loss is not None else False
        turns.append({"from": sender, "value": m["content"], "loss": trained if sender == "gpt" else None})
    return turns


class PairEncoder:
    """Turns preference rows (``prompt``, ``chosen``, ``rejected``, ``chosen_loss``, ``rejected_loss``) into
    ``prompt_ids``, ``chosen_ids``, ``rejected_ids`` and the per-token ``chosen_mask`` / ``rejected_mask``.

    Example (needs a model's tokenizer):
        >>> enc = PairEncoder(tokenizer, chat_format("model", tokenizer), max_length=2048)  # doctest: +SKIP
        >>> row = enc.encode(pairs)[0]  # doctest: +SKIP
        >>> len(row["chosen_ids"]) == len(row["chosen_mask"])  # doctest: +SKIP
        True
    """

    def __init__(self, tokenizer: Any, fmt: ChatFormat, max_length: int | None):
        require_offsets(tokenizer)
        self.tokenizer, self.fmt, self.max_length = tokenizer, fmt, max_length
        self.stats = PairStats()

    def _side(self, prompt: list[dict[str, Any]], completion: list[dict[str, Any]]) -> tuple[list[int], list[int], int]:
        """Token ids and labels of prompt + completion, and how many leading tokens lie wholly inside the prompt."""
        conv = prompt + completion
        text, spans, _ = self.fmt.render_spans(self.tokenizer, conv)
        head = self.fmt.render(self.tokenizer, self.fmt.messages(prompt), add_generation_prompt=True)
        if not text.startswith(head):
            raise TemplateError(f"{self.fmt.name}: the prompt with its generation prompt is not a prefix of the "
                                "rendered pair; the completion cannot be told from the prompt")
        (ids,), (offsets,) = tokenize_with_offsets(self.tokenizer, [text])
        n_prompt = 0
        while n_prompt < len(ids) and offsets[n_prompt][1] <= len(head):
            n_prompt += 1
        for span, i in zip(spans, [j for j, t in enumerate(conv) if t["from"] == "gpt" and t["loss"] is True]):
            self.stats.suffixes[reply_suffix(text, span, conv[i]["value"])] += 1
        return ids, span_labels(ids, offsets, spans), n_prompt

    def encode_one(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """One pair's token ids and masks; None (counted under ``dropped``) when it does not fit ``max_length``."""
        self.stats.pairs += 1
        prompt = _turns(row["prompt"], None)
        c_ids, c_labels, c_head = self._side(prompt, _turns(row["chosen"], row["chosen_loss"]))
        r_ids, r_labels, r_head = self._side(prompt, _turns(row["rejected"], row["rejected_loss"]))
        if self.max_length is not None and max(len(c_ids), len(r_ids)) > self.max_length:
            self.stats.dropped["pairs_dropped_too_long"] += 1
            return None
        k = 0
        limit = min(c_head, r_head)
        while k < limit and c_ids[k] == r_ids[k]:
            k += 1
        out = {"id": row.get("id"), "prompt_ids": c_ids[:k], "chosen_ids": c_ids[k:], "rejected_ids": r_ids[k:],
               "chosen_mask": [int(x != IGNORE) for x in c_labels[k:]],
               "rejected_mask": [int(x != IGNORE) for x in r_labels[k:]]}
        self.stats.kept += 1
        self.stats.tokens += len(c_ids) + len(r_ids)
        self.stats.completion_tokens += len(c_ids) + len(r_ids) - 2 * k
        self.stats.trained_tokens += sum(out["chosen_mask"]) + sum(out["rejected_mask"])
        self.stats.pairs_by_split[row.get("split", "unknown")] += 1
        return out

    def encode(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Encode every row (see ``encode_one``); pairs that do not fit are left out and counted."""
        return [e for e in (self.encode_one(r) for r in rows) if e is not None]


def check_pair_masks(rows: list[dict[str, Any]], stats: PairStats) -> None:
    """Fail (``MaskError``) before training when a pair's mask cannot be right: no pair left, a side with no
    trained token, a side trained on every token, or trained spans with more than one end-of-turn suffix (see
    ``masking.check_masks``).

    Example:
        >>> row = {"id": "p", "prompt_ids": [1], "chosen_ids": [2, 3], "rejected_ids": [4], "chosen_mask": [1, 0],
        ...        "rejected_mask": [0]}
        >>> check_pair_masks([row], PairStats(suffixes=Counter({"</s>": 1})))
        Traceback (most recent call last):
        ...
        agentinstruct.training.masking.MaskError: example p/rejected: no trained token (all-zero mask)
    """
    sides = []
    for row in rows:
        for side in ("chosen", "rejected"):
            ids = row["prompt_ids"] + row[f"{side}_ids"]
            labels = [IGNORE] * len(row["prompt_ids"]) + [t if m else IGNORE for t, m in
                                                            zip(row[f"{side}_ids"], row[f"{side}_mask"])]
            sides.append({"id": f"{row.get('id')}/{side}", "input_ids": ids, "labels": labels})
    check_masks(sides, stats)


def _collator_base() -> type:
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    return DataCollatorForPreference


def per_turn_collator(pad_token_id: int, max_length: int | None = None, pad_to_multiple_of: int | None = None) -> Any:
    """TRL's preference collator whose ``completion_mask`` is 0 on every completion token outside a trained turn.

    Example:
        >>> collate = per_turn_collator(pad_token_id=0)
        >>> batch = collate([{"prompt_ids": [1, 2], "chosen_ids": [3, 4, 5], "rejected_ids": [6, 7],
        ...                   "chosen_mask": [1, 0, 1], "rejected_mask": [0, 1]}])
        >>> batch["input_ids"].tolist(), batch["completion_mask"].tolist()
        ([[1, 2, 3, 4, 5], [1, 2, 6, 7, 0]], [[0, 0, 1, 0, 1], [0, 0, 0, 1, 0]])
    """
    import torch
    from trl.trainer.utils import pad

    base = _collator_base()

    @dataclass
    class PerTurnPreferenceCollator(base):  # type: ignore[misc, valid-type]
        """``DataCollatorForPreference`` with the per-token masks of ``PairEncoder`` applied to ``completion_mask``."""

        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            out = super().torch_call(examples)
            masks = [[0] * len(e["prompt_ids"]) + list(e[f"{side}_mask"])
                     for side in ("chosen", "rejected") for e in examples]
            if self.max_length is not None:
                keep_start = self.truncation_mode == "keep_start"
                sl = slice(None, self.max_length) if keep_start else slice(-self.max_length, None)
                masks = [m[sl] for m in masks]
            trained = pad([torch.tensor(m, dtype=torch.long) for m in masks], padding_value=0, padding_side="right",
                          pad_to_multiple_of=self.pad_to_multiple_of)
            out["completion_mask"] = out["completion_mask"] * trained
            return out

    return PerTurnPreferenceCollator(pad_token_id=pad_token_id, max_length=max_length,
                                     pad_to_multiple_of=pad_to_multiple_of)


def per_turn_trainer_class() -> type:
    """``DPOTrainer`` for pairs already tokenized by ``PairEncoder``: no re-tokenization, mask columns kept.

    Example:
        >>> per_turn_trainer_class().__name__
        'PerTurnDPOTrainer'
    """
    from trl import DPOTrainer

    class PerTurnDPOTrainer(DPOTrainer):
        """DPOTrainer over ``prompt_ids``/``chosen_ids``/``rejected_ids`` + ``chosen_mask``/``rejected_mask``."""

        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
            missing = set(COLUMNS) - set(dataset.column_names)
            if missing:
                raise ValueError(f"the {dataset_name} dataset is not tokenized by PairEncoder: no {sorted(missing)}")
            return dataset

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            for name in ("chosen_mask", "rejected_mask"):
                if name not in self._signature_columns:
                    self._signature_columns.append(name)

    return PerTurnDPOTrainer
