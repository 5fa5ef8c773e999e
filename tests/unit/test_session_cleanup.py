"""How the session leader picks the way it finds a session's processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rdscard.session import cleanup
from rdscard.session.cleanup import CgroupTracker, ScanTracker, choose_tracker


def fake_v2(root: Path) -> Path:
    """A directory shaped like a cgroup v2 root (cgroup.controllers marks v2)."""
    root.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("")
    (root / "cgroup.procs").write_text("")
    return root


def fake_v1(root: Path) -> Path:
    """A v1 hierarchy has cgroup.procs but no cgroup.controllers."""
    root.mkdir(parents=True)
    (root / "cgroup.procs").write_text("")
    return root


def test_writable_v2_root_gives_a_cgroup(tmp_path: Path) -> None:
    root = fake_v2(tmp_path / "unified")
    tracker = choose_tracker(5, 1000, "tag", roots=[root], mode="auto")
    # mkdir in a plain directory makes no cgroup.procs: the fake root is not cgroupfs.
    assert isinstance(tracker, ScanTracker)
    assert not (root / "rdscard" / "session-5").exists()


def test_cgroup_when_the_group_looks_like_cgroupfs(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_v2(tmp_path / "unified")
    real_mkdir = Path.mkdir

    def mkdir_like_cgroupfs(self: Path, *args: object, **kwargs: object) -> None:
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]
        (self / "cgroup.procs").write_text("")

    monkeypatch.setattr(Path, "mkdir", mkdir_like_cgroupfs)
    tracker = choose_tracker(5, 1000, "tag", roots=[root], mode="auto")
    assert isinstance(tracker, CgroupTracker)
    assert tracker.path == root / "rdscard" / "session-5"
    # The same id again (another server): a unique suffix, never a shared group.
    second = choose_tracker(5, 1000, "tag", roots=[root], unique=lambda: "77", mode="auto")
    assert isinstance(second, CgroupTracker)
    assert second.path == root / "rdscard" / "session-5.77"


def test_v1_hierarchies_and_missing_roots_are_skipped(tmp_path: Path) -> None:
    roots = [fake_v1(tmp_path / "v1"), tmp_path / "absent"]
    tracker = choose_tracker(1, 1000, "tag", roots=roots, mode="auto")
    assert isinstance(tracker, ScanTracker)
    assert not (tmp_path / "v1" / "rdscard").exists()


def test_unwritable_root_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_v2(tmp_path / "ro")

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    tracker = choose_tracker(1, 1000, "tag", roots=[root], mode="auto")
    assert isinstance(tracker, ScanTracker)
    assert tracker.uid == 1000 and tracker.tag == "tag"


def test_scan_mode_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cleanup.MODE_VARIABLE, "scan")
    assert isinstance(choose_tracker(1, 0, "t", roots=[fake_v2(tmp_path / "u")]), ScanTracker)


def test_real_hierarchies_when_present() -> None:
    tracker = choose_tracker(1, 0, "t", roots=[Path("/nonexistent/cgroup")], mode="auto")
    assert isinstance(tracker, ScanTracker)
    for root in cleanup.CGROUP_ROOTS:
        if root.is_dir() and not cleanup.is_cgroup2_root(root):
            assert not (root / "cgroup.controllers").exists()


def test_scan_finds_descendants_and_tagged_processes() -> None:
    """The current process's children are found; a tag no process has finds nothing else."""
    import subprocess
    import sys

    tag = os.urandom(8).hex()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    tagged = subprocess.Popen(["sleep", "30"], env={cleanup.TAG_VARIABLE: tag},
                              start_new_session=True)
    try:
        tracker = ScanTracker(os.getuid(), tag)
        found = tracker.members()
        assert child.pid in found and tagged.pid in found
        assert cleanup.has_tag(tagged.pid, tag) and not cleanup.has_tag(child.pid, tag)
        other = ScanTracker(os.getuid(), "no-such-tag", leader=-5)
        assert tagged.pid not in other.members()
        assert os.getpid() not in found
    finally:
        for process in (child, tagged):
            process.kill()
            process.wait()
