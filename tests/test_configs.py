"""Behaviour of the config convention: building, updating, YAML files, overrides and errors."""

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field, ValidationError

from coltra.configs import (
    Config,
    ConfigError,
    EnvConfig,
    Float,
    Int,
    List,
    MLPConfig,
    ModelConfig,
    PolicyConfig,
    PPOConfig,
    RunConfig,
    TrainerConfig,
    YamlValue,
    finish_run_config,
    load_yaml_mapping,
    register_model_config,
)

ALL_CONFIGS = [MLPConfig, PPOConfig, EnvConfig, TrainerConfig, RunConfig]


def error_of(build: Any) -> str:
    """The message of the ConfigError that ``build()`` raises."""
    with pytest.raises(ConfigError) as info:
        build()
    return str(info.value)


# ----------------------------------------------------------------------------- defaults


def test_defaults_are_the_documented_ones() -> None:
    config = RunConfig()
    assert config.model == MLPConfig()
    assert config.model.to_dict() == {
        "class": "MLPModel",
        "input_size": 0,
        "num_actions": 0,
        "discrete": None,
        "hidden_sizes": [64, 64],
        "activation": "tanh",
        "initializer": "orthogonal",
        "policy_head_gain": 0.01,
        "value_head_gain": 1.0,
        "continuous_mode": "logstd",
        "sigma0": 0.5,
        "sde_every": 4,
        "image_encoder": "flatten",
        "cnn_channels": [16, 32],
        "encoders": {},
        "encoder_sizes": [64],
        "share_encoders": None,
        "shared_backbone": False,
        "critic": "local",
        "critic_own_obs": True,
        "action_mask_input": False,
        "obs_norm": False,
        "value_norm": False,
        "share_actor": True,
        "share_critic": True,
        "recurrent": "none",
        "recurrent_size": 64,
    }
    assert config.ppo.to_dict() == {
        "lr": 2.5e-4,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "epochs": 4,
        "num_minibatches": 4,
        "minibatch_size": None,
        "sequence_length": 32,
        "clip_coef": 0.2,
        "clip_vloss": True,
        "value_clip": "max",
        "vf_coef": 0.5,
        "value_loss": "mse",
        "huber_delta": 10.0,
        "ent_coef": 0.0,
        "ent_coef_final": None,
        "max_grad_norm": 0.5,
        "target_kl": None,
        "norm_adv": True,
        "reward_scaling": False,
        "norm_adv_over": "minibatch",
        "anneal_lr": False,
        "anneal_iterations": None,
        "adam_eps": 1e-5,
        "seed": 0,
    }
    assert config.env.to_dict() == {
        "kind": "gym",
        "env_name": "CartPole-v1",
        "env_kwargs": {},
        "wrappers": [],
        "workers": 8,
        "envs_per_worker": 1,
        "backend": "auto",
        "step_timeout": None,
        "shared_memory": False,
        "overlap": True,
        "ray_address": None,
        "ray_num_cpus": 1.0,
        "global_state": False,
        "team_observations": False,
        "shared_reward": False,
        "info_action_masks": False,
        "agent_ids": False,
    }
    assert config.trainer.to_dict() == {
        "name": "run",
        "run_dir": None,
        "steps": 128,
        "iterations": 100,
        "save_every": 10,
        "keep_checkpoints": 3,
        "stop_at_return": None,
        "return_window": 20,
        "eval_episodes": 0,
        "eval_every": None,
        "seed": 0,
        "device": "auto",
        "torch_threads": 1,
        "update_threads": None,
        "log_every": 1,
        "snapshot_every": None,
        "on_nonfinite": "raise",
        "restart_crashed_envs": 0,
        "progress": True,
        "wandb": False,
        "wandb_project": "coltra",
        "wandb_entity": None,
    }
    assert list(config.to_dict()) == ["trainer", "ppo", "model", "env", "policies"]
    assert config.policies == {}


def test_list_and_dict_defaults_are_not_shared_between_configs() -> None:
    assert MLPConfig().hidden_sizes is not MLPConfig().hidden_sizes
    assert EnvConfig().env_kwargs is not EnvConfig().env_kwargs


def test_configs_are_frozen() -> None:
    config = PPOConfig()
    with pytest.raises(ValidationError, match="frozen"):
        config.lr = 1.0  # type: ignore[misc]


def test_direct_construction_is_checked_too() -> None:
    assert error_of(lambda: PPOConfig(lr=-1)) == "lr: expected a float > 0, got -1.0"
    assert PPOConfig(lr="1e-4", epochs=np.int64(3)) == PPOConfig(lr=1e-4, epochs=3)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- dicts and updates


def test_from_dict_builds_nested_configs_and_keeps_other_defaults() -> None:
    config = RunConfig.from_dict(
        {"ppo": {"lr": 1e-3, "epochs": 10}, "model": {"hidden_sizes": [32]}, "trainer": {}}
    )
    assert config.ppo == PPOConfig(lr=1e-3, epochs=10)
    assert config.model == MLPConfig(hidden_sizes=[32])
    assert config.trainer == TrainerConfig()
    assert config.env == EnvConfig()


