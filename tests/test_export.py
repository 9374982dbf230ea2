"""``coltra export``: the exported files, run by onnxruntime and torch.jit without Coltra's
classes, give Coltra's own deterministic actions (normalisation and masks inside)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from coltra.cli import main
from coltra.configs import RunConfig
from coltra.envs.spaces import ObservationCodec
from coltra.export import ExportError, export_policy, policy_inputs
from coltra.factory import make_env, make_group
from coltra.groups import MacroAgent
from coltra.saved_policies import find_saved_group

ROOT = Path(__file__).resolve().parents[1]
GYM_CONFIG = str(ROOT / "scripts" / "configs" / "gym_config.yaml")
TEAMS_CONFIG = str(ROOT / "scripts" / "configs" / "teams_config.yaml")
QUIET = ["--no-progress", "--set", "trainer.stop_at_return=null", "trainer.eval_every=null"]
QUIET += ["trainer.eval_episodes=0"]  # no evaluation: these runs only need weights


def trained(tmp_path: Path, config: str, *settings: str, iterations: int = 2) -> Path:
    run = tmp_path / "run"
    args = ["train", "-c", config, "-i", str(iterations), "--run-dir", str(run)]
    assert main([*args, *QUIET, *settings]) == 0
    return run


def observations(
    group: MacroAgent, policy: str, config: RunConfig, steps: int
) -> dict[str, np.ndarray]:
    """Real observations of ``policy``'s agents: ``steps`` random-action steps of the env."""
    from coltra.collectors import join_policy_actions, plan_policies, policy_views, step_env
    from coltra.enjoy import random_policies

    assert config.env is not None
    env = make_env(config.env.update({"backend": "inprocess"}), seed=3)
    try:
        plans = plan_policies(group, env)
        randomly = random_policies(group, env, seed=1)
        batch = env.reset_batch(seed=3)
        seen: list[dict[str, np.ndarray]] = []
        for _ in range(steps):
            views = policy_views(batch.obs, plans)
            seen.append(views[policy].as_dict())
            outputs = randomly.act_policies(views)
            batch = step_env(env, join_policy_actions(outputs, plans, len(env.agent_names)))
    finally:
        env.close()
    return {name: np.concatenate([s[name] for s in seen]) for name in seen[0]}


def coltra_actions(group: MacroAgent, policy: str, obs: dict[str, np.ndarray]) -> np.ndarray:
    from coltra.buffers import Observation

    action, _, _ = group.policies[policy].act(Observation(**obs), deterministic=True)
    return next(iter(action.as_dict().values()))


def run_onnx(path: Path, obs: dict[str, np.ndarray]) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [item.name for item in session.get_inputs()]
    return session.run(["action"], {name: obs[name] for name in names})[0]


def test_cartpole_onnx_and_torchscript_give_coltras_actions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = trained(tmp_path, GYM_CONFIG)
    capsys.readouterr()
    assert main(["export", str(run), "-o", str(tmp_path / "policy.onnx")]) == 0
    out = capsys.readouterr().out
    assert (
        f"crowd: {tmp_path / 'policy.onnx'} (inputs: vector ['batch', 4] float32; output: action)"
        in out
    )
    assert main(["export", str(run), "--format", "torchscript", "-o", str(tmp_path / "p.pt")]) == 0
    saved = find_saved_group(run)
    assert saved.config is not None
    obs = observations(saved.group, "crowd", saved.config, steps=40)  # 8 copies x 40
    expected = coltra_actions(saved.group, "crowd", obs)
    assert len(set(expected.tolist())) == 2  # both actions occur: the check can fail
    from_onnx = run_onnx(tmp_path / "policy.onnx", obs)
    assert from_onnx.dtype == np.int64
    np.testing.assert_array_equal(from_onnx, expected)
    scripted = torch.jit.load(str(tmp_path / "p.pt"))
    np.testing.assert_array_equal(scripted(torch.as_tensor(obs["vector"])).numpy(), expected)


@pytest.mark.parametrize("mode", ["logstd", "sde"])  # sde: the mean, without the latent
def test_continuous_actions_with_observation_normalisation_are_clipped_as_the_env_does(
    tmp_path: Path, mode: str
) -> None:
    run = trained(
        tmp_path,
        GYM_CONFIG,
        "env.env_name=Pendulum-v1",
        "model.obs_norm=true",
        f"model.continuous_mode={mode}",
        "trainer.steps=64",
    )
    saved = find_saved_group(run)
    assert saved.config is not None
    model = saved.group.policies["crowd"].model
    assert model is not None and model.obs_normalizer is not None  # type: ignore[union-attr]
    assert float(model.obs_normalizer.count) > 0  # type: ignore[union-attr]
    obs = observations(saved.group, "crowd", saved.config, steps=30)
    with torch.no_grad():  # a confident policy: means far outside [-2, 2], the clip must bite
        model.policy_head.weight.mul_(300.0)  # type: ignore[union-attr]
    raw = coltra_actions(saved.group, "crowd", obs)
    assert (np.abs(raw) > 2.0).any()
    path = export_policy(saved.group.policies["crowd"], tmp_path / "pendulum.onnx", "onnx")
    np.testing.assert_allclose(run_onnx(path, obs), np.clip(raw, -2.0, 2.0), rtol=1e-5, atol=1e-5)


