"""Env `shell`: an in-memory file system and the commands people use to tidy one.

Tools (one per action; paths are relative to the root, no spaces in names):

    ls [DIR]            entries of DIR (the root by default), sorted, directories with a trailing /;
                        a pattern with * (`ls *.tmp`, `ls logs/*.log`) lists the matching entries of its
                        directory, or `(none)`
    cat FILE            a file's text
    mkdir DIR           a new directory (its parent must exist)
    mv SRC DST          move or rename a file; DST may be an existing directory (overwrites, like mv)
    cp SRC DST          copy a file, the same way
    rm FILE             delete a file (directories are refused)
    find TEXT           every file whose name contains TEXT
    grep TEXT [FILE]    every file whose text contains TEXT; with a FILE, the words of its text that
                        contain TEXT (`grep port= app.cfg` prints `port=80`, as `grep -o` would)
    write FILE TEXT     replace a file's text with the rest of the line
    replace FILE OLD NEW  replace the one occurrence of the text OLD (any substring) with NEW (an
                        error if it occurs zero or several times: the str_replace of SWE-agent's and
                        OpenHands' editors, so an edit never rewrites what it does not name)
    submit              end the episode

Tasks, from templates (the prompt names the task, not the files: the agent has to look):

    clean    delete the .tmp files                      ls *.tmp, rm the first, ls *.tmp, ..., submit
    sort     move the .log files into logs              mkdir, then ls *.log / mv one by one, submit
    rename   rename the .txt files to .md               ls *.txt / mv one by one, ls *.txt, submit
    fix      set port to 8080 in app.cfg                grep port= app.cfg, replace port=80 port=8080,
                                                        grep port= app.cfg, submit

Every task has distractor files that must survive. **Success**: `submit` with the file system
exactly as the task leaves it. **Harm**: files lost or changed outside the task (a distractor
deleted or edited, a file to move whose text no longer exists anywhere). The **horizon** knobs set
how many files a task touches (`min_files`..`max_files`; `heldout` uses
`heldout_min_files`..`heldout_max_files`, longer than any trained on) and `heldout` also holds
(template, extension) pairs never trained on (clean .log, sort .bak, rename .csv, fix mode).
Extensions and rename targets (16 usual ones and 980 made up), folders (12 and 4,900), file stems
(40 and 4,900), config keys (30 and 4,900; each name usual or made up at even odds) and values (30)
are drawn independently of the template and of each other, so the words a task names have to be
read from its prompt and its listings, and copied letter by letter.

The **expert** looks before every change -- `ls *.EXT` lists exactly the files left to do (`grep
KEY= FILE`, exactly the word to replace, for fix) -- and acts on the first one, so each of its
actions depends on the latest observation only (`memory = 1` would do). It slips, per required
action: it believes the task done and submits with work left (`slip`, the task fails); it first
issues a misspelt command (`typo`) or copies a name one letter wrong (`miscopy`: `mv isol.fif docs`
for `isle.fif`, `replace app.cfg port=80 port=808`), then looks again and recovers; and once per task
it may delete a distractor (`harm_slip`). Typos and miscopies are `Mistake`s: played, not imitated
(DART), so the policy learns to look again after an error, not to make one. Slips compound with the
horizon: an expert that submits early 10% of the time per file finishes 1 file 90% of the time and
5 files 59%.
"""

from __future__ import annotations

import random
import string
from typing import ClassVar

from pydantic import Field, model_validator

from alphaloop.envs.agent import SUBMIT, AgentConfig, AgentEnv, Mistake, ToolError, fresh, misspelt, task_in_test_split
from alphaloop.envs.base import Problem
from alphaloop.envs.shell_fs import (
    FileSystem,
    clean_path,
    existing_file,
    list_entries,
    make_dir,
    move,
    replace_once,
    write_file,
)
from alphaloop.envs.shell_names import (
    CONFIG_FILES,
    CONFIG_VALUES,
    EXTENSIONS,
    config_key,
    extension,
    folder,
    miscopied,
    stems,
)

