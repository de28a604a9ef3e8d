import json

import pytest

from alphaloop.checkpoint import latest_good, prune, step_dirs, verify_dir, write_atomic_dir
from alphaloop.errors import CorruptCheckpointError


def fill_with(text):
    def fill(tmp):
        (tmp / "a.txt").write_text(text)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.bin").write_bytes(text.encode() * 10)

    return fill


def test_atomic_write_has_manifest_and_no_temp_left(tmp_path):
    target = write_atomic_dir(tmp_path / "step-0000001", fill_with("x"), meta={"step": 1})
    manifest = verify_dir(target)
    assert set(manifest["files"]) == {"a.txt", "sub/b.bin"} and manifest["meta"] == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["step-0000001"]


def test_failed_write_leaves_previous_checkpoint(tmp_path):
    write_atomic_dir(tmp_path / "step-0000001", fill_with("one"))

    def broken(tmp):
        (tmp / "a.txt").write_text("partial")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_atomic_dir(tmp_path / "step-0000002", broken)
    assert latest_good(tmp_path, warn=lambda m: None).name == "step-0000001"


def test_corruption_detected_and_previous_used(tmp_path):
    write_atomic_dir(tmp_path / "step-0000001", fill_with("one"))
    newest = write_atomic_dir(tmp_path / "step-0000002", fill_with("two"))
    (newest / "sub" / "b.bin").write_bytes(b"tw0" * 10)  # same size, different bytes
    with pytest.raises(CorruptCheckpointError, match="sha256"):
        verify_dir(newest)
    warnings = []
    assert latest_good(tmp_path, warn=warnings.append).name == "step-0000001"
    assert "step-0000002" in warnings[0]


def test_truncated_file_and_missing_manifest(tmp_path):
    path = write_atomic_dir(tmp_path / "step-0000003", fill_with("three"))
    (path / "a.txt").write_text("thr")
    with pytest.raises(CorruptCheckpointError, match="bytes"):
        verify_dir(path)
    (path / "MANIFEST.json").unlink()
    with pytest.raises(CorruptCheckpointError, match="incomplete"):
        verify_dir(path)
    (path / "MANIFEST.json").write_text("{not json")
    with pytest.raises(CorruptCheckpointError, match="JSON"):
        verify_dir(path)


def test_prune_keeps_newest(tmp_path):
    for step in (1, 2, 10):
        write_atomic_dir(tmp_path / f"step-{step:07d}", fill_with(str(step)))
    prune(tmp_path, keep=2)
    assert [p.name for p in step_dirs(tmp_path)] == ["step-0000010", "step-0000002"]
    assert json.loads((tmp_path / "step-0000010" / "MANIFEST.json").read_text())["files"]