def test_masked_actions_are_never_chosen_by_the_exported_policy(tmp_path: Path) -> None:
    config = RunConfig().override(
        ["env.kind=probe", "env.env_name=masked", "env.workers=4", "env.backend=inprocess"]
    )
    env = make_env(config.env, seed=0)  # type: ignore[arg-type]
    try:
        group = make_group(config, env, init=False)
    finally:
        env.close()
    agent = group.policies[group.policy_names[0]]
    assert sorted(policy_inputs(agent)) == ["action_mask", "vector"]
    # Every mask with at least one legal action, twice: the untrained policy's favourite is
    # illegal in many of them.
    masks = np.array([[int(b) for b in f"{m:04b}"] for m in range(1, 16)] * 2, np.int8)
    obs = {"vector": np.ones((len(masks), 1), np.float32), "action_mask": masks}
    expected = coltra_actions(group, group.policy_names[0], obs)
    path = export_policy(agent, tmp_path / "masked.onnx", "onnx")
    chosen = run_onnx(path, obs)
    np.testing.assert_array_equal(chosen, expected)
    assert (masks[np.arange(len(masks)), chosen] == 1).all()
    assert len(set(chosen.tolist())) > 1


def test_several_policies_give_one_file_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = trained(tmp_path, TEAMS_CONFIG)
    capsys.readouterr()
    assert main(["export", str(run), "-o", str(tmp_path / "teams.onnx")]) == 0
    assert sorted(p.name for p in tmp_path.glob("teams_*.onnx")) == [
        "teams_attackers.onnx",
        "teams_defenders.onnx",
    ]
    saved = find_saved_group(run)
    for policy, size in (("attackers", 3), ("defenders", 5)):
        codec = ObservationCodec(saved.group.policies[policy].model.observation_space)  # type: ignore[union-attr]
        assert codec.fields["vector"][0] == (size,)
        obs = {"vector": np.random.default_rng(0).normal(size=(16, size)).astype(np.float32)}
        np.testing.assert_array_equal(
            run_onnx(tmp_path / f"teams_{policy}.onnx", obs),
            coltra_actions(saved.group, policy, obs),
        )
    assert main(["export", str(run), "-o", str(tmp_path / "a.onnx"), "--policy", "attackers"]) == 0
    assert (tmp_path / "a.onnx").is_file()


def test_a_model_the_tracer_cannot_follow_is_a_clear_error(tmp_path: Path) -> None:
    import gymnasium as gym

    from coltra.agents import DAgent
    from coltra.models import MLPModel

    class SpectralModel(MLPModel):
        """Reads its input through an FFT, which ONNX has no operator for."""

        def encode(self, obs):  # type: ignore[no-untyped-def]
            return torch.fft.fft(super().encode(obs)).real

    space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    agent = DAgent(SpectralModel({}, observation_space=space, action_space=gym.spaces.Discrete(2)))
    with pytest.raises(
        ExportError, match=r"policy 'spectral' \(SpectralModel\) cannot be traced for onnx: .*fft"
    ):
        export_policy(agent, tmp_path / "s.onnx", "onnx", name="spectral")
    assert not (tmp_path / "s.onnx").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/missing", "-o", "{tmp}/p.onnx"], r"'.*missing' does not exist"),
        (["{run}", "-o", "{tmp}/no/p.onnx"], r"is not a directory"),
        (["{run}", "-o", "{tmp}/p.onnx", "--policy", "nobody"], r"no policy \['nobody'\]"),
        (["{run}", "-o", "{tmp}/p.onnx", "--format", "tflite"], r"invalid choice: 'tflite'"),
    ],
    ids=["missing", "directory", "policy", "format"],
)
def test_bad_input_is_one_clear_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ROOT / "tests" / "no-run-here"
    filled = [
        arg.format(run=_tiny_run(tmp_path) if "{run}" in args else run, tmp=tmp_path)
        for arg in args
    ]
    capsys.readouterr()
    assert main(["export", *filled]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), lines


