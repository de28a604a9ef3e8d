"""Where a run's numbers go: `metrics.jsonl` (the record) and TensorBoard event files (the view)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SKIP_SCALARS = {"step", "stage_index", "time_s"}
# Metrics that measure the wall clock: the only ones allowed to differ between equal runs.
WALL_CLOCK_KEYS = {"time_s", "tokens_per_s", "samples_per_s", "generation_s"}


class MetricsLogger:
    """Append-only JSON-lines log, mirrored to TensorBoard scalars `<stage>/<key>`.

    On resume the log is cut back to the checkpoint being resumed (`truncate`), so a resumed
    run's metrics.jsonl equals an uninterrupted one's, line for line except for wall times.
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.tb_dir = Path(run_dir) / "tensorboard"
        self._tensorboard = tensorboard
        self._writer = None
        self._file = open(self.path, "a")

    def _tb(self, purge_step: int | None = None):
        if not self._tensorboard:
            return None
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.tb_dir), purge_step=purge_step)
        return self._writer

    def log(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()
        writer = self._tb()
        if writer is not None:
            stage = record.get("stage", "run")
            prefix = f"{stage}/eval_{record.get('split', '')}_{record.get('decoder', '')}" if record.get(
                "kind") == "eval" else stage
            step = int(record.get("step", 0))
            for key, value in record.items():
                if key in SKIP_SCALARS or isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                if math.isfinite(value):
                    writer.add_scalar(f"{prefix}/{key}", value, step)

    def records(self) -> list[dict[str, Any]]:
        self._file.flush()
        return read_metrics(self.path, [])  # a line cut by kill -9 is skipped

    def truncate(self, keep) -> None:
        """Rewrite the log keeping only records for which keep(record) is true."""
        kept = [r for r in self.records() if keep(r)]
        self._file.close()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
        tmp.replace(self.path)
        self._file = open(self.path, "a")

    def close(self, wait: bool = True) -> None:
        """Close metrics.jsonl (every record is already flushed) and, with `wait`, the TensorBoard
        writer, which joins its writing thread. After Ctrl-C the interrupt may have landed inside
        that writer, so an interrupted run closes without waiting (its event files may miss the
        last few scalars; metrics.jsonl, the record, misses nothing)."""
        self._file.close()
        if self._writer is not None and wait:
            self._writer.close()


def read_metrics(path: Path, missing: list[str]) -> list[dict[str, Any]]:
    """metrics.jsonl records; a line cut short by a crash is skipped and counted."""
    if not path.is_file():
        missing.append("metrics.jsonl not found: no learning curves")
        return []
    records, bad = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad += 1
    if bad:
        missing.append(f"metrics.jsonl: skipped {bad} unreadable line(s) (a write cut short by a crash?)")
    return records
