"""limits.py and quota.py: the limits a sandbox asks for and the cgroup files they become."""

from __future__ import annotations

from pathlib import Path

from harbor_env.sandbox.limits import CgroupLimits, Limits, cgroup_files, sandbox_limits, unenforced
from harbor_env.sandbox.quota import QUOTA_ROOT_SCRIPT, with_storage_quota


def test_sandbox_limits() -> None:
    assert sandbox_limits(enforce=True, pids=4096, memory_mb=512, cpus=1.5) == Limits(512, 1.5, 4096)
    assert sandbox_limits(enforce=False, pids=4096, memory_mb=512, cpus=1.5) == Limits(pids=4096)
    assert sandbox_limits(enforce=True, pids=None, memory_mb=None, cpus=None).requested() == {}
    assert Limits(memory_mb=1, pids=2).requested() == {"memory_mb": 1, "pids": 2}


def test_cgroup_v2_files() -> None:
    assert cgroup_files(Limits(memory_mb=512, cpus=1.5, pids=64), version=2) == {
        "memory": {"memory.max": "536870912"},
        "cpu": {"cpu.max": "150000 100000"},
        "pids": {"pids.max": "64"},
    }
    assert cgroup_files(Limits(cpus=0.25), version=2) == {"cpu": {"cpu.max": "25000 100000"}}
    assert cgroup_files(Limits(), version=2) == {}


def test_cgroup_v1_files() -> None:
    assert cgroup_files(Limits(memory_mb=2, cpus=2, pids=16), version=1) == {
        "memory": {"memory.limit_in_bytes": "2097152"},
        "cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "200000"},
        "pids": {"pids.max": "16"},
    }


def test_unenforced() -> None:
    limits = Limits(memory_mb=512, cpus=1.0, pids=64)
    assert unenforced(limits, None) == ["cpus", "memory_mb", "pids"]
    partial = CgroupLimits([Path("/nonexistent")], {"pids", "memory_mb"}, 2)
    assert unenforced(limits, partial) == ["cpus"]
    assert unenforced(Limits(pids=64), partial) == []


def test_cgroup_wrap_joins_every_group_first() -> None:
    groups = CgroupLimits([Path("/cg/memory/x"), Path("/cg/pids/x")], set(), 1)
    argv = groups.wrap(["bwrap", "--", "sh"])
    assert argv[:2] == ["/bin/sh", "-c"]
    assert argv[3:] == ["sh", "2", "/cg/memory/x/cgroup.procs", "/cg/pids/x/cgroup.procs", "bwrap", "--", "sh"]


def test_storage_quota_argv(tmp_path: Path) -> None:
    argv = with_storage_quota(
        ["bwrap", "--bind", "x", "/"],
        unshare="/usr/bin/unshare",
        storage_mb=256,
        quota=tmp_path / "q",
        root=tmp_path / "r",
        cgroup_procs=["/cg/memory/x/cgroup.procs", "/cg/pids/x/cgroup.procs"],
    )
    inner = ["bwrap", "--bind", "x", "/"]
    assert argv[:5] == ["/usr/bin/unshare", "--mount", "--propagation", "private", "--"]  # a mount namespace of its own
    assert argv[5:12] == ["/bin/sh", "-c", QUOTA_ROOT_SCRIPT, "sh", "256m", str(tmp_path / "q"), str(tmp_path / "r")]
    # the same shell joins the groups before it becomes the command
    assert argv[12:15] == ["2", "/cg/memory/x/cgroup.procs", "/cg/pids/x/cgroup.procs"]
    assert argv[15:] == inner
