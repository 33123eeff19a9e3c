"""Exploration bonuses: intrinsic rewards for reaching observations that are new.

Two families, after Henaff, Jiang and Raileanu (ICML 2023):

- **global** bonuses remember all of training: counts ``1/sqrt(N(s))``, RND's prediction
  error, and NovelD's rise in RND novelty from one step to the next;
- **episodic** bonuses remember the current episode only: counts ``1/sqrt(N_e(s))``, the
  first-visit indicator, and E3B's elliptical bonus ``phi(s)^T C^-1 phi(s)`` with ``C``
  the ridge-regularised covariance of the episode's embeddings so far (the embedding trained
  by inverse dynamics, the inverse kept by rank-one updates batched over environments).

Counts key a state by the agent's egocentric view (``count_over: view``, the default) or by
its (x, y) cell (``count_over: position``). The difference matters for the study: a view
recurs across layouts, so view counts carry over to a new layout, while a position count is a
state count within one layout and only a weak prior across layouts.

``make_bonus`` combines one of each, as a product by default (``episodic x global``) or a
weighted sum. A bonus is batched over the vector env's environments and told about episode
starts explicitly (``begin``); the trainer never asks it about the dummy transition that
Gymnasium's next-step autoreset leaves between episodes.

Every bonus saves and restores its whole state (``state_dict``/``load_state_dict``), counts
and episodic memories included, so a resumed run continues exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol

import numpy as np
import torch
from pydantic import ConfigDict, Field, StrictBool, model_validator
from pydantic.dataclasses import dataclass as settings
from torch import nn
from torch.nn import functional as F

from agents.grid_policy import ONE_HOT_CHANNELS, one_hot_view

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]

GlobalTerm = Literal["none", "counts", "rnd", "noveld"]
EpisodicTerm = Literal["none", "counts", "first_visit", "e3b"]
Combine = Literal["product", "sum"]
CountOver = Literal["view", "position"]


class Bonus(Protocol):
    """Batched over N envs. ``observations`` (N, W, H, 3) are the egocentric views and
    ``positions`` (N, 2) the agent's cells; each bonus reads what it needs."""

    def begin(self, starting: np.ndarray, observations: np.ndarray, positions: np.ndarray) -> None:
        """Episodes start in the envs where ``starting`` is true, at these observations."""

    def reward(self, observations: np.ndarray, positions: np.ndarray,
               arrived: np.ndarray) -> np.ndarray:
        """The bonus (N,) for arriving at these observations in the envs where ``arrived`` is
        true (zero elsewhere); episodic memories take the arrivals in."""

    def fit(self, batch: Transitions) -> dict[str, float]:
        """Train the learned parts on a rollout's real transitions; returns losses."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass(frozen=True)
class Transitions:
    observations: torch.Tensor  # (B, W, H, 3)
    next_observations: torch.Tensor
    actions: torch.Tensor  # (B,)


@settings(frozen=True, kw_only=True, config=ConfigDict(extra="forbid"))
class BonusConfig:
    global_term: GlobalTerm = "none"
    episodic_term: EpisodicTerm = "none"
    combine: Combine = "product"
    count_over: CountOver = "view"  # what a count-based term counts: the view or the cell
    global_weight: NonNegative = 1.0  # the global term's weight in a sum
    coef: NonNegative = 0.05  # weight of the normalised intrinsic reward beside the task's reward
    normalize: StrictBool = True  # divide by the running std of discounted intrinsic returns
    embedding_size: int = Field(default=32, ge=1)  # RND's and E3B's embeddings
    ridge: Positive = 0.1  # E3B's C starts as ridge * I
    learning_rate: Positive = 1e-3  # of RND's predictor and E3B's inverse-dynamics model
    noveld_alpha: NonNegative = 0.5

    @model_validator(mode="after")
    def _counts_need_a_counting_term(self) -> BonusConfig:
        counting = "counts" in (self.global_term, self.episodic_term) or (
            self.episodic_term == "first_visit")
        if self.count_over != "view" and not counting:
            raise ValueError(
                "count_over: expected 'view' unless a term counts (global_term or episodic_term "
                f"counts, or first_visit), got {self.count_over!r}"
            )
        return self

    @property
    def label(self) -> str:
        """How tables and plots name the method, e.g. ``episodic e3b x global rnd``."""
        terms = [f"{scope} {term}" for scope, term in
                 (("episodic", self.episodic_term), ("global", self.global_term)) if term != "none"]
        label = (" x " if self.combine == "product" else " + ").join(terms) or "none"
        return label if self.count_over == "view" else f"{label} (counts over {self.count_over})"


def _keys(over: CountOver, observations: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The rows that a count keys by (each row's bytes are its key)."""
    return observations if over == "view" else positions