def test_to_dict_round_trips_and_shares_nothing() -> None:
    config = RunConfig().override(["model.hidden_sizes=[8, 9]", "env.env_kwargs={a: [1, 2]}"])
    data = config.to_dict()
    assert RunConfig.from_dict(data) == config
    data["model"]["hidden_sizes"].append(10)
    data["env"]["env_kwargs"]["a"].append(3)
    assert config.model.hidden_sizes == [8, 9]
    assert config.env.env_kwargs == {"a": [1, 2]}


def test_update_changes_only_the_given_nested_keys_and_returns_a_new_config() -> None:
    config = RunConfig.from_dict({"ppo": {"lr": 1e-3, "epochs": 10}, "trainer": {"name": "a"}})
    updated = config.update({"ppo": {"lr": 5e-4}, "model": {"activation": "relu"}})
    assert updated.ppo == PPOConfig(lr=5e-4, epochs=10)
    assert updated.model == MLPConfig(activation="relu")
    assert updated.trainer == config.trainer
    assert updated.env == config.env
    assert config.ppo == PPOConfig(lr=1e-3, epochs=10)  # the original is untouched


def test_update_replaces_list_and_dict_values_whole() -> None:
    config = RunConfig.from_dict({"env": {"env_kwargs": {"a": 1, "b": 2}}})
    updated = config.update({"env": {"env_kwargs": {"c": 3}}, "model": {"hidden_sizes": [5]}})
    assert updated.env.env_kwargs == {"c": 3}
    assert updated.model.hidden_sizes == [5]


def test_update_errors_name_the_full_key() -> None:
    config = RunConfig()
    assert error_of(lambda: config.update({"ppo": {"gamma": 2}})) == (
        "ppo.gamma: expected a float in [0, 1], got 2.0"
    )
    assert error_of(lambda: config.update({"ppo": {"lrr": 1}})).startswith(
        "ppo.lrr: unknown key; did you mean 'lr'?"
    )


# ----------------------------------------------------------------------------- key errors


PPO_KEYS = (
    "lr, gamma, gae_lambda, epochs, num_minibatches, minibatch_size, sequence_length, "
    "clip_coef, clip_vloss, value_clip, vf_coef, value_loss, huber_delta, ent_coef, "
    "ent_coef_final, "
    "max_grad_norm, target_kl, norm_adv, norm_adv_over, reward_scaling, anneal_lr, "
    "anneal_iterations, adam_eps, seed"
)


def test_unknown_nested_key_suggests_the_close_one_and_lists_known_keys() -> None:
    message = error_of(lambda: RunConfig.from_dict({"ppo": {"lrr": 1e-4}}))
    assert message == f"ppo.lrr: unknown key; did you mean 'lr'? (known keys: {PPO_KEYS})"


def test_unknown_top_level_key_suggests_the_close_one() -> None:
    message = error_of(lambda: RunConfig.from_dict({"modle": {}}))
    assert message == (
        "modle: unknown key; did you mean 'model'? (known keys: trainer, ppo, model, env, policies)"
    )
    assert error_of(lambda: PPOConfig.from_dict({"gama": 0.9})).startswith(
        "gama: unknown key; did you mean 'gamma'?"
    )


def test_unknown_key_without_a_close_match_lists_known_keys_only() -> None:
    message = error_of(lambda: RunConfig.from_dict({"zzz": 1}))
    assert message == "zzz: unknown key (known keys: trainer, ppo, model, env, policies)"


def test_non_string_keys_are_config_errors() -> None:
    assert error_of(lambda: PPOConfig.from_dict({1: 2})).startswith("1: unknown key")  # type: ignore[dict-item]


def test_a_section_that_is_not_a_mapping_is_refused() -> None:
    assert error_of(lambda: RunConfig.from_dict({"ppo": 3})) == (
        "ppo: expected a mapping of keys, got 3"
    )
    assert error_of(lambda: RunConfig.from_dict([1, 2])) == (  # type: ignore[arg-type]
        "expected a mapping of keys, got [1, 2]"
    )


