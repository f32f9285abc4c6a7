"""A ``datasets`` builder that makes the dataset from raw JSON/JSONL trajectory files, validating every record.

datasets 5 refuses loading scripts, so this replaces one: instantiate the
builder directly. The published (scriptless) layout is the dataset dir;
this class is for users who build locally from journals or hand-made files.

Example (a records file made from the THUDM sample shipped with the package; ``cache_dir`` keeps the build local):
    >>> import json
    >>> from importlib import resources
    >>> from pathlib import Path
    >>> from agentinstruct.datasetdir.hf_builder import AgentInstructBuilder
    >>> from agentinstruct.records.thudm import from_thudm
    >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
    >>> row = json.loads(sample.read_text().splitlines()[0])
    >>> _ = Path("os.jsonl").write_text(json.dumps(from_thudm(row, "os")) + "\\n")
    >>> b = AgentInstructBuilder(config_name="all", data_files={"os": ["os.jsonl"]}, cache_dir="cache")
    >>> b.download_and_prepare()
    >>> ds = b.as_dataset(split="os")
    >>> ds.num_rows, ds[0]["id"], ds[0]["instruction_source"]
    (1, 'os_0', 'imported')
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
from datasets.builder import Key

from agentinstruct.records.recordio import read_entries
from agentinstruct.records.schema import features
from agentinstruct.records.validation import InvalidRecords, check_entries
from agentinstruct.schemas import SPLITS


class AgentInstructBuilder(datasets.GeneratorBasedBuilder):
    """Builds the ``default`` (kept records) or ``all`` (every scored record) config from trajectory files.

    ``data_files`` maps split names (os, db, alfworld, webshop, kg, mind2web) to
    JSON, JSONL or Parquet files of records. Any invalid record stops the build
    with an ``InvalidRecords`` error naming file, record and field.
    """

    BUILDER_CONFIGS = [
        datasets.BuilderConfig(name="default", description="Kept trajectories, as THUDM released them."),
        datasets.BuilderConfig(name="all", description="Every scored trajectory with its filter decision."),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="AgentInstruct trajectories with reward and provenance (agentinstruct).",
            features=features(),
            homepage="https://huggingface.co/datasets/THUDM/AgentInstruct",
            license="apache-2.0",
        )

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        if not self.config.data_files:
            raise ValueError("AgentInstructBuilder needs data_files, e.g. {'os': ['os.jsonl']}")
        unknown = sorted(set(self.config.data_files) - set(SPLITS))
        if unknown:
            raise ValueError(f"unknown split(s) {', '.join(unknown)} in data_files; expected among {', '.join(SPLITS)}")
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"files": [Path(f) for f in files]})
            for split, files in self.config.data_files.items()
        ]

    def _generate_examples(self, files: list[Path]) -> Iterator[tuple[Key, dict[str, Any]]]:
        for shard, file in enumerate(files):
            entries = list(read_entries(file))
            report = check_entries(entries)
            if not report.ok:
                raise InvalidRecords(report)
            for n, entry in enumerate(entries):
                if self.config.name == "all" or entry.record["filter"]["kept"]:
                    yield Key(shard, n), entry.record
