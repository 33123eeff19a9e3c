"""``kind: checkpoint``: a learner trained by ``coplay train``, frozen, as a scenario agent.

The builder imports torch only when a scenario uses this kind, so scenarios of scripted
co-players start without paying for it.
"""

from __future__ import annotations

from agents.base import Agent, AgentContext


def build_checkpoint(
    context: AgentContext, *, path: str, learner: str | None = None, greedy: bool = False
) -> Agent:
    from agents.checkpoint import CheckpointRef, load_learner
    from agents.sequence_agent import ConditionedSequenceAgent, SequenceAgent

    policy, planning = load_learner(CheckpointRef(path, learner), where="")
    agent_type = ConditionedSequenceAgent if policy.config.conditioned else SequenceAgent
    return agent_type(policy, greedy=greedy, planning=planning)
