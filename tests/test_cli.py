"""The `coltra` command: training, resuming, Ctrl-C, W&B, and every bad input as one line.

Most cases call ``coltra.cli.main`` in this process (fast); the console script itself, the
signal handling and W&B run as subprocesses, as a user would run them.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from coltra.cli import main
from coltra.configs import ConfigError
from coltra.run_dir import RunDirectory

ROOT = Path(__file__).resolve().parents[1]
PROBE_CONFIG = str(ROOT / "scripts" / "configs" / "probe_config.yaml")
GYM_CONFIG = str(ROOT / "scripts" / "configs" / "gym_config.yaml")
COLTRA = Path(sys.executable).with_name("coltra")
# Tiny runs: no early stop, no evaluation, a save at every iteration.
TINY = [
    "--set",
    "trainer.stop_at_return=null",
    "trainer.eval_episodes=0",
    "trainer.save_every=1",
    "--no-progress",
]


def coltra(*args: str | Path) -> list[str]:
    """The console script if installed next to this Python, else ``python -m coltra.cli``."""
    command = [str(COLTRA)] if COLTRA.exists() else [sys.executable, "-m", "coltra.cli"]
    return command + [str(arg) for arg in args]


def iterations_in(run_dir: Path) -> list[float]:
    with (run_dir / "metrics.csv").open(newline="") as file:
        return [float(row["iteration"]) for row in csv.DictReader(file)]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("coltra: error: "), err
    assert "Traceback" not in err
    return lines[0]


# ----------------------------------------------------------------------------- happy paths


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("train", "config", "enjoy", "plot", "tune", "export", "envs"):
        assert re.search(rf"^    {command} ", out, re.M), command
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--config", "--iters", "--name", "--env", "--seed", "--resume", "--device"):
        assert flag in out
    for flag in ("--set", "--wandb", "--wandb-project", "--wandb-entity", "--debug"):
        assert flag in out


def test_version_and_the_env_list(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.metadata

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"coltra {importlib.metadata.version('coltra')}\n"
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("env.kind: gym (")
    assert re.search(r"^  CartPole-v1 +Gymnasium classic_control$", out, re.M)
    assert re.search(r"^  pettingzoo\.sisl\.pursuit_v5 +pettingzoo\.sisl$", out, re.M)
    assert main(["envs", "--kind", "probe"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("env.kind: probe (12)\n  action ")
    assert re.search(r"^  bits +", out, re.M) and re.search(r"^  memory +", out, re.M)
    assert "CartPole" not in out


def test_train_then_resume_continues_the_counters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "-c", PROBE_CONFIG, "-i", "2", "--run-dir", str(run_dir), *TINY]) == 0
    out = capsys.readouterr().out
    assert "Finished 2 iterations (64 env steps" in out
    assert f"Run directory: {run_dir}" in out
    assert f"TensorBoard:   tensorboard --logdir {run_dir}" in out
    assert f"Checkpoint:    {run_dir / 'checkpoints' / 'iter_000002'}" in out

    assert main(["train", "--resume", str(run_dir), "--iters", "4", "--no-progress"]) == 0
    assert "Finished 4 iterations (128 env steps" in capsys.readouterr().out
    assert iterations_in(run_dir) == [1, 2, 3, 4]


def test_flags_and_overrides_reach_the_config(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["train", "-c", PROBE_CONFIG, "-i", "1", "-n", "named", "-e", "constant"]
    args += ["--seed", "5", "--device", "cpu", "--run-dir", str(run_dir), *TINY]
    args += ["--set", "ppo.lr=3e-3", "model.hidden_sizes=[4, 4]"]
    assert main(args) == 0
    saved = (run_dir / "config.yaml").read_text()
    for line in ("name: named", "env_name: constant", "seed: 5", "device: cpu", "lr: 0.003"):
        assert line in saved
    assert "hidden_sizes: [4, 4]" in saved


def test_config_command_prints_configs_and_every_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "-c", PROBE_CONFIG, "--set", "ppo.lr=0.5"]) == 0
    out = capsys.readouterr().out
    assert "env_name: action" in out and "lr: 0.5" in out
    assert main(["config", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| `trainer.stop_at_return` |" in out and "| `ppo.lr` |" in out


def test_config_schema_is_the_json_schema_of_config_files(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["properties"]["ppo"]["$ref"] == "#/$defs/PPOConfig"
    assert "lr" in schema["$defs"]["PPOConfig"]["properties"]
    assert main(["config", "--schema", "--markdown"]) == 2  # one or the other


def test_the_console_script_runs_and_never_imports_wandb_unasked(tmp_path: Path) -> None:
    code = (
        "import sys; from coltra.cli import main; "
        f"rc = main(['train', '-c', {str(PROBE_CONFIG)!r}, '-i', '1', "
        f"'--run-dir', {str(tmp_path / 'a')!r}, '--no-progress']); "
        "assert 'wandb' not in sys.modules, 'wandb was imported'; sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    result = subprocess.run(coltra("--help"), capture_output=True, text=True)
    assert result.returncode == 0 and "train" in result.stdout


# ----------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [
            *coltra("train", "-c", PROBE_CONFIG, "-i", "100000", "--run-dir", run_dir),
            "--set",
            "trainer.stop_at_return=null",
            "trainer.save_every=100000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines = []
    for line in process.stderr:  # wait for the first iteration's progress line
        lines.append(line)
        if line.startswith("iteration 1/"):
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, "".join(lines) + err
    assert "Traceback" not in err
    assert "stopped by SIGINT" in err
    assert f"Resume:        coltra train --resume {run_dir}" in out
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    done = int(latest.removeprefix("iter_"))
    assert done >= 1 and (run_dir / "checkpoints" / latest).is_dir()

    assert main(["train", "--resume", str(run_dir), "-i", str(done + 2), *TINY]) == 0
    assert iterations_in(run_dir)[-3:] == [done, done + 1, done + 2]


# ----------------------------------------------------------------------------- W&B


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb not installed")
def test_wandb_logs_offline_without_an_account(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HOME": str(tmp_path)}
    env.pop("WANDB_API_KEY", None)
    result = subprocess.run(
        [
            *coltra("train", "-c", PROBE_CONFIG, "-i", "2", "--run-dir", run_dir, *TINY),
            "--wandb",
            "--wandb-project",
            "coltra-test",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (offline_run,) = (run_dir / "wandb").glob("offline-run-*")
    assert list(offline_run.glob("*.wandb"))


def test_wandb_missing_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "wandb" else real_find_spec(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    args = ["train", "-c", PROBE_CONFIG, "--run-dir", str(tmp_path / "r"), "--wandb"]
    assert main(args) == 2
    assert "pip install wandb" in one_error_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------- bad input


def _files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "invalid": "ppo: [1, 2\n",
        "python_tag": "ppo: !!python/object/apply:os.system ['echo pwned']\n",
        "unknown_key": "ppo:\n  lrr: 0.1\n",
        "wrong_type": "trainer:\n  steps: many\n",
    }
    paths = {}
    for name, text in files.items():
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(text)
    return paths


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing_file", "config file '{tmp}/nope.yaml' does not exist"),
        ("invalid", "{tmp}/invalid.yaml:2:1: not valid YAML"),
        ("python_tag", "refused the Python tag '!!python/object/apply:os.system'"),
        ("unknown_key", "ppo.lrr: unknown key; did you mean 'lr'?"),
        ("wrong_type", "trainer.steps: expected int, got 'many'"),
        ("unknown_env", "env.env_name: unknown Gymnasium env id 'NoSuchEnv-v0'"),
        ("outside_pettingzoo", "env.env_name: module 'os' is not in an allowed package"),
        ("iterations_zero", "argument -i/--iters/--iterations: expected a whole number >= 1"),
        ("bad_override", "ppo.lr: expected a float > 0, got -1.0 (in override 'ppo.lr=-1')"),
        ("no_config", "the following arguments are required: -c/--config"),
        ("unknown_command", "argument COMMAND: invalid choice: 'trian'"),
        ("resume_not_a_run", "cannot resume from {tmp}: it is not a Coltra run directory"),
        ("resume_missing", "cannot resume from {tmp}/gone: it is not a directory"),
        ("unwritable_run_dir", "cannot write the run directory {tmp}/invalid.yaml/run"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    case: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _files(tmp_path)
    run = ["--run-dir", str(tmp_path / "run")]
    argv = {
        "missing_file": ["train", "-c", str(tmp_path / "nope.yaml")],
        "invalid": ["train", "-c", str(files["invalid"])],
        "python_tag": ["train", "-c", str(files["python_tag"])],
        "unknown_key": ["train", "-c", str(files["unknown_key"])],
        "wrong_type": ["train", "-c", str(files["wrong_type"])],
        "unknown_env": ["train", "-c", str(GYM_CONFIG), "-e", "NoSuchEnv-v0", *run],
        "outside_pettingzoo": [
            "train",
            "-c",
            str(PROBE_CONFIG),
            "--set",
            "env.kind=pettingzoo",
            "-e",
            "os",
            *run,
        ],
        "iterations_zero": ["train", "-c", str(PROBE_CONFIG), "-i", "0"],
        "bad_override": ["train", "-c", str(PROBE_CONFIG), "--set", "ppo.lr=-1"],
        "no_config": ["train"],
        "unknown_command": ["trian"],
        "resume_not_a_run": ["train", "--resume", str(tmp_path)],
        "resume_missing": ["train", "--resume", str(tmp_path / "gone")],
        "unwritable_run_dir": [
            "train",
            "-c",
            str(PROBE_CONFIG),
            "--run-dir",
            str(files["invalid"] / "run"),
        ],
    }[case]
    assert main(argv) == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert expected.format(tmp=tmp_path) in line
    assert not (tmp_path / "run").exists()  # nothing was started


def test_resume_with_another_model_or_a_finished_run_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "-c", PROBE_CONFIG, "-i", "1", "--run-dir", str(run_dir), *TINY]) == 0
    capsys.readouterr()

    assert main(["train", "--resume", str(run_dir), "--set", "model.hidden_sizes=[8]"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "model.hidden_sizes: the run in" in line and "was trained with [16]" in line

    other = tmp_path / "other.yaml"
    other.write_text(
        Path(PROBE_CONFIG).read_text().replace("env_name: action", "env_name: delayed")
    )
    assert main(["train", "--resume", str(run_dir), "-c", str(other), "-i", "5"]) == 2
    assert "env.env_name: the run in" in one_error_line(capsys.readouterr().err)

    assert main(["train", "--resume", str(run_dir)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "has done 1 of its 1 iterations" in line
    # The command the error names works as written.
    command = re.search(r"\((coltra train [^)]*)\)", line)
    assert command is not None and command[1] == f"coltra train --resume {run_dir} -i 2"
    assert main([*command[1].split()[1:], "--no-progress"]) == 0
    assert RunDirectory.open(run_dir).read_config().trainer.iterations == 2


def test_a_checkpoint_that_does_not_fit_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "-c", PROBE_CONFIG, "-i", "1", "--run-dir", str(run_dir), *TINY]) == 0
    (run_dir / "checkpoints" / "latest").write_text("../../etc\n")
    assert main(["train", "--resume", str(run_dir), "-i", "3"]) == 2
    assert "should name a checkpoint like iter_000010" in one_error_line(capsys.readouterr().err)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        main(["train", "-c", str(tmp_path / "nope.yaml"), "--debug"])


def test_the_console_script_reports_bad_input_without_a_traceback(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("a: !!python/object/apply:os.system ['touch pwned']\n")
    result = subprocess.run(
        coltra("train", "-c", evil), capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 2
    assert "refused the Python tag" in one_error_line(result.stderr)
    assert not (tmp_path / "pwned").exists()


def test_profile_writes_a_trace_of_the_first_iterations_then_trains_on(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    argv = ["train", "-c", PROBE_CONFIG, "-i", "3", "--run-dir", str(run_dir), "--profile", "1"]
    assert main([*argv, *TINY]) == 0
    report = (run_dir / "profile.txt").read_text()
    assert "cumulative" in report and "collect" in report and "train_on_data" in report
    assert (run_dir / "profile.prof").stat().st_size > 0
    assert iterations_in(run_dir) == [1.0, 2.0, 3.0]  # profiled or not, the run goes on


def _weights(run_dir: Path, iteration: int) -> dict[str, torch.Tensor]:
    path = run_dir / "checkpoints" / f"iter_{iteration:06d}" / "agents" / "policies" / "crowd"
    return torch.load(path / "weights.pt", weights_only=True)


def test_extending_an_annealed_run_keeps_learning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 (b): resuming with -i past an lr schedule fitted to the first -i trained at
    learning rate 0, silently."""
    run_dir = tmp_path / "run"
    anneal = ["--set", "ppo.anneal_lr=true", "trainer.keep_checkpoints=10"]
    assert (
        main(["train", "-c", PROBE_CONFIG, "-i", "3", "--run-dir", str(run_dir), *anneal, *TINY])
        == 0
    )
    assert main(["train", "--resume", str(run_dir), "-i", "6", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "note: the annealing schedule now runs over 6 iterations (was 3" in err
    with (run_dir / "metrics.csv").open(newline="") as file:
        rates = [float(row["charts/learning_rate"]) for row in csv.DictReader(file)]
    lr = 1e-2  # probe_config.yaml
    assert rates[:3] == pytest.approx([lr, lr * 2 / 3, lr / 3])  # over 3 iterations
    assert rates[3:] == pytest.approx([lr * 3 / 6, lr * 2 / 6, lr * 1 / 6])  # then over 6
    before, after = _weights(run_dir, 3), _weights(run_dir, 6)
    assert any(not torch.equal(before[key], after[key]) for key in before)
    # A schedule set shorter than the run stays, and the note says what that means.
    assert (
        main(
            [
                "train",
                "--resume",
                str(run_dir),
                "-i",
                "8",
                "--set",
                "ppo.anneal_iterations=5",
                "--no-progress",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "the annealing schedule now runs over 5 iterations (was 6" in err
    assert "the learning rate anneals to 0 by iteration 5" in err
    assert "set ppo.anneal_iterations=8 to keep learning" in err


def test_profiling_neither_evaluates_nor_saves_at_its_last_iteration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 (i): --profile N ran train(N) and then train(), so iteration N was treated
    as the end of a run: an evaluation and a checkpoint there."""
    run_dir = tmp_path / "run"
    argv = ["train", "-c", PROBE_CONFIG, "-i", "4", "--run-dir", str(run_dir), "--profile", "2"]
    options = ["trainer.stop_at_return=null", "trainer.eval_episodes=2", "trainer.save_every=10"]
    assert main([*argv, "--set", *options, "--no-progress"]) == 0
    assert "profile of 2 iteration(s)" in capsys.readouterr().err
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["iter_000004", "latest"]
    with (run_dir / "metrics.csv").open(newline="") as file:
        evaluated = [row["iteration"] for row in csv.DictReader(file) if row.get("eval/episodes")]
    assert evaluated == ["4.0"]


def test_the_resume_command_printed_after_a_solved_run_works_as_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 (d): the printed command trained one iteration and stopped again, because
    stop_at_return was still met."""
    run_dir = tmp_path / "run"
    argv = ["train", "-c", PROBE_CONFIG, "--run-dir", str(run_dir), "--no-progress"]
    assert main([*argv, "--set", "trainer.eval_episodes=0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Solved at iteration ")
    solved_at = int(out.split()[3])
    (resume,) = [line for line in out.splitlines() if line.startswith("Resume:")]
    command = resume.removeprefix("Resume:").split("(")[0].split()
    assert command == [
        "coltra",
        "train",
        "--resume",
        str(run_dir),
        "--set",
        "trainer.stop_at_return=null",
    ]
    assert main([*command[1:], "--no-progress"]) == 0
    assert "Finished 20 iterations" in capsys.readouterr().out  # on to trainer.iterations
    assert iterations_in(run_dir) == [float(i) for i in range(1, 21)]
    assert solved_at < 19


def test_train_a_model_of_your_own_from_a_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12, item 4: model.class names any model registered with register_model; the
    module that registers it is imported with --import."""
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    run_dir = tmp_path / "run"
    argv = ["train", "-c", PROBE_CONFIG, "-i", "2", "--run-dir", str(run_dir), *TINY]
    model = ["--set", "model.class=TinyModel", "model.width=4"]
    assert main([*argv, *model]) == 2  # not registered yet: says how
    line = one_error_line(capsys.readouterr().err)
    assert "model.class: unknown model class 'TinyModel'" in line and "register_model" in line
    assert main([*argv, "--import", "my_models", *model]) == 0
    saved = RunDirectory.open(run_dir).read_config()
    assert saved.model is not None and saved.model.to_dict() == {"class": "TinyModel", "width": 4}
    agent = json.loads(
        (run_dir / "checkpoints/iter_000002/agents/policies/crowd/agent.json").read_text()
    )
    assert agent["model"] == "TinyModel"
    assert (
        main(
            ["train", "--resume", str(run_dir), "-i", "3", "--import", "my_models", "--no-progress"]
        )
        == 0
    )
    assert main(["config", "--import", "my_models", "--set", "model.class=TinyModel"]) == 0
    assert "model:\n  class: TinyModel\n  width: 32\n" in capsys.readouterr().out
    assert main(["train", "-c", PROBE_CONFIG, "--import", "no_such_module_here"]) == 2
    assert "--import no_such_module_here: cannot import it" in one_error_line(
        capsys.readouterr().err
    )


def test_a_config_names_an_env_module_only_from_an_allowed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 13 item 5: --allow-module on the command line, never from the file alone."""
    from coltra.envs import registry

    monkeypatch.setattr(registry, "_allowed", list(registry.DEFAULT_ALLOWED_MODULES))
    package = tmp_path / "my_envs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "crowd.py").write_text(
        "from coltra.envs.probe_envs import ActionRewardEnv\n\n"
        "class Crowd(ActionRewardEnv):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "config.yaml"
    config.write_text(
        Path(PROBE_CONFIG)
        .read_text()
        .replace("kind: probe", "kind: coltra")
        .replace("env_name: action", "env_name: my_envs.crowd:Crowd")
    )
    argv = ["train", "-c", str(config), "-i", "1", "--run-dir", str(tmp_path / "run"), *TINY]
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "not in an allowed package" in line and "--allow-module my_envs" in line
    assert "my_envs.crowd" not in sys.modules  # refused before anything was imported
    assert main([*argv, "--allow-module", "my_envs"]) == 0
    assert main(["train", "-c", str(config), "--allow-module", "not a name"]) == 2