class GlobalCounts:
    """``1/sqrt(N(s))`` over every arrival since training began."""

    def __init__(self, *, over: CountOver) -> None:
        self.over = over
        self.counts: dict[bytes, int] = {}

    def begin(self, starting: np.ndarray, observations: np.ndarray, positions: np.ndarray) -> None:
        pass  # a start state is not arrived at; it earns no bonus and is not counted

    def reward(self, observations: np.ndarray, positions: np.ndarray,
               arrived: np.ndarray) -> np.ndarray:
        keys = _keys(self.over, observations, positions)
        out = np.zeros(len(keys), dtype=np.float32)
        for i in np.flatnonzero(arrived):
            key = keys[i].tobytes()
            count = self.counts.get(key, 0) + 1
            self.counts[key] = count
            out[i] = count ** -0.5
        return out

    def fit(self, batch: Transitions) -> dict[str, float]:
        return {"distinct_states": float(len(self.counts))}

    def state_dict(self) -> dict:
        return _counts_state(self.counts)

    def load_state_dict(self, state: dict) -> None:
        self.counts = _counts_from_state(state)


def _counts_state(counts: dict[bytes, int]) -> dict:
    keys = np.frombuffer(b"".join(counts), dtype=np.uint8).reshape(len(counts), -1) if counts \
        else np.zeros((0, 0), dtype=np.uint8)
    return {"keys": torch.from_numpy(keys.copy()),
            "counts": torch.tensor(list(counts.values()), dtype=torch.int64)}


def _counts_from_state(state: dict) -> dict[bytes, int]:
    keys = state["keys"].numpy()
    return {bytes(row): int(c) for row, c in zip(keys, state["counts"].tolist())}


class EpisodicCounts:
    """``1/sqrt(N_e(s))`` within the current episode, or the first-visit indicator."""

    def __init__(self, num_envs: int, *, first_visit: bool, over: CountOver) -> None:
        self.first_visit = first_visit
        self.over = over
        self.memories: list[dict[bytes, int]] = [{} for _ in range(num_envs)]

    def begin(self, starting: np.ndarray, observations: np.ndarray, positions: np.ndarray) -> None:
        keys = _keys(self.over, observations, positions)
        for i in np.flatnonzero(starting):
            self.memories[i] = {keys[i].tobytes(): 1}

    def reward(self, observations: np.ndarray, positions: np.ndarray,
               arrived: np.ndarray) -> np.ndarray:
        keys = _keys(self.over, observations, positions)
        out = np.zeros(len(keys), dtype=np.float32)
        for i in np.flatnonzero(arrived):
            memory, key = self.memories[i], keys[i].tobytes()
            count = memory.get(key, 0) + 1
            memory[key] = count
            out[i] = float(count == 1) if self.first_visit else count ** -0.5
        return out

    def fit(self, batch: Transitions) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict:
        return {"memories": [_counts_state(m) for m in self.memories]}

    def load_state_dict(self, state: dict) -> None:
        self.memories = [_counts_from_state(m) for m in state["memories"]]


def _view_encoder(view_size: int, out: int, hidden: int = 128) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(ONE_HOT_CHANNELS * view_size * view_size, hidden), nn.ReLU(),
        nn.Linear(hidden, out),
    )


