"""Files from strangers: a checkpoint carrying a pickled payload and a YAML file with Python
tags are refused with an error saying why, and the payload never runs (a side effect it
would have does not happen). A checkpoint of another architecture, or a truncated one, is
an error naming what does not fit."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from coltra.cli import main
from coltra.configs import ConfigError, RunConfig, load_yaml_mapping
from coltra.serialization import CheckpointError
from coltra.trainers import PPOCrowdTrainer, RunDirectory

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore:Detected pickle protocol"),
]

CONFIG: dict[str, Any] = {
    "trainer": {"name": "u", "steps": 4, "iterations": 2, "save_every": 1, "progress": False},
    "ppo": {"lr": 1e-2, "epochs": 1, "num_minibatches": 1},
    "model": {"hidden_sizes": [8]},
    "env": {"kind": "probe", "env_name": "action", "workers": 2, "backend": "inprocess"},
}
CHECKPOINT = Path("checkpoints") / "iter_000002"
WEIGHTS = CHECKPOINT / "agents" / "policies" / "crowd" / "weights.pt"
AGENT_JSON = CHECKPOINT / "agents" / "policies" / "crowd" / "agent.json"
GROUP_JSON = CHECKPOINT / "agents" / "group.json"
STATE = CHECKPOINT / "trainer_state.pt"


class Payload:
    """Unpickling this runs Python code that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def yaml_payload(marker: Path) -> str:
    """A YAML value that runs Python code creating ``marker`` under an unsafe loader."""
    code = f"open({str(marker)!r}, 'w').write('ran')"
    return f"!!python/object/apply:builtins.exec [{json.dumps(code)}]"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    config = RunConfig.from_dict(
        {**CONFIG, "trainer": {**CONFIG["trainer"], "run_dir": str(run_dir)}}
    )
    with PPOCrowdTrainer.from_config(config) as trainer:
        trainer.train()
    return run_dir


@pytest.fixture
def run_dir(trained: Path, tmp_path: Path) -> Path:
    """A copy of a finished two-iteration run, to tamper with."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def test_the_payloads_really_run_code_when_loaded_naively(tmp_path: Path) -> None:
    """Guards the tests below: these payloads are live under pickle and PyYAML's unsafe
    loader, so their not running there means they were refused."""
    marker = tmp_path / "pickle_ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()
    marker = tmp_path / "yaml_ran"
    yaml.unsafe_load(f"value: {yaml_payload(marker)}")
    assert marker.exists()


@pytest.mark.parametrize("file", [WEIGHTS, STATE], ids=["agent_weights", "trainer_state"])
@pytest.mark.parametrize("container", ["torch_zip", "raw_pickle"])
def test_a_checkpoint_with_a_pickled_payload_is_refused_and_never_runs(
    run_dir: Path, tmp_path: Path, file: Path, container: str, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "ran"
    content = {"format": "coltra-trainer-state", "hidden.0.weight": Payload(marker)}
    if container == "raw_pickle":
        (run_dir / file).write_bytes(pickle.dumps(content))
    else:
        torch.save(content, run_dir / file)

    with pytest.raises(CheckpointError) as caught:
        PPOCrowdTrainer.resume(run_dir)
    message = str(caught.value)
    assert f"refusing to load {run_dir / file}" in message
    assert "could run code" in message and "Nothing from the file was executed" in message
    if container == "torch_zip":
        assert "refers to the Python object exec" in message  # names what it refused
    # ... and the command line says the same in one line.
    assert main(["train", "--resume", str(run_dir), "-i", "3"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"coltra: error: refusing to load {run_dir / file}")
    assert not marker.exists()


@pytest.mark.parametrize("where", ["config_file", "run_config", "override"])
def test_a_yaml_file_with_python_tags_is_refused_and_never_runs(
    run_dir: Path, tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "ran"
    payload = yaml_payload(marker)
    if where == "override":  # `--set key=<payload>`: read with the same safe loader
        assert main(["config", "--set", f"ppo.lr={payload}"]) == 2
        assert "ppo.lr: expected float" in capsys.readouterr().err
        assert not marker.exists()
        return
    if where == "config_file":
        path = tmp_path / "evil.yaml"
        path.write_text(f"trainer:\n  name: {payload}\n")
        with pytest.raises(ConfigError, match="refused the Python tag") as caught:
            load_yaml_mapping(path)
        args = ["train", "-c", str(path)]
    else:  # a run directory whose config.yaml was tampered with, then resumed
        path = run_dir / "config.yaml"
        path.write_text(path.read_text().replace("name: u", f"name: {payload}"))
        with pytest.raises(ConfigError, match="refused the Python tag") as caught:
            PPOCrowdTrainer.resume(run_dir)
        args = ["train", "--resume", str(run_dir), "-i", "3"]
    message = str(caught.value)
    assert f"{path}:2:" in message  # file, line and column
    assert "'!!python/object/apply:builtins.exec'" in message
    assert "plain data only" in message and "can run code" in message
    assert main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"coltra: error: {path}:2:") and "refused the Python tag" in line
    assert not marker.exists()


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        (GROUP_JSON, {"policies": ["../../../tmp"]}, "policy name '../../../tmp' must be"),
        (AGENT_JSON, {"agent": "subprocess.Popen"}, "names agent class 'subprocess.Popen'"),
        (
            AGENT_JSON,
            {"model": "os.system"},
            "names model class 'os.system', which is not registered",
        ),
    ],
)
def test_checkpoint_json_naming_python_code_or_paths_is_refused(
    run_dir: Path, file: Path, change: dict[str, object], message: str
) -> None:
    """Classes are looked up in Coltra's registry, never imported by a name from a file."""
    meta = json.loads((run_dir / file).read_text())
    (run_dir / file).write_text(json.dumps({**meta, **change}))
    with pytest.raises(CheckpointError, match=re.escape(message)):
        PPOCrowdTrainer.resume(run_dir)


