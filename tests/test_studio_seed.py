"""`dub studio`: a seed stays the whole number it was typed as, from the page to the render, and one
the renderer cannot take is refused in a sentence that names it in digits."""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("gradio", reason="the studio extra is not installed (pip install -e '.[ml,test]' brings it)")

STYLE = "tom-and-jerry"
HUGE = "12345678901234567890"   # over 2**63: no float and no int64 holds it exactly
RANGE = "seeds go from 0 to 2147483647"


@pytest.mark.parametrize("given, named", [
    (HUGE, HUGE), (int(HUGE), HUGE), (2**40, "1099511627776"), (str(2**40), "1099511627776"),
    (1.2345e19, "12345000000000000000"),   # a float from a script: its exact whole value, in digits
    ("1.2345e19", "12345000000000000000"), ("-3", "-3"), (2**31, "2147483648"),
    (10**5000, "(a 5001-digit number)"),
], ids=["text", "int", "2**40", "2**40-text", "float", "float-text", "negative", "2**31", "5001-digits"])
def test_a_seed_out_of_range_is_named_in_digits(given, named):
    from dubber.errors import InputError
    from dubber.studio.project import check_seed

    with pytest.raises(InputError) as caught:
        check_seed(given, "The seed")
    assert str(caught.value) == f"The seed {named} is out of range: {RANGE}; enter one of those."


@pytest.mark.parametrize("given, seed", [("2147483647", 2**31 - 1), (2147483647.0, 2**31 - 1), (" 42 ", 42),
                                         ("4.2e1", 42), (7, 7)])
def test_a_whole_seed_in_range_is_kept_exactly(given, seed):
    from dubber.studio.project import check_seed

    assert check_seed(given, "The seed") == seed and type(check_seed(given, "The seed")) is int


@pytest.mark.parametrize("given", ["abc", "2.5", 2.5, "nan", float("inf"), "", True])
def test_a_seed_that_is_no_whole_number_is_said_to_be_none(given):
    from dubber.errors import InputError
    from dubber.studio.project import check_seed

    with pytest.raises(InputError, match=r"^The seed '.*' is not a whole number from 0 to 2147483647; enter one\.$"):
        check_seed(given, "The seed")


def test_the_page_takes_seeds_as_typed_and_names_a_huge_one_in_digits(sample_30p_silent, tmp_path):
    """The seed box and the table's seed column are text: a browser turns a number field's value
    into a float (12345678901234567890 arrives as 12345678901234567000, 1.2345678901234568e+21
    above 10**21); text arrives as it was typed."""
    import gradio as gr

    from dubber.studio.app import _Actions, _event, build_app
    from dubber.studio.project import COLUMNS, StudioSettings, open_video, table_rows

    config = build_app(StudioSettings(work_dir=tmp_path / "page")).get_config_file()
    by_id = {c["props"].get("elem_id"): c for c in config["components"]}
    assert by_id["seed"]["type"] == "textbox"
    assert by_id["shots"]["props"]["datatype"][COLUMNS.index("seed")] == "str"

    root = tmp_path / "root"
    root.mkdir()
    shutil.copy2(sample_30p_silent[0], root / "film.mp4")
    settings = StudioSettings(work_dir=tmp_path / "work", root=root, cache_dir=str(tmp_path / "cache"))
    actions = _Actions(settings)
    with pytest.warns(UserWarning, match=f"^The seed {HUGE} is out of range: {RANGE}; enter one of those.$"):
        assert _event(actions.open_path, page=True)("film.mp4", STYLE, HUGE) == gr.skip()
    project = open_video(root / "film.mp4", settings, STYLE, "2147483647")
    assert project.plan.seed == 2**31 - 1
    rows = table_rows(project, [""] * len(project.plan.cues))
    rows[0][COLUMNS.index("seed")] = HUGE
    with pytest.warns(UserWarning, match=f"^Shot 1's seed {HUGE} is out of range: {RANGE}; enter one of those.$"):
        assert _event(actions.render, page=True)(project, rows, "score") == gr.skip()
    assert not (project.folder / "takes" / "take-001").exists()


def test_a_script_seed_with_a_fraction_is_refused_not_rounded(tmp_path):
    from dubber.studio.app import build_app
    from dubber.studio.project import StudioSettings

    app = build_app(StudioSettings(work_dir=tmp_path))
    dub = next(fn for fn in app.fns.values() if fn.api_name == "dub")
    seed = dub.inputs[2]
    assert seed.preprocess(2.5) == 2.5 and seed.preprocess(int(HUGE)) == int(HUGE)
