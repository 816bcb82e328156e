"""``odetx.compare.request``: the mode follows from what was given, and an option that does
not fit it is a ConfigError naming that option, raised before any work.

The one-line CLI wording of some of these is in ``test_compare.py``; these check, flag by
flag, which option the error names (``ConfigError.key``).
"""

from pathlib import Path

import pytest

from odetx.compare.request import CompareRequest, compare, mode_of
from odetx.errors import ConfigError

# Every option that only comparing solvers on one checkpoint takes, with a value for it.
SOLVER_FLAGS = {
    "--solver": {"solvers": ["rk4"]},
    "--steps": {"steps": "1,2"},
    "--rtol": {"rtol": 1e-3},
    "--atol": {"atol": 1e-4},
    "--arch": {"archs": ["strang"]},
    "--split": {"split": "val"},
    "--data-dir": {"data_dir": Path("data")},
    "--batch-size": {"batch_size": 8},
    "--device": {"device": "cpu"},
}


def refused(req):
    with pytest.raises(ConfigError) as info:
        mode_of(req)
    return info.value


@pytest.mark.parametrize(
    "given, mode",
    [
        ({"sweep": Path("s.yaml")}, "sweep"),
        ({"sweep": Path("s.yaml"), "out": Path("o")}, "sweep"),
        ({"targets": ["a/run", "b/run"]}, "runs"),
        ({"targets": ["a/run"]}, "runs"),  # a folder: its finished runs
        ({"targets": ["model.pt"]}, "solvers"),  # named like a checkpoint, even if missing
        ({"targets": ["a/run"], "archs": ["strang"]}, "solvers"),  # a solver flag decides
    ],
)
def test_the_mode_follows_from_what_was_given(given, mode):
    assert mode_of(CompareRequest(**given)) == mode


def test_a_checkpoint_file_of_any_name_compares_solvers(tmp_path):
    ckpt = tmp_path / "weights"  # no .pt suffix, but a file
    ckpt.write_bytes(b"")
    assert mode_of(CompareRequest(targets=[str(ckpt)])) == "solvers"


@pytest.mark.parametrize("flag", SOLVER_FLAGS)
def test_a_solver_flag_with_two_targets_names_the_flag(flag):
    error = refused(CompareRequest(targets=["a/run", "b/run"], **SOLVER_FLAGS[flag]))
    assert error.key == flag
    assert str(error).startswith(f"{flag}: comparing solvers takes exactly one checkpoint")
    assert str(error).endswith("got 2")


@pytest.mark.parametrize("flag", SOLVER_FLAGS)
def test_a_solver_flag_with_sweep_names_the_flag(flag):
    error = refused(CompareRequest(sweep=Path("s.yaml"), **SOLVER_FLAGS[flag]))
    assert error.key == flag and "not --sweep" in str(error)


def test_sweep_with_targets_names_sweep_before_any_other_option():
    error = refused(CompareRequest(sweep=Path("s.yaml"), targets=["a/run"], solvers=["rk4"]))
    assert error.key == "--sweep" and "takes no checkpoint or run directories" in str(error)


@pytest.mark.parametrize(
    "given",
    [{}, {"targets": ["a/run"]}, {"targets": ["model.pt"], "solvers": ["rk4"]}],
    ids=["alone", "runs", "solvers"],
)
def test_out_without_sweep_names_out(given):
    error = refused(CompareRequest(out=Path("o"), **given))
    assert error.key == "--out" and str(error) == "--out: applies to --sweep only"


def test_nothing_to_compare_is_refused():
    error = refused(CompareRequest())
    assert "--sweep FILE" in str(error) and error.key == "compare"


@pytest.mark.parametrize(
    "label, name, suffix",
    [("csv", "t.json", ".csv"), ("json", "t.csv", ".json"), ("plot", "t.pdf", ".png")],
)
def test_output_files_are_checked_before_any_run_is_read(tmp_path, label, name, suffix):
    # The runs do not exist: reaching them would be another error than the option's.
    req = CompareRequest(targets=[str(tmp_path / "no-run")], **{label: tmp_path / name})
    with pytest.raises(ConfigError) as info:
        compare(req)
    assert info.value.key == f"--{label}"
    assert str(info.value).endswith(f"must end in {suffix}")