# ----------------------------------------------------------------------------- mismatches


def test_weights_of_another_architecture_are_an_error_naming_the_mismatch(
    run_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    config = RunConfig.from_dict(
        {
            **CONFIG,
            "trainer": {**CONFIG["trainer"], "run_dir": str(other)},
            "model": {"hidden_sizes": [16]},
        }
    )
    with PPOCrowdTrainer.from_config(config) as trainer:
        trainer.train(2)
    own_weights = (run_dir / WEIGHTS).read_bytes()
    shutil.copy(other / WEIGHTS, run_dir / WEIGHTS)
    with pytest.raises(CheckpointError) as caught:
        PPOCrowdTrainer.resume(run_dir)
    assert f"weights in {run_dir / WEIGHTS} do not fit the MLPModel" in str(caught.value)
    assert "policy_head.weight: checkpoint (2, 16) vs model (2, 8)" in str(caught.value)

    # The trainer state (optimizer moments) of the other model, next to the right weights:
    # torch would load it without a look.
    (run_dir / WEIGHTS).write_bytes(own_weights)
    shutil.copy(other / STATE, run_dir / STATE)
    with pytest.raises(CheckpointError) as caught:
        PPOCrowdTrainer.resume(run_dir)
    message = str(caught.value)
    assert f"{run_dir / STATE} was saved for another model" in message
    assert "policy 'crowd' parameter 'hidden.layers.0.weight' has shape (2, 1, 16)" in message
    assert "the parameter has (2, 1, 8)" in message


def test_resuming_with_another_model_config_names_the_key(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--resume", str(run_dir), "-i", "3", "--set", "model.hidden_sizes=[16]"]
    assert main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("coltra: error: model.hidden_sizes: the run in")
    assert "was trained with [8], this config has [16]" in line


@pytest.mark.parametrize("file", [WEIGHTS, STATE, AGENT_JSON, GROUP_JSON])
@pytest.mark.parametrize("cut", ["half", "empty"])
def test_a_truncated_checkpoint_file_is_an_error_naming_the_file(
    run_dir: Path, file: Path, cut: str
) -> None:
    data = (run_dir / file).read_bytes()
    (run_dir / file).write_bytes(data[: len(data) // 2] if cut == "half" else b"")
    with pytest.raises(CheckpointError) as caught:
        PPOCrowdTrainer.resume(run_dir)
    message = str(caught.value)
    assert str(run_dir / file) in message
    assert "corrupted" in message


def test_a_latest_pointer_that_is_garbage_is_an_error(run_dir: Path) -> None:
    latest = run_dir / "checkpoints" / "latest"
    for text, message in [
        ("../../../etc\n", "should name a checkpoint like iter_000010"),
        ("iter_000042\n", "names iter_000042, which does not exist"),
        ("", "should name a checkpoint"),
    ]:
        latest.write_text(text)
        with pytest.raises(CheckpointError, match=message):
            RunDirectory.open(run_dir).load_checkpoint()
