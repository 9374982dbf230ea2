"""The KAZ episode-ending report runs on a saved group and accounts for every game."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coltra.configs import RunConfig
from coltra.factory import make_env, make_group

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_it_reports_how_each_game_ended(tmp_path: Path) -> None:
    config = RunConfig.from_dict(
        {
            "env": {
                "kind": "pettingzoo",
                "env_name": "pettingzoo.butterfly.knights_archers_zombies_v11",
                "env_kwargs": {"max_cycles": 300, "max_zombies": 10},
                "workers": 1,
            },
            "model": {"hidden_sizes": [8]},
            "policies": {"archer": {}, "knight": {}},
        }
    )
    assert config.env is not None
    env = make_env(config.env)
    make_group(config, env).save(tmp_path / "agents")  # untrained: random-ish play
    env.close()
    result = subprocess.run(
        [
            sys.executable, "benchmarks/kaz_episodes.py", str(tmp_path / "agents"),
            "--episodes", "2", "--max-cycles", "300",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    games, summary = report["games"], report["summary"]
    assert len(games) == 2 and summary["episodes"] == 2
    assert sum(summary["ended_by"].values()) == 2
    for game in games:
        assert 1 <= game["frames"] <= 300
        assert game["ended_by"] in {"escape", "all_dead", "time"}
        assert game["ended_by"] != "time" or game["frames"] == 300
        assert all(1 <= step <= game["frames"] for step in game["deaths"].values())
    # a zombie walks the screen in ~135 frames: untrained agents let some through
    assert "escape" in summary["ended_by"]
    assert summary["team_kills"] == pytest.approx(
        sum(g["archer_kills"] + g["knight_kills"] for g in games) / 2
    )