class RND:
    """Random network distillation: novelty is a trained predictor's error on a frozen random
    network's features, so it falls where training has often been."""

    def __init__(self, *, view_size: int, size: int, learning_rate: float, seed: int) -> None:
        with torch.random.fork_rng(devices=[]):  # own initial weights, global stream untouched
            torch.manual_seed(seed)
            self.target = _view_encoder(view_size, size)
            self.predictor = _view_encoder(view_size, size)
        self.target.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=learning_rate)

    def novelty(self, observations: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            views = one_hot_view(torch.from_numpy(observations))
            error = (self.predictor(views) - self.target(views)).pow(2).mean(-1)
        return error.numpy()

    def begin(self, starting: np.ndarray, observations: np.ndarray, positions: np.ndarray) -> None:
        pass

    def reward(self, observations: np.ndarray, positions: np.ndarray,
               arrived: np.ndarray) -> np.ndarray:
        out = np.zeros(len(observations), dtype=np.float32)
        out[arrived] = self.novelty(observations[arrived])
        return out

    def fit(self, batch: Transitions) -> dict[str, float]:
        views = one_hot_view(batch.next_observations)
        loss = F.mse_loss(self.predictor(views), self.target(views))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"rnd_loss": loss.item()}

    def state_dict(self) -> dict:
        return {"target": self.target.state_dict(), "predictor": self.predictor.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.target.load_state_dict(state["target"])
        self.predictor.load_state_dict(state["predictor"])
        self.optimizer.load_state_dict(state["optimizer"])


class NovelD:
    """NovelD's global term: how much more novel (by RND) the new observation is than the
    last one, ``max(nov(s') - alpha * nov(s), 0)``. NovelD proper multiplies it by the
    first-visit indicator: ``global_term: noveld, episodic_term: first_visit``."""

    def __init__(self, rnd: RND, num_envs: int, *, alpha: float) -> None:
        self.rnd = rnd
        self.alpha = alpha
        self.last = np.zeros(num_envs, dtype=np.float32)

    def begin(self, starting: np.ndarray, observations: np.ndarray, positions: np.ndarray) -> None:
        self.last[starting] = self.rnd.novelty(observations[starting])

    def reward(self, observations: np.ndarray, positions: np.ndarray,
               arrived: np.ndarray) -> np.ndarray:
        # Only arrivals: the other rows are episode starts, which ``begin`` scores.
        novelty = self.rnd.novelty(observations[arrived])
        out = np.zeros(len(observations), dtype=np.float32)
        out[arrived] = np.maximum(novelty - self.alpha * self.last[arrived], 0.0)
        self.last[arrived] = novelty
        return out

    def fit(self, batch: Transitions) -> dict[str, float]:
        return self.rnd.fit(batch)

    def state_dict(self) -> dict:
        return {"rnd": self.rnd.state_dict(), "last": torch.from_numpy(self.last.copy())}

    def load_state_dict(self, state: dict) -> None:
        self.rnd.load_state_dict(state["rnd"])
        self.last = state["last"].numpy().copy()


class E3B:
    """Exploration via elliptical episodic bonuses.

    ``phi`` is trained by inverse dynamics (which action led from s to s'), so it keeps what
    the agent controls. Per env, ``C^-1`` starts at ``I / ridge`` each episode; an arrival at
    s earns ``b = phi^T C^-1 phi`` and then ``C^-1 <- C^-1 - (C^-1 phi)(C^-1 phi)^T / (1 + b)``
    (Sherman-Morrison), all envs in one batched product.
    """

    def __init__(self, *, num_envs: int, num_actions: int, view_size: int, size: int,
                 ridge: float, learning_rate: float, seed: int) -> None:
        with torch.random.fork_rng(devices=[]):  # own initial weights, global stream untouched
            torch.manual_seed(seed)
            self.encoder = _view_encoder(view_size, size)
            self.inverse = nn.Sequential(nn.Linear(2 * size, 128), nn.ReLU(),
                                         nn.Linear(128, num_actions))
        self.ridge = ridge
        self.inverse_covariance = torch.eye(size).repeat(num_envs, 1, 1) / ridge
        self.optimizer = torch.optim.Adam(
            [*self.encoder.parameters(), *self.inverse.parameters()], lr=learning_rate)

    def _embed(self, observations: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return self.encoder(one_hot_view(torch.from_numpy(observations)))

    def _absorb(self, rows: np.ndarray, observations: np.ndarray) -> torch.Tensor:
        """Bonus of each row's observation, then the rank-one update of its ``C^-1``."""
        index = torch.from_numpy(np.flatnonzero(rows))
        if len(index) == 0:
            return torch.zeros(0)
        phi = self._embed(observations[index.numpy()])
        inverse = self.inverse_covariance[index]
        u = torch.bmm(inverse, phi.unsqueeze(-1)).squeeze(-1)
        bonus = (phi * u).sum(-1)
        self.inverse_covariance[index] = inverse - torch.einsum("bi,bj->bij", u, u) / (
            1.0 + bonus).view(-1, 1, 1)
        return bonus

    def begin(self, starting: np.ndarray, observations: np.ndarray, positions: np.ndarray) -> None:
        size = self.inverse_covariance.shape[-1]
        self.inverse_covariance[torch.from_numpy(starting)] = torch.eye(size) / self.ridge
        self._absorb(starting, observations)

    def reward(self, observations: np.ndarray, positions: np.ndarray,
               arrived: np.ndarray) -> np.ndarray:
        out = np.zeros(len(observations), dtype=np.float32)
        out[arrived] = self._absorb(arrived, observations).numpy()
        return out

    def fit(self, batch: Transitions) -> dict[str, float]:
        before, after = self.encoder(one_hot_view(
            torch.cat([batch.observations, batch.next_observations]))).chunk(2)
        logits = self.inverse(torch.cat([before, after], dim=-1))
        loss = F.cross_entropy(logits, batch.actions)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"inverse_dynamics_loss": loss.item()}

    def state_dict(self) -> dict:
        return {"encoder": self.encoder.state_dict(), "inverse": self.inverse.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "inverse_covariance": self.inverse_covariance.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.inverse.load_state_dict(state["inverse"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.inverse_covariance = state["inverse_covariance"].clone()


class Combined:
    """``episodic x global`` (product) or ``episodic + weight * global`` (sum)."""

    def __init__(self, episodic: Bonus, global_: Bonus, *, combine: Combine, global_weight: float):
        self.episodic = episodic
        self.global_ = global_
        self.combine = combine
        self.global_weight = global_weight

    def begin(self, starting: np.ndarray, observations: np.ndarray, positions: np.ndarray) -> None:
        self.episodic.begin(starting, observations, positions)
        self.global_.begin(starting, observations, positions)

    def reward(self, observations: np.ndarray, positions: np.ndarray,
               arrived: np.ndarray) -> np.ndarray:
        episodic = self.episodic.reward(observations, positions, arrived)
        global_ = self.global_.reward(observations, positions, arrived)
        if self.combine == "product":
            return episodic * global_
        return episodic + self.global_weight * global_

    def fit(self, batch: Transitions) -> dict[str, float]:
        return {**self.episodic.fit(batch), **self.global_.fit(batch)}

    def state_dict(self) -> dict:
        return {"episodic": self.episodic.state_dict(), "global": self.global_.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.episodic.load_state_dict(state["episodic"])
        self.global_.load_state_dict(state["global"])


def make_bonus(
    config: BonusConfig, *, num_envs: int, num_actions: int, view_size: int, seed: int
) -> Bonus | None:
    """The configured bonus, or ``None`` when both terms are ``none``."""
    global_: Bonus | None = None
    if config.global_term in ("rnd", "noveld"):
        rnd = RND(view_size=view_size, size=config.embedding_size,
                  learning_rate=config.learning_rate, seed=seed)
        global_ = rnd if config.global_term == "rnd" else NovelD(rnd, num_envs, alpha=config.noveld_alpha)
    elif config.global_term == "counts":
        global_ = GlobalCounts(over=config.count_over)
    episodic: Bonus | None = None
    if config.episodic_term in ("counts", "first_visit"):
        episodic = EpisodicCounts(num_envs, first_visit=config.episodic_term == "first_visit",
                                  over=config.count_over)
    elif config.episodic_term == "e3b":
        episodic = E3B(num_envs=num_envs, num_actions=num_actions, view_size=view_size,
                       size=config.embedding_size, ridge=config.ridge,
                       learning_rate=config.learning_rate, seed=seed + 1)
    if global_ is not None and episodic is not None:
        return Combined(episodic, global_, combine=config.combine, global_weight=config.global_weight)
    return global_ or episodic


class IntrinsicNormalizer:
    """Scales intrinsic rewards by the running std of their discounted sum (as RND does), so
    one ``coef`` suits bonuses whose raw sizes differ by orders of magnitude."""

    def __init__(self, num_envs: int, gamma: float) -> None:
        self.gamma = gamma
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def __call__(self, rewards: np.ndarray, arrived: np.ndarray) -> np.ndarray:
        self.returns = np.where(arrived, self.returns * self.gamma + rewards, self.returns)
        sample = self.returns[arrived]
        if len(sample):
            # Chan et al.'s parallel update of a running mean and sum of squared deviations.
            n, mean = len(sample), float(sample.mean())
            delta = mean - self.mean
            total = self.count + n
            self.m2 += float(((sample - mean) ** 2).sum()) + delta**2 * self.count * n / total
            self.mean += delta * n / total
            self.count = total
        std = math.sqrt(self.m2 / self.count) if self.count > 1 else 1.0
        return (rewards / max(std, 1e-8)).astype(np.float32)

    def state_dict(self) -> dict:
        return {"returns": torch.from_numpy(self.returns.copy()), "count": self.count,
                "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict) -> None:
        self.returns = state["returns"].numpy().copy()
        self.count, self.mean, self.m2 = int(state["count"]), float(state["mean"]), float(state["m2"])
