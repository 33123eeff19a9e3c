"""Everything that takes a seat in a game: scripted co-players, populations, plug-ins."""

from agents import coplayers as _register_coplayers  # noqa: F401  (registers the kinds)
from agents import follower as _register_follower  # noqa: F401  (registers handbook_follower)
from agents import grid_agents as _register_grid_agents  # noqa: F401  (registers grid kinds)
from agents import trained as _register_trained  # noqa: F401  (registers kind checkpoint)
from agents.base import (
    Agent,
    AgentContext,
    AgentKind,
    build,
    kinds,
    load_plugin,
    register_kind,
)
from agents.coplayers import GrimTrigger, MemoryOneAgent, TitForTwoTats, extortionate_zd_table
from agents.history import History, HistoryAgent
from agents.population import Member, Population
from coplay.step import HintedBehavior, Hints

__all__ = [
    "Agent", "AgentContext", "AgentKind", "GrimTrigger", "HintedBehavior", "Hints", "History",
    "HistoryAgent", "Member",
    "MemoryOneAgent",
    "Population", "TitForTwoTats", "build", "extortionate_zd_table", "kinds", "load_plugin",
    "register_kind",
]
