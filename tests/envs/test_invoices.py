"""The `invoices` agent env: every tool's semantics and errors, the verifier and the harm count on
hand-made transcripts, the layouts (each parses back to the same canonical entry), the splits, and
the expert's success rate against its analytic value."""

import random

import pytest

from alphaloop.envs import invoice_docs, make_env
from alphaloop.envs.base import Problem
from alphaloop.envs.invoice_docs import LAYOUTS, Invoice, parse
from alphaloop.envs.invoices import PROMPT


def task(docs: dict[str, str], ledger: list[list[str]], invoices: list[list[str]], statuses=None) -> Problem:
    state = {"inbox": [[number, text] for number, text in docs.items()], "ledger": ledger}
    meta = {"state": state, "invoices": invoices, "statuses": statuses or ["missing"] * len(invoices),
            "horizon": len(invoices)}
    return Problem(prompt=PROMPT, answer="", meta=meta)


DOCS = {"417": "inv 417 | vendor: acme | total: 42.50 | due 03/05", "23": "from BOLT no. 23 amount 7 tel 555-0192",
        "230": "#230 Civic Ltd $19.99 po 4471"}
TRUTH = [["417", "acme", "42.50"], ["23", "bolt", "7.00"], ["230", "civic", "19.99"]]
# 417 missing, 23 entered right, 230 entered with the wrong total
LEDGER = [["23", "bolt", "7.00"], ["230", "civic", "91.99"]]


@pytest.fixture
def env():
    return make_env("invoices", slip=0.0, typo=0.0, harm_slip=0.0)


@pytest.fixture
def problem():
    return task(DOCS, LEDGER, TRUTH, ["missing", "entered", "wrong"])


def test_tools_do_what_their_usage_says(env, problem):
    state = env.initial_state(problem)
    act = lambda line: env.act(problem, state, line).output  # noqa: E731
    assert act("inbox") == "417 23 230"
    assert act("open") == "417: " + DOCS["417"]                   # the first document
    assert act("open") == "23: " + DOCS["23"] and act("open") == "230: " + DOCS["230"]   # the next ones
    assert act("open") == "(no more documents)"
    assert act("open 0417") == "417: " + DOCS["417"]               # leading zeros name the same invoice
    assert act("open") == "23: " + DOCS["23"]                      # the next after the last opened
    assert act("list") == "23 bolt 7.00\n230 civic 91.99"
    assert act("list 417") == "(none)" and act("list 230") == "230 civic 91.99"
    assert act("add 417 acme 42.50") == "ok" and state["ledger"][-1] == ["417", "acme", "42.50"]
    assert act("correct 230 total 19.99") == "ok" and state["ledger"][1] == ["230", "civic", "19.99"]
    assert act("correct 23 vendor bolts") == "ok" and state["ledger"][0] == ["23", "bolts", "7.00"]
    assert act("add 23 bolt 7.00") == "ok, 2 entries for 23"       # the ledger allows a duplicate, and says so
    assert act("list 23") == "23 bolts 7.00\n23 bolt 7.00"
    assert act("delete 23") == "ok" and act("list 23") == "23 bolts 7.00"   # the latest entry goes
    assert act("correct 23 vendor bolt") == "ok" and act("submit") == "submitted"
    assert env.verify_state(problem, state) and env.harm(problem, state) == 0


@pytest.mark.parametrize("line, message", [
    ("inbox 1", "error: usage: inbox"),
    ("open 1 2", "error: usage: open [id]"),
    ("open 999", "error: no document 999 in the inbox"),
    ("open abc", "error: id must be an invoice number like 417, got 'abc'"),
    ("list 1 2", "error: usage: list [id]"),
    ("list x", "error: id must be an invoice number like 417, got 'x'"),
    ("add 417 acme", "error: usage: add id vendor total"),
    ("add 417 ACME 42.50", "error: vendor must be lower-case letters like acme, got 'ACME'"),
    ("add 417 acme 42.5", "error: total must be like 42.50, got '42.5'"),
    ("add 417 acme 42,50", "error: total must be like 42.50, got '42,50'"),
    ("add 417 acme 042.50", "error: total must be like 42.50, got '042.50'"),
    ("add #417 acme 42.50", "error: id must be an invoice number like 417, got '#417'"),
    ("correct 417 total 42.50", "error: no entry for 417"),
    ("correct 230 amount 19.99", "error: field must be vendor or total, got 'amount'"),
    ("correct 230 total $19.99", "error: total must be like 42.50, got '$19.99'"),
    ("correct 230 total", "error: usage: correct id field value"),
    ("delete 417", "error: no entry for 417"),
    ("delete", "error: usage: delete id"),
    ("remove 23", "error: unknown command 'remove'"),
    ("", "error: unknown command ''"),
    ("add 417 acme " + "4" * 40 + ".50", "error: actions are at most 48 characters"),
])
def test_bad_calls_are_clear_errors_and_change_nothing(env, problem, line, message):
    state = env.initial_state(problem)
    before = [list(e) for e in state["ledger"]]
    turn = env.act(problem, state, line)
    assert (turn.output, turn.error, turn.done) == (message, True, False)
    assert state["ledger"] == before


