import pytest

from alphaloop.errors import UserError
from alphaloop.recipe import apply_override, load_recipe, recipe_to_toml, validate_recipe

BASE = {"env": {"name": "arithmetic"}, "stages": [{"kind": "imitate", "steps": 5}]}


def test_smoke_and_quickstart_recipes_validate(repo_root):
    for name in ("smoke", "quickstart"):
        recipe = load_recipe(f"{repo_root}/recipes/{name}.toml")
        assert recipe.stages[0].kind == "imitate"


def test_every_shipped_recipe_validates(repo_root):
    """A recipe in recipes/ that no longer matches the schema is a broken promise to users."""
    from pathlib import Path

    paths = sorted(Path(repo_root, "recipes").glob("*.toml"))
    assert len(paths) >= 5
    for path in paths:
        recipe = load_recipe(path)
        assert recipe.stages, path.name


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[[stages]]\nkind = "imitate"\nstepz = 3\n')
    with pytest.raises(UserError) as err:
        load_recipe(path)
    message = str(err.value)
    assert str(path) in message and "stages.0.stepz" in message and "unknown key" in message


def test_wrong_type_names_field_and_value(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[[stages]]\nkind = "imitate"\nsteps = "many"\n')
    with pytest.raises(UserError) as err:
        load_recipe(path)
    assert "stages.0.steps" in str(err.value) and "'many'" in str(err.value)


def test_missing_field_is_named():
    with pytest.raises(UserError) as err:
        validate_recipe({"env": {"name": "arithmetic"}}, "x.toml")
    assert "x.toml: stages: required field is missing" in str(err.value)


def test_unknown_stage_kind_lists_allowed():
    with pytest.raises(UserError) as err:
        validate_recipe({"stages": [{"kind": "imitat"}]}, "x.toml")
    assert "imitate" in str(err.value) and "eval" in str(err.value)


def test_bad_decoder_rejected():
    with pytest.raises(UserError) as err:
        validate_recipe({"stages": [{"kind": "eval", "decoders": ["beam"]}]}, "x.toml")
    assert "stages.0.decoders" in str(err.value) and "maj@K" in str(err.value)


def test_overrides_parse_values_and_indices():
    data = {"stages": [{"kind": "imitate", "steps": 5}], "env": {"knobs": {}}}
    apply_override(data, "stages.0.steps=200")
    apply_override(data, "env.knobs.ops=+-")
    apply_override(data, "seed=3")
    apply_override(data, "stages.0.lr=1e-3")
    assert data["stages"][0]["steps"] == 200 and data["seed"] == 3
    assert data["env"]["knobs"]["ops"] == "+-" and data["stages"][0]["lr"] == 1e-3
    with pytest.raises(UserError, match="not an index"):
        apply_override(data, "stages.4.steps=1")
    with pytest.raises(UserError, match="dotted.path=value"):
        apply_override(data, "seed")


def test_duplicate_stage_names_rejected():
    with pytest.raises(UserError, match="used twice"):
        validate_recipe({"stages": [{"kind": "imitate", "name": "a"}, {"kind": "eval", "name": "a"}]})


def test_resolved_recipe_round_trips(tmp_path):
    recipe = validate_recipe(BASE)
    path = tmp_path / "resolved.toml"
    path.write_text(recipe_to_toml(recipe))
    again = load_recipe(path)
    assert again.model_dump() == recipe.model_dump()
