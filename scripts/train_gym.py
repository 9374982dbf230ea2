"""Train PPO on a Gymnasium environment.

Run from scripts/ (as in the original Coltra)::

    python train_gym.py -c configs/gym_config.yaml -i 500 -e CartPole-v1 -n test_run

The options are those of ``coltra train`` (``python train_gym.py --help``): long forms
--config --iters --env --name, and --seed, --resume, --device, --set KEY=VALUE, --wandb.
Without -c, configs/gym_config.yaml next to this script is used.
"""

import sys
from pathlib import Path

from coltra.cli import train_main

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "gym_config.yaml"

if __name__ == "__main__":
    sys.exit(train_main(prog="train_gym.py", default_config=DEFAULT_CONFIG))