def test_states_are_never_shared_between_episodes(env, problem):
    first = env.initial_state(problem)
    env.act(problem, first, "correct 23 total 1.00")
    env.act(problem, first, "delete 230")
    assert env.initial_state(problem)["ledger"] == LEDGER
    assert problem.meta["state"]["ledger"] == [["23", "bolt", "7.00"], ["230", "civic", "91.99"]]


def test_verifier_and_harm_on_hand_made_transcripts(env, problem):
    run = lambda actions: env.replay(problem, actions)  # noqa: E731
    good = run(["inbox", "open 417", "list 417", "add 417 acme 42.50", "open 23", "list 23", "open 230",
                "list 230", "correct 230 total 19.99", "list", "submit"])
    assert good.success and good.harm == 0 and good.steps == 11 and good.tool_errors == 0
    assert good.outputs[-2] == "23 bolt 7.00\n230 civic 19.99\n417 acme 42.50"
    assert not run(["add 417 acme 42.50", "correct 230 total 19.99"]).success        # never submitted
    forgot = run(["add 417 acme 42.50", "submit"])                                     # 230 left wrong
    assert not forgot.success and forgot.harm == 0
    unnormalised = run(["add 417 Acme 42.5", "add 417 acme 42.5", "correct 230 total 19.99", "submit"])
    assert not unnormalised.success and unnormalised.tool_errors == 2
    recovered = run(["ad 417 acme 42.50", "add 417 acme 42.50", "correct 230 total 19.99", "submit"])
    assert recovered.success and recovered.tool_errors == 1
    replaced = run(["add 417 acme 42.50", "delete 230", "add 230 civic 19.99", "submit"])
    assert replaced.success and replaced.harm == 0                                     # judged on the final state
    deleted = run(["add 417 acme 42.50", "correct 230 total 19.99", "delete 23", "submit"])
    assert not deleted.success and deleted.harm == 1                                   # a right entry lost
    doubled = run(["add 417 acme 42.50", "add 417 acme 42.50", "correct 230 total 19.99", "submit"])
    assert not doubled.success and doubled.harm == 1                                   # entered twice
    both = run(["add 417 acme 42.50", "add 230 civic 19.99", "delete 23", "submit"])  # 230 twice, 23 lost
    assert both.harm == 2 and not both.success
    stray = run(["add 417 acme 42.50", "correct 230 total 19.99", "add 418 acme 42.50", "submit"])
    assert not stray.success and stray.harm == 0                                       # wrong, but nothing broken


def test_an_entry_twice_at_the_start_is_fixed_by_one_delete_and_broken_by_two(env):
    problem = task({"5": "inv 5 | vendor: ion | total: 3.00 | due 01/01"}, [["5", "ion", "3.00"]] * 2,
                   [["5", "ion", "3.00"]], ["twice"])
    assert env.replay(problem, ["submit"]).harm == 0 and not env.replay(problem, ["submit"]).success
    fixed = env.replay(problem, ["delete 5", "submit"])
    assert fixed.success and fixed.harm == 0
    assert env.replay(problem, ["delete 5", "delete 5", "submit"]).harm == 1
    assert env.replay(problem, ["add 5 ion 3.00", "submit"]).harm == 1
    corrected = env.replay(problem, ["correct 5 total 4.00", "submit"]).state["ledger"]
    assert corrected == [["5", "ion", "3.00"], ["5", "ion", "4.00"]]        # only the latest copy changes


