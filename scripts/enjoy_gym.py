"""Watch policies trained on a Gymnasium environment play, or random ones.

Run from scripts/, beside train_gym.py::

    python enjoy_gym.py runs/test_run_<timestamp> --episodes 5 --video gym.mp4
    python enjoy_gym.py --random --episodes 3

The options are those of ``coltra enjoy`` (``python enjoy_gym.py --help``): -c/--config,
-e/--env, --set KEY=VALUE, --episodes, --random, --stochastic, --seed, --video, --fps,
--human. The env is the run's; configs/gym_config.yaml next to this script when the policies
come without a run (or with --random and no run).
"""

import sys
from pathlib import Path

from coltra.cli import enjoy_main

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "gym_config.yaml"

if __name__ == "__main__":
    sys.exit(enjoy_main(prog="enjoy_gym.py", default_config=DEFAULT_CONFIG))
