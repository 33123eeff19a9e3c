"""What a behavior-conditioned sequence policy reads from memory's hints, per game.

Two things, both worked out once per hint table (``Hints.table`` with its ``behaviors``,
compared by reference) and looked up for each game by its context (``Hints.contexts``),
since agents play many games per call and the tables change rarely:

- the **pooled vector** of a table row: the mean of its hints' embeddings weighted by their
  retrieval scores (floored at 0; a row whose scores are all 0 or less is a plain mean),
  zeros for a row without hints. The vectors go into a bank (``BehaviorInput``) that grows
  over one batch of games, so a rollout stores one index per step, not a vector.
- the **hint to follow** (``FOLLOW``): the row's first, i.e. best ranked, response rule. A
  response rule's payload is ``{"cooperate": {token: p}}`` over the observation tokens
  (``envs.TOKEN_NAMES``: start, CC, CD, DC, DD); following it plays cooperate with chance
  ``p`` of the step's observation token. Other kinds (text, action macros) are not followed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from agents.sequence import BehaviorInput
from coplay.errors import ConfigError
from coplay.step import HintedBehavior, Hints
from envs import TOKEN_NAMES


@dataclass(frozen=True)
class StepHints:
    """One step's reading of the hints for B games."""

    behaviors: BehaviorInput  # rows (B,) into the batch's bank
    can_follow: np.ndarray  # (B,) bool: a response rule is among the game's hints
    position: np.ndarray  # (B,) that rule's position in the game's hints (-1: none)
    cooperate: np.ndarray  # (B, tokens) its chance of cooperating per observation token


@dataclass(frozen=True)
class _TableFeatures:
    """Per row of one table: where its pooled vectors are, and its rule to follow."""

    table: np.ndarray
    behaviors: Sequence[HintedBehavior]
    offset: int  # where the rows' pooled vectors start in the bank
    position: np.ndarray  # (R,)
    cooperate: np.ndarray  # (R, tokens)


class BehaviorBank:
    """The pooled vectors of every hint table one seat met in a batch of games (row 0: no
    hints), and the follow rule of each table row. ``reset`` at each batch."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._parts: list[np.ndarray] = []
        self._rows = 0
        self._tensor: torch.Tensor | None = None
        self._current: _TableFeatures | None = None
        self._embeddings: tuple[Sequence[HintedBehavior], np.ndarray] | None = None
        self._none: tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray] | None = None
        self.reset()

    def reset(self) -> None:
        self._parts = [np.zeros((1, self.size), dtype=np.float32)]
        self._rows = 1
        self._tensor = None
        self._current = None

    def bank(self) -> torch.Tensor:
        """(rows, size): every pooled vector so far, for ``BehaviorInput.bank``."""
        if self._tensor is None or self._tensor.shape[0] != self._rows:
            self._tensor = torch.from_numpy(np.concatenate(self._parts))
        return self._tensor

    def step(self, hints: Hints | None, num_games: int) -> StepHints:
        """The games' pooled vectors and follow rules this step (none without hints)."""
        if hints is None or not len(hints.behaviors):
            return self._nothing(num_games)
        features = self._features(hints)
        contexts = hints.contexts
        position = features.position.take(contexts)
        return StepHints(
            BehaviorInput(torch.from_numpy(contexts + np.int64(features.offset)), self.bank()),
            position >= 0, position, features.cooperate[contexts],
        )

    def _nothing(self, num_games: int) -> StepHints:
        """No hints for any game. A learner without memory asks for it every step, so the
        arrays are made once per batch size and shared: callers only read them."""
        if self._none is None or len(self._none[0]) != num_games:
            self._none = (torch.zeros(num_games, dtype=torch.long),
                          np.zeros(num_games, dtype=bool), np.full(num_games, -1, dtype=np.int64),
                          np.zeros((num_games, len(TOKEN_NAMES))))
        rows, can_follow, position, cooperate = self._none
        return StepHints(BehaviorInput(rows, self.bank()), can_follow, position, cooperate)

    def _features(self, hints: Hints) -> _TableFeatures:
        current = self._current
        if (current is not None and current.table is hints.table
                and current.behaviors is hints.behaviors):
            return current
        table, scores = hints.table, hints.scores
        present = table >= 0
        pooled = np.zeros((len(table), self.size), dtype=np.float32)
        if present.any():
            weights = np.where(present, np.maximum(scores, 0.0), 0.0)
            flat = present & (weights.sum(axis=1, keepdims=True) <= 0)
            weights = np.where(flat, 1.0, weights)
            total = weights.sum(axis=1, keepdims=True)
            vectors = self._embedding_matrix(hints.behaviors)[np.where(present, table, -1)]
            pooled[:] = (weights[..., None] * vectors).sum(axis=1) / np.maximum(total, 1e-12)
        offset = self._rows
        self._parts.append(pooled)
        self._rows += len(pooled)
        position, cooperate = _follow_rules(hints)
        self._current = _TableFeatures(table, hints.behaviors, offset, position, cooperate)
        return self._current

    def _embedding_matrix(self, behaviors: Sequence[HintedBehavior]) -> np.ndarray:
        """(N + 1, size): the behaviors' embeddings, then zeros (what index -1 reads)."""
        if self._embeddings is not None and self._embeddings[0] is behaviors:
            return self._embeddings[1]
        matrix = np.zeros((len(behaviors) + 1, self.size), dtype=np.float32)
        for row, behavior in enumerate(behaviors):
            vector = behavior.embedding
            if vector is None or vector.shape != (self.size,):
                raise ConfigError(
                    "policy.behavior_size",
                    expected=f"the handbook embedder's dimension "
                             f"({'none given' if vector is None else vector.shape[0]})",
                    got=str(self.size),
                    fix="Set policy.behavior_size to the embedder's dimension (hashing: 128).",
                )
            matrix[row] = vector
        self._embeddings = (behaviors, matrix)
        return matrix


def _follow_rules(hints: Hints) -> tuple[np.ndarray, np.ndarray]:
    """Per table row: the position of its first response rule (-1: none) and that rule's
    chance of cooperating per observation token."""
    behaviors = hints.behaviors
    rules = np.zeros((len(behaviors) + 1, len(TOKEN_NAMES)))
    is_rule = np.zeros(len(behaviors) + 1, dtype=bool)
    for row, behavior in enumerate(behaviors):
        if behavior.kind == "response_rule":
            is_rule[row] = True
            rules[row] = [behavior.payload["cooperate"][token] for token in TOKEN_NAMES]
    followable = is_rule[hints.table]  # index -1 reads the last row: not a rule
    position = np.where(followable.any(axis=1), followable.argmax(axis=1), -1)
    picked = hints.table[np.arange(len(position)), np.maximum(position, 0)]
    return position, rules[np.where(position >= 0, picked, -1)]
