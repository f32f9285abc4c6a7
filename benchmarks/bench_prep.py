"""Data preparation for AgentLM training, measured side by side on the same conversations.

1. Throughput: our per-turn-loss encoding (render in the chat format, find the
   trained spans by rendering turn prefixes, tokenize with offsets, turn-aware
   truncation) against the tokenizer's own batch call on the same rendered
   text, in tokens per second. The ratio is the price of the exact mask.
2. Packing: the share of non-padding tokens the model processes, our path
   (turn-aware truncation + TRL's bfd packing) against TRL's default path
   (no packing, keep_start truncation, batches padded to their longest row),
   both batched by TRL's own collator; plus how many trained tokens each path
   keeps after truncation.

Data: an eta = 0.2 mixture of the embedded ShareGPT conversations and the
embedded AgentInstruct sample rows; tokenizer and template: the embedded
SmolLM2 model's.

    .venv/bin/python benchmarks/bench_prep.py [--examples 2000] [--max-length 4096 1024] [--format model llama2-chat]
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources

from agentinstruct.training.base import EMBEDDED_GGUF, load_tokenizer
from agentinstruct.training.chat import chat_format
from agentinstruct.training.masking import IGNORE, Encoder
from agentinstruct.training.mixture import mix
from agentinstruct.training.sharegpt import read_general


def _rows(n: int) -> list[dict]:
    general, _ = read_general(limit=n)
    sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl").read_text(encoding="utf-8")
    agent = [{**json.loads(line), "split": "sample"} for line in sample.splitlines() if line.strip()]
    return mix(agent, general, 0.2, n, seed=0).rows


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def throughput(tok, fmt, rows: list[dict], max_length: int, repeat: int) -> dict:
    """Tokens per second: our encoder vs the tokenizer's batch call on the already-rendered text."""
    texts = [fmt.render(tok, fmt.messages(r["conversations"])) for r in rows]
    t_tok, ids = _best(lambda: tok(texts, add_special_tokens=False)["input_ids"], repeat)
    n_tok = sum(len(x) for x in ids)
    t_ours, encoder = _best(lambda: (e := Encoder(tok, fmt, max_length), e.encode(rows))[0], repeat)
    # tokens our encoder read (before truncation), so both rates count the same input
    return {"tokenizer_tok_s": n_tok / t_tok, "ours_tok_s": n_tok / t_ours, "ratio": t_tok / t_ours,
            "tokens": n_tok, "truncation": dict(encoder.stats.truncation)}


def _non_padding(collator, rows: list[dict], batch_size: int) -> float:
    real = total = 0
    for start in range(0, len(rows), batch_size):
        batch = collator([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows[start:start + batch_size]])
        real += int(batch["attention_mask"].sum())
        total += batch["attention_mask"].numel()
    return real / total


def packing(tok, fmt, rows: list[dict], max_length: int, batch_size: int) -> dict:
    """Non-padding share and trained tokens kept: TRL's default path vs turn-aware truncation + bfd packing."""
    from datasets import Dataset
    from trl import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id or 0)
    full = Encoder(tok, fmt, None).encode(rows)
    trained_full = sum(sum(1 for x in r["labels"] if x != IGNORE) for r in full)
    # TRL default: keep_start truncation to max_length, examples left with no trained token dropped, no packing
    trl_rows = [{"input_ids": r["input_ids"][:max_length], "labels": r["labels"][:max_length]} for r in full]
    trl_rows = [r for r in trl_rows if any(x != IGNORE for x in r["labels"])]
    # ours: turn-aware truncation, then TRL's bfd packing into max_length rows
    ours = Encoder(tok, fmt, max_length).encode(rows)
    packed = pack_dataset(Dataset.from_dict({"input_ids": [r["input_ids"] for r in ours], "labels": [r["labels"] for r in ours]}),
                          max_length, "bfd")
    packed_rows = packed.to_list()
    return {
        "trl_default_non_padding": _non_padding(collator, trl_rows, batch_size),
        "ours_packed_non_padding": _non_padding(collator, packed_rows, batch_size),
        "ours_packed_fill": sum(len(r["input_ids"]) for r in packed_rows) / (len(packed_rows) * max_length),
        "trl_default_rows": len(trl_rows), "ours_packed_rows": len(packed_rows),
        "trained_tokens_untruncated": trained_full,
        "trl_default_trained_kept": sum(sum(1 for x in r["labels"] if x != IGNORE) for r in trl_rows),
        "ours_trained_kept": sum(sum(1 for x in r["labels"] if x != IGNORE) for r in ours),
        "trl_default_examples_dropped": len(full) - len(trl_rows),
        "ours_examples_dropped": len(full) - len(ours),
    }


def main() -> None:
    """Run both measurements and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--max-length", type=int, nargs="+", default=[4096, 1024])
    parser.add_argument("--format", nargs="+", default=["model", "llama2-chat"])
    parser.add_argument("--batch-size", type=int, default=8, help="per-device batch for the padding comparison")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    tok = load_tokenizer(EMBEDDED_GGUF)
    rows = _rows(args.examples)
    print(f"{len(rows)} examples (eta 0.2 mixture of embedded ShareGPT + AgentInstruct sample), tokenizer {EMBEDDED_GGUF}")
    for name in args.format:
        fmt = chat_format(name, tok)
        t = throughput(tok, fmt, rows, max(args.max_length), args.repeat)
        print(f"\n[{name}] throughput on {t['tokens']} tokens: tokenizer batch {t['tokenizer_tok_s']:,.0f} tok/s, "
              f"ours (render + spans + offsets + truncation) {t['ours_tok_s']:,.0f} tok/s, ratio ours/tokenizer {t['ratio']:.2f}")
        for max_length in args.max_length:
            p = packing(tok, fmt, rows, max_length, args.batch_size)
            print(f"[{name}] max_length {max_length}, batches of {args.batch_size}:")
            print(f"  non-padding share: TRL default {p['trl_default_non_padding']:.3f} ({p['trl_default_rows']} rows) | "
                  f"ours packed {p['ours_packed_non_padding']:.3f} ({p['ours_packed_rows']} rows, fill {p['ours_packed_fill']:.3f}; "
                  f"1.000 padding-free) | ratio {p['ours_packed_non_padding'] / p['trl_default_non_padding']:.2f}")
            print(f"  trained tokens kept of {p['trained_tokens_untruncated']}: TRL default keep_start "
                  f"{p['trl_default_trained_kept']} ({p['trl_default_examples_dropped']} examples dropped) | ours turn-aware "
                  f"{p['ours_trained_kept']} ({p['ours_examples_dropped']} dropped)")


if __name__ == "__main__":
    main()
