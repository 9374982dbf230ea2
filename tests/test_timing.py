"""PhaseTimes: seconds per phase of an iteration, one key scheme, one summary line."""

from __future__ import annotations

import pytest

from coltra.timing import PhaseTimes


def test_phases_add_merge_and_become_metrics() -> None:
    times = PhaseTimes()
    times.add("env", 1.0)
    times.add("env", 0.5)
    times.add("update", 2.0)
    with pytest.raises(KeyError, match="unknown phase 'env_s'"):
        times.add("env_s", 1.0)
    total = times.merge(PhaseTimes({"gae": 0.25}))
    assert total.seconds == {"env": 1.5, "update": 2.0, "gae": 0.25}
    assert times.seconds == {"env": 1.5, "update": 2.0}  # merge makes a new object
    assert total.metrics() == {"time/env_s": 1.5, "time/gae_s": 0.25, "time/update_s": 2.0}
    assert total.with_other(5.0)["other"] == 1.25 and "other" not in total.seconds
    assert total["forward"] == 0.0 and total.total == 3.75
    metrics = total.iteration_metrics(env_steps=750, agent_steps=1500)
    assert metrics["charts/SPS"] == 200 and metrics["charts/agent_SPS"] == 400
    assert metrics["time/collect_s"] == 1.5 and metrics["time/iteration_s"] == 3.75


def test_the_summary_names_each_phase_with_its_share() -> None:
    times = PhaseTimes(
        {"env": 4.0, "forward": 2.5, "collect_other": 0.5, "gae": 0.04, "update": 2.5}
    )
    assert times.summary(10.0) == (
        "time: 10.0 s = env stepping 4.0 s (40%), policy forward 2.5 s (25%), collector "
        "bookkeeping 0.5 s (5%), advantages (GAE) 0.0 s (0%), PPO update 2.5 s (25%), "
        "logging, checkpoints, evaluation 0.5 s (5%)"
    )