def test_every_layout_parses_back_to_the_same_canonical_entry():
    rng = random.Random(0)
    for _ in range(200):
        invoice = invoice_docs.random_invoice(rng, rng.randint(100, 999))
        texts = [layout.render(invoice, rng) for layout in LAYOUTS.values()]
        assert len(set(texts)) == len(texts)
        for layout, text in zip(LAYOUTS.values(), texts):
            assert layout.parse(text) == invoice, (layout.name, text)
            assert parse(text) == invoice
            assert len(text) <= 56, text
    examples = {"amount 42.5": "42.50", "amount 42": "42.00", "sum 42,05": "42.05", "total: 7.30": "7.30"}
    for text, total in examples.items():
        assert invoice_docs.canonical_total(text.split()[-1]) == total
    assert len({v[0] for v in invoice_docs.VENDORS}) == len(invoice_docs.VENDORS)   # distinct first letters
    same = Invoice("17", "acme", "42.50")
    assert {LAYOUTS[n].parse(LAYOUTS[n].render(same, rng)) for n in LAYOUTS} == {same}
    assert LAYOUTS["d"].render(same, rng).startswith("ref 0017, from ACME, tax ")


def test_heldout_layouts_recombine_the_formats_trained_on():
    trained = {f for layout in invoice_docs.NAMED_LAYOUTS for f in layout.fields}
    assert trained == set(invoice_docs.FORMATS)
    for layout in invoice_docs.HELDOUT_LAYOUTS:
        assert set(layout.fields) <= trained
        assert all(layout.fields != t.fields for t in invoice_docs.NAMED_LAYOUTS)


def test_random_layouts_parse_back_vary_and_never_draw_a_heldout_one():
    rng = random.Random(0)
    heldout = {layout.fields for layout in invoice_docs.HELDOUT_LAYOUTS}
    names, formats = set(), set()
    for _ in range(3000):
        layout = invoice_docs.random_layout(rng)
        invoice = invoice_docs.random_invoice(rng, rng.randint(100, 999))
        text = layout.render(invoice, rng)
        assert layout.parse(text) == invoice and parse(text) == invoice, text    # found by label, anywhere
        assert layout.fields not in heldout and len(text) <= 70, text
        names.add(layout.name)
        formats |= set(layout.fields)
    assert len(names) > 2000 and formats == set(invoice_docs.FORMATS)
    assert parse("inv 5 | tax 3.40") is None and parse("no. 5 vendor: ion") is None    # a field missing


@pytest.mark.parametrize("layouts", ["named", "random"])
def test_splits_hold_longer_tasks_and_unseen_layouts_out(layouts):
    env = make_env("invoices", min_invoices=1, max_invoices=2, heldout_min_invoices=4, heldout_max_invoices=4,
                   layouts=layouts)
    train = env.problems("train", 200, seed=0)
    test = env.problems("test", 100, seed=0)
    heldout = env.problems("heldout", 100, seed=0)
    assert len(train) == 200 and len(test) == 100 and len(heldout) == 100
    named = lambda text, layouts: any(layout.parse(text) for layout in layouts)  # noqa: E731
    for problem in train + test:
        assert 1 <= problem.meta["horizon"] <= 2 and len(problem.meta["state"]["inbox"]) == problem.meta["horizon"]
        for _, text in problem.meta["state"]["inbox"]:
            assert not named(text, invoice_docs.HELDOUT_LAYOUTS)
            assert named(text, invoice_docs.NAMED_LAYOUTS) == (layouts == "named") or layouts == "random"
    for problem in heldout:
        assert problem.meta["horizon"] == 4
        assert all(named(text, invoice_docs.HELDOUT_LAYOUTS) for _, text in problem.meta["state"]["inbox"])
    if layouts == "random":   # thousands of layouts: few documents of a named one
        texts = [text for p in train for _, text in p.meta["state"]["inbox"]]
        assert sum(named(text, invoice_docs.NAMED_LAYOUTS) for text in texts) < 0.05 * len(texts)
    keys = lambda ps: {(p.prompt, repr(p.meta["state"])) for p in ps}  # noqa: E731
    assert not keys(train) & keys(test)
    for problem in train + test + heldout:   # every document is one of the task's invoices, and some work is left
        docs = [parse(text) for _, text in problem.meta["state"]["inbox"]]
        assert [d.entry() for d in docs] == problem.meta["invoices"]
        assert any(s != "entered" for s in problem.meta["statuses"])
        assert not env.replay(problem, ["submit"]).success