TEMPLATES = ("clean", "sort", "rename", "fix")
HELDOUT = {("clean", "log"), ("sort", "bak"), ("rename", "csv"), ("fix", "mode")}


class ShellConfig(AgentConfig):
    templates: str = Field("clean,sort,rename,fix", description="task templates, comma-separated, of: "
                           + ", ".join(TEMPLATES))
    min_files: int = Field(1, ge=1, le=12, description="fewest files a train/test task touches (horizon)")
    max_files: int = Field(3, ge=1, le=12, description="most files a train/test task touches (horizon)")
    heldout_min_files: int = Field(4, ge=1, le=12, description="fewest files a heldout task touches")
    heldout_max_files: int = Field(5, ge=1, le=12, description="most files a heldout task touches")
    page: int = Field(0, ge=0, le=64, description="most entries ls, find and grep print, then '...' (0: all)")
    distractors: int = Field(2, ge=0, le=8, description="most files a task must leave alone (1..this; 0: none)")
    slip: float = Field(0.1, ge=0, le=1, description="expert: chance, at each required action, of submitting "
                        "with work left")
    typo: float = Field(0.05, ge=0, le=1, description="expert: chance of a misspelt command (an error it "
                        "recovers from) before each action")
    miscopy: float = Field(0.05, ge=0, le=1, description="expert: chance of first copying a name wrong (one "
                           "letter) before each action; it looks again and recovers")
    harm_slip: float = Field(0.02, ge=0, le=1, description="expert: chance per task of deleting a distractor")
    test_fraction: float = Field(0.2, ge=0, lt=1, description="share of tasks in the test split")
    max_steps: int | None = Field(None, ge=2, le=256, description="actions per episode (default: 3 x the most "
                                  "files + 6)")

    @model_validator(mode="after")
    def _ranges(self) -> ShellConfig:
        if self.min_files > self.max_files:
            raise ValueError(f"min_files ({self.min_files}) must be <= max_files ({self.max_files})")
        if self.heldout_min_files > self.heldout_max_files:
            raise ValueError(f"heldout_min_files ({self.heldout_min_files}) must be <= heldout_max_files "
                             f"({self.heldout_max_files})")
        unknown = [t for t in self.templates.split(",") if t.strip() not in TEMPLATES]
        if unknown or not self.templates.strip():
            raise ValueError(f"templates: unknown {unknown or self.templates!r}; expected a comma-separated "
                             f"subset of {', '.join(TEMPLATES)}")
        return self


