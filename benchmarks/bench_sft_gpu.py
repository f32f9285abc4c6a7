"""A short GPU check of the SFT path: tokens per second and MFU of a 1-3B Llama-architecture model on packed,
per-turn-masked AgentInstruct conversations.

The model is built from a config (random weights: no weights can be downloaded
on the lent GPU machine, and speed does not depend on their values). The data
goes through the same path as ``agentinstruct.training.sft``: the embedded
AgentInstruct sample rows are rendered in the Llama-2-chat format with their
per-turn loss mask (``masking.Encoder``), packed best-fit-decreasing into rows
of ``--max-length`` tokens, and fed padding-free, position ids restarting at
every example, the first label of each example masked: what TRL's
``packing_strategy: bfd`` and its padding-free collator hand the model
(tests/test_train_bench.py checks the batch against TRL's collator). TRL and
datasets are not imported, since the GPU machine has neither; the optimiser
step is a plain AdamW loop, as SFTTrainer's is for a single process.

Reported: tokens/s (all tokens the model processes) and trained tokens/s after
``--warmup`` steps, peak memory, and MFU = achieved FLOP/s over the GPU's dense
bf16 peak, with FLOPs per token = 6 x (matmul parameters) + causal attention
6 x layers x hidden x sum(n^2)/sum(n) over the packed examples of length n.

    python benchmarks/bench_sft_gpu.py [--preset 1b|3b] [--steps 30] [--tokenizer DIR] [--json OUT]

Without a CUDA GPU it prints why and exits 0 (``--device cpu --preset tiny`` runs the same code on a tiny model,
which the tests do). ``--tokenizer`` takes a tokenizer dir (default: the embedded SmolLM2 tokenizer, which needs
the agentinstruct install); on the GPU machine carry one, e.g. ``~/.cache/agentinstruct/gguf/<hash>/``'s
tokenizer files.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "agentinstruct" / "records" / "samples" / "thudm_sample.jsonl"
IGNORE = -100
# Dense bf16 peak FLOP/s (no sparsity) by device name fragment, from the vendors' data sheets.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12}
PRESETS = {
    # name: hidden, intermediate, layers, heads, kv heads (Llama-3.2-1B- and -3B-like shapes)
    "tiny": (64, 128, 2, 4, 2),
    "1b": (2048, 8192, 16, 32, 8),
    "3b": (3072, 8192, 28, 24, 8),
}


def _training_modules() -> None:
    """Make ``agentinstruct.training`` importable from a plain checkout (the GPU machine has no install of it)."""
    try:
        importlib.import_module("agentinstruct.training")
        return
    except ModuleNotFoundError:
        pass
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    importlib.import_module("agentinstruct")
    # setup.cfg installs training/ as agentinstruct.training; a checkout needs the same mapping made by hand
    spec = importlib.util.spec_from_file_location("agentinstruct.training", REPO / "training" / "__init__.py",
                                                  submodule_search_locations=[str(REPO / "training")])
    module = importlib.util.module_from_spec(spec)
    sys.modules["agentinstruct.training"] = module
    spec.loader.exec_module(module)


def llama_config(preset: str, vocab_size: int, max_length: int, tokenizer: Any) -> Any:
    """A Llama config of the preset's shape for the tokenizer's vocabulary."""
    from transformers import LlamaConfig

    hidden, intermediate, layers, heads, kv = PRESETS[preset]
    return LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
                       num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                       max_position_embeddings=max(max_length, 4096), tie_word_embeddings=False,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)


def matmul_params(config: Any) -> int:
    """Parameters that take part in a matmul per token: every layer's projections and the output head."""
    d, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    kv = d * config.num_key_value_heads // config.num_attention_heads
    per_layer = d * d * 2 + d * kv * 2 + 3 * d * f
    return layers * per_layer + d * config.vocab_size


