"""A long run (hundreds of iterations on a probe env, with TensorBoard, CSV and checkpoints)
does not grow the process's memory by more than 10% after warm-up."""

from __future__ import annotations

import gc
from pathlib import Path

import psutil
import pytest

from coltra.configs import RunConfig
from coltra.trainers import PPOCrowdTrainer

WARM_UP, MEASURED = 50, 250


def rss_and_objects() -> tuple[int, int]:
    gc.collect()
    return psutil.Process().memory_info().rss, len(gc.get_objects())


@pytest.mark.timeout(120)
def test_a_long_run_does_not_grow_memory_after_warm_up(tmp_path: Path) -> None:
    config = RunConfig.from_dict(
        {
            "trainer": {
                "run_dir": str(tmp_path / "run"),
                "steps": 8,
                "iterations": WARM_UP + MEASURED,
                "save_every": 20,
                "keep_checkpoints": 2,
                "progress": False,
            },
            "ppo": {"lr": 1e-3, "epochs": 1, "num_minibatches": 1},
            "model": {"hidden_sizes": [8]},
            "env": {"kind": "probe", "env_name": "observed", "workers": 2, "backend": "inprocess"},
        }
    )
    samples = []
    with PPOCrowdTrainer.from_config(config) as trainer:
        trainer.train(WARM_UP)  # allocator pools, TensorBoard's queue, CSV columns settle
        samples.append(rss_and_objects())
        for _ in range(5):
            trainer.train(MEASURED // 5)
            samples.append(rss_and_objects())
        assert trainer.counters.iteration == WARM_UP + MEASURED
    (rss_warm, objects_warm), (rss_end, objects_end) = samples[0], samples[-1]
    trend = ", ".join(f"{rss / 2**20:.1f} MB / {count} objects" for rss, count in samples)
    assert rss_end <= 1.10 * rss_warm, f"RSS grew more than 10% after warm-up: {trend}"
    # Python objects that pile up per iteration (a list of metrics never emptied) show
    # here long before they show in the RSS.
    assert objects_end <= 1.10 * objects_warm, f"Python objects piled up: {trend}"
