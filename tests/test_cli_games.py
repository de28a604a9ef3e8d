"""`alphaloop move` as an engine on a pipe, its per-line errors in 1-based moves, and corrupt nets
refused by `move` and `play` with exit code 2 and one line."""

from __future__ import annotations

import io
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from alphaloop.checkpoint import MANIFEST, write_atomic_dir
from alphaloop.cli_games import answer_lines, read_position
from alphaloop.policies.nets import WEIGHTS, NetConfig, PolicyValueNet

ENV = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="80")   # a long message must still be one line


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alphaloop.cli", *args], input=stdin, capture_output=True,
                          text=True, env=ENV, timeout=120)


@pytest.fixture(scope="module")
def net_dir(tmp_path_factory) -> Path:
    """An (untrained) tic-tac-toe net saved as a stage saves its final policy: atomically, with a manifest."""
    torch.manual_seed(0)
    net = PolicyValueNet(NetConfig(channels=4, blocks=1, hidden=8), (3, 3, 3), 9)
    return write_atomic_dir(tmp_path_factory.mktemp("cli-games") / "policy", net.save)


class FirstLegal:
    """A player that needs no net: the lowest legal action."""

    def choose(self, state) -> int:
        return state.legal_actions()[0]


def answer(game: str, lines: list[str]) -> tuple[list[str], list[str], list[int]]:
    out, err = io.StringIO(), io.StringIO()
    bad = answer_lines(FirstLegal(), game, lines, out, err)
    return out.getvalue().splitlines(), err.getvalue().splitlines(), bad


@pytest.mark.parametrize(("game", "line", "message"), [
    ("connect4", "8", "move 1 of '8' is '8': expected a column digit 1..7"),
    ("connect4", "0", "move 1 of '0' is '0': expected a column digit 1..7"),
    ("connect4", "4444444", "move 7 of '4444444': column 4 is full"),
    ("connect4", "44x", "move 3 of '44x' is 'x': expected a column digit 1..7"),
    ("connect4", "1212121", "the game is already over after '1212121'; there is no move to make"),
    ("connect4", "12121214", "move 8 of '12121214': the game is already over after '1212121'"),
    ("tictactoe", "55", "move 2 of '55': cell 5 is already taken"),
    ("tictactoe", "4453", "move 2 of '4453': cell 4 is already taken"),   # a connect-four line
    ("tictactoe", "5 1", "move 2 of '5 1' is ' ': expected a cell digit 1..9"),
    ("tictactoe", "\u0663", "move 1 of '\u0663' is '\u0663': expected a cell digit 1..9"),  # not an ASCII digit
])
def test_bad_line_is_reported_in_the_moves_the_user_typed(game, line, message):
    out, err, bad = answer(game, ["", line, "1"])
    after_1 = str(FirstLegal().choose(read_position(game, "1")) + 1)
    assert out == ["1", "?", after_1] and bad == [2]      # the lines around it are answered
    assert err == [f"error: stdin line 2: {message}"]


def test_move_answers_each_line_before_the_next_is_written(net_dir):
    """Driven like a UCI/GTP engine: write a line, read its answer, then write the next."""
    proc = subprocess.Popen([sys.executable, "-m", "alphaloop.cli", "move", "tictactoe", "--run", str(net_dir)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()

    def ask(position: str) -> str:
        proc.stdin.write(position + "\n")
        proc.stdin.flush()
        return lines.get(timeout=60).strip()       # an answer held back until end of input times out

    try:
        first = ask("")
        assert first in set("123456789")
        assert ask("55") == "?"
        second = ask("5")
        assert second in set("12346789")
        assert ask("5" + second) in set("12346789") - {second}
        proc.stdin.close()
        assert proc.wait(timeout=60) == 2              # a line was bad
        stderr = proc.stderr.read().splitlines()
    finally:
        proc.kill()
    assert stderr[0] == "error: stdin line 2: move 2 of '55': cell 5 is already taken"
    assert stderr[1:] == ["error: 1 stdin line could not be answered (line 2; see above)"]


def test_good_input_exits_0_and_undecodable_bytes_are_a_bad_line(net_dir):
    out = cli("move", "tictactoe", "--run", str(net_dir), stdin="\n1\n")
    assert out.returncode == 0 and out.stderr == "" and len(out.stdout.split()) == 2
    proc = subprocess.run([sys.executable, "-m", "alphaloop.cli", "move", "tictactoe", "--run", str(net_dir)],
                          input=b"5\n\xff\xfe\n1\n", capture_output=True, env=ENV, timeout=120)
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr
    assert proc.stdout.split()[1] == b"?" and len(proc.stdout.split()) == 3
    assert b"stdin line 2: move 1 of" in proc.stderr


def test_position_flag_answers_once_or_fails_in_one_line(net_dir):
    out = cli("move", "tictactoe", "--run", str(net_dir), "--position", "15")
    assert out.returncode == 0 and out.stdout.strip() in set("2346789")
    out = cli("move", "connect4", "--run", str(net_dir), "--position", "8")
    assert out.returncode == 2 and "not a connect4 net" in out.stderr       # the wrong game for the net
    out = cli("move", "tictactoe", "--run", str(net_dir), "--position", "159a")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == ["error: --position: move 4 of '159a' is 'a': expected a cell digit 1..9"]


def flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-8] ^= 0x04
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("damage", "keep_manifest", "message"), [
    (flip_bit, True, f"file {WEIGHTS} fails its sha256 check"),
    (lambda p: p.write_bytes(p.read_bytes()[:1000]), True, f"file {WEIGHTS} has 1000 bytes, manifest says"),
    (lambda p: p.write_bytes(p.read_bytes()[:1000]), False, f"file {WEIGHTS} cannot be read"),
    (lambda p: p.unlink(), True, f"file {WEIGHTS} is missing"),
])
def test_corrupt_net_is_refused_by_move_and_play_in_one_line(net_dir, tmp_path, damage, keep_manifest, message):
    bad = Path(shutil.copytree(net_dir, tmp_path / "policy"))
    damage(bad / WEIGHTS)
    if not keep_manifest:
        (bad / MANIFEST).unlink()
    for command, stdin in (("move", "5\n"), ("play", "")):
        out = cli(command, "tictactoe", "--run", str(bad), stdin=stdin)
        assert out.returncode == 2, out.stderr
        assert "Traceback" not in out.stderr and out.stdout == ""
        lines = out.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: checkpoint {bad}: {message}"), out.stderr
