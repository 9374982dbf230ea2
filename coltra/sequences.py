"""Training sequences of a recurrent policy: backpropagation through time.

Each agent row's rollout is cut into consecutive pieces of ``ppo.sequence_length`` steps
(the last one padded when the rollout does not divide evenly). A sequence starts from the
state collection stored at its first step and resets the state where collection did (the
record's ``episode_start``), so before the first gradient step it gives back the
collection-time log-probabilities and values. PPO shuffles whole sequences into
minibatches; padded steps, and steps masked out of training (absent agents, dropped
NaNs), run through the core to keep the state as collection had it but add nothing to
the loss.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from coltra.agents import Agent
from coltra.buffers import MemoryRecord
from coltra.configs import ConfigError, PPOConfig

__all__ = ["SequenceMinibatches", "Sequences", "sequences_per_minibatch", "split_sequences"]


@dataclass(frozen=True)
class Sequences:
    """A rollout's steps arranged as ``[sequences, length]``."""

    entries: np.ndarray  # [sequences, length] agent * steps + t (padding repeats a step)
    valid: np.ndarray  # [sequences, length] bool: a real step that trains
    starts: np.ndarray  # [sequences, length] bool: the state was reset before this step
    state: tuple[np.ndarray, ...]  # each [sequences, ...]: the state at the first step

    def __len__(self) -> int:
        return len(self.entries)


def split_sequences(record: MemoryRecord, length: int) -> Sequences:
    """``record``'s rows in pieces of ``length`` steps; pieces with no step that trains
    are left out."""
    if record.episode_start is None or not record.initial_state:
        raise ValueError(
            "this rollout has no recurrent states (episode_start, initial_state): it was not "
            "collected with a recurrent policy"
        )
    if length < 1 or length % record.state_every:
        raise ValueError(
            f"sequence_length {length} is not a multiple of {record.state_every}, the steps "
            "between the states the collector kept (CrowdCollector(state_every=...))"
        )
    agents, steps = record.shape
    pieces = -(-steps // length)
    t = np.arange(pieces)[:, None] * length + np.arange(length)  # [pieces, length]
    real = t < steps
    step = np.minimum(t, steps - 1)
    entries = np.arange(agents)[:, None, None] * steps + step  # [agents, pieces, length]
    valid = record.mask[:, step].astype(bool) & real
    starts = record.episode_start[:, step].astype(bool) | ~real
    first = t[:, 0] // record.state_every  # [pieces]
    kept = valid.reshape(agents * pieces, length).any(-1)

    def flat(array: np.ndarray) -> np.ndarray:
        return array.reshape(agents * pieces, *array.shape[2:])[kept]

    return Sequences(
        entries=flat(entries),
        valid=flat(valid),
        starts=flat(starts),
        state=tuple(flat(part[:, first]) for part in record.initial_state),
    )


def sequences_per_minibatch(config: PPOConfig, sequences: int, strict: bool = True) -> int:
    """Whole sequences per minibatch: ``num_minibatches`` of them per epoch, or
    ``minibatch_size // sequence_length`` (at least one) when ``minibatch_size`` is set.

    ``strict``: a ConfigError when the rollout cannot hold that many (checked before a run
    starts, on the most sequences a rollout can have). Otherwise (during training, when
    pieces without a trained step were left out, e.g. of dead agents) the minibatches are
    cut to fit, with a warning: at least one sequence each."""
    if sequences == 0:
        raise ValueError("no valid samples to train on: every entry of the rollout is masked")
    if config.minibatch_size is not None:
        size = max(config.minibatch_size // config.sequence_length, 1)
        if size > sequences and not strict:
            warn_fewer(sequences, "sequences", f"ppo.minibatch_size {config.minibatch_size}")
            return sequences
        if size > sequences:
            raise ConfigError(
                f"{config.minibatch_size} samples make {size} sequences of "
                f"{config.sequence_length} steps, more than the {sequences} sequences "
                "collected per iteration",
                key="ppo.minibatch_size",
            )
        return size
    if config.num_minibatches > sequences and not strict:
        warn_fewer(sequences, "sequences", f"ppo.num_minibatches {config.num_minibatches}")
        return 1
    if config.num_minibatches > sequences:
        raise ConfigError(
            f"{config.num_minibatches} minibatches do not fit in the {sequences} sequences of "
            f"{config.sequence_length} steps collected per iteration (a recurrent policy "
            "trains on whole sequences)",
            key="ppo.num_minibatches",
        )
    return sequences // config.num_minibatches


def warn_fewer(count: int, units: str, asked: str) -> None:
    """Warn that a rollout holds fewer ``units`` (samples, sequences) than ``asked`` needs."""
    warnings.warn(
        f"this rollout has only {count} {units} with steps to train on, fewer than "
        f"{asked} asks for: training on minibatches of what there is (losses/updates "
        "shows how many)",
        stacklevel=3,
    )


class SequenceMinibatches:
    """A recurrent policy's rollout on ``device``, evaluated by minibatches of sequences.

    :meth:`evaluate` gives the log-probabilities, values and entropies of the trained steps
    of the chosen sequences, and where those steps are in PPO's flat batch of valid samples
    (``np.flatnonzero(record.mask.reshape(-1))``), to pick the old log-probabilities,
    advantages and returns that go with them.
    """

    def __init__(self, record: MemoryRecord, length: int, device: torch.device) -> None:
        sequences = split_sequences(record, length)
        self.sequences = sequences

        def every_entry(array: np.ndarray) -> np.ndarray:
            return array.reshape(-1, *array.shape[2:])  # [agents * steps, ...]

        self.obs = record.obs.map(every_entry).tensor(device)
        self.actions = record.action.map(every_entry).tensor(device)
        sample = np.full(record.mask.size, -1, dtype=np.int64)
        valid = np.flatnonzero(record.mask.reshape(-1))
        sample[valid] = np.arange(len(valid))
        self.sample = torch.as_tensor(sample[sequences.entries], device=device)
        self.entries = torch.as_tensor(sequences.entries, device=device)
        self.valid = torch.as_tensor(sequences.valid, device=device)
        self.starts = torch.as_tensor(sequences.starts, device=device)
        self.state = tuple(torch.as_tensor(part, device=device) for part in sequences.state)

    def __len__(self) -> int:
        return len(self.sequences)

    def evaluate(
        self, agent: Agent, chosen: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(index, logprob, value, entropy)`` of the trained steps of sequences ``chosen``
        (``[minibatch]``): ``index`` into PPO's valid samples, the rest with gradients."""
        entries = self.entries[chosen].reshape(-1)
        state = tuple(part[chosen] for part in self.state)
        logprob, value, entropy = agent.evaluate(
            self.obs[entries], self.actions[entries], state, self.starts[chosen]
        )
        keep = self.valid[chosen].reshape(-1)
        return self.sample[chosen].reshape(-1)[keep], logprob[keep], value[keep], entropy[keep]
