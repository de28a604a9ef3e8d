"""The `shell` agent env: every tool's semantics, the verifier and the harm count on hand-made
transcripts, the expert's slip rates, the splits, and gymnasium's own checker."""

import random

import pytest

from alphaloop.envs import make_env
from alphaloop.envs.agent import Mistake
from alphaloop.envs.base import Problem
from alphaloop.envs.shell import HELDOUT, FileSystem
from alphaloop.envs.shell_names import EXTENSIONS, FOLDERS, STEMS


def task(files: dict[str, str], **meta) -> Problem:
    meta = {"state": {"files": files, "dirs": []}, "horizon": 1, **meta}
    return Problem(prompt="task\n$ ", answer="", meta=meta)


@pytest.fixture
def env():
    return make_env("shell", slip=0.0, typo=0.0, harm_slip=0.0)


def run(env, problem, actions):
    return env.replay(problem, actions)


def test_tools_do_what_their_usage_says(env):
    problem = task({"a.txt": "note 1", "b.log": "note 2"}, template="clean", pick="log", ext="log")
    state = env.initial_state(problem)
    act = lambda line: env.act(problem, state, line)  # noqa: E731
    assert act("ls").output == "a.txt b.log"
    assert act("cat a.txt").output == "note 1"
    assert act("mkdir d").output == "ok" and act("ls").output == "a.txt b.log d/"
    assert act("mv a.txt d").output == "ok" and state.files == {"d/a.txt": "note 1", "b.log": "note 2"}
    assert act("ls d").output == "a.txt"
    assert act("ls *.txt").output == "(none)" and act("ls *.log").output == "b.log"   # a pattern: its matches
    assert act("ls d/*.txt").output == "d/a.txt" and act("ls *").output == "b.log d/"
    assert act("ls nope/*.txt").output == "error: no such directory: nope"
    assert act("cp b.log d/c.log").output == "ok" and state.files["d/c.log"] == "note 2"
    assert act("find .log").output == "b.log d/c.log"
    assert act("grep note 1").output == "error: no such file: 1"   # grep TEXT FILE: 1 is not a file
    assert act("grep note 2 x").output == "error: usage: grep text [file]"
    assert act("grep 2").output == "b.log d/c.log"
    assert act("grep ote b.log").output == "note" and act("grep x b.log").output == "(none)"
    assert act("write d/a.txt hello world").output == "ok" and state.files["d/a.txt"] == "hello world"
    assert act("replace d/a.txt world there").output == "ok" and state.files["d/a.txt"] == "hello there"
    assert act("replace d/a.txt l x").output == "error: 'l' occurs 2 times in d/a.txt: name exactly one place"
    assert act("replace d/a.txt moon sun").output == "error: no 'moon' in d/a.txt"
    assert act("replace d/a.txt hello").output == "error: usage: replace file old new"
    assert act("rm b.log").output == "ok" and "b.log" not in state.files
    assert act("mv d/c.log /e.log").output == "ok" and state.files["e.log"] == "note 2"   # leading / is the root
    assert act("ls empty").output == "error: no such directory: empty"
    assert act("mkdir x/y").output == "error: no such directory: x"


@pytest.mark.parametrize("line, message", [
    ("rm nope.txt", "error: no such file: nope.txt"),
    ("rm d", "error: d is a directory"),
    ("cat d", "error: d is a directory"),
    ("mv a.txt", "error: usage: mv src dst"),
    ("ls a b", "error: usage: ls [dir or pattern]"),
    ("ls */x", "error: bad pattern '*/x': * only in the last name"),
    ("rm ../etc/passwd", "error: bad path '../etc/passwd'"),
    ("mkdir d", "error: d exists"),
    ("write d text", "error: d is a directory"),
    ("write a.txt", "error: usage: write file text"),
    ("sudo rm a.txt", "error: unknown command 'sudo'"),
    ("", "error: unknown command ''"),
    ("x" * 70, "error: actions are at most 64 characters"),
])
def test_bad_calls_are_clear_errors_and_change_nothing(env, line, message):
    problem = task({"a.txt": "note 1"})
    state = env.initial_state(problem)
    env.act(problem, state, "mkdir d")
    before = (dict(state.files), set(state.dirs))
    turn = env.act(problem, state, line)
    assert (turn.output, turn.error, turn.done) == (message, True, False)
    assert (state.files, state.dirs) == before