def flops_per_token(config: Any, lengths: list[int]) -> float:
    """Training FLOPs per token (forward + backward) for packed examples of these lengths.

    Example:
        >>> from types import SimpleNamespace
        >>> c = SimpleNamespace(hidden_size=4, intermediate_size=8, num_hidden_layers=1, num_attention_heads=2,
        ...                     num_key_value_heads=2, vocab_size=10)
        >>> flops_per_token(c, [2, 2]) == 6 * (4*4*2 + 4*4*2 + 3*4*8 + 4*10) + 6 * 1 * 4 * 2
        True
    """
    attention = 6 * config.num_hidden_layers * config.hidden_size * sum(n * n for n in lengths) / sum(lengths)
    return 6 * matmul_params(config) + attention


def pack_bfd(examples: list[dict[str, list[int]]], max_length: int) -> list[list[dict[str, list[int]]]]:
    """Best-fit-decreasing bins of whole examples, each bin at most ``max_length`` tokens (TRL's ``bfd`` strategy).

    Example:
        >>> ex = [{"input_ids": [1] * n, "labels": [1] * n} for n in (6, 5, 4, 3, 2)]
        >>> [[len(e["input_ids"]) for e in b] for b in pack_bfd(ex, 8)]
        [[6, 2], [5, 3], [4]]
    """
    bins: list[list[dict[str, list[int]]]] = []
    room: list[int] = []
    for ex in sorted(examples, key=lambda e: -len(e["input_ids"])):
        n = len(ex["input_ids"])
        if n > max_length:
            raise ValueError(f"an example of {n} tokens is longer than max_length {max_length}")
        fits = [i for i, r in enumerate(room) if r >= n]
        if fits:
            best = min(fits, key=lambda i: room[i])
            bins[best].append(ex)
            room[best] -= n
        else:
            bins.append([ex])
            room.append(max_length - n)
    return bins


def padding_free_batch(bins: list[list[dict[str, list[int]]]]) -> dict[str, Any]:
    """One padding-free batch: every example of ``bins`` in a single row, position ids restarting per example, the
    first label of each example masked (it would be predicted from the previous example's end).

    Example:
        >>> b = padding_free_batch([[{"input_ids": [5, 6], "labels": [-100, 6]}], [{"input_ids": [7, 8, 9], "labels": [7, 8, 9]}]])
        >>> b["input_ids"].tolist(), b["position_ids"].tolist(), b["labels"].tolist()
        ([[5, 6, 7, 8, 9]], [[0, 1, 0, 1, 2]], [[-100, 6, -100, 8, 9]])
    """
    import torch

    ids, labels, positions = [], [], []
    for row in bins:
        for ex in row:
            ids += ex["input_ids"]
            labels += [IGNORE] + ex["labels"][1:]
            positions += list(range(len(ex["input_ids"])))
    return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]), "position_ids": torch.tensor([positions])}


def encoded_examples(tokenizer: Any, max_length: int, copies: int) -> tuple[list[dict[str, list[int]]], dict[str, Any]]:
    """The sample rows, varied by cutting their rounds at different points, encoded with per-turn loss."""
    _training_modules()
    from agentinstruct.training.chat import llama2_chat
    from agentinstruct.training.masking import Encoder, check_masks

    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    variants = []
    for k in range(copies):
        for row in rows:
            conv = row["conversations"]
            trained = [i for i, t in enumerate(conv) if t["from"] == "gpt" and t["loss"] is True]
            # end at the k-th trained turn (cycling): examples of many lengths, each ending in a trained reply
            end = trained[k % len(trained)] + 1
            variants.append({"id": f"{row['id']}-{k}", "conversations": conv[:end]})
    encoder = Encoder(tokenizer, llama2_chat(), max_length)
    encoded = encoder.encode(variants)
    check_masks(encoded, encoder.stats)
    return [{"input_ids": e["input_ids"], "labels": e["labels"]} for e in encoded], encoder.stats.as_dict()


