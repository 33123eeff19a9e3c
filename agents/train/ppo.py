"""Proximal policy optimisation on whole episodes: several clipped steps per batch.

The batch of episodes comes from ``Trainer.step`` (``trainer.py``). Advantages come once from
the acting policy's values; then ``epochs`` passes over the batch, each split into
``minibatches`` groups of whole episodes (a recurrent policy must see an episode from its
start). The clipped ratio keeps each pass near the policy that acted. The losses besides the
clipped objective are those of ``a2c.py``.
"""

from __future__ import annotations

import torch

from agents.train.experience import Rollout, advantages, apply_gradients, evaluate, normalized
from agents.train.trainer import Trainer

CLIP = 0.2  # how far a pass may move the probability of an action taken


class PPO(Trainer):
    def update(self, i: int, rollout: Rollout, seed: int) -> dict[str, float]:
        config, settings, policy = self.config, self.config.ppo, self.policies[i]
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            adv, returns = advantages(rollout.rewards * config.reward_scale,
                                      evaluate(policy, rollout).values, config.gamma,
                                      config.gae_lambda)
        totals = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "coplayer_loss": 0.0,
                  "clip_fraction": 0.0}
        steps = 0
        for _ in range(settings.epochs):
            order = torch.randperm(rollout.episodes, generator=generator)
            for index in order.chunk(settings.minibatches):
                batch = rollout.columns(index)
                current = evaluate(policy, batch)
                batch_adv = normalized(adv[:, index]) if config.normalize_advantages else adv[:, index]
                ratio = torch.exp(current.log_probs - batch.log_probs)
                clipped = ratio.clamp(1 - CLIP, 1 + CLIP)
                policy_loss = -torch.min(ratio * batch_adv, clipped * batch_adv).mean()
                value_loss = 0.5 * (current.values - returns[:, index]).pow(2).mean()
                loss = (policy_loss + config.value_coef * value_loss
                        - config.entropy_coef * current.entropy + current.coplayer_loss)
                apply_gradients(self.optimizers[i], loss, policy, config.max_grad_norm)
                steps += 1
                totals["policy_loss"] += policy_loss.item()
                totals["value_loss"] += value_loss.item()
                totals["entropy"] += current.entropy.item()
                totals["coplayer_loss"] += current.coplayer_loss.item()
                totals["clip_fraction"] += ((ratio - 1).abs() > CLIP).float().mean().item()
        return {name: value / steps for name, value in totals.items()}