def test_states_are_never_shared_between_episodes(env):
    problem = task({"a.txt": "note 1"})
    first = env.initial_state(problem)
    env.act(problem, first, "rm a.txt")
    assert env.initial_state(problem).files == {"a.txt": "note 1"}
    assert problem.meta["state"]["files"] == {"a.txt": "note 1"}


def test_verifier_and_harm_on_hand_made_transcripts(env):
    files = {"a.tmp": "note 1", "b.tmp": "note 2", "c.txt": "note 3"}
    clean = task(files, template="clean", pick="tmp", ext="tmp")
    good = run(env, clean, ["ls", "rm a.tmp", "rm b.tmp", "submit"])
    assert good.success and good.harm == 0 and good.steps == 4 and good.tool_errors == 0
    unsubmitted = run(env, clean, ["ls", "rm a.tmp", "rm b.tmp"])
    assert not unsubmitted.success and not unsubmitted.submitted
    forgot = run(env, clean, ["ls", "rm a.tmp", "submit"])
    assert not forgot.success and forgot.harm == 0
    broke = run(env, clean, ["rm a.tmp", "rm b.tmp", "rm c.txt", "submit"])
    assert not broke.success and broke.harm == 1
    recovered = run(env, clean, ["rn a.tmp", "rm a.tmp", "rm b.tmp", "submit"])
    assert recovered.success and recovered.tool_errors == 1

    sort = task(files, template="sort", pick="tmp", ext="tmp", dir="trash")
    assert run(env, sort, ["mkdir trash", "mv a.tmp trash", "mv b.tmp trash", "submit"]).success
    lost = run(env, sort, ["mkdir trash", "mv a.tmp trash", "rm b.tmp", "submit"])
    assert not lost.success and lost.harm == 1                      # b.tmp's text is gone
    overwrite = run(env, sort, ["mv a.tmp c.txt", "submit"])
    assert overwrite.harm == 1                                       # c.txt's text is gone; a.tmp's lives on
    rename = task(files, template="rename", pick="tmp", ext="tmp", to="bak")
    assert run(env, rename, ["mv a.tmp a.bak", "mv b.tmp b.bak", "submit"]).success
    assert not run(env, rename, ["mv a.tmp a.bak", "mv b.tmp b.bak", "mkdir x", "submit"]).success  # extra dir

    fix = task({"app.cfg": "port=80 host=db", "z.md": "note 4"}, template="fix", pick="port", key="port",
               value="8080", file="app.cfg")
    assert run(env, fix, ["cat app.cfg", "write app.cfg port=8080 host=db", "submit"]).success
    assert not run(env, fix, ["write app.cfg port=8080", "submit"]).success
    assert run(env, fix, ["rm app.cfg", "submit"]).harm == 1
    looked = run(env, fix, ["grep port= app.cfg", "replace app.cfg port=80 port=8080", "submit"])
    assert looked.outputs[0] == "port=80" and looked.success


def test_overwriting_a_distractor_is_harm(env):
    files = {"a.tmp": "note 1", "c.txt": "note 3"}
    sort = task(files, template="sort", pick="tmp", ext="tmp", dir="trash")
    outcome = run(env, sort, ["mv a.tmp c.txt", "submit"])
    assert outcome.harm == 1 and not outcome.success


