import atexit
import os
import shutil
import sys
import tempfile

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # shared helpers: tests/game_helpers.py
# Kernel timing decisions (policies/matmul.py) go to a file of this test session, not the user's cache;
# subprocesses started by tests inherit it.
if "ALPHALOOP_KERNEL_CACHE" not in os.environ:
    _kernel_dir = tempfile.mkdtemp(prefix="alphaloop-kernels-")
    atexit.register(shutil.rmtree, _kernel_dir, ignore_errors=True)
    os.environ["ALPHALOOP_KERNEL_CACHE"] = os.path.join(_kernel_dir, "kernels.json")

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def repo_root() -> str:
    return ROOT


def _kill_then_resume(recipe: str | os.PathLike, out: os.PathLike, stage_dir: str, *, settle: float = 0.0,
                      must_interrupt: bool = True, deadline_s: float = 180) -> None:
    """Start `alphaloop run RECIPE --out OUT`, `kill -9` it once STAGE_DIR has its first checkpoint
    (after `settle` more seconds), then `alphaloop run --resume OUT` to the end. With
    `must_interrupt`, fail if the kill came after the stage had already finished."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    out = Path(out)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "alphaloop.cli", "run", str(recipe), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = out / "stages" / stage_dir / "checkpoints"
    deadline = time.time() + deadline_s
    while time.time() < deadline and proc.poll() is None:
        if ckpts.is_dir() and any(p.name.startswith("step-") for p in ckpts.iterdir()):
            break
        time.sleep(0.02)
    time.sleep(settle)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if must_interrupt:
        assert not (out / "stages" / stage_dir / "result.json").exists(), "killed too late to test resume"
    result = subprocess.run([sys.executable, "-m", "alphaloop.cli", "run", "--resume", str(out), "--no-progress"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="session")
def kill_then_resume():
    """`kill_then_resume(recipe, out, stage_dir, ...)`: a real `kill -9` mid-stage, then `--resume`."""
    return _kill_then_resume
