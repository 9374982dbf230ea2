"""``coltra plot``: learning curves of real (tiny) runs into a PNG; seeds grouped, teams
per policy, bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from coltra.cli import main
from coltra.plot import DPI, FIGURE_INCHES, RunCurves, group_experiments, load_run, mean_and_range

ROOT = Path(__file__).resolve().parents[1]
PROBE_CONFIG = str(ROOT / "scripts" / "configs" / "probe_config.yaml")
TEAMS_CONFIG = str(ROOT / "scripts" / "configs" / "teams_config.yaml")
QUIET = ["--no-progress", "--set", "trainer.stop_at_return=null", "trainer.eval_episodes=0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seeds of one probe config, two of another learning rate, one team run."""
    folder = tmp_path_factory.mktemp("plot")
    for name, seed, lr in (
        ("a", 0, 0.01),
        ("a", 1, 0.01),
        ("a", 2, 0.01),
        ("b", 0, 0.001),
        ("b", 1, 0.001),
    ):
        run = folder / "runs" / f"{name}_{seed}"
        args = ["train", "-c", PROBE_CONFIG, "-i", "4", "--seed", str(seed), "--run-dir", str(run)]
        assert main([*args, *QUIET, f"ppo.lr={lr}"]) == 0
    team = ["train", "-c", TEAMS_CONFIG, "-i", "3", "--run-dir", str(folder / "teams")]
    assert main([*team, *QUIET]) == 0
    return folder


def png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def test_seeds_are_one_experiment_labelled_by_what_differs(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = runs / "curves.png"
    capsys.readouterr()
    assert main(["plot", str(runs / "runs"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == (
        f"wrote {out}: charts/episode_return_mean of 5 run(s): ppo.lr=0.01 (3 seeds); "
        "ppo.lr=0.001 (2 seeds)\n"
    )
    assert png_size(out) == (int(FIGURE_INCHES[0] * DPI), int(FIGURE_INCHES[1] * DPI))


def test_a_team_run_is_drawn_per_policy(runs: Path) -> None:
    curves = load_run(runs / "teams", "charts/episode_return_mean")
    assert sorted(curves.lines) == ["attackers", "defenders"]
    assert len(curves.steps) == 3 and np.isfinite(curves.lines["attackers"]).all()
    out = runs / "teams.png"
    assert main(["plot", str(runs / "teams"), "-o", str(out), "--metric", "losses/value_loss"]) == 0
    assert png_size(out) == (900, 550)


def testmean_and_range_over_seeds_on_the_steps_they_share() -> None:
    def run(steps: list[float], values: list[float]) -> RunCurves:
        return RunCurves(Path("r"), "r", {}, np.array(steps), {"": np.array(values)})

    first = run([10, 20, 30, 40], [1.0, 2.0, np.nan, 4.0])  # a row without the metric
    second = run([10, 20, 30], [3.0, 6.0, 9.0])  # stopped earlier
    steps, (mean, low, high) = mean_and_range([first, second], "")
    np.testing.assert_array_equal(steps, [10, 20])  # first's logged steps, up to second's end
    np.testing.assert_allclose(mean, [2.0, 4.0])
    np.testing.assert_allclose(low, [1.0, 2.0])
    np.testing.assert_allclose(high, [3.0, 6.0])
    late = run([20, 30, 40], [5.0, 5.0, 5.0])  # started logging later: trimmed on the left
    steps, (mean, _, _) = mean_and_range([first, late], "")
    np.testing.assert_array_equal(steps, [20, 40])
    np.testing.assert_allclose(mean, [3.5, 4.5])
    assert mean_and_range([run([10], [np.nan])], "")[0].size == 0  # nothing logged: no line
    grouped = group_experiments([first, second])
    assert [(e.label, len(e.runs)) for e in grouped] == [("r", 2)]


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}"], r"has no metrics\.csv, nor has any directory in it"),
        (["{tmp}/nothing"], r"is not a directory"),
        (
            ["{run}", "--metric", "losses/value_los"],
            r"no metric 'losses/value_los'; did you mean 'losses/value_loss'\?",
        ),
        (["{run}", "--metric", "eval/return_mean"], r"has no metric 'eval/return_mean'"),
        (["{run}", "-o", "{tmp}/curves.jpg"], r"written as a \.png file"),
        (["{run}", "-o", "{tmp}/no/curves.png"], r"is not a directory"),
    ],
    ids=["no-metrics", "missing", "typo", "not-logged", "suffix", "out-directory"],
)
def test_bad_input_is_one_clear_line(
    args: list[str], message: str, runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    filled = [arg.format(run=runs / "runs" / "a_0", tmp=tmp_path) for arg in args]
    capsys.readouterr()
    assert main(["plot", *filled]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), lines
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("*.jpg"))
