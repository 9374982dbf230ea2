"""How KAZ episodes end under a trained policy: where the team's zombie kills are lost.

``knights_archers_zombies_v11`` ends a game when a zombie reaches the bottom of the screen
(an *escape*), when every agent is dead, or after ``max_cycles`` frames (*time*). Zombies
come at a fixed rate, so a game that lasts its 900 frames offers ~45 of them; one that ends
early offers fewer. This plays a saved group's policies (stochastic, as the benchmark's KAZ
evaluation; torch seeded with ``--seed``, game ``i`` reset with ``--seed + i``) and prints
each game's length, how it ended, the kills of archers and knights and which agents died
at which step, then the team's kills in games that ran to time and in games an escape cut
short::

    python benchmarks/kaz_episodes.py RUN_DIR/checkpoints/iter_002930/agents --episodes 64

Kills are counted as the env rewards them, which is the benchmark's team return (a kill on
a game's last frame, or by an arrow still flying after its archer died, goes unrewarded).
The env is built as ``benchmarks/multiagent.py`` builds KAZ (``max_cycles=900,
max_zombies=10``), with the global state when a policy's value network reads it
(``critic: state``).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from coltra.envs import PettingZooEnv
from coltra.groups import MacroAgent

KAZ = {"max_cycles": 900, "max_zombies": 10}


@dataclass
class Game:
    frames: int
    ended_by: str  # escape, all_dead or time
    archer_kills: float
    knight_kills: float
    deaths: dict[str, int] = field(default_factory=dict)  # agent -> the step it died in

    @property
    def team(self) -> float:
        return self.archer_kills + self.knight_kills


def make_env(state: bool, max_cycles: int = KAZ["max_cycles"]) -> PettingZooEnv:
    from pettingzoo.butterfly import knights_archers_zombies_v11

    kwargs = {**KAZ, "max_cycles": max_cycles}
    if not state:
        return PettingZooEnv(knights_archers_zombies_v11.parallel_env, **kwargs)
    from coltra.envs.critic_inputs import GlobalState

    return PettingZooEnv(lambda: GlobalState(knights_archers_zombies_v11.parallel_env(**kwargs)))


def play(group: MacroAgent, env: PettingZooEnv, episodes: int, seed: int) -> list[Game]:
    """``episodes`` games, game ``i`` reset with ``seed + i``."""
    games = []
    game = env.env.unwrapped  # the KAZ game under the parallel and coltra wrappers
    for episode in range(episodes):
        obs = env.reset(seed=seed + episode)
        kills: Counter[str] = Counter()
        deaths: dict[str, int] = {}
        step = 0
        while obs:
            actions, _, _ = group.act(obs, deterministic=False)
            obs, rewards, _, _ = env.step(actions)
            step += 1
            for agent, reward in rewards.items():
                kills[agent] += float(reward)
            for name, player in game.agent_map.items():  # the game's own record of deaths
                if not player.is_alive and name not in deaths:
                    deaths[name] = step
        frames = int(game.frames)
        ended_by = (
            "escape"
            if game._check_zombie_escape()
            else "all_dead"
            if game._check_zombie_killall()
            else "time"
        )
        games.append(
            Game(
                frames=frames,
                ended_by=ended_by,
                archer_kills=sum(v for a, v in kills.items() if a.startswith("archer")),
                knight_kills=sum(v for a, v in kills.items() if a.startswith("knight")),
                deaths=deaths,
            )
        )
    return games


def summary(games: list[Game]) -> dict[str, Any]:
    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    by_end = Counter(game.ended_by for game in games)
    return {
        "episodes": len(games),
        "team_kills": mean([game.team for game in games]),
        "archer_kills": mean([game.archer_kills for game in games]),
        "knight_kills": mean([game.knight_kills for game in games]),
        "frames": mean([float(game.frames) for game in games]),
        "ended_by": dict(by_end),
        "team_kills_when_time": mean([g.team for g in games if g.ended_by == "time"]),
        "team_kills_when_escape": mean([g.team for g in games if g.ended_by == "escape"]),
        "frames_when_escape": mean([float(g.frames) for g in games if g.ended_by == "escape"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("agents", help="a saved group: a checkpoint's agents/ directory")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--max-cycles", type=int, default=KAZ["max_cycles"])
    args = parser.parse_args()
    if args.episodes < 1 or args.max_cycles < 1:
        parser.error(
            f"--episodes and --max-cycles must be >= 1, got {args.episodes}, {args.max_cycles}"
        )
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    group = MacroAgent.load(args.agents)
    state = any(  # a centralised critic's input, which the group's observations must have
        getattr(agent.model, "state_space", None) is not None for agent in group.policies.values()
    )
    env = make_env(state, args.max_cycles)
    try:
        games = play(group, env, args.episodes, args.seed)
    finally:
        env.close()
    for game in games:
        print(
            f"{game.frames:4d} frames, {game.ended_by:8s} team {game.team:4.0f} "
            f"(archers {game.archer_kills:.0f}, knights {game.knight_kills:.0f}) "
            f"deaths {game.deaths}"
        )
    print(json.dumps({"summary": summary(games), "games": [asdict(g) for g in games]}))


if __name__ == "__main__":
    main()
