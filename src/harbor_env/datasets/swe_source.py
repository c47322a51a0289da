"""SWE-style data sets as a taskset source, and as a command that writes the task folders.

As a source (`hf_dataset` or `data_file` in `[env.taskset]`), the selected rows are converted
once into the node-wide cache (under its file lock, so concurrent processes convert once); a
changed row, template or converter gives a new folder. As a command:

    python -m harbor_env.datasets.swe_source --data-file rows.jsonl --out tasks/ --repo-url ../repo \
        --test-command 'python -m pytest -q {test}' --test-id-style pytest
    python -m harbor_env.datasets.swe_source --hf-dataset TwelfthStar/c2bug_tasks_django_Jan-22-2026 \
        --split test --preset c2bug --out tasks/c2bug

Either way a row that cannot make a working task (a bad field, a commit not in the repository,
a patch that does not apply, a test name with no runnable label) is reported on one line with
its instance and skipped (`strict` stops at the first); the command then exits non-zero.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from harbor_env.datasets import swe_docstrings, swe_repos, swe_rows, swe_template, swe_test_ids
from harbor_env.datasets.cache import Selection, SourcedTask, cache_root, locked
from harbor_env.datasets.swe_options import add_template_options, template_from
from harbor_env.datasets.swe_rows import RawRow, SweRow, download_hf_dataset, parse_row, read_raw_rows, split_files
from harbor_env.datasets.swe_template import SweTemplateConfig, resolve_template, runnable_test_command, write_task
from harbor_env.errors import SweRowError

logger = logging.getLogger(__name__)

# The code that turns a row into a task folder: a change to it (a test script, the reward rule,
# the label parsing) must give new folders, not reuse the ones the old code wrote.
CONVERTER_MODULES = (swe_rows, swe_template, swe_test_ids, swe_docstrings, swe_repos)
# Keys that change what is reported, not what is written.
_NOT_IN_CACHE_KEY = {"strict"}


def source_label(hf_dataset: str | None, data_file: str | None, split: str) -> str:
    return f"{hf_dataset}:{split}" if hf_dataset else str(Path(data_file or "").expanduser().resolve())


def converter_fingerprint() -> str:
    """A digest of the converter's source files."""
    digest = hashlib.sha256()
    for module in CONVERTER_MODULES:
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:12]


def read_selected_rows(
    hf_dataset: str | None,
    data_file: str | None,
    split: str,
    revision: str | None,
    columns: dict[str, str],
    selection: Selection,
) -> list[RawRow]:
    """The rows of the data set that `include`/`exclude` select, by instance_id (all of them:
    `limit` counts converted rows, so that a skipped row does not shrink the set)."""
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
    raws = read_raw_rows(files)
    for canonical, column in columns.items():  # a mapping no row fits is the config's fault, said once
        if raws and not any(column in raw.values for raw in raws):
            raise SweRowError(
                f"{source_label(hf_dataset, data_file, split)}: no row has column '{column}' (columns.{canonical}); "
                f"columns are {sorted(raws[0].values)}"
            )
    by_id = {raw.instance_id(columns): raw for raw in raws}
    chosen = dataclasses.replace(selection, limit=None).pick(list(by_id))
    if not chosen:
        raise SweRowError(
            f"{source_label(hf_dataset, data_file, split)}: no row matches include="
            f"{selection.include or ['*']} exclude={selection.exclude} ({len(by_id)} rows)"
        )
    return [by_id[name] for name in chosen]


@dataclasses.dataclass(frozen=True)
class Made:
    """A task folder a row made (or had made before: `cached`)."""

    dest: Path
    row: SweRow
    where: str
    cached: bool


@dataclasses.dataclass
class Converted:
    """What a conversion made, and the rows it skipped (one line each: where, instance, why)."""

    tasks: list[Made] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)

    def skip(self, line: str, strict: bool, report: Callable[[str], None]) -> None:
        if strict:
            raise SweRowError(line)
        report(f"skipped {line}")
        self.skipped.append(line)


def convert_rows(
    raws: list[RawRow],
    template: SweTemplateConfig,
    dest_of: Callable[[SweRow], Path],
    *,
    label: str,
    mirrors: swe_repos.Mirrors,
    existing: Literal["reuse", "replace", "refuse"],
    limit: int | None,
    report: Callable[[str], None],
) -> Converted:
    """Write a task folder per row at `dest_of(row)` until `limit` are made; a bad row is
    reported (one line: where, instance, why) and skipped, or raised when `template.strict`."""
    runnable_test_command(template)  # a template that cannot run any test is no row's fault
    done = Converted()
    for raw in raws:
        if limit is not None and len(done.tasks) >= limit:
            break
        try:
            row = parse_row(raw, template.columns)
            dest = dest_of(row)
            cached = dest.is_dir()
            if cached and existing != "reuse":
                if existing == "refuse":
                    raise SweRowError(f"{dest} exists; pass --overwrite to replace it")
                shutil.rmtree(dest)
                cached = False
            if not cached:
                write_task(row, template, dest, label, mirrors)
        except SweRowError as exc:
            done.skip(f"{label}: {raw.where} ({raw.instance_id(template.columns)}): {exc}", template.strict, report)
            continue
        done.tasks.append(Made(dest, row, raw.where, cached))
    return done


