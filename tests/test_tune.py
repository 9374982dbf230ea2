"""``coltra tune``: an Optuna study of tiny probe trials in SQLite, stopped and resumed,
pruning on the evaluation return, parallel jobs, and bad search spaces."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
import yaml

from coltra.cli import main
from coltra.configs import RunConfig
from coltra.tune import STUDY_FILE, TuneError, _Study, load_space

ROOT = Path(__file__).resolve().parents[1]
PROBE_CONFIG = str(ROOT / "scripts" / "configs" / "probe_config.yaml")
# Tiny trials: 4 iterations of the probe, evaluated every 2.
TINY = ["--set", "trainer.iterations=4", "trainer.stop_at_return=null"]


def space_file(tmp_path: Path, space: dict, **top: object) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"eval_every": 2, "eval_episodes": 4, **top, "space": space}))
    return path


SPACE = {
    "ppo.lr": {"low": 1.0e-3, "high": 3.0e-2, "log": True},
    "ppo.epochs": {"low": 1, "high": 3},
    "model.hidden_sizes": {"choices": [[8], [16, 16]]},
}


def test_two_trials_then_resumed_once_from_the_sqlite_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study_dir = tmp_path / "study"
    args = ["tune", "-c", PROBE_CONFIG, "--space", str(space_file(tmp_path, SPACE))]
    args += ["--study-dir", str(study_dir), *TINY]
    assert main([*args, "--trials", "2"]) == 0
    first = capsys.readouterr().out
    assert "2 trial(s) finished (0 pruned); best: trial " in first
    storage = f"sqlite:///{study_dir / STUDY_FILE}"
    trials = optuna.load_study(study_name="study", storage=storage).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    # Continued: the study goes on to 3 trials in all, in the same database.
    assert main([*args, "--trials", "3"]) == 2  # without --resume: refused
    assert "already holds a study (study.db): continue it with --resume" in capsys.readouterr().err
    assert main([*args, "--trials", "3", "--resume"]) == 0
    resumed = capsys.readouterr().out
    assert "3 trial(s) finished" in resumed
    trials = optuna.load_study(study_name="study", storage=storage).get_trials()
    assert len(trials) == 3 and {t.number for t in trials} == {0, 1, 2}
    # The resumed session draws new values, not its first session's again.
    assert trials[2].params["ppo.lr"] not in (
        trials[0].params["ppo.lr"],
        trials[1].params["ppo.lr"],
    )
    changed = space_file(tmp_path, {**SPACE, "ppo.epochs": {"low": 1, "high": 5}})
    again = ["tune", "-c", PROBE_CONFIG, "--space", str(changed), "--study-dir", str(study_dir)]
    assert main([*again, *TINY, "--trials", "4", "--resume"]) == 2
    assert "the search space differs from the one the study" in capsys.readouterr().err
    assert sorted(p.name for p in (study_dir / "trials").iterdir()) == [
        "trial_0000",
        "trial_0001",
        "trial_0002",
    ]
    # Each trial's run evaluated every 2 iterations: its value is the last evaluation.
    for trial in trials:
        rows = (Path(trial.user_attrs["run_dir"]) / "metrics.csv").read_text().splitlines()
        header = rows[0].split(",")
        column = header.index("eval/return_mean")
        scores = [float(r.split(",")[column]) for r in rows[1:] if r.split(",")[column]]
        assert len(scores) == 2 and trial.value == scores[-1]
    # The best config is the base config with the best trial's values, ready to train.
    best = min(trials, key=lambda t: (-t.value, t.number))
    config = RunConfig.from_yaml(study_dir / "best_config.yaml")
    assert config.ppo.lr == best.params["ppo.lr"] and config.ppo.epochs == best.params["ppo.epochs"]
    assert config.model is not None
    assert (
        config.model.hidden_sizes
        == SPACE["model.hidden_sizes"]["choices"][best.params["model.hidden_sizes"]]
    )
    assert config.trainer.run_dir is None and config.trainer.name == "probe_tuned"
    again = ["train", "-c", str(study_dir / "best_config.yaml"), "-i", "1", "--no-progress"]
    assert main([*again, "--run-dir", str(tmp_path / "tuned")]) == 0  # ready for train -c
    from PIL import Image

    with Image.open(study_dir / "history.png") as image:
        assert image.size == (900, 550)


def test_a_trial_whose_evaluation_lags_the_median_is_pruned(tmp_path: Path) -> None:
    """Trial 0 learns (lr 3e-2); trial 1 barely moves (lr 1e-7) and scores ~0.5 on the
    observed-sign probe at its first evaluation: below the median, it stops there."""
    config = RunConfig.from_yaml(PROBE_CONFIG).override(
        ["env.env_name=obs_action", "trainer.iterations=30", "trainer.stop_at_return=null"]
    )
    lrs = {"ppo.lr": {"choices": [3.0e-2, 1.0e-7]}}
    pruner = {"n_startup_trials": 1, "n_warmup_steps": 0}
    path = space_file(tmp_path, lrs, eval_every=10, eval_episodes=16, pruner=pruner)
    space = load_space(path, config)
    study = _Study(config.to_dict(), space, str(tmp_path / "study"), "pruning", 0)
    (tmp_path / "study").mkdir()
    optuna.create_study(study_name="pruning", storage=study.storage, direction="maximize")
    loaded = optuna.load_study(study_name="pruning", storage=study.storage)
    loaded.enqueue_trial({"ppo.lr": 0})  # the index of each choice, in this order
    loaded.enqueue_trial({"ppo.lr": 1})
    study.optimize(2)
    first, second = optuna.load_study(study_name="pruning", storage=study.storage).get_trials()
    assert first.state == optuna.trial.TrialState.COMPLETE and first.value is not None
    assert first.value > 0.9
    assert second.state == optuna.trial.TrialState.PRUNED
    assert second.user_attrs["iterations"] == 10  # stopped at its first evaluation, not 30


def test_parallel_jobs_share_the_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study_dir = tmp_path / "study"
    args = ["tune", "-c", PROBE_CONFIG, "--space", str(space_file(tmp_path, SPACE))]
    assert main([*args, "--study-dir", str(study_dir), *TINY, "--trials", "3", "--jobs", "2"]) == 0
    assert "3 trial(s) finished" in capsys.readouterr().out
    trials = optuna.load_study(study_name="study", storage=f"sqlite:///{study_dir / STUDY_FILE}")
    assert len(trials.get_trials()) == 3


@pytest.mark.parametrize(
    "space, top, message",
    [
        ({"ppo.lrr": {"low": 1e-4, "high": 1e-3}}, {}, r"space\.ppo\.lrr: .*did you mean 'lr'"),
        ({"ppo.lr": {"low": 1e-3, "high": 1e-3}}, {}, r"the range is empty: low=0\.001"),
        ({"ppo.lr": {"low": 0, "high": 1e-3, "log": True}}, {}, r"a log scale needs low > 0"),
        ({"ppo.epochs": {"choices": []}}, {}, r"choices must be a non-empty list"),
        ({"ppo.epochs": {"choices": [2, -1]}}, {}, r"space\.ppo\.epochs: .*epochs"),
        ({"ppo.lr": {"low": "a", "high": 1}}, {}, r"low and high must be numbers"),
        ({"ppo.lr": {"min": 1e-4}}, {}, r"unknown keys \['min'\]"),
        ({}, {}, r"expected a mapping with a non-empty 'space:'"),
        ({"ppo.lr": {"low": 1e-4, "high": 1e-3}}, {"directon": "max"}, r"unknown top-level keys"),
    ],
    ids=[
        "unknown-key",
        "empty-range",
        "log-zero",
        "no-choices",
        "bad-choice",
        "not-numbers",
        "unknown-spec",
        "no-space",
        "top-level",
    ],
)
def test_bad_search_spaces_are_one_clear_line_before_any_trial(
    space: dict, top: dict, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({**top, "space": space}))
    study_dir = tmp_path / "study"
    capsys.readouterr()
    code = main(
        [
            "tune",
            "-c",
            PROBE_CONFIG,
            "--space",
            str(path),
            "--trials",
            "1",
            "--study-dir",
            str(study_dir),
        ]
    )
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), lines
    assert not study_dir.exists()


def test_resuming_a_study_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    config = RunConfig.from_yaml(PROBE_CONFIG)
    from coltra.tune import run_study

    space = load_space(space_file(tmp_path, SPACE), config)
    with pytest.raises(TuneError, match=r"cannot resume: .* holds no study"):
        run_study(config, space, tmp_path / "nothing", 1, resume=True)
