"""``coltra enjoy``: watching saved (or random) policies play, scores, videos, bad input.

Tiny runs train for an iteration or two; what is checked is what is played and recorded,
not how well: the frame count equals the agent steps played, and the scores printed are
those of the episodes played."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coltra.cli import main
from coltra.configs import RunConfig
from coltra.enjoy import play, random_policies, watch_env
from coltra.factory import make_group
from coltra.saved_policies import find_saved_group
from coltra.video import read_video

ROOT = Path(__file__).resolve().parents[1]
GYM_CONFIG = str(ROOT / "scripts" / "configs" / "gym_config.yaml")
PURSUIT_CONFIG = str(ROOT / "scripts" / "configs" / "pursuit_config.yaml")
SCORE = re.compile(
    r"^(\w+): return (-?[\d.]+) \+- [\d.]+, length ([\d.]+) over (\d+) agent-episodes$"
)


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-iteration CartPole run that evaluated every iteration (it has checkpoints/best)."""
    run_dir = tmp_path_factory.mktemp("enjoy") / "run"
    args = ["train", "-c", GYM_CONFIG, "-i", "3", "--run-dir", str(run_dir), "--no-progress"]
    settings = ["trainer.eval_every=1", "trainer.eval_episodes=2", "trainer.stop_at_return=null"]
    assert main([*args, "--set", *settings, "env.workers=2", "trainer.steps=64"]) == 0
    return run_dir


def scores(out: str) -> dict[str, tuple[float, float, int]]:
    found = {}
    for line in out.splitlines():
        if match := SCORE.match(line):
            found[match[1]] = (float(match[2]), float(match[3]), int(match[4]))
    return found


def test_enjoy_a_run_plays_its_best_checkpoint_and_records_every_step(
    cartpole_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    video = tmp_path / "cartpole.mp4"
    assert main(["enjoy", str(cartpole_run), "--episodes", "1", "--video", str(video)]) == 0
    out = capsys.readouterr().out
    best = (cartpole_run / "checkpoints" / "best").read_text().split()[0]
    assert f"with {cartpole_run}/checkpoints/best ({best}, eval/return_mean" in out
    ((_, (mean_return, mean_length, episodes)),) = scores(out).items()
    assert episodes == 1 and mean_return == mean_length  # CartPole pays 1 per step
    frames = read_video(video)
    # A frame after the reset and after every step but the last: one per step played.
    assert frames.shape == (round(mean_length), 400, 600, 3)
    assert frames.std() > 0  # a picture, not a blank
    assert f"video: {video} ({len(frames)} frames at 50 fps)" in out


def test_relative_paths_from_inside_a_run_find_it(
    cartpole_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(cartpole_run / "checkpoints")
    best = (cartpole_run / "checkpoints" / "best").read_text().split()[0]
    for name in ("best", best, "latest"):
        saved = find_saved_group(name)
        assert saved.config is not None and saved.config.env is not None, name
    assert find_saved_group("best").source == cartpole_run / "checkpoints" / best / "agents"


def test_the_scores_are_those_of_the_episodes_played(cartpole_run: Path) -> None:
    """Deterministic play of one checkpoint with one seed gives the same returns twice, one
    per episode asked for; random play goes through the same path (3 PPO iterations need
    not beat it, so only its shape is checked)."""
    saved = find_saved_group(cartpole_run)
    assert saved.config is not None
    env = watch_env(saved.config, None)
    try:
        first = play(saved.group, env, 3, seed=5)
        second = play(saved.group, env, 3, seed=5)
        randomly = play(random_policies(saved.group, env, seed=0), env, 3, seed=5)
    finally:
        env.close()
    assert [s.policy for s in first] == saved.group.policy_names
    np.testing.assert_array_equal(first[0].returns, second[0].returns)
    assert len(randomly[0].returns) == 3 and (randomly[0].returns >= 8).all()


def test_random_pursuit_and_mpe2_videos_headless(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pursuit = tmp_path / "pursuit.mp4"
    args = ["enjoy", "--random", "-c", PURSUIT_CONFIG, "--episodes", "1", "--video", str(pursuit)]
    assert main([*args, "--set", "env.env_kwargs.max_cycles=12"]) == 0
    out = capsys.readouterr().out
    assert scores(out) == {"crowd": (pytest.approx(scores(out)["crowd"][0]), 12.0, 8)}
    assert read_video(pursuit).shape == (12, 480, 480, 3)

    spread = tmp_path / "spread.yaml"
    config = RunConfig().override(
        [
            "env.kind=pettingzoo",
            "env.env_name=mpe2.simple_spread_v3",
            "env.env_kwargs={max_cycles: 5, continuous_actions: false}",
        ]
    )
    config.to_yaml(spread)
    gif = tmp_path / "spread.gif"
    assert (
        main(["enjoy", "--random", "-c", str(spread), "--episodes", "2", "--video", str(gif)]) == 0
    )
    assert "(10 frames at 10 fps)" in capsys.readouterr().out
    frames = read_video(gif)  # Pillow stores a repeated frame once, with a longer duration
    assert 1 < len(frames) <= 10 and frames.shape[1:] == (700, 700, 3)


def test_the_enjoy_scripts_run_as_documented(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "enjoy_gym.py"
    result = subprocess.run(
        [sys.executable, str(script), "--random", "--episodes", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "playing 2 episode(s) of CartPole-v1 with uniformly random actions" in result.stdout
    assert scores(result.stdout)["crowd"][2] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["{run}", "-e", "Pendulum-v1"], r"the saved policies do not fit this env: .*continuous"),
        (["{run}", "--video", "{tmp}/clip.avi"], r"a video is written as \.mp4 or \.gif"),
        (["{run}", "--video", "{tmp}/no/clip.mp4"], r"is not a directory"),
        (["{run}", "--human"], r"--human opens a window, and there is no display here"),
        (["{tmp}/missing"], r"'.*missing' does not exist"),
        (["--random"], r"--random without RUN_OR_CHECKPOINT needs the env: give -c CONFIG"),
        ([], r"give RUN_OR_CHECKPOINT to watch"),
        (
            ["{run}", "--video", "{tmp}/v.mp4", "--set", "env.kind=probe", "env.env_name=action"],
            r"a probe env \(action\) takes no render_mode",
        ),
        (["{run}", "--episodes", "0"], r"--episodes: expected a whole number >= 1, got '0'"),
    ],
    ids=[
        "other-env",
        "suffix",
        "directory",
        "no-display",
        "missing",
        "random-no-env",
        "nothing",
        "no-render",
        "episodes",
    ],
)
def test_bad_input_is_one_clear_line(
    args: list[str],
    message: str,
    cartpole_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    filled = [arg.format(run=cartpole_run, tmp=tmp_path) for arg in args]
    capsys.readouterr()
    assert main(["enjoy", *filled]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coltra: error: "), captured.err
    assert re.search(message, lines[0]), lines[0]
    assert captured.out == ""  # nothing played before the mistake was found
    assert not list(tmp_path.glob("*.mp4"))


def test_a_saved_agent_outside_a_run_needs_its_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = RunConfig.from_yaml(GYM_CONFIG)
    env = watch_env(config, None)
    try:
        group = make_group(config, env, init=False)
    finally:
        env.close()
    group.save(tmp_path / "group")
    assert main(["enjoy", str(tmp_path / "group")]) == 2
    assert "is not in a run directory: give its env with -c CONFIG" in capsys.readouterr().err
    assert main(["enjoy", str(tmp_path / "group"), "-c", GYM_CONFIG, "--episodes", "1"]) == 0
    assert scores(capsys.readouterr().out)["crowd"][2] == 1
