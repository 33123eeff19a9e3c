"""Advantage actor-critic on whole episodes: one gradient step per batch of experience.

The loss of the in-context co-player inference work: policy gradient with normalised GAE
advantages, a value loss, an entropy bonus, and the co-player prediction loss that trains the
belief head. The batch of episodes comes from ``Trainer.step`` (``trainer.py``).
"""

from __future__ import annotations

from agents.train.experience import Rollout, advantages, apply_gradients, evaluate, normalized
from agents.train.trainer import Trainer


class A2C(Trainer):
    def update(self, i: int, rollout: Rollout, seed: int) -> dict[str, float]:
        config, policy = self.config, self.policies[i]
        current = evaluate(policy, rollout)
        adv, returns = advantages(rollout.rewards * config.reward_scale, current.values.detach(),
                                  config.gamma, config.gae_lambda)
        if config.normalize_advantages:
            adv = normalized(adv)
        policy_loss = -(current.log_probs * adv).mean()
        value_loss = 0.5 * (current.values - returns).pow(2).mean()
        loss = (policy_loss + config.value_coef * value_loss
                - config.entropy_coef * current.entropy + current.coplayer_loss)
        apply_gradients(self.optimizers[i], loss, policy, config.max_grad_norm)
        return {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(),
                "entropy": current.entropy.item(), "coplayer_loss": current.coplayer_loss.item()}