class ShellEnv(AgentEnv):
    """See the module docstring."""

    name: ClassVar[str] = "shell"
    Config = ShellConfig
    alphabet: ClassVar[str] = string.ascii_lowercase + string.digits + " ._/=-:'()[]$*\n"
    tools: ClassVar[dict[str, str]] = {"ls": "ls [dir or pattern]", "cat": "cat file", "mkdir": "mkdir dir",
                                       "mv": "mv src dst", "cp": "cp src dst", "rm": "rm file",
                                       "find": "find text", "grep": "grep text [file]", "write": "write file text",
                                       "replace": "replace file old new"}

    def setup(self) -> None:
        cfg = self.config
        self.templates = tuple(t.strip() for t in cfg.templates.split(","))
        self.max_action_chars = 64
        most = max(cfg.max_files, cfg.heldout_max_files)
        self.max_steps = cfg.max_steps or 3 * most + 6
        super().setup()

    # --- dataset ---------------------------------------------------------------------------------
    def sample_problem(self, rng: random.Random, split: str) -> Problem:
        cfg = self.config
        heldout = split == "heldout"
        low, high = (cfg.heldout_min_files, cfg.heldout_max_files) if heldout else (cfg.min_files, cfg.max_files)
        pairs = sorted(pair for pair in HELDOUT if pair[0] in self.templates)
        for _ in range(1000):
            template, pick = rng.choice(pairs) if heldout else (rng.choice(self.templates), None)
            distractors = rng.randint(min(1, cfg.distractors), cfg.distractors)
            problem = self._draw(template, rng, rng.randint(low, high), distractors, pick)
            if not heldout and (template, problem.meta["pick"]) in HELDOUT:
                continue
            if heldout or (split == "test") == task_in_test_split(problem.prompt, problem.meta["state"],
                                                                  cfg.test_fraction):
                return problem
        raise RuntimeError(f"env 'shell': no {split} task found for templates {self.templates}")

    def _draw(self, template: str, rng: random.Random, count: int, distractors: int, pick: str | None) -> Problem:
        """A task of `template` over `count` files; `pick` (the key or extension it names) drawn when None."""
        names = stems(rng, count + distractors + 1)
        texts = iter(f"note {n}" for n in rng.sample(range(100, 1000), count + distractors))  # distinct texts
        if template == "fix":
            key = pick or config_key(rng)
            cfg_file = rng.choice(CONFIG_FILES)
            keys = [key]
            while len(keys) < 1 + min(count, 3):
                other = config_key(rng)
                keys += [other] if other not in keys else []
            rng.shuffle(keys)
            pairs = {k: rng.choice(CONFIG_VALUES) for k in keys}
            value = rng.choice([v for v in CONFIG_VALUES if v != pairs[key]])
            files = {cfg_file: " ".join(f"{k}={v}" for k, v in pairs.items())}
            files |= {f"{n}.{rng.choice(EXTENSIONS)}": next(texts) for n in names[:distractors]}
            meta = {"template": template, "pick": key, "key": key, "value": value, "file": cfg_file}
            prompt = f"task: set {key} to {value} in {cfg_file}"
            horizon = 1
        else:
            ext = pick or extension(rng)
            to = extension(rng, avoid=(ext,))
            files = {f"{n}.{ext}": next(texts) for n in names[:count]}
            files |= {f"{n}.{extension(rng, avoid=(ext, to))}": next(texts) for n in names[count: count + distractors]}
            meta = {"template": template, "pick": ext, "ext": ext}
            if template == "clean":
                prompt = f"task: delete the .{ext} files"
            elif template == "sort":
                meta["dir"] = folder(rng)
                prompt = f"task: move the .{ext} files into {meta['dir']}"
            else:
                meta["to"] = to
                prompt = f"task: rename the .{ext} files to .{to}"
            horizon = count
        meta |= {"state": {"files": dict(sorted(files.items())), "dirs": []}, "horizon": horizon}
        goal = self._goal(meta)
        answer = " ".join(f"{k}:{v}" for k, v in sorted(goal.files.items())) + " | " + " ".join(sorted(goal.dirs))
        return Problem(prompt=prompt + "\n$ ", answer=answer, meta=meta)

    # --- tools -----------------------------------------------------------------------------------
    def initial_state(self, problem: Problem) -> FileSystem:
        state = problem.meta["state"]
        return FileSystem(fresh(state["files"]), set(state["dirs"]))

    def run_tool(self, problem: Problem, state: FileSystem, name: str, args: str) -> str:
        words = args.split()
        if name == "write":
            target, _, text = args.partition(" ")
            return write_file(state, clean_path(target), text)
        if name == "replace":
            if len(words) != 3:
                raise ToolError(f"usage: {self.tools[name]}")
            return replace_once(state, clean_path(words[0]), words[1], words[2])
        if name == "grep" and len(words) == 2:
            path = clean_path(words[1])
            existing_file(state, path)
            return self._page([w for w in state.files[path].split() if words[0] in w]) or "(none)"
        if name in ("find", "grep"):
            if len(words) != 1:
                raise ToolError(f"usage: {self.tools[name]}")
            hits = [p for p, text in state.files.items()
                    if words[0] in (p.rpartition("/")[2] if name == "find" else text)]
            return self._page(sorted(hits)) or "(none)"
        arity = {"ls": (0, 1), "cat": (1, 1), "mkdir": (1, 1), "mv": (2, 2), "cp": (2, 2), "rm": (1, 1)}[name]
        if not arity[0] <= len(words) <= arity[1]:
            raise ToolError(f"usage: {self.tools[name]}")
        paths = [clean_path(w) for w in words]
        if name == "ls":
            listed = list_entries(state, paths[0] if paths else "")
            return listed if listed.startswith("(") else self._page(listed.split())
        if name == "cat":
            return existing_file(state, paths[0]) and state.files[paths[0]]
        if name == "mkdir":
            return make_dir(state, paths[0])
        if name == "rm":
            existing_file(state, paths[0])
            del state.files[paths[0]]
            return "ok"
        return move(state, paths[0], paths[1], keep=name == "cp")

    def _page(self, entries: list[str]) -> str:
        """A listing of at most `page` entries, then `...` when there are more: outputs (and so the
        policy's context) stay bounded however many files a task has, as SWE-agent's interface caps
        its search results (Yang et al. 2024)."""
        page = self.config.page
        return " ".join(entries if not page or len(entries) <= page else entries[:page] + ["..."])

    # --- rubric ----------------------------------------------------------------------------------
    def _goal(self, meta: dict) -> FileSystem:
        """The file system as the task leaves it."""
        files = dict(meta["state"]["files"])
        dirs = set(meta["state"]["dirs"])
        template = meta["template"]
        if template == "fix":
            pairs = dict(item.split("=", 1) for item in files[meta["file"]].split())
            pairs[meta["key"]] = meta["value"]
            files[meta["file"]] = " ".join(f"{k}={v}" for k, v in pairs.items())
            return FileSystem(files, dirs)
        targets = [p for p in files if p.endswith("." + meta["ext"])]
        for path in targets:
            text = files.pop(path)
            if template == "sort":
                files[f"{meta['dir']}/{path}"] = text
            elif template == "rename":
                files[path[: -len(meta["ext"])] + meta["to"]] = text
        if template == "sort":
            dirs.add(meta["dir"])
        return FileSystem(files, dirs)

    def verify_state(self, problem: Problem, state: FileSystem) -> bool:
        goal = self._goal(problem.meta)
        return state.files == goal.files and state.dirs == goal.dirs

    def harm(self, problem: Problem, state: FileSystem) -> float:
        """Files lost or changed outside the task: each distractor must be where it was, unchanged; each
        file the task moves must still exist somewhere; the file to fix must still exist."""
        meta = problem.meta
        lost = 0
        texts = set(state.files.values())
        for path, text in meta["state"]["files"].items():
            in_scope = path == meta.get("file") or ("ext" in meta and path.endswith("." + meta["ext"]))
            if not in_scope:
                lost += state.files.get(path) != text
            elif meta["template"] in ("sort", "rename"):
                lost += text not in texts
            elif meta["template"] == "fix":
                lost += path not in state.files
        return float(lost)

    # --- expert ----------------------------------------------------------------------------------
    def expert_actions(self, problem: Problem, rng: random.Random) -> list[str]:
        """Look, act on the first thing left to do, look again, ... until nothing is left, then submit:
        `ls *.EXT` before every move lists what is left, so each action depends only on the latest
        observation. For fix, `grep KEY= FILE` prints exactly the `KEY=OLD` word that `replace` names:
        a copy from the line just read, where after `cat` the policy had to find the key among the file's
        words (with `cat`: 0% on fix's test and heldout tasks after 1,000 imitation steps and GRPO)."""
        cfg, meta = self.config, problem.meta
        files = meta["state"]["files"]
        if meta["template"] == "fix":
            look, actions = f"grep {meta['key']}= {meta['file']}", []
            pairs = dict(item.split("=", 1) for item in files[meta["file"]].split())
            key = meta["key"]
            required = [f"replace {meta['file']} {key}={pairs[key]} {key}={meta['value']}"]
        else:
            targets = sorted(p for p in files if p.endswith("." + meta["ext"]))
            look, actions = f"ls *.{meta['ext']}", [f"mkdir {meta['dir']}"] if meta["template"] == "sort" else []
            if meta["template"] == "clean":
                required = [f"rm {p}" for p in targets]
            elif meta["template"] == "sort":
                required = [f"mv {p} {meta['dir']}" for p in targets]
            else:
                required = [f"mv {p} {p[: -len(meta['ext'])] + meta['to']}" for p in targets]
        for action in required:
            actions.append(look)
            if rng.random() < cfg.slip:  # believes the task is done: submits with work left
                return actions + [SUBMIT]
            if rng.random() < cfg.typo:
                actions += [misspelt(action), look]
            miscopy = cfg.miscopy and rng.random() < cfg.miscopy
            actions += self._miscopy(problem, action, look, rng) if miscopy else [action]
        actions.append(look)             # check that nothing is left
        if rng.random() < cfg.harm_slip:
            touched = {word for action in required for word in action.split()[1:]}
            keep = sorted(p for p in files if p not in touched)
            if keep:
                actions.insert(rng.randint(1, len(actions) - 1), f"rm {rng.choice(keep)}")
        return actions + [SUBMIT]

    def _miscopy(self, problem: Problem, action: str, look: str, rng: random.Random) -> list[str]:
        """`action` done after a name copied one letter wrong (a `Mistake`), in one of the names the action
        copies, evenly: the look's, the file's stem or extension, a rename's new name (for fix: the look's
        key, the old value or the new one). A wrong look lists nothing (`ls *.cvs` -> `(none)`, with files
        left to do) and the expert looks again; a wrong file or `KEY=OLD` is an error, and it looks again
        and does `action`; a wrong new name or value (`mv fern.csv fern.inc`, `replace app.cfg port=80
        port=808`) succeeds, so after its next look the expert puts it right from what its last action
        shows (`mv fern.inc fern.sh`). Every name a task uses is copied, and a copy can go wrong on any:
        after GRPO a policy that miscopied the held-out extension (`mv reef.isv reef.bun`) looked again
        with its own wrong one (`ls *.ini` -> `(none)`) and submitted; after VinePPO its held-out
        failures were silent ones, `replace app.cfg mode=8080 mode=1000` for 100, then submit."""
        command, source, *rest = action.split()
        files = problem.meta["state"]["files"]
        if command == "replace":   # replace works on text, not words: a wrong KEY=OLD must occur nowhere
            file, old, new = source, rest[0], rest[1]
            key, value = new.split("=", 1)
            which = rng.choice(("look", "old", "new"))
            if which == "look":
                wrong = miscopied(key, rng, lambda w: f"{w}=" not in files[file])
                return [Mistake(f"grep {wrong}= {file}"), look, action]
            if which == "old":
                wrong = f"{key}={miscopied(old.split('=', 1)[1], rng, lambda w: f'{key}={w}' not in files[file])}"
                return [Mistake(f"replace {file} {wrong} {new}"), look, action]
            wrong = f"{key}={miscopied(value, rng, lambda w: f'{key}={w}' not in files[file])}"
            return [Mistake(f"replace {file} {old} {wrong}"), look, f"replace {file} {wrong} {new}"]
        stem, ext = source.rsplit(".", 1)
        stems = {path.rsplit(".", 1)[0] for path in files}
        which = rng.choice(("look", "stem", "ext") + (("new",) if problem.meta["template"] == "rename" else ()))
        if which == "look":
            wrong = miscopied(ext, rng, lambda w: w != problem.meta.get("to") and not any(
                path.endswith("." + w) for path in files))
            return [Mistake(f"ls *.{wrong}"), look, action]
        if which == "new":   # rename only: `mv a.csv a.sh` as `mv a.csv a.sih` or `mv a.csv b.sh`
            target_stem, to = rest[0].rsplit(".", 1)
            wrong = (f"{miscopied(target_stem, rng, lambda w: w not in stems)}.{to}" if rng.random() < 0.5
                     else f"{target_stem}.{miscopied(to, rng, lambda w: f'{target_stem}.{w}' not in files)}")
            return [Mistake(f"mv {source} {wrong}"), look, f"mv {wrong} {rest[0]}"]
        wrong = (f"{miscopied(stem, rng, lambda w: w not in stems)}.{ext}" if which == "stem"
                 else f"{stem}.{miscopied(ext, rng, lambda w: f'{stem}.{w}' not in files)}")
        return [Mistake(" ".join([command, wrong, *rest])), look, action]
