"""Everything that takes a seat in a game: scripted co-players, populations, plug-ins.

The built-in kinds are registered here by name, description and parameters; the module that
builds each one is imported when a scenario first builds it, so listing kinds stays cheap.
"""

from importlib import import_module
from typing import Any

from agents.base import (
    Agent,
    AgentContext,
    AgentKind,
    build,
    kinds,
    register_kind,
    register_lazy_kind,
)

_BUILT_IN_KINDS = (
    ("memory_one", "agents.coplayers:build_memory_one", ("table",),
     ("Tabular memory-one: table = 5 cooperation probabilities (start, CC, CD, DC, DD) or "
      "'uniform' to draw them per episode from U(0,1).")),
    ("always_cooperate", "agents.coplayers:build_always_cooperate", (), "Always cooperates."),
    ("always_defect", "agents.coplayers:build_always_defect", (), "Always defects."),
    ("random", "agents.coplayers:build_random", ("p_cooperate",),
     "Cooperates with a fixed probability every round (default 0.5)."),
    ("tit_for_tat", "agents.coplayers:build_tit_for_tat", (),
     "Cooperates first, then copies the co-player's last action."),
    ("generous_tit_for_tat", "agents.coplayers:build_generous_tit_for_tat", ("generosity",),
     ("Tit for tat that forgives a defection with probability `generosity` (default: Nowak & "
      "Sigmund's min(1-(T-R)/(R-S), (R-P)/(T-P))).")),
    ("win_stay_lose_shift", "agents.coplayers:build_win_stay_lose_shift", (),
     "Pavlov: repeats its action after CC or DC, switches after CD or DD."),
    ("grim_trigger", "agents.coplayers:build_grim_trigger", (),
     "Cooperates until the co-player defects once, then always defects."),
    ("tit_for_two_tats", "agents.coplayers:build_tit_for_two_tats", (),
     "Defects only after two defections in a row (memory two)."),
    ("extortionate_zd", "agents.coplayers:build_extortionate_zd",
     ("chi", "phi_fraction", "start_cooperation"),
     ("Press & Dyson's extortionate zero-determinant strategy (chi = extortion factor, "
      "default 3).")),
    ("two_tits_for_tat", "agents.classics:build_two_tits_for_tat", (),
     "Defects while the co-player defected in either of the last two rounds."),
    ("hard_tit_for_tat", "agents.classics:build_hard_tit_for_tat", (),
     "Defects while the co-player defected in any of the last three rounds."),
    ("suspicious_tit_for_tat", "agents.classics:build_suspicious_tit_for_tat", (),
     "Defects first, then copies the co-player's last move."),
    ("hard_majority", "agents.classics:build_hard_majority", (),
     "Defects unless the co-player has cooperated more often than it defected."),
    ("soft_majority", "agents.classics:build_soft_majority", (),
     "Cooperates while the co-player has cooperated at least as often as it defected."),
    ("prober", "agents.classics:build_prober", (),
     ("Defects, cooperates twice, then exploits a co-player that did not retaliate; "
      "otherwise tit-for-tat.")),
    ("joss", "agents.classics:build_joss", (),
     "Tit-for-tat that sneaks in a defection one time in ten where it would cooperate."),
    ("alternator", "agents.classics:build_alternator", (),
     "Cooperates and defects in turn, whatever the co-player does."),
    ("cycler_ccd", "agents.classics:build_cycler_ccd", (),
     "Cooperates twice, then defects, over and over."),
    ("gradual", "agents.classics:build_gradual", (),
     ("After the co-player's n-th defection, defects n times, then cooperates twice "
      "(Beaufils et al.).")),
    ("handbook_follower", "agents.follower:build_handbook_follower", ("fallback",),
     ("Plays the best-ranked executable behavior (response rule or action macro) that "
      "memory retrieves for it; fallback: tit_for_tat (default), cooperate, defect or random.")),
    ("random_actions", "agents.grid_agents:build_random_actions", (),
     "Uniformly random actions over the env's action set."),
    ("macro_follower", "agents.grid_agents:build_macro_follower", (),
     ("Carries out the best-ranked executable behavior memory retrieves for it: an action "
      "macro from its first action, or an approach planned from its view; uniformly random "
      "actions where it has none (grid tasks).")),
    ("grid_checkpoint", "agents.grid_agents:build_grid_checkpoint", ("path", "greedy"),
     ("A grid policy trained by `coplay train` on an exploration scenario, frozen: path to "
      "its checkpoint; greedy: true to take the likeliest action instead of sampling.")),
    ("plugin", "agents.plugin:build_plugin", ("factory", "params"),
     "Any importable factory(context, **params) -> Agent, named as 'package.module:factory'."),
    ("checkpoint", "agents.trained:build_checkpoint", ("path", "learner", "greedy"),
     ("A trained learner, frozen: path to a `coplay train` checkpoint; learner: its name if "
      "the checkpoint holds several; greedy: true to take the likelier action instead of "
      "sampling.")),
)
for _name, _builder, _parameters, _description in _BUILT_IN_KINDS:
    register_lazy_kind(_name, _description, builder=_builder, parameters=_parameters)

# Imported on first use (PEP 562), so that `import agents` does not load numpy-heavy modules.
_LAZY_EXPORTS = {
    "GrimTrigger": "agents.coplayers",
    "MemoryOneAgent": "agents.coplayers",
    "TitForTwoTats": "agents.coplayers",
    "extortionate_zd_table": "agents.coplayers",
    "Member": "agents.population",
    "Population": "agents.population",
    "History": "agents.history",
    "HistoryAgent": "agents.history",
    "HintedBehavior": "coplay.step",
    "Hints": "coplay.step",
    "load_plugin": "agents.plugin",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY_EXPORTS:
        raise AttributeError(f"module 'agents' has no attribute {name!r}")
    return getattr(import_module(_LAZY_EXPORTS[name]), name)


__all__ = [
    "Agent", "AgentContext", "AgentKind", "GrimTrigger", "HintedBehavior", "Hints", "History",
    "HistoryAgent", "Member",
    "MemoryOneAgent",
    "Population", "TitForTwoTats", "build", "extortionate_zd_table", "kinds", "load_plugin",
    "register_kind", "register_lazy_kind",
]
