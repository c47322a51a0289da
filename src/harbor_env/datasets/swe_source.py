"""SWE-style data sets as a taskset source, and as a command that writes the task folders.

As a source (`hf_dataset` or `data_file` in `[env.taskset]`), the selected rows are converted
once into the node-wide cache (under its file lock, so concurrent processes convert once); a
changed row or template gives a new folder. As a command:

    python -m harbor_env.datasets.swe_source --data-file rows.jsonl --out tasks/ [--preset c2bug]
    python -m harbor_env.datasets.swe_source --hf-dataset TwelfthStar/c2bug_tasks_django_Jan-22-2026 \
        --split test --preset c2bug --out tasks/c2bug
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

from harbor_env.datasets.cache import Selection, SourcedTask, cache_root, locked
from harbor_env.datasets.swe_rows import SweRow, download_hf_dataset, read_rows, split_files
from harbor_env.datasets.swe_template import SweTemplateConfig, resolve_template, write_task
from harbor_env.errors import SweRowError


def source_label(hf_dataset: str | None, data_file: str | None, split: str) -> str:
    return f"{hf_dataset}:{split}" if hf_dataset else str(Path(data_file or "").expanduser().resolve())


def read_selected_rows(
    hf_dataset: str | None,
    data_file: str | None,
    split: str,
    revision: str | None,
    template: SweTemplateConfig,
    selection: Selection,
) -> list[SweRow]:
    """The rows of the data set that `include`/`exclude`/`limit` select, by instance_id."""
    if bool(hf_dataset) == bool(data_file):
        raise SweRowError("[env.taskset] set one of hf_dataset (a Hugging Face data set) or data_file (parquet/JSONL)")
    if data_file:
        path = Path(data_file).expanduser().resolve()
        if not path.is_file():
            raise SweRowError(f"data_file {data_file} does not exist (resolved to {path})")
        files = [path]
    else:
        local = Path(hf_dataset).expanduser()
        files = split_files(local.resolve() if local.is_dir() else download_hf_dataset(hf_dataset, revision), split)
    rows = read_rows(files, template.columns, source_label(hf_dataset, data_file, split))
    by_id = {row.instance_id: row for row in rows}
    chosen = selection.pick(list(by_id))
    if not chosen:
        raise SweRowError(
            f"{source_label(hf_dataset, data_file, split)}: no row matches include="
            f"{selection.include or ['*']} exclude={selection.exclude} ({len(by_id)} rows)"
        )
    return [by_id[name] for name in chosen]


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def load_swe_tasks(
    *,
    hf_dataset: str | None,
    data_file: str | None,
    split: str,
    revision: str | None,
    template: SweTemplateConfig,
    selection: Selection,
) -> list[SourcedTask]:
    """Task folders for the selected rows, converted into the cache unless already there."""
    resolved = resolve_template(template)
    label = source_label(hf_dataset, data_file, split)
    rows = read_selected_rows(hf_dataset, data_file, split, revision, resolved, selection)
    root = cache_root(selection.cache_dir) / "swe"
    folder = root / f"{''.join(c if c.isalnum() else '_' for c in label)[-60:]}-{_digest(label, resolved.model_dump())}"
    tasks = []
    with locked(folder):
        folder.mkdir(exist_ok=True)
        for row in rows:
            # The folder's name is the task's name (Harbor's too); the digest folder above it
            # changes with the row, so an edited row is converted afresh.
            dest = folder / _digest(row.model_dump()) / row.instance_id
            cached = dest.is_dir()
            if not cached:
                write_task(row, resolved, dest, label, root / "repos")
            tasks.append(SourcedTask(dest, f"swe:{label}", f"{label} row {row.instance_id}", cached, folder))
    return tasks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write Harbor task folders from SWE-bench-style rows.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--hf-dataset", help="a Hugging Face data set id (or a local copy of one)")
    source.add_argument("--data-file", help="a local parquet, JSONL or JSON file")
    parser.add_argument("--split", default="test")
    parser.add_argument("--revision")
    parser.add_argument("--preset", help="a named preset, e.g. c2bug")
    parser.add_argument(
        "--columns", default="{}", help='column mapping as JSON, e.g. \'{"problem_statement": "issue"}\''
    )
    parser.add_argument("--include", action="append", default=[], help="instance ids or globs (repeatable)")
    parser.add_argument("--exclude", action="append", default=[])
    parser.add_argument("--limit", type=int)
    parser.add_argument("--out", required=True, help="folder to write one task folder per row into")
    parser.add_argument("--overwrite", action="store_true", help="replace task folders that exist")
    parser.add_argument(
        "--cache-dir", help="where repository clones are kept (default: $HARBOR_ENV_CACHE, else ~/.cache/harbor-env)"
    )
    args = parser.parse_args(argv)
    try:
        template = resolve_template(SweTemplateConfig(preset=args.preset, columns=json.loads(args.columns)))
        selection = Selection(args.include, args.exclude, args.limit, args.cache_dir)
        rows = read_selected_rows(args.hf_dataset, args.data_file, args.split, args.revision, template, selection)
        out = Path(args.out).expanduser().resolve()
        out.mkdir(parents=True, exist_ok=True)
        label = source_label(args.hf_dataset, args.data_file, args.split)
        for row in rows:
            dest = out / row.instance_id
            if dest.exists():
                if not args.overwrite:
                    raise SweRowError(f"{dest} exists; pass --overwrite to replace it")
                shutil.rmtree(dest)
            write_task(row, template, dest, label, cache_root(args.cache_dir) / "swe" / "repos")
    except (SweRowError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(rows)} task folders to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
