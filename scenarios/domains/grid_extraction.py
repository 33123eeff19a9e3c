"""Distilling reusable behaviors from stored episodes of grid tasks: one skill per sub-goal.

What is distilled is an ``approach`` behavior, not an action macro. A fixed action sequence
is a path through one layout: the key, the door and the goal sit elsewhere in the next one,
so replaying it there walks into walls. What does carry over is what the episodes say about
the task itself: at "find the key" the sub-goal was reached by picking up the key one faced,
at "open the door" by toggling the door, at "reach the goal" by stepping onto the goal. An
agent that knows which object and which action complete its sub-goal can carry that out on
any layout from its own view (``agents/grid_skills.py``: walk to the nearest such object in
view, face it, act). So for every sub-goal the extractor counts, over all recorded episodes,
the steps that completed it (the object the agent faced, the action it took) and writes the
dominant pair as the skill's payload. Failures add the other half: an action that set the
task back from a sub-goal (toggling the open door shut at "reach the goal") and never
completed it is written into the skill as one to avoid.

Episodes are read from their recorded steps (``domains.grid.decode_steps``). Names and
instructions are made from the payload alone, so the same lesson from another run has the
same content and merges into the existing behavior, adding its provenance. A run that
teaches a stored skill another action to avoid rewrites it (``fold_known``), so the handbook
holds one skill per sub-goal and object-action pair, whose avoided actions are the union of
what the runs taught.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

import envs
from coplay.errors import StoreError
from memory.behaviors import Behavior, NewBehavior, Provenance
from memory.extraction import NEW_BEHAVIOR, Extracted
from memory.runs import EpisodeRecord
from scenarios.domains.grid import FACED, SUBGOALS, decode_steps

EXTRACTOR = "grid_subgoal_skill_v1"
# Objects an approach can target: those a step can name as faced.
TARGETS = ("door", "key", "goal")
# How an instruction says an action on the object ahead.
ACTING = {"pickup": "pick it up", "toggle": "toggle it", "forward": "step onto it"}
# A completing pair must account for at least this share of a sub-goal's completions.
DOMINANT = 0.5
# An action is avoided after setting the task back in at least this many episodes.
MIN_SETBACKS = 2


def subgoal_skills(
    episodes: Sequence[EpisodeRecord], *, run_id: int, scenario: str, env_id: str,
    min_episodes: int = 8,
) -> list[Extracted]:
    """One ``approach`` behavior per sub-goal completed in at least ``min_episodes``
    recorded episodes, by facing one kind of object and taking one action."""
    recorded = [e for e in episodes if e.joint_actions]
    if not recorded:
        raise StoreError(
            "extract", expected=f"run {run_id} to have recorded trajectories", got="none",
            fix="Run the scenario with --record-trajectories or memory.extract: true.",
        )
    task, subgoals = SUBGOALS[env_id]
    action_names = envs.spec(env_id).actions
    decoded = [(e, *decode_steps(e.joint_actions)) for e in recorded]
    if all((faced == 0).all() for _, _, _, faced in decoded):
        raise StoreError(
            "extract", expected=f"run {run_id}'s steps to record sub-goals and what the agent "
            "faced", got="actions only (a run stored by an older coplay)",
            fix="Run the scenario again with --record-trajectories.",
        )
    completions = [Counter() for _ in subgoals]  # (object, action) -> steps
    completed_in = [set() for _ in subgoals]  # episode indexes
    setbacks = [Counter() for _ in subgoals]  # action -> episodes
    contributors = [Counter() for _ in subgoals]  # agent -> completing episodes
    for episode, actions, after, faced in decoded:
        before = np.concatenate([[0], after[:-1]])
        ends = after.copy()
        if episode.returns[0] > 0:  # the last sub-goal is complete when the task is solved
            ends[-1] = len(subgoals)
        seen_setbacks: set[tuple[int, int]] = set()
        for step in np.flatnonzero(ends != before).tolist():
            start = int(before[step])
            action = action_names[int(actions[step])]
            if ends[step] > start:
                completions[start][(FACED[int(faced[step])], action)] += 1
                completed_in[start].add(episode.index)
                contributors[start][episode.agents[0]] += 1
            elif (start, int(actions[step])) not in seen_setbacks:
                seen_setbacks.add((start, int(actions[step])))
                setbacks[start][action] += 1
    extracted = []
    for index, subgoal in enumerate(subgoals):
        if len(completed_in[index]) < min_episodes:
            continue
        (target, action), count = completions[index].most_common(1)[0]
        if target not in TARGETS or count < DOMINANT * sum(completions[index].values()):
            continue
        completing = {a for _, a in completions[index]}
        avoid = sorted(a for a, n in setbacks[index].items()
                       if n >= MIN_SETBACKS and a not in completing)
        extracted.append(_skill(
            task, subgoal, target, action, avoid, env_id=env_id,
            provenance=Provenance(
                extractor=EXTRACTOR, scenario=scenario,
                agent=contributors[index].most_common(1)[0][0], run_id=run_id,
                episodes=tuple(sorted(completed_in[index])),
            ),
            share=count / sum(completions[index].values()),
        ))
    return extracted


def fold_known(extracted: Sequence[Extracted], known: Sequence[Behavior],
               ) -> tuple[list[Extracted], list[tuple[int, NewBehavior]]]:
    """Extracted skills with the actions to avoid that a stored skill for the same sub-goal,
    object and action already names, and the stored skills to rewrite because a new run
    taught them another one. Stored as they come, a skill that adds an action to avoid would
    be merged by its near-identical words into the one without, and the lesson lost."""
    stored = {_lesson(b.trigger, b.payload): b for b in known
              if b.kind == "approach" and b.valid and {"extracted", "skill"} <= set(b.tags)}
    folded, rewrites = [], []
    for item in extracted:
        new = item.behavior
        old = stored.get(_lesson(new.trigger, new.payload))
        if old is None:
            folded.append(item)
            continue
        avoid = sorted(set(old.payload["avoid"]) | set(new.payload["avoid"]))
        task, _, subgoal = new.trigger["subgoal"].partition("/")
        name, instruction = _wording(task, subgoal, new.payload["object"],
                                     new.payload["action"], avoid)
        rebuilt = replace(new, name=name, instruction=instruction,
                          payload={**new.payload, "avoid": avoid})
        if avoid != sorted(old.payload["avoid"]):
            rewrites.append((old.id, rebuilt))
        folded.append(replace(item, behavior=rebuilt))
    return folded, rewrites


def _lesson(trigger: Mapping[str, str], payload: Mapping[str, Any] | None) -> tuple:
    return (tuple(sorted(trigger.items())), payload["object"], payload["action"])


def _wording(task: str, subgoal: str, target: str, action: str,
             avoid: Sequence[str]) -> tuple[str, str]:
    """The skill's name and instruction, made from what it does only."""
    acting = ACTING.get(action, f"take the action {action!r}")
    never = f" Never {' or '.join(avoid)} here: it set the task back." if avoid else ""
    return (f"{task}, {subgoal}: go to the {target} and {acting}",
            f"At the sub-goal '{subgoal}' of the {task} task: when a {target} is in view, walk "
            f"to the nearest one, face it and {acting}; until one is in view, explore.{never}")


def _skill(task: str, subgoal: str, target: str, action: str, avoid: list[str], *,
           env_id: str, provenance: Provenance, share: float) -> Extracted:
    name, instruction = _wording(task, subgoal, target, action, avoid)
    new = NewBehavior(
        name=name, instruction=instruction,
        kind="approach", payload={"object": target, "action": action, "avoid": avoid},
        trigger={"subgoal": f"{task}/{subgoal}", "env": env_id},
        tags=("extracted", "grid", "skill", task, target),
        provenance=provenance,
    )
    edges = [(NEW_BEHAVIOR, "applies_to", f"task:{task}", share)]
    edges += [(NEW_BEHAVIOR, "derived_from", f"episode:{provenance.run_id}/{e}", 1.0)
              for e in provenance.episodes[:3]]
    return Extracted(new, tuple(edges))