def analytic_success(env, problems) -> float:
    """(1 - harm_slip) * (1 - slip) ** (actions the task requires), averaged over the tasks."""
    cfg = env.config
    return sum((1 - cfg.harm_slip) * (1 - cfg.slip) ** sum(s != "entered" for s in p.meta["statuses"])
               for p in problems) / len(problems)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_made_up_vendors_take_their_share_and_parse_in_every_format(share):
    env = make_env("invoices", made_up_vendors=share, wrong=0.8, entered=0.0, twice=0.0)
    problems = env.problems("train", 300, seed=0) + env.problems("heldout", 50, seed=0)
    vendors = [entry[1] for p in problems for entry in p.meta["invoices"]]
    made_up = sum(v not in invoice_docs.VENDORS for v in vendors) / len(vendors)
    assert abs(made_up - share) < 0.08, made_up
    for problem in problems:
        for (_, text), entry in zip(problem.meta["state"]["inbox"], problem.meta["invoices"]):
            assert parse(text).entry() == entry       # `from TIRO`, `Tiro Ltd`, `vendor: tiro` all read back
        right = {tuple(e) for e in problem.meta["invoices"]}
        assert not any(tuple(e) in right for e in problem.meta["state"]["ledger"])   # every `wrong` entry is wrong


def test_perfect_expert_always_succeeds_without_harm():
    env = make_env("invoices", slip=0.0, typo=0.0, harm_slip=0.0)
    rng = random.Random(0)
    for split in ("train", "test", "heldout"):
        for problem in env.problems(split, 100, seed=1):
            outcome = env.replay(problem, env.expert_actions(problem, rng))
            assert outcome.success and outcome.harm == 0 and outcome.tool_errors == 0, problem


@pytest.mark.parametrize("slip, typo, harm_slip", [(0.1, 0.05, 0.02), (0.2, 0.3, 0.15)])
def test_expert_success_rate_matches_its_analytic_value(slip, typo, harm_slip):
    env = make_env("invoices", slip=slip, typo=typo, harm_slip=harm_slip)
    rng = random.Random(0)
    rates = {}
    for split in ("test", "heldout"):
        problems = env.problems(split, 600, seed=2)
        outcomes = [env.replay(p, env.expert_actions(p, rng)) for p in problems]
        rates[split] = sum(o.success for o in outcomes) / len(outcomes)
        assert abs(rates[split] - analytic_success(env, problems)) < 0.05, (split, rates[split])
        harmed = sum(o.harm > 0 for o in outcomes) / len(outcomes)
        assert harmed <= harm_slip + 0.02 and (harm_slip < 0.1 or harmed > harm_slip / 3), harmed
        errors = sum(o.tool_errors for o in outcomes) / sum(o.steps for o in outcomes)
        assert typo * 0.1 <= errors <= typo * 0.3, errors   # a typo before about one action in five
        assert all(o.submitted for o in outcomes)
    assert rates["heldout"] < rates["test"]   # longer tasks: more chances to slip


def test_knobs_are_checked():
    with pytest.raises(ValueError, match="min_invoices"):
        make_env("invoices", min_invoices=4, max_invoices=2)
    with pytest.raises(ValueError, match="heldout_min_invoices"):
        make_env("invoices", heldout_min_invoices=6, heldout_max_invoices=5)
    with pytest.raises(ValueError, match="entered \\+ wrong \\+ twice"):
        make_env("invoices", entered=0.5, wrong=0.3, twice=0.2)
    with pytest.raises(ValueError, match="unknown knob 'layout'"):
        make_env("invoices", layout="a")
    with pytest.raises(ValueError, match="layouts='a' is not allowed: Input should be 'random' or 'named'"):
        make_env("invoices", layouts="a")


def test_longest_transcript_and_step_limit():
    env = make_env("invoices", typo=1.0, slip=0.0, harm_slip=1.0)
    assert env.max_steps == 31
    rng = random.Random(0)
    for problem in env.problems("heldout", 50, seed=0):
        actions = env.expert_actions(problem, rng)
        assert len(actions) <= env.max_steps and max(map(len, actions)) <= env.max_action_chars
        assert all(set(a) <= set(env.alphabet) for a in actions)
        outcome = env.replay(problem, actions)
        assert all(set(o) <= set(env.alphabet) for o in outcome.outputs)
    env = make_env("invoices", seed=0, max_steps=3)
    env.reset(seed=0)
    results = [env.step("inbox") for _ in range(3)]
    assert [r[2:4] for r in results] == [(False, False), (False, False), (False, True)]
    assert results[-1][1] == 0.0 and results[-1][4]["success"] is False


def test_transcript_text_contract(env):
    problem = env.problems("test", 1, seed=0)[0]
    completion = env.expert(problem, random.Random(0))
    assert completion.split("\n")[0] == "open" and completion.split("\n")[-1] == "submit"
    assert env.parse_answer(completion) == "submit" and env.verify(problem, completion)
    assert env.parse_answer("inbox") is None and not env.verify(problem, "inbox")
