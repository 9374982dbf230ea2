"""Watch policies trained on PettingZoo's pursuit play, or random ones.

Run from scripts/, beside train_pursuit.py::

    python enjoy_pursuit.py runs/test_run_<timestamp> --episodes 5 --video pursuit.mp4
    python enjoy_pursuit.py --random --episodes 3

The options are those of ``coltra enjoy`` (``python enjoy_pursuit.py --help``): -c/--config,
-e/--env, --set KEY=VALUE, --episodes, --random, --stochastic, --seed, --video, --fps,
--human. The env is the run's; configs/pursuit_config.yaml next to this script when the policies
come without a run (or with --random and no run).
"""

import sys
from pathlib import Path

from coltra.cli import enjoy_main

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "pursuit_config.yaml"

if __name__ == "__main__":
    sys.exit(enjoy_main(prog="enjoy_pursuit.py", default_config=DEFAULT_CONFIG))
