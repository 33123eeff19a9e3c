"""Effect-aware ranking: relevance proposes each context's candidates, measured effect decides
which of them an agent is offered, and in what order.

A behavior's effect for an entity (a co-player type, a task) is the difference in mean return
per step between the episodes in which it was a candidate and used and those in which it was
a candidate and the agent used no behavior (``memory.behaviors.EffectStats``). Its posterior
is Gaussian: a prior centred on no effect, with the spread of the returns as its scale,
updated by the measured difference and its standard error. Where a context names an entity the behavior has
evidence for, that evidence counts; elsewhere (e.g. before the co-player's type is known) its
effects for every entity do, averaged stratum by stratum.

Exploration is Thompson sampling. Each context gets ``VARIANTS`` rankings: the first offers
nothing (its episodes are the agent on its own, the control), each other one comes from its
own draw of every candidate's effect. A game plays one variant for a whole episode (its
credit is per episode). A candidate is offered in a variant when its draw is positive, so
one without evidence is offered about half the time, one that measurably hurts almost
never, and one that measurably helps almost always. Without exploration only what is known
to help is offered: a candidate whose effect is positive with 95% posterior belief, best
posterior mean first; the agent plays its own policy where there is none.

An episode counts as "used" for every behavior the agent used in it, and as "not used" for
a candidate only if the agent used no behavior at all in it: an episode that used another
behavior says nothing about playing without this one.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from coplay.step import Context
from memory.behaviors import EffectStats

VARIANTS = 8  # rankings per context when exploring: games play them in turn
PRIOR_SCALE = 1.0  # the prior's spread of effects when no returns have been seen
MIN_SCALE = 0.05  # floor on any spread, so that a few equal returns do not look certain
SAFE_Z = 1.645  # without exploration, offer what helps with 95% (one-sided) posterior belief


def posterior(stats: EffectStats) -> tuple[float, float]:
    """The effect's posterior mean and standard deviation, from one entity's statistics."""
    return combined([stats])


def combined(strata: Sequence[EffectStats]) -> tuple[float, float]:
    """The posterior of an effect measured in several strata (entities): the strata's
    effects averaged, each weighted by its episodes. Pooling the episodes instead would let
    a behavior that is neutral where it is used most and harmful elsewhere look helpful,
    whenever used and unused episodes come from the strata in other proportions."""
    scales, effects, noises, weights = [], [], [], []
    for stats in strata:
        variances = [m.variance for m in (stats.unused, stats.used) if m.variance is not None]
        scale = max(float(np.sqrt(variances[0])) if variances else PRIOR_SCALE, MIN_SCALE)
        scales.append(scale)
        if stats.effect is None:
            continue
        used_var = stats.used.variance if stats.used.variance is not None else scale ** 2
        unused_var = stats.unused.variance if stats.unused.variance is not None else scale ** 2
        effects.append(stats.effect)
        noises.append(max(used_var / stats.used.n + unused_var / stats.unused.n,
                          MIN_SCALE ** 2 / 100))
        weights.append(stats.used.n + stats.unused.n)
    scale = max(scales) if scales else PRIOR_SCALE
    if not effects:
        return 0.0, scale
    share = np.asarray(weights, dtype=float) / sum(weights)
    effect = float(share @ np.asarray(effects))
    noise = float(share ** 2 @ np.asarray(noises))
    precision = 1.0 / scale ** 2 + 1.0 / noise
    return (effect / noise) / precision, float(np.sqrt(1.0 / precision))


def normals(seed: int, keys: np.ndarray, variants: int, width: int) -> np.ndarray:
    """Standard normal draws (len(keys), variants, width), each a function of ``seed``, its
    key, variant and position only (a counter-based generator: SplitMix64, then Box-Muller),
    so that a context's draws do not depend on which contexts are drawn with it."""
    counters = np.arange(variants * width * 2, dtype=np.uint64).reshape(1, variants, width, 2)
    state = (np.uint64(seed % 2**64) ^ (keys.astype(np.uint64)[:, None, None, None]
                                        * np.uint64(0x9E3779B97F4A7C15))) + counters
    with np.errstate(over="ignore"):
        state = state * np.uint64(0xBF58476D1CE4E5B9) + np.uint64(0x94D049BB133111EB)
        state ^= state >> np.uint64(31)
        state *= np.uint64(0x94D049BB133111EB)
        state ^= state >> np.uint64(29)
    uniform = ((state >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    return np.sqrt(-2.0 * np.log(uniform[..., 0])) * np.cos(2.0 * np.pi * uniform[..., 1])


class PosteriorCache:
    """Posteriors worked out from one state of the effect statistics, for every ranking made
    until they change (the handbook's mirror keeps one per revision): per behavior and the
    entities it has evidence for, and per context and its candidates."""

    def __init__(self) -> None:
        self.behaviors: dict[tuple[int, tuple[str, ...]], tuple[float, float]] = {}
        self.contexts: dict[tuple[str, tuple[str, ...], tuple[int, ...]],
                            tuple[np.ndarray, np.ndarray]] = {}
        self.keys: dict[Context, int] = {}  # a context's checksum (it does not change)


class EffectRanking:
    """Ranks candidates by their effect posteriors; ``effects`` maps behavior id -> entity ->
    statistics (as the handbook's mirror holds them). A context's draws depend only on
    ``seed`` and the context itself, not on which contexts are ranked with it or in which
    order, so two ways of asking give the same offers."""

    def __init__(self, effects: Mapping[int, Mapping[str, EffectStats]], *, explore: bool,
                 seed: int, cache: PosteriorCache | None = None) -> None:
        """``cache``: one the caller keeps while ``effects`` stay the same (the handbook's,
        per revision); each ranking has its own otherwise."""
        self._effects = effects
        self.variants = VARIANTS if explore else 1
        self._explore = explore
        self._seed = seed
        self._cache = PosteriorCache() if cache is None else cache

    def rank(self, candidates: np.ndarray, contexts: Sequence[Context], k: int) -> np.ndarray:
        """Per context (rows of ``candidates``, behavior ids by relevance, -1 padding) and
        variant: the ids offered, best first, -1 padding; shape (C * variants, k), a
        context's variants in consecutive rows."""
        count, width = candidates.shape
        present = candidates >= 0
        means = np.zeros((count, width))
        spreads = np.ones((count, width))
        known = self._cache.contexts
        for row, (context, ids) in enumerate(zip(contexts, candidates.tolist())):
            key = (context.text, context.entities, tuple(ids))
            found = known.get(key)
            if found is None:
                pairs = [self._posterior(b, context.entities) if b >= 0 else (0.0, 1.0)
                         for b in ids]
                found = known[key] = (np.array([m for m, _ in pairs]),
                                      np.array([sd for _, sd in pairs]))
            means[row], spreads[row] = found
        if self._explore:
            keys = np.array([self._key(c) for c in contexts], dtype=np.uint64)
            draws = means[:, None, :] + spreads[:, None, :] * normals(
                self._seed, keys, self.variants, width)
            keep = draws > 0
            # The first variant offers nothing: its episodes are the agent on its own, the
            # comparison every effect is measured against.
            keep[:, 0, :] = False
        else:
            draws = means[:, None, :]
            keep = draws > SAFE_Z * spreads[:, None, :]
        keep &= present[:, None, :]
        # Best draw first; ties (no evidence at all, without exploration) keep the relevance
        # order; then the kept ones to the front, in that order.
        order = np.argsort(-draws, axis=2, kind="stable")
        kept = np.take_along_axis(keep, order, axis=2)
        order = np.take_along_axis(order, np.argsort(~kept, axis=2, kind="stable"), axis=2)
        kept = np.take_along_axis(keep, order, axis=2)
        ids = np.broadcast_to(candidates[:, None, :], (count, self.variants, width))
        chosen = np.where(kept, np.take_along_axis(ids, order, axis=2), -1)
        offered = np.full((count, self.variants, k), -1, dtype=np.int64)
        offered[:, :, : min(k, width)] = chosen[:, :, :k]
        return offered.reshape(count * self.variants, k)

    def _key(self, context: Context) -> int:
        """The context's key for its draws: a checksum of its words and entities."""
        found = self._cache.keys.get(context)
        if found is None:
            found = self._cache.keys[context] = zlib.crc32(
                "\x1f".join((context.text, *context.entities)).encode())
        return found

    def _posterior(self, behavior_id: int, entities: Sequence[str]) -> tuple[float, float]:
        # Contexts that differ only in words or in entities without evidence share it.
        by_entity = self._effects.get(behavior_id, {})
        key = (behavior_id, tuple(e for e in entities if e in by_entity))
        found = self._cache.behaviors.get(key)
        if found is None:
            found = self._cache.behaviors[key] = combined(self.evidence(behavior_id, entities))
        return found

    def evidence(self, behavior_id: int, entities: Sequence[str]) -> list[EffectStats]:
        """What is known of the behavior for a context naming ``entities``: its statistics
        for the entities named, where it has been both used and not used there; else its
        statistics for every entity, to be combined stratum by stratum."""
        by_entity = self._effects.get(behavior_id, {})
        named = [by_entity[e] for e in entities if e in by_entity]
        if named:
            summed = sum(named[1:], named[0])
            if summed.used.n and summed.unused.n:
                return [summed]
        return list(by_entity.values())


class RelevanceRanking:
    """Offers each context's first ``k`` candidates in relevance order, whatever their
    effects (the ablation of effect-aware ranking; also what tests of the plumbing use)."""

    variants = 1

    def rank(self, candidates: np.ndarray, contexts: Sequence[Context], k: int) -> np.ndarray:
        offered = np.full((len(contexts), k), -1, dtype=np.int64)
        width = min(k, candidates.shape[1])
        offered[:, :width] = candidates[:, :width]
        return offered