# ----------------------------------------------------------------------------- value errors


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ppo": {"lr": "abc"}}, "ppo.lr: expected float, got 'abc'"),
        ({"ppo": {"lr": "1e-4x"}}, "ppo.lr: expected float, got '1e-4x'"),
        ({"ppo": {"lr": float("nan")}}, "ppo.lr: expected float, got nan"),
        ({"ppo": {"lr": True}}, "ppo.lr: expected float, got True"),
        ({"ppo": {"lr": [1]}}, "ppo.lr: expected float, got [1]"),
        ({"ppo": {"epochs": 2.5}}, "ppo.epochs: expected int, got 2.5"),
        ({"ppo": {"epochs": "4"}}, "ppo.epochs: expected int, got '4'"),
        ({"ppo": {"epochs": True}}, "ppo.epochs: expected int, got True"),
        ({"ppo": {"norm_adv": 1}}, "ppo.norm_adv: expected bool (true or false), got 1"),
        ({"ppo": {"norm_adv": "yes"}}, "ppo.norm_adv: expected bool (true or false), got 'yes'"),
        ({"ppo": {"norm_adv": "true"}}, "ppo.norm_adv: expected bool (true or false), got 'true'"),
        ({"ppo": {"minibatch_size": "x"}}, "ppo.minibatch_size: expected int or null, got 'x'"),
        ({"trainer": {"name": 3}}, "trainer.name: expected str, got 3"),
        ({"trainer": {"run_dir": 3}}, "trainer.run_dir: expected str or null, got 3"),
        ({"model": {"hidden_sizes": 64}}, "model.hidden_sizes: expected list of int, got 64"),
        (
            {"model": {"hidden_sizes": [64, "abc"]}},
            "model.hidden_sizes[1]: expected int, got 'abc'",
        ),
        ({"model": {"hidden_sizes": "64"}}, "model.hidden_sizes: expected list of int, got '64'"),
        ({"model": {"discrete": "no"}}, "model.discrete: expected bool or null, got 'no'"),
        (
            {"env": {"env_kwargs": []}},
            "env.env_kwargs: expected mapping of str to any YAML value, got []",
        ),
        ({"env": {"env_kwargs": {1: 2}}}, "env.env_kwargs: keys must be str, got 1"),
        (
            {"env": {"env_kwargs": {"a": {(1, 2): 3}}}},
            "env.env_kwargs.a: keys must be null, bool, number or str, got (1, 2)",
        ),
        (
            {"env": {"env_kwargs": {"f": print}}},
            "env.env_kwargs.f: expected a YAML value (null, bool, number, string, list or "
            "mapping), got <built-in function print>",
        ),
    ],
)
def test_wrong_types_name_the_full_key_the_expected_type_and_the_value(
    data: dict[str, Any], message: str
) -> None:
    assert error_of(lambda: RunConfig.from_dict(data)) == message


def test_list_item_paths_at_the_top_level() -> None:
    message = error_of(lambda: MLPConfig.from_dict({"hidden_sizes": [1, "abc"]}))
    assert message == "hidden_sizes[1]: expected int, got 'abc'"


def test_floats_accept_ints_numpy_numbers_and_float_strings_that_yaml_1_1_leaves_as_text() -> None:
    config = PPOConfig.from_dict({"lr": 1, "gamma": np.float32(0.5), "clip_coef": "3e5"})
    assert config.lr == 1.0 and type(config.lr) is float
    assert config.gamma == 0.5 and type(config.gamma) is float
    assert config.clip_coef == 3e5
    assert PPOConfig.from_dict({"lr": "1e-4"}).lr == 1e-4
    assert PPOConfig.from_dict({"lr": "2.5E-4"}).lr == 2.5e-4


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ppo": {"lr": -1}}, "ppo.lr: expected a float > 0, got -1.0"),
        ({"ppo": {"lr": 0}}, "ppo.lr: expected a float > 0, got 0.0"),
        ({"ppo": {"gamma": 1.5}}, "ppo.gamma: expected a float in [0, 1], got 1.5"),
        ({"ppo": {"epochs": 0}}, "ppo.epochs: expected an int > 0, got 0"),
        ({"ppo": {"vf_coef": -0.1}}, "ppo.vf_coef: expected a float >= 0, got -0.1"),
        ({"ppo": {"minibatch_size": 0}}, "ppo.minibatch_size: expected an int > 0 or null, got 0"),
        ({"ppo": {"target_kl": 0}}, "ppo.target_kl: expected a float > 0 or null, got 0.0"),
        ({"model": {"hidden_sizes": [64, 0]}}, "model.hidden_sizes[1]: expected an int > 0, got 0"),
        ({"model": {"input_size": -1}}, "model.input_size: expected an int >= 0, got -1"),
        ({"env": {"step_timeout": -2}}, "env.step_timeout: expected a float > 0 or null, got -2.0"),
        ({"trainer": {"name": ""}}, "trainer.name: expected a str that is not empty, got ''"),
        (
            {"trainer": {"device": "gpu"}},
            "trainer.device: expected a str that is 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', "
            "got 'gpu'",
        ),
    ],
)
def test_range_errors_say_the_allowed_range(data: dict[str, Any], message: str) -> None:
    assert error_of(lambda: RunConfig.from_dict(data)) == message


def test_literal_choices_are_listed_with_a_suggestion() -> None:
    message = error_of(lambda: RunConfig.from_dict({"model": {"activation": "Relu"}}))
    assert message == (
        "model.activation: expected one of 'tanh', 'relu', 'leaky_relu', 'elu', 'gelu', "
        "got 'Relu'; did you mean 'relu'?"
    )
    assert error_of(lambda: EnvConfig.from_dict({"backend": 1})) == (
        "backend: expected one of 'auto', 'inprocess', 'subprocess', 'ray', got 1"
    )


