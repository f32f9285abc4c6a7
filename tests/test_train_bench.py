"""The GPU check's CPU-side logic: its packed padding-free batches are what TRL's collator makes, its FLOP count,
and the whole bench on a tiny model on CPU; without a GPU it skips with a message."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_sft_gpu", REPO / "benchmarks" / "bench_sft_gpu.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_packed_batch_is_what_trl_bfd_and_its_padding_free_collator_give() -> None:
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    examples = [{"input_ids": list(range(100 + 10 * k, 100 + 10 * k + n)), "labels": [-100] * 2 + list(range(n - 2))}
                for k, n in enumerate((9, 7, 5, 4, 3, 3))]
    bins = bench.pack_bfd(examples, 12)
    assert all(sum(len(e["input_ids"]) for e in b) <= 12 for b in bins) and sum(len(b) for b in bins) == 6
    ours = bench.padding_free_batch(bins)
    collator = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    theirs = collator([{"input_ids": [t for e in b for t in e["input_ids"]], "labels": [t for e in b for t in e["labels"]],
                        "seq_lengths": [len(e["input_ids"]) for e in b]} for b in bins])
    for key in ("input_ids", "position_ids", "labels"):
        assert torch.equal(ours[key], theirs[key]), key
    with pytest.raises(ValueError, match="longer than max_length 12"):
        bench.pack_bfd([{"input_ids": [1] * 13, "labels": [1] * 13}], 12)


def test_flops_per_token_counts_the_1b_preset_as_about_six_times_its_parameters() -> None:
    from types import SimpleNamespace

    from transformers import LlamaConfig

    tok = SimpleNamespace(bos_token_id=1, eos_token_id=2)
    config = bench.llama_config("1b", 49152, 4096, tok)
    assert isinstance(config, LlamaConfig)
    n = bench.matmul_params(config)
    assert 1.0e9 < n < 1.3e9
    short, long = bench.flops_per_token(config, [512] * 8), bench.flops_per_token(config, [4096])
    assert 6 * n < short < long and long - 6 * n == pytest.approx(6 * 16 * 2048 * 4096)


def test_bench_runs_on_a_tiny_model_on_cpu_and_skips_without_a_gpu(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert bench.main(["--device", "cpu", "--preset", "tiny", "--steps", "2", "--warmup", "1", "--max-length", "1024",
                       "--rows-per-step", "2", "--copies", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["steps_timed"] == 2 and result["tokens_per_s"] > 0
    assert 0 < result["trained_tokens_per_s"] < result["tokens_per_s"] and 0.5 < result["fill"] <= 1
    assert result["mfu"] is None and all(x == x for x in result["loss_first_last"])  # no peak known for a CPU
    assert result["encode"]["kept"] == result["examples"] and result["encode"]["truncation"] == {}
    if not torch.cuda.is_available():
        capsys.readouterr()
        assert bench.main([]) == 0
        assert "bench_sft_gpu: skipped: no CUDA GPU here" in capsys.readouterr().out
