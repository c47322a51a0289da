"""The local sandbox on each task's own image (image mode, its default for tasks whose Dockerfile
has RUN steps): built once with podman, unpacked into the image cache, run with bubblewrap on an
overlay of it. Through the sandbox itself, Harbor Trials (oracle, nop) and the env-server wire
prime-rl uses (Terminus-2 and the fake inference server).

The sample tasks here need their image: their tests use what the Dockerfile's RUN step
installs (pytest, sqlite3, tcc), which the host lacks. Needs `bash scripts/containers/setup.sh`
(podman and the offline base images); skipped without it, failed with
HARBOR_ENV_REQUIRE_CONTAINERS=1 (CI).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from conftest import SAMPLE_TASKS, make_sandbox, running, write_task

from harbor_env.errors import LocalSandboxError
from harbor_env.sandbox.config import IMAGE_MODE_ENV_VAR
from harbor_env.sandbox.image_cache import ImageCache, ImageSource
from harbor_env.testing.containers import BASE_IMAGE, image_mode_unready, podman
from harbor_env.testing.trials import reward_of, run_trial

NEEDS_IMAGE = ["c-checksum", "sqlite-report", "version-sort"]
UNREADY = image_mode_unready()
REQUIRED = os.environ.get("HARBOR_ENV_REQUIRE_CONTAINERS") == "1"
# Built on the base image, with what the host's root would not have.
IMAGE = f"""FROM {BASE_IMAGE}
RUN echo built > /opt/marker && useradd -m runner
ENV GREETING="hello from the image"
WORKDIR /app
RUN echo baked > /app/in-image.txt
"""

pytestmark = pytest.mark.skipif(UNREADY is not None and not REQUIRED, reason=f"no image tool: {UNREADY}")


@pytest.fixture(scope="module", autouse=True)
def default_image_mode() -> Iterator[None]:
    """The sandbox's own default (the suite's other modules run on the host's root)."""
    assert UNREADY is None, f"HARBOR_ENV_REQUIRE_CONTAINERS=1 but {UNREADY}"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(IMAGE_MODE_ENV_VAR, raising=False)
        yield


def unique_image(root: Path, name: str, extra: str = "") -> Path:
    """A task whose image no earlier build made (its RUN step prints a fresh id)."""
    return write_task(
        root, name, dockerfile=f"FROM {BASE_IMAGE}\nRUN echo {uuid.uuid4().hex} > /id{extra}\nWORKDIR /app\n"
    )


# ---------------------------------------------------------------------------- the sandbox on an image


async def test_a_task_with_run_steps_runs_on_its_image(work: Path, image_cache: Path) -> None:
    task = write_task(work, "on-image", dockerfile=IMAGE)
    sandbox = make_sandbox(task, work, image_cache=str(image_cache))
    assert sandbox.image_mode == "image"  # chosen by default: the Dockerfile has RUN steps
    async with running(sandbox):
        seen = await sandbox.exec('cat /opt/marker; echo "$GREETING"; pwd; cat in-image.txt')
        assert seen.return_code == 0, seen
        assert seen.stdout == "built\nhello from the image\n/app\nbaked\n"
        assert (await sandbox.exec("id -un", user="runner")).stdout.strip() == "runner"
        # The whole image is writable (the overlay), by this sandbox alone.
        wrote = await sandbox.exec("echo mine > /usr/local/bin/tool && echo changed > /opt/marker && cat /opt/marker")
        assert wrote.return_code == 0 and wrote.stdout == "changed\n", wrote
        rootfs = sandbox._base
        async with running(make_sandbox(task, work, session="second", image_cache=str(image_cache))) as second:
            assert (await second.exec("cat /opt/marker; ls /usr/local/bin")).stdout == "built\n"
    assert (rootfs / "opt/marker").read_text() == "built\n", "the cached image root was written"
    assert not (rootfs / "usr/local/bin/tool").exists()
    assert list((work / "sandboxes").iterdir()) == []


async def test_the_copy_layer_keeps_the_rest_of_the_image_read_only(work: Path, image_cache: Path) -> None:
    task = write_task(work, "copy-layer", dockerfile=IMAGE)
    async with running(make_sandbox(task, work, image_cache=str(image_cache), writable_layer="copy")) as sandbox:
        assert (await sandbox.exec("echo x > /app/new && cat /opt/marker")).stdout == "built\n"
        refused = await sandbox.exec("echo x > /usr/local/bin/tool")
        assert refused.return_code != 0 and "Read-only" in (refused.stderr or refused.stdout or ""), refused