def test_device_accepts_cuda_with_an_index() -> None:
    assert TrainerConfig(device="cuda:1").device == "cuda:1"


def test_annealing_over_the_whole_run_is_finished_when_the_run_starts() -> None:
    # anneal_iterations: null means the whole run; the run's config fixes it (and nothing
    # else needs a placeholder), so `coltra config --set ppo.anneal_lr=true` is valid.
    config = RunConfig().override(["ppo.anneal_lr=true", "trainer.iterations=30"])
    assert config.ppo.anneal_iterations is None
    assert finish_run_config(config).ppo.anneal_iterations == 30
    explicit = config.override(["ppo.anneal_iterations=10"])
    assert finish_run_config(explicit).ppo.anneal_iterations == 10
    assert finish_run_config(RunConfig()).ppo.anneal_iterations is None  # nothing anneals


def test_finishing_draws_and_records_the_seed_and_the_run_directory(tmp_path: Path) -> None:
    drawn = finish_run_config(RunConfig().override(["trainer.seed=null", "trainer.name=x"]))
    assert drawn.trainer.seed is not None and drawn.ppo.seed == drawn.trainer.seed
    assert re.fullmatch(r"runs/x_\d{8}-\d{6}", drawn.trainer.run_dir or "")
    seeded = finish_run_config(RunConfig().override(["trainer.seed=7", "trainer.run_dir=here"]))
    assert (seeded.trainer.seed, seeded.ppo.seed, seeded.trainer.run_dir) == (7, 7, "here")
    python = finish_run_config(RunConfig(), built_in_python=True)
    assert python.model is None and python.env is None
    assert "model: null\nenv: null\n" in python.to_yaml(tmp_path / "c.yaml")
    assert RunConfig.from_yaml(tmp_path / "c.yaml") == python


# ----------------------------------------------------------------------------- other field kinds


class _Inner(Config):
    width: Int = Field(1, gt=0, description="A width.")


class _Demo(Config):
    scales: List[Annotated[Float, Field(ge=0, lt=1)]] = Field([], description="Floats.")
    weights: dict[str, Annotated[Int, Field(gt=0)]] = Field({}, description="Named ints.")
    tags: List[str] = Field(["a"], description="Some words.")
    extra: dict[str, YamlValue] = Field({}, description="Anything YAML.")
    mode: Literal["x", "y"] | None = Field(None, description="A choice or nothing.")
    inner: _Inner | None = Field(None, description="An optional nested config.")
    chance: Float = Field(0.5, ge=0, le=1, description="A probability.")


def test_lists_dicts_optional_choices_and_optional_nested_configs() -> None:
    demo = _Demo.from_dict(
        {
            "scales": (0, 0.5),
            "weights": {"a": 2},
            "mode": "y",
            "inner": {},
            "extra": {"n": np.int64(2)},
        }
    )
    assert demo.scales == [0.0, 0.5]  # a tuple is a list, an int a float
    assert demo.weights == {"a": 2}
    assert demo.mode == "y"
    assert demo.inner == _Inner()
    assert demo.extra == {"n": 2} and type(demo.extra["n"]) is int
    assert _Demo.from_dict(demo.to_dict()) == demo


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"scales": [0.5, 1]}, "scales[1]: expected a float in [0, 1), got 1.0"),
        ({"weights": {"a": "b"}}, "weights.a: expected int, got 'b'"),
        ({"weights": {"a": 0}}, "weights.a: expected an int > 0, got 0"),
        ({"tags": ["a", 1]}, "tags[1]: expected str, got 1"),
        ({"mode": "z"}, "mode: expected one of 'x', 'y' or null, got 'z'"),
        ({"inner": {"width": 0}}, "inner.width: expected an int > 0, got 0"),
        (
            {"inner": {"wdth": 2}},
            "inner.wdth: unknown key; did you mean 'width'? (known keys: width)",
        ),
        ({"inner": 3}, "inner: expected a mapping of keys, got 3"),
        ({"chance": -0.5}, "chance: expected a float in [0, 1], got -0.5"),
        ({"chance": 10**400}, f"chance: expected float, got {10**400!r:.77}... (too large)"),
        (
            {"extra": {"a": {"b": [print]}}},
            "extra.a.b[0]: expected a YAML value (null, bool, number, string, list or "
            "mapping), got <built-in function print>",
        ),
    ],
)
def test_errors_inside_lists_dicts_and_optional_configs(data: dict[str, Any], message: str) -> None:
    assert error_of(lambda: _Demo.from_dict(data)) == message


def test_a_field_without_a_doc_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match=r"Undocumented\.x has no doc"):

        class Undocumented(Config):
            x: int = 1