def _peak(device_name: str, given: float | None) -> float | None:
    if given:
        return given * 1e12
    return next((v for k, v in PEAK_BF16.items() if k in device_name), None)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the model, pack the data, train ``args.steps`` steps; return the measurements."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    device = torch.device(args.device)
    if args.tokenizer:
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    else:
        _training_modules()
        from agentinstruct.training.base import EMBEDDED_GGUF, load_tokenizer

        tokenizer = load_tokenizer(EMBEDDED_GGUF)
    examples, encode = encoded_examples(tokenizer, args.max_length, args.copies)
    bins = pack_bfd(examples, args.max_length)
    per_step = max(1, args.rows_per_step)
    batches = [padding_free_batch(bins[i:i + per_step]) for i in range(0, len(bins), per_step)]
    config = llama_config(args.preset, len(tokenizer), args.max_length, tokenizer)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, attn_implementation=args.attn, dtype=dtype)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    lengths = [len(e["input_ids"]) for e in examples]
    fpt = flops_per_token(config, lengths)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    timed_tokens = timed_trained = 0
    losses = []
    start = None
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            sync()
            start = time.perf_counter()
        batch = {k: v.to(device) for k, v in batches[step % len(batches)].items()}
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())  # .item() syncs: every step is complete before the next one is timed
        if step >= args.warmup:
            timed_tokens += batch["input_ids"].numel()
            timed_trained += int((batch["labels"] != IGNORE).sum())
    sync()
    elapsed = time.perf_counter() - start
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = _peak(name, args.peak_tflops)
    tok_s = timed_tokens / elapsed
    return {
        "device": name, "preset": args.preset, "params": sum(p.numel() for p in model.parameters()),
        "attn_implementation": model.config._attn_implementation, "dtype": str(dtype).removeprefix("torch."),
        "max_length": args.max_length, "examples": len(examples), "packed_rows": len(bins),
        "fill": round(sum(lengths) / (len(bins) * args.max_length), 4), "rows_per_step": per_step,
        "steps_timed": args.steps, "seconds": round(elapsed, 3), "tokens_per_s": round(tok_s, 1),
        "trained_tokens_per_s": round(timed_trained / elapsed, 1), "flops_per_token": fpt,
        "mfu": round(tok_s * fpt / peak, 4) if peak else None, "peak_flops": peak,
        "peak_memory_gb": round(torch.cuda.max_memory_allocated(device) / 1e9, 2) if device.type == "cuda" else None,
        "loss_first_last": [round(losses[0], 4), round(losses[-1], 4)], "encode": encode,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The bench's command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="1b")
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (allocator, kernels)")
    p.add_argument("--max-length", type=int, default=4096)
    p.add_argument("--rows-per-step", type=int, default=8, help="packed rows of max-length tokens per step")
    p.add_argument("--copies", type=int, default=24, help="variants of each sample row (more distinct data)")
    p.add_argument("--attn", default="sdpa", help="attn_implementation (sdpa; flash_attention_2 where flash-attn exists)")
    p.add_argument("--device", default="cuda", help="cuda, or cpu to run the same code on --preset tiny")
    p.add_argument("--tokenizer", help="tokenizer dir (default: the embedded SmolLM2 tokenizer)")
    p.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, when its name is not in the table")
    p.add_argument("--json", type=Path, help="also write the result here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the check, or say why it is skipped."""
    args = parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_sft_gpu: skipped: no CUDA GPU here (run it on a GPU machine; --device cpu --preset tiny runs "
              "the same code on a tiny model)")
        return 0
    result = run(args)
    print(json.dumps(result, indent=2))
    mfu = f"{result['mfu']:.1%}" if result["mfu"] is not None else "n/a (unknown peak: --peak-tflops)"
    print(f"{result['device']}: {result['params'] / 1e9:.2f}B params, {result['tokens_per_s']:.0f} tokens/s "
          f"({result['trained_tokens_per_s']:.0f} trained), MFU {mfu}, packed rows {result['fill']:.1%} full")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