async def test_the_images_user_runs_what_harbor_names_no_user_for(work: Path, image_cache: Path) -> None:
    task = write_task(work, "user", dockerfile=IMAGE + "USER runner\n")
    async with running(make_sandbox(task, work, image_cache=str(image_cache))) as sandbox:
        assert (await sandbox.exec("id -un")).stdout.strip() == "runner"
        assert (await sandbox.exec("id -un", user="root")).stdout.strip() == "root"


async def test_the_host_mode_and_a_task_without_run_steps_stay_on_the_hosts_root(work: Path, image_cache: Path) -> None:
    plain = write_task(work, "plain")  # FROM + WORKDIR: nothing the host's root cannot stand in for
    assert make_sandbox(plain, work, image_cache=str(image_cache)).image_mode == "host"
    task = write_task(work, "forced-host", dockerfile=IMAGE)
    async with running(make_sandbox(task, work, image_mode="host")) as sandbox:
        assert (await sandbox.exec("cat /opt/marker")).return_code != 0
    needs = write_task(work, "needs", dockerfile=IMAGE, task_toml="[metadata]\nneeds_image = true\n")
    with pytest.raises(LocalSandboxError, match=r"needs_image = true.*image_mode"):
        make_sandbox(needs, work, image_mode="host")


async def test_the_storage_quota_holds_on_an_image(work: Path, image_cache: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the storage quota needs root on the host")
    task = write_task(work, "quota", dockerfile=IMAGE, task_toml="[environment]\nstorage_mb = 64\n")
    free_before = shutil.disk_usage(work).free
    async with running(make_sandbox(task, work, image_cache=str(image_cache))) as sandbox:
        filled = await sandbox.exec("dd if=/dev/zero of=/usr/fill bs=1M count=200 2>&1; cat /opt/marker")
        assert "No space left" in (filled.stdout or ""), filled
        assert (filled.stdout or "").endswith("built\n")
    assert free_before - shutil.disk_usage(work).free < 64 * 1024 * 1024


# ---------------------------------------------------------------------------- the cache

_FIRST_START = """
import json, sys
from pathlib import Path
from harbor_env.sandbox.image_cache import ImageCache, ImageSource
task = Path(sys.argv[2])
root = ImageCache(Path(sys.argv[1]), max_bytes=None).root_for(ImageSource(str(task), task / "environment", None))
print(json.dumps({"made": root.made, "rootfs": str(root.rootfs), "marker": (root.rootfs / "id").read_text()}))
"""


def test_three_concurrent_first_starts_build_one_image(work: Path) -> None:
    task = unique_image(work, "concurrent")
    cache = work / "cache"
    starts = [
        subprocess.Popen([sys.executable, "-c", _FIRST_START, str(cache), str(task)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = [json.loads(start.communicate(timeout=300)[0]) for start in starts]
    assert [start.returncode for start in starts] == [0, 0, 0]
    assert sum(result["made"] for result in results) == 1, results
    assert len({(result["rootfs"], result["marker"]) for result in results}) == 1
    assert list((cache / "partial").iterdir()) == [], "a half-made root was left"
    assert len(list((cache / "roots").iterdir())) == 1


def test_the_least_recently_used_roots_no_sandbox_holds_are_evicted(work: Path) -> None:
    sources = [ImageSource(str(t), t / "environment", None) for t in (unique_image(work, f"lru-{i}") for i in range(3))]
    unbounded = ImageCache(work / "cache", max_bytes=None)
    first = unbounded.root_for(sources[0])
    first.release()
    held = unbounded.root_for(sources[1])  # a sandbox runs on it
    one_root = unbounded.entries()[0].size_bytes
    (work / "cache/partial/crashed-build").mkdir()  # what a killed build leaves (no lock held)
    bounded = ImageCache(work / "cache", max_bytes=int(1.5 * one_root))
    newest = bounded.root_for(sources[2])
    left = {entry.image_id for entry in bounded.entries()}
    assert first.rootfs.parent.name not in left, "the least recently used root was kept"
    assert {held.rootfs.parent.name, newest.rootfs.parent.name} <= left, "a root in use (or the newest) was evicted"
    assert list((work / "cache/partial").iterdir()) == []
    assert bounded.root_for(sources[0]).made, "an evicted image was not made again"
    held.release()
    newest.release()
    pruned = subprocess.run(
        [sys.executable, "-m", "harbor_env.sandbox.images", "--cache", str(work / "cache"), "prune"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "3 removed" not in pruned.stdout and "removed" in pruned.stdout, pruned.stdout
    assert [entry.in_use for entry in bounded.entries()] == [True], "only the root still leased may stay"


def test_prebuild_a_dataset_from_the_command_line(work: Path) -> None:
    """The commands docs/local-sandbox.md shows: build a dataset's images, list, prune (above)."""
    dataset = work / "dataset"
    for name in ("one", "two"):
        unique_image(dataset, name)
    command = [sys.executable, "-m", "harbor_env.sandbox.images", "--cache", str(work / "cache")]
    first = subprocess.run([*command, "build", str(dataset)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "2 tasks: 2 built, 0 already cached, 0 failed" in first.stdout
    again = subprocess.run([*command, "build", str(dataset / "one")], capture_output=True, text=True, check=True)
    assert "1 tasks: 0 built, 1 already cached" in again.stdout
    listed = subprocess.run([*command, "list"], capture_output=True, text=True, check=True).stdout
    assert "2 image roots" in listed and str(dataset / "two") in listed


# ---------------------------------------------------------------------------- failures


async def test_an_image_that_cannot_be_made_is_a_one_line_error(work: Path, image_cache: Path) -> None:
    broken = write_task(work, "broken", dockerfile=f"FROM {BASE_IMAGE}\nRUN echo building && exit 7\nWORKDIR /app\n")
    with pytest.raises(LocalSandboxError) as failed:
        async with running(make_sandbox(broken, work, image_cache=str(image_cache))):
            pass
    message = str(failed.value)
    assert str(broken) in message and "RUN echo building && exit 7" in message and "\n" not in message, message
    if shutil.which("docker") is None:
        with pytest.raises(LocalSandboxError, match=r"image mode needs docker .*image_mode = \"host\""):
            async with running(
                make_sandbox(unique_image(work, "no-tool"), work, image_cache=str(work / "c2"), image_tool="docker")
            ):
                pass
    missing = write_task(work, "missing-archive", task_toml='[environment]\ndocker_image = "oci-archive:image.tar"\n')
    with pytest.raises(LocalSandboxError, match=r"no such archive .*missing-archive/image.tar"):
        async with running(make_sandbox(missing, work, image_cache=str(image_cache))):
            pass


def _tiny_rootfs_tarball(work: Path) -> Path:
    """A root file system with a shell (the host's, with its libraries) and one file, as a tar."""
    rootfs = work / "tiny"
    for program in ("sh", "cat"):
        path = Path(shutil.which(program) or program).resolve()
        libraries = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
        for candidate in [str(path), *(w for w in libraries.split() if w.startswith("/"))]:
            target = rootfs / candidate.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(candidate, target)
        (rootfs / "bin").mkdir(exist_ok=True)
        if not (rootfs / "bin" / program).exists():
            (rootfs / "bin" / program).symlink_to(path)
    (rootfs / "app").mkdir()
    (rootfs / "app/from-archive.txt").write_text("prebuilt\n")
    tarball = work / "tiny.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
    return tarball


async def test_a_prebuilt_image_from_an_archive_and_another_architecture(work: Path, image_cache: Path) -> None:
    tarball = _tiny_rootfs_tarball(work)
    tag = f"localhost/harbor-env-test/tiny-{uuid.uuid4().hex[:8]}"
    try:
        podman("import", "--change", "WORKDIR /app", "--change", "ENV FROM_IMAGE=yes", str(tarball), tag)
        task = write_task(work, "archived", task_toml='[environment]\ndocker_image = "oci-archive:image.tar"\n')
        podman("save", "--format", "oci-archive", "--output", str(task / "image.tar"), tag)
        (task / "environment/Dockerfile").unlink()  # a prebuilt image only
        podman("rmi", tag)  # the sandbox loads it from the archive
        async with running(make_sandbox(task, work, image_cache=str(image_cache))) as sandbox:
            seen = await sandbox.exec('cat from-archive.txt; echo "$FROM_IMAGE"')
            assert seen.stdout == "prebuilt\nyes\n", seen
        podman("import", "--arch", "arm64" if os.uname().machine == "x86_64" else "amd64", str(tarball), tag)
        foreign = write_task(work, "foreign", task_toml=f'[environment]\ndocker_image = "{tag}"\n')
        with pytest.raises(LocalSandboxError, match=r"foreign: its image is for (arm64|amd64) and this host runs"):
            async with running(make_sandbox(foreign, work, image_cache=str(image_cache))):
                pass
    finally:
        subprocess.run(["podman", "rmi", "--force", tag], capture_output=True)


# ---------------------------------------------------------------------------- Harbor trials


@pytest.mark.parametrize("name", NEEDS_IMAGE)
async def test_oracle_scores_one_and_nop_zero_on_the_tasks_image(name: str, work: Path, image_cache: Path) -> None:
    oracle, nop = await asyncio.gather(
        run_trial(SAMPLE_TASKS / name, work, "oracle", image_cache=str(image_cache)),
        run_trial(SAMPLE_TASKS / name, work, "nop", image_cache=str(image_cache)),
    )
    assert reward_of(oracle) == 1
    assert reward_of(nop) == 0


# ---------------------------------------------------------------------------- the env-server wire

if importlib.util.find_spec("verifiers") is not None:  # the sandbox-only stack has no verifiers
    from verifiers.v1.serve import EnvClient

    from harbor_env.testing.configs import env_config, task_data
    from harbor_env.testing.env_server import connected, env_server_process
    from harbor_env.testing.episodes import assert_tokens_match_the_model, run_episode
    from harbor_env.testing.inference import FakeInferenceServer
    from harbor_env.testing.policies import ScriptedPolicy, SolveEachTask, script_then_finish

    @pytest.fixture(scope="module")
    def image_served(tmp_path_factory: pytest.TempPathFactory, image_cache: Path) -> Iterator[tuple[str, Path]]:
        work = tmp_path_factory.mktemp("image-served")
        kwargs = {"sandbox_dir": str(work / "sandboxes"), "image_cache": str(image_cache)}
        config = env_config(work, include=NEEDS_IMAGE, harness={"environment": {"type": "local", "kwargs": kwargs}})
        with env_server_process(config) as (_, address):
            yield address, work

    @pytest.fixture
    async def image_client(image_served: tuple[str, Path]) -> AsyncIterator[EnvClient]:
        async with connected(image_served[0]) as client:
            yield client

    async def test_terminus_2_scores_on_the_tasks_image_through_the_wire(
        image_client: EnvClient, image_served: tuple[str, Path], tokenizer: Path
    ) -> None:
        rows = [task_data(name) for name in NEEDS_IMAGE]

        async def run_all(server: FakeInferenceServer):
            episodes = await asyncio.gather(*(run_episode(image_client, server, tokenizer, row) for row in rows))
            return [episode.traces[0] for episode in episodes]

        solving = SolveEachTask(SAMPLE_TASKS, include=NEEDS_IMAGE, wait_until_done=True)
        with FakeInferenceServer(tokenizer, solving) as server:
            for name, trace in zip(NEEDS_IMAGE, await run_all(server), strict=True):
                assert trace.ok and trace.reward == 1.0, (name, trace.reward, [e.message[:300] for e in trace.errors])
                assert_tokens_match_the_model(trace, server)
        looking = ScriptedPolicy({}, default=script_then_finish("ls -la /app\n"))
        with FakeInferenceServer(tokenizer, looking) as server:
            for name, trace in zip(NEEDS_IMAGE, await run_all(server), strict=True):
                assert trace.ok and trace.reward == 0.0, (name, trace.reward, [e.message[:300] for e in trace.errors])
        assert list((image_served[1] / "sandboxes").iterdir()) == []

    @pytest.mark.parametrize(
        "dockerfile,expected",
        [
            (f"FROM {BASE_IMAGE}\nRUN rm -f /usr/bin/tmux\nWORKDIR /app\n", "has no tmux"),
            (f"FROM {BASE_IMAGE}\nRUN exit 3\nWORKDIR /app\n", "building its image failed"),
        ],
        ids=["no-tmux", "failing-build"],
    )
    async def test_an_image_terminus_2_cannot_run_on_is_an_errored_episode(
        dockerfile: str, expected: str, image_client: EnvClient, tokenizer: Path, work: Path
    ) -> None:
        name = f"bad-image-{uuid.uuid4().hex[:6]}"
        write_task(work / "tasks", name, dockerfile=dockerfile)
        with FakeInferenceServer(tokenizer, ScriptedPolicy({})) as server:
            (trace,) = (await run_episode(image_client, server, tokenizer, task_data(name, work / "tasks"))).traces
        assert not trace.ok, f"scored {trace.reward}"
        assert expected in trace.errors[-1].message, trace.errors[-1].message
        assert server.records == [], "the agent called the model although it could not run"