# ----------------------------------------------------------------------------- YAML files


def test_yaml_round_trip_through_a_file(tmp_path: Path) -> None:
    config = RunConfig().override(
        [
            "trainer.name=yes",  # a string YAML 1.1 would read as a bool: must be quoted
            "trainer.run_dir=1e3",  # a string YAML 1.2 would read as a float
            "ppo.lr=3e-4",
            "ppo.adam_eps=1e-8",
            "ppo.target_kl=0.015",
            "model.hidden_sizes=[256, 128, 64]",
            "env.env_kwargs={max_cycles: 100, shape: [2, 3], nested: {on: off}}",
            "env.step_timeout=.inf",
        ]
    )
    path = tmp_path / "run" / "config.yaml"
    text = config.to_yaml(path)
    assert path.read_text(encoding="utf-8") == text
    loaded = RunConfig.from_yaml(path)
    assert loaded == config
    assert loaded.to_yaml() == text
    assert loaded.trainer.name == "yes"
    assert loaded.trainer.run_dir == "1e3"
    assert loaded.env.env_kwargs == {"max_cycles": 100, "shape": [2, 3], "nested": {"on": "off"}}
    assert "hidden_sizes: [256, 128, 64]" in text
    assert list(tmp_path.glob("run/.*")) == []  # no temporary file left behind


def test_to_yaml_without_a_path_only_returns_text() -> None:
    assert RunConfig().to_yaml().startswith("trainer:\n  name: run\n")


def test_yaml_reads_exponent_floats_and_refuses_yes_for_booleans(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("ppo:\n  lr: 1e-4\n  clip_coef: 3E5\n  norm_adv: false\n")
    config = RunConfig.from_yaml(path)
    assert (config.ppo.lr, config.ppo.clip_coef, config.ppo.norm_adv) == (1e-4, 3e5, False)
    path.write_text("trainer:\n  progress: yes\n")
    assert error_of(lambda: RunConfig.from_yaml(path)) == (
        f"trainer.progress: expected bool (true or false), got 'yes' (in {path})"
    )


def test_yaml_dates_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  name: 2024-01-01\nenv:\n  env_kwargs: {day: 2024-01-02}\n")
    config = RunConfig.from_yaml(path)
    assert config.trainer.name == "2024-01-01"
    assert config.env.env_kwargs == {"day": "2024-01-02"}


def test_value_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  hidden_sizes: [64, abc]\n")
    assert error_of(lambda: RunConfig.from_yaml(path)) == (
        f"model.hidden_sizes[1]: expected int, got 'abc' (in {path})"
    )


def test_an_empty_file_means_all_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing set\n")
    assert RunConfig.from_yaml(path) == RunConfig()


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert error_of(lambda: RunConfig.from_yaml(path)) == f"config file '{path}' does not exist"
    assert error_of(lambda: load_yaml_mapping(tmp_path)).endswith("is a directory, not a YAML file")


def test_invalid_yaml_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("ppo:\n  lr: 1e-4\n  gamma: [0.9\nmodel: {}\n")
    message = error_of(lambda: RunConfig.from_yaml(path))
    assert re.fullmatch(rf"{re.escape(str(path))}:4:\d+: not valid YAML: .+", message), message


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("ppo:\n  lr: 1e-4\nppo:\n  lr: 1e-3\n")
    assert error_of(lambda: load_yaml_mapping(path)) == (
        f"{path}:3:1: not valid YAML: found the key 'ppo' twice (while reading a mapping)"
    )


def test_python_tags_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f'ppo: !!python/object/apply:os.system ["touch {marker}"]\n')
    message = error_of(lambda: RunConfig.from_yaml(path))
    assert message == (
        f"{path}:1:6: refused the Python tag '!!python/object/apply:os.system': config files "
        "hold plain data only, and Python objects in YAML can run code"
    )
    override = f"trainer.name=!!python/object/apply:os.system ['touch {marker}']"
    RunConfig().override([override])  # read as plain text at worst
    assert not marker.exists()


def test_other_tags_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "tag.yaml"
    path.write_text("ppo: !custom 1\n")
    assert (
        error_of(lambda: load_yaml_mapping(path)) == f"{path}:1:6: unsupported YAML tag '!custom'"
    )


def test_top_level_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- ppo\n- model\n")
    assert error_of(lambda: RunConfig.from_yaml(path)) == (
        f"{path}: top level must be a mapping of keys, got a list: ['ppo', 'model']"
    )