def drop_failing_oracles(
    done: Converted, label: str, work: Path, concurrency: int, strict: bool, report: Callable[[str], None]
) -> None:
    """Run the oracle on the tasks made now; remove and report those it does not solve."""
    from harbor_env.datasets.swe_oracle import oracle_verdicts  # Harbor's Trial: only when asked

    made = [task for task in done.tasks if not task.cached]
    for task, verdict in zip(made, oracle_verdicts([t.dest for t in made], work, concurrency), strict=True):
        if verdict is not None:
            shutil.rmtree(task.dest)
            done.tasks.remove(task)
            done.skip(f"{label}: {task.where} ({task.row.instance_id}): {verdict}", strict, report)


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
    refresh: bool = False,
) -> list[SourcedTask]:
    """Task folders for the selected rows, converted into the cache unless already there
    (`refresh`: converted again, with the repositories fetched again)."""
    resolved = resolve_template(template)
    label = source_label(hf_dataset, data_file, split)
    raws = read_selected_rows(hf_dataset, data_file, split, revision, resolved.columns, selection)
    root = cache_root(selection.cache_dir) / "swe"
    key = _digest(label, resolved.model_dump(exclude=_NOT_IN_CACHE_KEY), converter_fingerprint())
    folder = root / f"{''.join(c if c.isalnum() else '_' for c in label)[-60:]}-{key}"
    with locked(folder):
        folder.mkdir(exist_ok=True)
        # The folder's name is the task's name (Harbor's too); the digest folder above it
        # changes with the row, so an edited row is converted afresh.
        done = convert_rows(
            raws,
            resolved,
            lambda row: folder / _digest(row.model_dump()) / row.instance_id,
            label=label,
            mirrors=swe_repos.Mirrors(root / "repos", refresh),
            existing="replace" if refresh else "reuse",
            limit=selection.limit,
            report=logger.warning,
        )
    if done.skipped:
        logger.warning("%s: skipped %d of %d rows (reasons above)", label, len(done.skipped), len(raws))
    if not done.tasks:
        raise SweRowError(f"every selected row was skipped ({len(done.skipped)}); the first: {done.skipped[0]}")
    return [
        SourcedTask(task.dest, f"swe:{label}", f"{label} row {task.row.instance_id}", task.cached, folder)
        for task in done.tasks
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write Harbor task folders from SWE-bench-style rows.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--hf-dataset", help="a Hugging Face data set id (or a local copy of one)")
    source.add_argument("--data-file", help="a local parquet, JSONL or JSON file")
    parser.add_argument("--split", default="test")
    parser.add_argument("--revision")
    parser.add_argument("--include", action="append", default=[], help="instance ids or globs (repeatable)")
    parser.add_argument("--exclude", action="append", default=[])
    parser.add_argument("--limit", type=int, help="write at most this many task folders")
    parser.add_argument("--out", required=True, help="folder to write one task folder per row into")
    parser.add_argument("--overwrite", action="store_true", help="replace task folders that exist")
    parser.add_argument(
        "--refresh", action="store_true", help="fetch the repositories again and replace task folders that exist"
    )
    parser.add_argument(
        "--cache-dir", help="where repository clones are kept (default: $HARBOR_ENV_CACHE, else ~/.cache/harbor-env)"
    )
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="run each task written with its gold patch (Harbor's oracle agent) in harbor-env's local sandbox; "
        "rows that do not score 1 are removed and reported",
    )
    parser.add_argument("--oracle-concurrency", type=int, default=4, help="oracle trials at once")
    add_template_options(parser)
    args = parser.parse_args(argv)

    def report(line: str) -> None:
        print(line, file=sys.stderr)

    try:
        template = resolve_template(template_from(args))
        selection = Selection(args.include, args.exclude, args.limit, args.cache_dir)
        label = source_label(args.hf_dataset, args.data_file, args.split)
        raws = read_selected_rows(
            args.hf_dataset, args.data_file, args.split, args.revision, template.columns, selection
        )
        out = Path(args.out).expanduser().resolve()
        out.mkdir(parents=True, exist_ok=True)
        done = convert_rows(
            raws,
            template,
            lambda row: out / row.instance_id,
            label=label,
            mirrors=swe_repos.Mirrors(cache_root(args.cache_dir) / "swe" / "repos", args.refresh),
            existing="replace" if args.overwrite or args.refresh else "refuse",
            limit=args.limit,
            report=report,
        )
        if args.oracle:
            with tempfile.TemporaryDirectory(prefix="harbor-env-oracle-") as work:
                drop_failing_oracles(done, label, Path(work), args.oracle_concurrency, template.strict, report)
    except SweRowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    skipped = f"; skipped {len(done.skipped)} bad rows (above)" if done.skipped else ""
    print(f"wrote {len(done.tasks)} task folders to {out}{skipped}")
    return 1 if done.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