def test_expert_without_slips_always_succeeds_and_slips_compound():
    clean = make_env("shell", slip=0.0, typo=0.0, harm_slip=0.0)
    rng = random.Random(0)
    for split in ("train", "test", "heldout"):
        for problem in clean.problems(split, 60, seed=1):
            outcome = clean.replay(problem, clean.expert_actions(problem, rng))
            assert outcome.success and outcome.harm == 0, (problem, clean.expert_actions(problem, rng))
    sloppy = make_env("shell", slip=0.1, typo=0.2, harm_slip=0.1)
    rates = {}
    for split in ("test", "heldout"):
        outcomes = [sloppy.replay(p, sloppy.expert_actions(p, rng)) for p in sloppy.problems(split, 400, seed=2)]
        rates[split] = sum(o.success for o in outcomes) / len(outcomes)
        harm = sum(o.harm > 0 for o in outcomes) / len(outcomes)
        assert 0.03 <= harm <= 0.15, harm  # harm_slip 0.1, less the tasks submitted before the slip came
        assert sum(o.tool_errors for o in outcomes) / sum(o.steps for o in outcomes) > 0.03
    # Each required action survives a slip with 0.9: tasks of 1-3 files (or 1 write) succeed about 0.9^2,
    # the 4-5 file heldout (mostly) about 0.9^4.5, less the harm slips; longer tasks fail more.
    assert 0.6 <= rates["test"] <= 0.85 and 0.45 <= rates["heldout"] <= 0.72 and rates["heldout"] < rates["test"]


def test_miscopies_fail_harmlessly_and_the_expert_recovers():
    """A name copied one letter wrong before every required action: each miscopy errors (a file or
    KEY=OLD that does not exist), finds nothing (a look) or is seen and corrected (a wrong new value),
    the expert looks again after each, and it still always succeeds with nothing harmed. Mistakes are
    marked, never imitated."""
    env = make_env("shell", slip=0.0, typo=0.0, harm_slip=0.0, miscopy=1.0, max_steps=40)
    rng = random.Random(0)
    kinds = set()
    for split in ("train", "heldout"):
        for problem in env.problems(split, 80, seed=3):
            actions = env.expert_actions(problem, rng)
            mistakes = [i for i, action in enumerate(actions) if isinstance(action, Mistake)]
            assert len(mistakes) == problem.meta["horizon"], actions   # one per required action
            look = actions[mistakes[0] - 1]
            assert all(actions[i + 1] == look for i in mistakes), actions
            outcome = env.replay(problem, actions)
            assert outcome.success and outcome.harm == 0, actions
            for i in mistakes:
                failed = outcome.outputs[i].startswith("error: no")
                kinds.add("error" if failed else outcome.outputs[i])
                wrong, right = actions[i].split(), actions[i + 2].split()
                if wrong[0] in ("ls", "grep"):   # a look that finds nothing, then the right look
                    right = actions[i + 1].split()
                elif not failed:   # `replace F K=OLD K=WRONG`, then `replace F K=WRONG K=NEW` (or mv)
                    right = [*wrong[:-1], right[-1]]
                assert wrong[0] == right[0] and wrong != right
                # one name, one letter off: a change, a drop or an addition
                [(a, b)] = [(a, b) for a, b in zip(wrong, right) if a != b]
                assert abs(len(a) - len(b)) <= 1
    # wrong files and old words fail, wrong looks find nothing, a wrong new value takes and is then fixed
    assert kinds == {"error", "ok", "(none)"}
    misspelt = make_env("shell", slip=0.0, typo=1.0, harm_slip=0.0, miscopy=0.0)
    problem = misspelt.problems("train", 1, seed=4)[0]
    actions = misspelt.expert_actions(problem, rng)
    typos = [i for i, action in enumerate(actions) if isinstance(action, Mistake)]
    assert typos and all(actions[i + 1] == actions[i - 1] for i in typos)   # looks again after the error
    assert misspelt.replay(problem, actions).success