def test_load_yaml_mapping_returns_the_plain_mapping(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\nb: [x, 2.5e-3]\n")
    assert load_yaml_mapping(path) == {"a": 1, "b": ["x", 2.5e-3]}


# ----------------------------------------------------------------------------- overrides


def test_overrides_set_nested_values_from_yaml_text() -> None:
    base = RunConfig()
    config = base.override(
        [
            "ppo.lr=1e-4",
            "model.hidden_sizes=[32, 32]",
            "trainer.name=run",
            "trainer.seed=null",
            "ppo.anneal_lr=true",
            "ppo.anneal_iterations=50",
            "env.env_kwargs.max_cycles=100",
            "env.env_kwargs.render_mode=human",
        ]
    )
    assert config.ppo.lr == 1e-4
    assert config.model.hidden_sizes == [32, 32]
    assert config.trainer.seed is None
    assert config.ppo.anneal_lr and config.ppo.anneal_iterations == 50
    assert config.env.env_kwargs == {"max_cycles": 100, "render_mode": "human"}
    assert base == RunConfig()


def test_overrides_apply_in_order_and_text_fields_keep_their_raw_text() -> None:
    config = RunConfig().override(
        ["ppo.lr=1", "ppo.lr=0.5", "trainer.name=2024", "trainer.name= a b "]
    )
    assert config.ppo.lr == 0.5
    assert config.trainer.name == "a b"
    assert RunConfig().override(["trainer.name=2024"]).trainer.name == "2024"
    assert PPOConfig().override("lr=3e-4").lr == 3e-4  # one string is one assignment


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        (
            "ppo.lrr=1e-4",
            f"ppo.lrr: unknown key; did you mean 'lr'? (known keys: {PPO_KEYS}) "
            "(in override 'ppo.lrr=1e-4')",
        ),
        ("ppo.lr=abc", "ppo.lr: expected float, got 'abc' (in override 'ppo.lr=abc')"),
        ("ppo.lr=-1", "ppo.lr: expected a float > 0, got -1.0 (in override 'ppo.lr=-1')"),
        (
            "model.hidden_sizes=[32, x]",
            "model.hidden_sizes[1]: expected int, got 'x' "
            "(in override 'model.hidden_sizes=[32, x]')",
        ),
        (
            "trainer.progress=yes",
            "trainer.progress: expected bool (true or false), got 'yes' "
            "(in override 'trainer.progress=yes')",
        ),
        ("ppo.lr", "expected key=value, e.g. ppo.lr=3e-4 (in override 'ppo.lr')"),
        ("=3", "expected key=value, e.g. ppo.lr=3e-4 (in override '=3')"),
        (
            "ppo.lr.x=3",
            "ppo.lr: holds a single value, so it has no key 'x' (in override 'ppo.lr.x=3')",
        ),
        (
            "ppo={lr: 1}",
            "ppo: is a section; set its keys one by one, e.g. ppo.lr=... "
            "(in override 'ppo={lr: 1}')",
        ),
        (
            "env.env_kwargs.a.b=1",
            "env.env_kwargs.a: holds a single value, so it has no key 'b' "
            "(in override 'env.env_kwargs.a.b=1')",
        ),
    ],
)
def test_override_errors(assignment: str, message: str) -> None:
    config = RunConfig().override(["env.env_kwargs.a=5"])
    assert error_of(lambda: config.override([assignment])) == message


