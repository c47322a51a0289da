"""SWE-bench-style rows from a Hugging Face data set or a local parquet / JSONL file.

A row has (after the column mapping) `instance_id`, `repo`, `base_commit`, `problem_statement`,
`patch`, `test_patch`, `FAIL_TO_PASS`, `PASS_TO_PASS`, and optionally `image` (a prebuilt image)
or `dockerfile` (a recipe). Test lists may be JSON strings, as in SWE-bench's own files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harbor_env.errors import SweRowError


class SweRow(BaseModel):
    """One SWE-style instance, in the canonical column names."""

    model_config = ConfigDict(extra="ignore")

    instance_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    repo: str = ""
    base_commit: str = Field(min_length=1)
    problem_statement: str = Field(min_length=1)
    patch: str = Field(min_length=1)
    test_patch: str = Field(min_length=1)
    FAIL_TO_PASS: list[str] = Field(min_length=1)
    PASS_TO_PASS: list[str] = Field(default_factory=list)
    image: str | None = None
    dockerfile: str | None = None

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _json_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else []
        return list(value) if value is not None and not isinstance(value, list) else value


def _read_file(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise SweRowError(f"{path}: reading parquet needs pyarrow (pip install pyarrow), or use JSONL") from None
        return pq.read_table(path).to_pylist()
    if path.suffix in (".jsonl", ".json"):
        text = path.read_text()
        if path.suffix == ".json" and text.lstrip().startswith("["):
            return json.loads(text)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    raise SweRowError(f"{path}: unsupported data file (use .parquet, .jsonl or .json)")


def split_files(root: Path, split: str) -> list[Path]:
    """The files of `split` in a Hugging Face data set folder (`data/test-00000-of-00001.parquet`,
    `test.jsonl`, ...), as the Hub lays them out."""
    files = sorted(p for p in root.rglob("*") if p.suffix in (".parquet", ".jsonl", ".json") and p.is_file())
    chosen = [p for p in files if p.name.split("-")[0].split(".")[0] == split or p.parent.name == split]
    if not chosen:
        raise SweRowError(f"{root}: no files of split '{split}' (found {[p.name for p in files][:5]}); set split")
    return chosen


def download_hf_dataset(repo_id: str, revision: str | None) -> Path:
    """The data set's files, from the Hugging Face Hub cache or downloaded into it (HF_TOKEN for
    private sets; offline with HF_HUB_OFFLINE=1 once cached)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id, repo_type="dataset", revision=revision, allow_patterns=["*.parquet", "*.jsonl", "*.json"]
            )
        )
    except Exception as exc:
        raise SweRowError(
            f"Hugging Face data set {repo_id}: cannot download it ({' '.join(str(exc).split())[:200]}); "
            "check hf_dataset, HF_TOKEN and the network, or use a local data_file"
        ) from None


@dataclass(frozen=True)
class RawRow:
    """A data set row as read, before the column mapping and its checks."""

    where: str
    """The file and row number, e.g. `rows.jsonl row 3`."""
    values: dict[str, Any]

    def instance_id(self, columns: dict[str, str]) -> str:
        """The row's instance_id for include/exclude, or where it is when it has none."""
        value = self.values.get(columns.get("instance_id", "instance_id"))
        return value if isinstance(value, str) and value else self.where


def read_raw_rows(files: list[Path]) -> list[RawRow]:
    return [RawRow(f"{path.name} row {n}", raw) for path in files for n, raw in enumerate(_read_file(path), start=1)]


def parse_row(raw: RawRow, columns: dict[str, str]) -> SweRow:
    """`raw` renamed by `columns` (canonical name -> the data set's column) and checked; raise
    SweRowError naming the column or field."""
    renamed = dict(raw.values)
    for canonical, column in columns.items():
        if column not in raw.values:
            raise SweRowError(f"no column '{column}' (columns.{canonical}); columns are {sorted(raw.values)}")
        renamed[canonical] = raw.values[column]
    try:
        return SweRow.model_validate(renamed)
    except (ValidationError, json.JSONDecodeError) as exc:
        problem = (
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        raise SweRowError(f"{problem} (map columns with [env.taskset.swe] columns)") from None