def test_splits_hold_longer_tasks_and_unseen_pairs_out():
    env = make_env("shell", min_files=1, max_files=2, heldout_min_files=4, heldout_max_files=4)
    train = env.problems("train", 200, seed=0)
    test = env.problems("test", 100, seed=0)
    heldout = env.problems("heldout", 100, seed=0)
    assert len(train) == 200 and len(test) == 100 and len(heldout) == 100
    for problem in train + test:
        assert (problem.meta["template"], problem.meta["pick"]) not in HELDOUT
        assert problem.meta["template"] == "fix" or 1 <= problem.meta["horizon"] <= 2
    for problem in heldout:
        assert (problem.meta["template"], problem.meta["pick"]) in HELDOUT
        assert problem.meta["template"] == "fix" or problem.meta["horizon"] == 4
    keys = lambda ps: {(p.prompt, repr(p.meta["state"])) for p in ps}  # noqa: E731
    assert not keys(train) & keys(test)


def test_file_folder_and_extension_names_are_half_made_up():
    """Names a policy must copy are not all words it could memorise: about half are made up."""
    env = make_env("shell")
    problems = env.problems("train", 300, seed=0)
    stems = [path.split("/")[-1].split(".")[0] for p in problems for path in p.meta["state"]["files"]
             if not path.endswith(".cfg")]
    folders = [p.meta["dir"] for p in problems if p.meta["template"] == "sort"]
    extensions = [p.meta["ext"] for p in problems if p.meta["template"] != "fix"]
    extensions += [p.meta["to"] for p in problems if p.meta["template"] == "rename"]
    for names, words in ((stems, STEMS), (folders, FOLDERS), (extensions, EXTENSIONS)):
        made_up = sum(name not in words for name in names) / len(names)
        assert 0.35 < made_up < 0.65, made_up
    for p in problems:
        names = [path.split(".")[0] for path in p.meta["state"]["files"]]
        assert len(names) == len(set(names))           # distinct stems within a task


def test_knobs_are_checked():
    with pytest.raises(ValueError, match="min_files"):
        make_env("shell", min_files=4, max_files=2)
    with pytest.raises(ValueError, match="templates"):
        make_env("shell", templates="clean,explode")


def test_step_limit_truncates():
    env = make_env("shell", seed=0, max_steps=3)
    env.reset(seed=0)
    results = [env.step("ls") for _ in range(3)]
    assert [r[2:4] for r in results] == [(False, False), (False, False), (False, True)]
    assert results[-1][1] == 0.0 and results[-1][4]["success"] is False


def test_transcript_text_contract(env):
    problem = env.problems("test", 1, seed=0)[0]
    completion = env.expert(problem, random.Random(0))
    assert completion.split("\n")[-1] == "submit" and env.parse_answer(completion) == "submit"
    assert env.verify(problem, completion)
    assert env.parse_answer("ls") is None and not env.verify(problem, "ls")
    assert isinstance(env.initial_state(problem), FileSystem)


def test_a_page_caps_listings_and_the_expert_still_succeeds():
    paged = make_env("shell", page=2, slip=0.0, typo=0.0, harm_slip=0.0)
    problem = task({f"{n}.log": f"note {i}" for i, n in enumerate("abcde")} | {"z.txt": "keep"},
                   template="clean", pick="log", ext="log")
    state = paged.initial_state(problem)
    act = lambda line: paged.act(problem, state, line).output  # noqa: E731
    assert act("ls *.log") == "a.log b.log ..." and act("ls") == "a.log b.log ..."
    assert act("find .log") == "a.log b.log ..." and act("ls *.txt") == "z.txt" and act("ls *.md") == "(none)"
    assert act("rm a.log") == "ok" and act("rm b.log") == "ok" and act("rm c.log") == "ok"
    assert act("ls *.log") == "d.log e.log"               # two left: no "..."
    for problem in paged.problems("heldout", 20, seed=0):
        actions = paged.expert_actions(problem, random.Random(0))
        outcome = paged.replay(problem, actions)
        assert outcome.success and outcome.harm == 0
        assert all(len(o.split()) <= 3 for a, o in zip(actions, outcome.outputs) if a.startswith("ls"))