def test_an_error_names_the_override_or_the_file_that_gave_the_value(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("ppo:\n  lr: -1\n  gamma: 0.9\n")
    assert error_of(lambda: RunConfig.from_yaml(path)) == (
        f"ppo.lr: expected a float > 0, got -1.0 (in {path})"
    )
    fixed = RunConfig.from_yaml(path, ["ppo.lr=3e-4", "ppo.gamma=0.95"])
    assert (fixed.ppo.lr, fixed.ppo.gamma) == (3e-4, 0.95)
    # The file's bad value is fixed by an override; a bad override names itself, not the file.
    message = error_of(lambda: RunConfig.from_yaml(path, ["ppo.lr=1e-3", "ppo.gamma=2"]))
    assert message == "ppo.gamma: expected a float in [0, 1], got 2.0 (in override 'ppo.gamma=2')"
    # The last of two overrides of one key is the one named.
    message = error_of(lambda: RunConfig().override(["ppo.lr=1", "ppo.lr=-1"]))
    assert message.endswith("(in override 'ppo.lr=-1')")


# ----------------------------------------------------------------------------- describe


@pytest.mark.parametrize("cls", ALL_CONFIGS)
def test_every_field_of_every_config_has_a_doc(cls: type[Config]) -> None:
    for name, field in cls.model_fields.items():
        assert field.description and field.description.strip(), f"{cls.__name__}.{name}"


def test_describe_lists_every_key_with_type_default_and_doc() -> None:
    rows = RunConfig.describe()

    def flat(data: dict[str, Any], prefix: str = "") -> list[str]:
        keys = []
        for key, value in data.items():
            if isinstance(value, dict) and key not in ("env_kwargs", "encoders"):
                keys += flat(value, f"{prefix}{key}.")
            else:
                keys.append(prefix + key)
        return keys

    policy_keys = [f"policies.<name>.{key}" for key in PolicyConfig.model_fields]
    assert [row.key for row in rows] == [*flat(RunConfig().to_dict()), "policies", *policy_keys]
    assert all(row.doc and row.type for row in rows)
    by_key = {row.key: row for row in rows}
    assert by_key["ppo.lr"] == ("ppo.lr", "float", 2.5e-4, "Adam learning rate (CleanRL ppo.py).")
    assert by_key["model.hidden_sizes"].default == [64, 64]
    assert by_key["trainer.seed"].type == "int or null"
    assert [row.key for row in PPOConfig.describe()] == PPO_KEYS.split(", ")


def test_describe_markdown_has_a_row_per_key_and_escapes_pipes() -> None:
    table = RunConfig.describe_markdown()
    lines = table.splitlines()
    assert lines[0] == "| key | type | default | doc |"
    assert len(lines) == 2 + len(RunConfig.describe())
    assert "| `ppo.lr` | float | `0.00025` | Adam learning rate (CleanRL ppo.py). |" in lines
    assert "| `model.hidden_sizes` | list of int | `[64, 64]` |" in table
    assert all(line.count(" | ") == 3 for line in lines)


# ----------------------------------------------------------------------------- model sections


class _TinyConfig(ModelConfig):
    width: Int = Field(8, gt=0, description="Hidden units.")


register_model_config("TinyForConfigTests", _TinyConfig)


def test_model_class_picks_the_config_section_of_a_registered_model() -> None:
    config = RunConfig.from_dict({"model": {"class": "TinyForConfigTests", "width": 3}})
    assert config.model == _TinyConfig(width=3)
    assert config.to_dict()["model"] == {"class": "TinyForConfigTests", "width": 3}
    assert RunConfig.from_dict(config.to_dict()) == config
    assert RunConfig().override(["model.class=TinyForConfigTests", "model.width=5"]) == (
        RunConfig(model=_TinyConfig(width=5))
    )
    # Changing the class by update replaces the section instead of mixing two.
    assert RunConfig().update({"model": {"class": "TinyForConfigTests"}}).model == _TinyConfig()
    assert RunConfig().model == MLPConfig()  # the default class


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {"class": "MLPModle"},
            "model.class: unknown model class 'MLPModle'; did you mean 'MLPModel'? (registered:",
        ),
        (
            {"class": "TinyForConfigTests", "hidden_sizes": [8]},
            "model.hidden_sizes: unknown key (known keys: width)",
        ),
        ({"class": "TinyForConfigTests", "width": 0}, "model.width: expected an int > 0, got 0"),
        ({"class": 3}, "model.class: unknown model class 3 (registered:"),
    ],
)
def test_model_section_errors(model: dict[str, Any], message: str) -> None:
    assert error_of(lambda: RunConfig.from_dict({"model": model})).startswith(message)


def test_a_model_config_read_alone_checks_its_class_key() -> None:
    assert MLPConfig.from_dict({"class": "MLPModel", "hidden_sizes": [4]}).hidden_sizes == [4]
    assert error_of(lambda: MLPConfig.from_dict({"class": "TinyForConfigTests"})) == (
        "class: MLPConfig is the config of model 'MLPModel', got 'TinyForConfigTests'"
    )


def test_json_schema_describes_config_files_for_editors() -> None:
    schema = RunConfig.json_schema()
    json.dumps(schema)  # plain JSON
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"trainer", "ppo", "model", "env", "policies"}
    policy_model = schema["$defs"]["PolicyConfig"]["properties"]["model"]
    assert policy_model == schema["properties"]["model"] | {
        "description": PolicyConfig.model_fields["model"].description
    }
    ppo = schema["$defs"]["PPOConfig"]["properties"]
    assert ppo["lr"]["exclusiveMinimum"] == 0 and ppo["lr"]["description"].startswith("Adam")
    variants = schema["properties"]["model"]["anyOf"][0]["oneOf"]
    names = {
        schema["$defs"][v["$ref"].split("/")[-1]]["properties"]["class"]["const"] for v in variants
    }
    assert {"MLPModel", "TinyForConfigTests"} <= names
    tiny = schema["$defs"]["_TinyConfig"]
    assert tiny["required"] == ["class"] and tiny["properties"]["width"]["default"] == 8


# ----------------------------------------------------------------------------- property tests

_yaml_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.sampled_from(["yes", "off", "~", "null", "1e3", "-2E-4", ".inf", "2024-01-01", "- a"])
)
_yaml_values = st.recursive(
    _yaml_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(min_size=1), kwargs=st.dictionaries(st.text(), _yaml_values, max_size=3))
def test_yaml_round_trip_keeps_any_text_and_any_yaml_value(
    tmp_path: Path, name: str, kwargs: dict[str, Any]
) -> None:
    config = RunConfig().update({"trainer": {"name": name}, "env": {"env_kwargs": kwargs}})
    path = tmp_path / "config.yaml"
    text = config.to_yaml(path)
    loaded = RunConfig.from_yaml(path)
    assert loaded == config
    assert loaded.to_yaml() == text


