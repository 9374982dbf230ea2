"""Does masking change the outcome? The masked probe with and without its action masks.

``MaskedActionEnv`` (``coltra.envs.probe_envs``): 4 actions paying 1, 0.75, 0.5, 0.25;
action 0 is never legal, each other one is legal with probability 1/2 (at least one is).
The best legal action pays 4.25 / 7 ~ 0.607 on average. Three runs of the same PPO:

- ``masked``: the env gives the mask and raises on an illegal action;
- ``unmasked, illegal raises``: the mask is hidden; the first illegal action crashes the run;
- ``unmasked, illegal pays -1``: the mask is hidden and an illegal action costs 1; the best
  a policy that cannot see the mask does is action 1 every time: 0 on average.

    python benchmarks/masks.py            # ~1 minute on 2 cores
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from coltra.configs import RunConfig
from coltra.trainers import PPOCrowdTrainer

BEST_LEGAL = 4.25 / 7

VARIANTS: dict[str, dict[str, Any]] = {
    "masked": {"illegal": "raise", "masks": True},
    "unmasked, illegal raises": {"illegal": "raise", "masks": False},
    "unmasked, illegal pays -1": {"illegal": "penalty", "masks": False},
}


def run(variant: str, seed: int, iterations: int, root: Path) -> dict[str, Any]:
    config = RunConfig.from_dict(
        {
            "trainer": {
                "run_dir": str(root / f"{variant.replace(' ', '_').replace(',', '')}_{seed}"),
                "steps": 16,
                "iterations": iterations,
                "seed": seed,
                "progress": False,
                "save_every": iterations,
                "eval_episodes": 256,
            },
            "ppo": {"lr": 3e-3, "epochs": 4, "num_minibatches": 2},
            "model": {"hidden_sizes": [16]},
            "env": {
                "kind": "probe",
                "env_name": "masked",
                "env_kwargs": {"num_agents": 4, **VARIANTS[variant]},
                "workers": 2,
            },
        }
    )
    started = time.perf_counter()
    try:
        with PPOCrowdTrainer.from_config(config) as trainer:
            summary = trainer.train()
    except Exception as exc:  # the env enforcing legality: the run crashes
        return {"variant": variant, "seed": seed, "crashed": f"{type(exc).__name__}: {exc}"}
    return {
        "variant": variant,
        "seed": seed,
        "eval_return": summary["eval/return_mean"],
        "env_steps": summary["env_steps"],
        "wall_time_s": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=40)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as root:
        for variant in VARIANTS:
            for seed in range(args.seeds):
                results.append(run(variant, seed, args.iterations, Path(root)))
    for result in results:
        outcome = (
            f"crashed: {result['crashed'][:110]}"
            if "crashed" in result
            else f"evaluation return {result['eval_return']:.3f} (best legal {BEST_LEGAL:.3f}) "
            f"after {result['env_steps']:,.0f} env steps"
        )
        print(f"{result['variant']:<26} seed {result['seed']}: {outcome}")
    print(json.dumps({"benchmark": "masks", "results": results}))


if __name__ == "__main__":
    main()
