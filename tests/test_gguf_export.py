"""A checkpoint trained from the embedded GGUF, written back as a GGUF and served by llama.cpp."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from agentinstruct.collection.localmodel import gguf_path
from agentinstruct.evaluation.gguf_export import ExportError, export_gguf, gguf_base, rotary_rows
from agentinstruct.training.base import EMBEDDED_GGUF, plain_checkpoint


def test_rotary_rows_undo_what_transformers_does_when_it_reads_a_gguf():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    rng = np.random.default_rng(0)
    for heads, kv_heads, rows in ((9, 9, 576), (9, 3, 192)):
        weight = rng.standard_normal((rows, 8)).astype(np.float32)
        read_back = LlamaTensorProcessor()._reverse_permute_weights(rotary_rows(weight, kv_heads), heads, kv_heads)
        assert np.array_equal(read_back, weight)


def test_the_checkpoints_base_gguf_is_found_from_its_recipe_or_its_conversion(tmp_path):
    assert gguf_base(tmp_path) is None
    (tmp_path / "recipe.yaml").write_text("model_name_or_path: meta-llama/Llama-2-7b-chat-hf\n")
    assert gguf_base(tmp_path) is None
    (tmp_path / "recipe.yaml").write_text(f"model_name_or_path: {EMBEDDED_GGUF}\n")
    assert gguf_base(tmp_path) == EMBEDDED_GGUF
    assert gguf_base(plain_checkpoint(EMBEDDED_GGUF)) == str(gguf_path())


def test_a_cached_conversion_names_the_gguf_found_now_when_the_one_that_made_it_has_moved(tmp_path, monkeypatch):
    # What CI met: the cache outlived the venv that filled it, and the GGUF it recorded was gone.
    from agentinstruct.training.base import GGUF_SOURCE, cache_dir

    converted = plain_checkpoint(EMBEDDED_GGUF)
    monkeypatch.setenv("AGENTINSTRUCT_CACHE", str(tmp_path))
    moved = cache_dir() / "gguf" / converted.name
    shutil.copytree(converted, moved)
    (moved / GGUF_SOURCE).write_text(json.dumps({"gguf": "/gone/venv/model.gguf", "sha256": "x"}) + "\n")
    assert plain_checkpoint(EMBEDDED_GGUF) == moved
    assert gguf_base(moved) == str(gguf_path())


def test_a_damaged_gguf_source_record_is_refused_naming_the_file_and_rewritten_in_the_cache(tmp_path, monkeypatch):
    from agentinstruct.training.base import GGUF_SOURCE, cache_dir

    (tmp_path / GGUF_SOURCE).write_text('{"sha256": "x"}\n')
    with pytest.raises(ValueError, match=r"gguf_source.json: not a GGUF source record \(KeyError\('gguf'\)\)"):
        gguf_base(tmp_path)
    converted = plain_checkpoint(EMBEDDED_GGUF)
    monkeypatch.setenv("AGENTINSTRUCT_CACHE", str(tmp_path / "cache"))
    cached = cache_dir() / "gguf" / converted.name
    shutil.copytree(converted, cached)
    (cached / GGUF_SOURCE).write_text("{not json")
    assert plain_checkpoint(EMBEDDED_GGUF) == cached and gguf_base(cached) == str(gguf_path())


def test_a_checkpoint_of_other_shapes_is_refused_naming_the_field(tmp_path):
    source = plain_checkpoint(EMBEDDED_GGUF)
    config = json.loads((source / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "hidden_size": 960}))
    with pytest.raises(ExportError, match=r"config.json: hidden_size is 960, but the base GGUF's llama.embedding_le"):
        export_gguf(tmp_path, gguf_path(), tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


@pytest.mark.slow
def test_llama_cpp_on_the_export_answers_as_transformers_does_on_the_checkpoint(tmp_path):
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # A checkpoint whose weights are not the GGUF's: the conversion's, with one layer's projections changed, as
    # training changes them.
    folder = tmp_path / "ckpt"
    shutil.copytree(plain_checkpoint(EMBEDDED_GGUF), folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        for proj in (model.model.layers[3].self_attn.q_proj, model.model.layers[3].self_attn.k_proj):
            proj.weight.mul_(1.5)
    model.save_pretrained(folder)
    out = export_gguf(folder, gguf_path(), tmp_path / "ckpt.gguf")

    messages = [{"role": "user", "content": "List three files in /etc and say what each one is for."}]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    generated = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    expected = tokenizer.decode(generated[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    llm = Llama(str(out), n_ctx=1024, n_threads=2, flash_attn=True, verbose=False)  # as local_server runs it
    reply = llm.create_chat_completion(messages, max_tokens=24, temperature=0.0)["choices"][0]["message"]["content"]
    assert reply == expected.strip() or reply == expected