_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_ppo_keys = st.sampled_from(PPO_KEYS.split(", ")) | st.text(max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_ppo_keys, _junk, max_size=5))
def test_junk_either_builds_or_raises_config_error(data: dict[str, Any]) -> None:
    try:
        config = PPOConfig.from_dict(data)
    except ConfigError:
        return
    assert PPOConfig.from_dict(config.to_dict()) == config


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=3))
def test_junk_overrides_either_apply_or_raise_config_error(assignments: list[str]) -> None:
    try:
        config = RunConfig().override(assignments)
    except ConfigError:
        return
    assert RunConfig.from_dict(config.to_dict()) == config


# ----------------------------------------------------------------------------- policies


def test_a_policies_section_reads_each_policy_with_defaults() -> None:
    config = RunConfig.from_dict(
        {
            "trainer": {"snapshot_every": 5},
            "policies": {
                "red": {"agents": ["a_", "c"], "ppo": {"lr": 1e-3}, "model": {"hidden_sizes": [8]}},
                "blue": {"frozen": True, "snapshot_of": "red", "init_from": "runs/x:red"},
            },
        }
    )
    red, blue = config.policies["red"], config.policies["blue"]
    assert red.prefixes("red") == ["a_", "c"] and blue.prefixes("blue") == ["blue"]
    assert isinstance(red.model, MLPConfig) and red.model.hidden_sizes == [8]
    assert blue.model is None and red.ppo == {"lr": 1e-3}
    assert RunConfig.from_dict(config.to_dict()) == config
    # --set reaches into a policy, its PPO keys and its model.
    changed = config.override(["policies.red.ppo.epochs=2", "policies.blue.model.hidden_sizes=[4]"])
    assert changed.policies["red"].ppo == {"lr": 1e-3, "epochs": 2}
    assert changed.policies["blue"].model == MLPConfig(hidden_sizes=[4])


@pytest.mark.parametrize(
    ("policies", "trainer", "message"),
    [
        ({"a": {"ppo": {"lrr": 1}}}, {}, "policies.a.ppo.lrr: unknown key; did you mean 'lr'?"),
        ({"a": {"ppo": {"lr": -1}}}, {}, "policies.a.ppo.lr: expected a float > 0, got -1.0"),
        ({"a": {"ppo": {"seed": 1}}}, {}, "policies.a.ppo.seed: is run-wide"),
        ({"a/b": {}}, {}, "policies.a/b: policy name 'a/b' must be letters, digits"),
        (
            {"a": {"agents": ["x"]}, "b": {"agents": ["x"]}},
            {},
            "policies.b.agents: prefix 'x' is taken by policy 'a' already",
        ),
        ({"a": {"agents": []}}, {}, "policies.a.agents: expected at least one agent-name prefix"),
        ({"a": {"frozn": True}}, {}, "policies.a.frozn: unknown key; did you mean 'frozen'?"),
        (
            {"a": {}, "b": {"snapshot_of": "a"}},
            {"snapshot_every": 2},
            "policies.b.snapshot_of: a policy that takes snapshots must be frozen: true",
        ),
        (
            {"a": {}, "b": {"snapshot_of": "c", "frozen": True}},
            {"snapshot_every": 2},
            "policies.b.snapshot_of: names no policy: 'c' (policies: a, b)",
        ),
        (
            {"a": {}, "b": {"snapshot_of": "a", "frozen": True}},
            {},
            "policies.b.snapshot_of: needs trainer.snapshot_every",
        ),
        (
            {"a": {"frozen": True}, "b": {"snapshot_of": "a", "frozen": True}},
            {"snapshot_every": 2},
            "policies.b.snapshot_of: must name a learning policy to copy",
        ),
        ({"a": {"model": {"hidden_sizes": [0]}}}, {}, "policies.a.model.hidden_sizes[0]: expected"),
        ({"a": {"model": {"class": "Nope"}}}, {}, "policies.a.model.class: unknown model class"),
        ({"a": {}}, {"stop_at_return": {"bb": 1}}, "trainer.stop_at_return.bb: names no policy"),
    ],
)
def test_a_bad_policies_section_names_the_key(
    policies: dict[str, Any], trainer: dict[str, Any], message: str
) -> None:
    assert error_of(
        lambda: RunConfig.from_dict({"policies": policies, "trainer": trainer})
    ).startswith(message)


def test_a_policy_that_anneals_gets_the_runs_schedule_length() -> None:
    config = RunConfig.from_dict(
        {"trainer": {"iterations": 7}, "policies": {"a": {"ppo": {"anneal_lr": True}}}}
    )
    assert finish_run_config(config).ppo.anneal_iterations == 7


def test_value_clip_without_clip_vloss_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"value_clip 'clipped'.*clip_vloss is false"):
        PPOConfig.from_dict({"clip_vloss": False, "value_clip": "clipped"})