def _tiny_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    if not run.exists():
        trained(tmp_path, GYM_CONFIG, iterations=1)
    return run


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_recurrent_policy_takes_and_returns_its_memory(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17: the exported file steps like Coltra's agent when each step's memory
    outputs are fed back in (zeros at the start)."""
    run = trained(tmp_path, GYM_CONFIG, f"model.recurrent={kind}", "model.recurrent_size=8")
    capsys.readouterr()
    assert main(["export", str(run), "-o", str(tmp_path / "policy.onnx")]) == 0
    parts = 2 if kind == "lstm" else 1  # the policy core's (h, c) or h: no value memory
    memory = "".join(f", memory_{k} ['batch', 8] float32" for k in range(parts))
    outputs = ", ".join(["action", *(f"next_memory_{k}" for k in range(parts))])
    assert (
        f"(inputs: vector ['batch', 4] float32{memory}; outputs: {outputs})"
        in capsys.readouterr().out
    )
    assert main(["export", str(run), "--format", "torchscript", "-o", str(tmp_path / "p.pt")]) == 0
    saved = find_saved_group(run)
    assert saved.config is not None
    agent = saved.group.policies["crowd"]
    obs = observations(saved.group, "crowd", saved.config, steps=5)["vector"]  # [40, 4]
    steps = obs.reshape(5, 8, 4)  # five steps of eight rows
    session = onnxruntime.InferenceSession(
        str(tmp_path / "policy.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [item.name for item in session.get_inputs()] == [
        "vector",
        *(f"memory_{k}" for k in range(parts)),
    ]
    scripted = torch.jit.load(str(tmp_path / "p.pt"))
    from coltra.buffers import Observation

    state = agent.get_initial_state(8)
    memory = [part.numpy() for part in state]
    script_memory = list(state)
    memory = memory[:parts]
    script_memory = script_memory[:parts]
    for t in range(5):
        action, state, _ = agent.act(Observation(vector=steps[t]), state, deterministic=True)
        feed = {"vector": steps[t], **{f"memory_{k}": m for k, m in enumerate(memory)}}
        from_onnx, *memory = session.run(None, feed)
        np.testing.assert_array_equal(from_onnx, action["discrete"])
        for mine, theirs in zip(state[:parts], memory):  # the policy core's part comes first
            np.testing.assert_allclose(theirs, mine.numpy(), atol=1e-5)
        from_script, *script_memory = scripted(torch.as_tensor(steps[t]), *script_memory)
        np.testing.assert_array_equal(from_script.numpy(), action["discrete"])


def test_a_dict_action_exports_as_its_joint_row(tmp_path: Path) -> None:
    """Issue 17: each category's start added, the Box part clipped, in the joint layout."""
    import gymnasium as gym

    from coltra.agents import JointAgent
    from coltra.buffers import Observation
    from coltra.models import MLPModel

    space = gym.spaces.Dict(
        {"move": gym.spaces.Discrete(3, start=-1), "aim": gym.spaces.Box(-0.1, 0.1, (2,))}
    )
    torch.manual_seed(0)
    model = MLPModel({"sigma0": 1.0}, gym.spaces.Box(-1, 1, (4,)), space)
    with torch.no_grad():
        model.policy_head.bias[:] = torch.tensor([5.0, -5.0, 0.0, 0.0, 0.0])  # aim, then move  # type: ignore[index,union-attr]
    agent = JointAgent(model)
    export_policy(agent, tmp_path / "joint.onnx", "onnx")
    obs = np.random.default_rng(0).uniform(-1, 1, (16, 4)).astype(np.float32)
    action, _, _ = agent.act(Observation(vector=obs), deterministic=True)
    from_onnx = run_onnx(tmp_path / "joint.onnx", {"vector": obs})
    assert from_onnx.shape == (16, 3)  # Gymnasium sorts the keys: aim (2 slots), move (1)
    np.testing.assert_allclose(from_onnx[:, 2], action["joint"][:, 2])  # -1, 0 or 1
    assert set(from_onnx[:, 2].tolist()) <= {-1.0, 0.0, 1.0}
    np.testing.assert_allclose(
        from_onnx[:, :2], np.clip(action["joint"][:, :2], -0.1, 0.1), atol=1e-6
    )
    assert from_onnx[:, 0].max() == pytest.approx(0.1) and from_onnx[:, 1].min() == pytest.approx(
        -0.1
    )


def test_a_recurrent_policy_with_a_state_critic_exports_without_the_state(
    tmp_path: Path,
) -> None:
    """The exported file needs neither the critic's field nor the value core's memory."""
    import gymnasium as gym

    from coltra.agents import DAgent
    from coltra.buffers import Observation
    from coltra.models import MLPModel

    space = gym.spaces.Dict(
        {"vector": gym.spaces.Box(-1, 1, (3,)), "state": gym.spaces.Box(-1, 1, (5,))}
    )
    agent = DAgent(MLPModel({"recurrent": "gru", "critic": "state"}, space, gym.spaces.Discrete(2)))
    export_policy(agent, tmp_path / "p.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "p.onnx"))
    assert [item.name for item in session.get_inputs()] == ["vector", "memory_0"]
    obs = np.random.default_rng(0).uniform(-1, 1, (6, 3)).astype(np.float32)
    state = agent.get_initial_state(6)  # policy core, then value core
    memory = np.zeros((6, 64), np.float32)
    for _ in range(3):  # acting without the state field keeps the value core's part
        action, state, _ = agent.act(Observation(vector=obs), state, deterministic=True)
        from_onnx, memory = session.run(None, {"vector": obs, "memory_0": memory})
        np.testing.assert_array_equal(from_onnx, action["discrete"])
        np.testing.assert_allclose(memory, state[0].numpy(), atol=1e-5)
        assert not state[1].any()  # the value core never stepped
