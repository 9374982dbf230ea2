"""Train PPO on PettingZoo's pursuit (8 pursuers sharing one policy).

Run from scripts/ (as in the original Coltra)::

    python train_pursuit.py -c configs/pursuit_config.yaml -i 500 -n test_run

The options are those of ``coltra train`` (``python train_pursuit.py --help``): long forms
--config --iters --env --name, and --seed, --resume, --device, --set KEY=VALUE, --wandb.
Without -c, configs/pursuit_config.yaml next to this script is used.
"""

import sys
from pathlib import Path

from coltra.cli import train_main

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "pursuit_config.yaml"

if __name__ == "__main__":
    sys.exit(train_main(prog="train_pursuit.py", default_config=DEFAULT_CONFIG))
