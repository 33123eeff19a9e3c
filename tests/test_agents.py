"""Scripted co-players, populations, plug-ins and the agent registry."""

from __future__ import annotations

import sys
import textwrap
import uuid

import numpy as np
import pytest

import agents
import envs
from agents import AgentContext, Hints, Member, Population, coplayers, memory_one_play
from coplay.errors import ConfigError, PluginError
from envs import Payoffs

# Tokens (observer's own action first) and actions.
START, CC, CD, DC, DD = range(5)
C, D = 0, 1

IPD_CONTEXT = AgentContext("coplay/ipd-v0", envs.spec("coplay/ipd-v0").default_payoffs)
CLASSIC_CONTEXT = AgentContext("coplay/ipd-v0", Payoffs.parse({"R": 3, "S": 0, "T": 5, "P": 1}))


def make(kind, params=None, context=CLASSIC_CONTEXT, *, num_games=1, seed=0):
    agent = agents.build(kind, params or {}, context, where=f"agents.{kind}")
    agent.reset(num_games, np.random.default_rng(seed))
    return agent


def replay(agent, tokens):
    """Feed one game's observation sequence; returns the actions chosen."""
    return [int(agent.act(np.array([t]))[0]) for t in tokens]


# --- classic strategies -----------------------------------------------------------------


def test_every_kind_builds_and_satisfies_the_agent_protocol():
    for kind in agents.kinds():
        if kind.name in ("plugin", "memory_one", "checkpoint", "grid_checkpoint"):  # need inputs
            continue
        agent = make(kind.name, num_games=3)
        assert isinstance(agent, agents.Agent)
        actions = agent.act(np.array([START, CC, DD]))
        assert actions.shape == (3,) and set(actions.tolist()) <= {C, D}


def test_tit_for_tat_cooperates_first_then_copies_the_coplayers_last_action():
    agent = make("tit_for_tat", num_games=5)
    assert agent.act(np.array([START, CC, CD, DC, DD])).tolist() == [C, C, D, C, D]
    assert replay(make("tit_for_tat"), [START, CD, DC, CC, DD]) == [C, D, C, C, D]


@pytest.mark.parametrize(("kind", "action"), [("always_cooperate", C), ("always_defect", D)])
def test_unconditional_strategies_ignore_the_observation(kind, action):
    agent = make(kind, num_games=5)
    for _ in range(3):
        assert agent.act(np.array([START, CC, CD, DC, DD])).tolist() == [action] * 5


def test_grim_trigger_defects_forever_after_first_coplayer_defection():
    agent = make("grim_trigger")
    assert replay(agent, [START, CC, CC, CD, CC, DC, CC]) == [C, C, C, D, D, D, D]


def test_grim_trigger_ignores_its_own_defections():
    agent = make("grim_trigger")
    assert replay(agent, [START, DC, DC, CC]) == [C, C, C, C]


def test_grim_trigger_keeps_state_per_game_and_reset_clears_it():
    agent = make("grim_trigger", num_games=3)
    assert agent.act(np.array([START, START, START])).tolist() == [C, C, C]
    assert agent.act(np.array([CC, CD, DC])).tolist() == [C, D, C]
    assert agent.act(np.array([CC, CC, CC])).tolist() == [C, D, C]
    assert agent.act(np.array([DD, CC, CC])).tolist() == [D, D, C]
    agent.reset(3, np.random.default_rng(1))
    assert agent.act(np.array([CC, CC, CC])).tolist() == [C, C, C]
    # A reset to a different number of games must work too.
    agent.reset(2, np.random.default_rng(1))
    assert agent.act(np.array([CD, CC])).tolist() == [D, C]


def test_tit_for_two_tats_defects_only_after_two_consecutive_coplayer_defections():
    agent = make("tit_for_two_tats")
    tokens = [START, CD, CC, CD, DD, DD, CC, CD]
    assert replay(agent, tokens) == [C, C, C, C, D, D, C, C]


def test_tit_for_two_tats_keeps_state_per_game_and_reset_clears_it():
    agent = make("tit_for_two_tats", num_games=2)
    assert agent.act(np.array([CD, CC])).tolist() == [C, C]
    assert agent.act(np.array([CD, CD])).tolist() == [D, C]
    agent.reset(2, np.random.default_rng(0))
    # Without the reset the first game would remember its last defection and defect here.
    assert agent.act(np.array([CD, CD])).tolist() == [C, C]


def test_win_stay_lose_shift_transitions():
    agent = make("win_stay_lose_shift", num_games=5)
    # Start: C; CC -> C (win, stay); CD -> D (lose, shift); DC -> D (win, stay); DD -> C.
    assert agent.act(np.array([START, CC, CD, DC, DD])).tolist() == [C, C, D, D, C]


@pytest.mark.parametrize(
    ("context", "generosity"), [(CLASSIC_CONTEXT, 1 / 3), (IPD_CONTEXT, 0.5)],
    ids=["3-0-5-1", "default-ipd"],
)
def test_generous_tit_for_tat_default_generosity(context, generosity):
    agent = make("generous_tit_for_tat", context=context)
    assert np.allclose(agent.table, [1, 1, generosity, 1, generosity])


def test_generous_tit_for_tat_explicit_generosity_and_forgiveness_rate():
    agent = make("generous_tit_for_tat", {"generosity": 0.2}, num_games=20000, seed=3)
    assert np.allclose(agent.table, [1, 1, 0.2, 1, 0.2])
    assert agent.act(np.full(20000, CC)).tolist() == [C] * 20000
    forgiven = 1 - agent.act(np.full(20000, CD)).mean()
    assert abs(forgiven - 0.2) < 0.02


def test_extortionate_zd_with_chi_3_gives_press_and_dyson_table():
    agent = make("extortionate_zd", {"chi": 3})
    assert np.allclose(agent.table, [1, 11 / 13, 1 / 2, 7 / 26, 0])
    table = agents.extortionate_zd_table(
        CLASSIC_CONTEXT.payoffs, chi=3, phi_fraction=0.5, start_cooperation=1.0
    )
    assert np.allclose(table, [1, 11 / 13, 1 / 2, 7 / 26, 0])


def test_extortionate_zd_rejects_chi_below_one_and_non_dilemmas():
    with pytest.raises(ConfigError) as error:
        make("extortionate_zd", {"chi": 0.5})
    assert error.value.where == "agents.extortionate_zd.params"
    stag_hunt = AgentContext("coplay/stag-hunt-v0", envs.spec("coplay/stag-hunt-v0").default_payoffs)
    with pytest.raises(ConfigError, match="T > R > P > S"):
        make("extortionate_zd", context=stag_hunt)


@pytest.mark.parametrize(
    ("context", "chi"), [(CLASSIC_CONTEXT, 3.0), (IPD_CONTEXT, 2.0)], ids=["3-0-5-1", "default-ipd"]
)
def test_extortionate_zd_enforces_its_linear_payoff_relation_against_random_coplayers(context, chi):
    B, rounds = 200, 2000
    rng = np.random.default_rng(17)
    zd = agents.build("extortionate_zd", {"chi": chi}, context, where="agents.zd")
    other = agents.build("memory_one", {"table": "uniform"}, context, where="agents.other")
    game = envs.MatrixGameBatch(
        envs.MatrixGameConfig(payoffs=context.payoffs, horizon=rounds), batch_size=B
    )
    obs = game.reset(rng)
    zd.reset(B, rng)
    other.reset(B, rng)
    totals = np.zeros((2, B))
    for _ in range(rounds):
        res = game.step(np.stack([zd.act(obs[0]), other.act(obs[1])]))
        obs = res.observations
        totals += res.rewards
    s_x, s_y = totals.mean(axis=1) / rounds
    P = context.payoffs.as_rstp()["P"]
    # Akin's lemma bounds the finite-game error by about 1 / (phi * rounds) plus sampling
    # noise, ~0.03 in payoff units here; 0.1 leaves a wide margin for this fixed seed.
    assert abs((s_x - P) - chi * (s_y - P)) < 0.1
    # The relation is only informative if the co-players earned clearly more than P.
    assert s_y - P > 0.2


# --- memory-one tables ------------------------------------------------------------------


def test_memory_one_uniform_draws_a_different_table_per_game_each_reset():
    agent = make("memory_one", {"table": "uniform"}, num_games=8, seed=5)
    first = np.array(agent.game_tables, copy=True)
    assert first.shape == (8, 5)
    assert np.all((first >= 0) & (first <= 1))
    assert len({tuple(row) for row in first}) == 8
    agent.reset(8, np.random.default_rng(6))
    assert not np.allclose(agent.game_tables, first)


def test_memory_one_uniform_games_act_by_their_own_tables():
    games, rounds = 4, 4000
    agent = make("memory_one", {"table": "uniform"}, num_games=games, seed=8)
    for token in (START, CD, DD):
        cooperated = np.zeros(games)
        for _ in range(rounds):
            cooperated += agent.act(np.full(games, token)) == C
        # Binomial standard error is at most 0.008 here.
        assert np.allclose(cooperated / rounds, agent.game_tables[:, token], atol=0.04)


def test_stochastic_table_cooperation_rate_matches_its_probabilities():
    table = [0.2, 0.7, 0.5, 0.9, 0.05]
    B = 20000
    agent = make("memory_one", {"table": table}, num_games=B, seed=12)
    for token, p in enumerate(table):
        rate = (agent.act(np.full(B, token)) == C).mean()
        assert abs(rate - p) < 0.02, (token, rate, p)


def test_random_kind_cooperates_with_its_probability():
    B = 20000
    agent = make("random", {"p_cooperate": 0.3}, num_games=B, seed=4)
    rate = (agent.act(np.full(B, DC)) == C).mean()
    assert abs(rate - 0.3) < 0.02


def test_memory_one_draws_are_reproducible_from_the_seed():
    first = make("memory_one", {"table": "uniform"}, num_games=50, seed=9)
    second = make("memory_one", {"table": "uniform"}, num_games=50, seed=9)
    tokens = np.random.default_rng(0).integers(0, 5, size=50)
    assert np.array_equal(first.game_tables, second.game_tables)
    assert np.array_equal(first.act(tokens), second.act(tokens))


# --- populations ------------------------------------------------------------------------


class Recorder:
    """A member that answers its own label and records what it was given."""

    def __init__(self, label: int) -> None:
        self.label = label
        self.num_games = None
        self.seen: list[np.ndarray] = []
        self.hints: list[object] = []

    def reset(self, num_games, rng):
        self.num_games = num_games

    def act(self, observations, hints=None):
        assert observations.shape == (self.num_games,)
        self.seen.append(np.array(observations))
        self.hints.append(hints)
        return np.full(observations.shape[0], self.label % 2, dtype=np.int64)


class ObservingRecorder(Recorder):
    def __init__(self, label: int) -> None:
        super().__init__(label)
        self.observed: list[tuple[np.ndarray, np.ndarray]] = []

    def observe(self, rewards, active):
        self.observed.append((np.array(rewards), np.array(active)))


def test_population_draws_members_in_proportion_to_weights():
    members = [
        Member("tft", make("tit_for_tat"), 1.0),
        Member("alld", make("always_defect"), 3.0),
        Member("never", make("always_cooperate"), 0.0),
        Member("grim", make("grim_trigger"), 6.0),
    ]
    population = Population(members)
    assert population.names == ["tft", "alld", "never", "grim"]
    B = 40000
    population.reset(B, np.random.default_rng(21))
    shares = np.bincount(population.assignment, minlength=4) / B
    # Standard error of each share is below 0.0025.
    assert np.allclose(shares, [0.1, 0.3, 0.0, 0.6], atol=0.012)
    assert shares[2] == 0.0


def test_population_assignment_is_reproducible_from_the_seed():
    def draw(seed):
        population = Population([Member("a", Recorder(0), 1), Member("b", Recorder(1), 1)])
        population.reset(100, np.random.default_rng(seed))
        return population.assignment

    assert np.array_equal(draw(3), draw(3))
    assert not np.array_equal(draw(3), draw(4))


def test_population_members_see_only_their_own_games():
    recorders = [Recorder(0), Recorder(1), Recorder(2)]
    population = Population([Member(f"m{i}", r, 1.0) for i, r in enumerate(recorders)])
    B = 30
    population.reset(B, np.random.default_rng(0))
    assignment = population.assignment
    assert set(assignment.tolist()) == {0, 1, 2}
    # Distinct per-game values reveal which games each member was handed.
    observations = np.arange(B) % 5 + 10 * np.arange(B)
    # Each game is in its own context here; a member must get its own games' hints.
    table = np.arange(B)[:, None] * 10 + np.arange(3)
    hints = Hints(np.arange(B), table, np.zeros(table.shape), [])
    rows = hints.rows
    actions = population.act(observations, hints)
    for i, recorder in enumerate(recorders):
        games = np.flatnonzero(assignment == i)
        assert recorder.num_games == games.size
        assert np.array_equal(recorder.seen[-1], observations[games])
        assert np.array_equal(recorder.hints[-1].rows, rows[games])
        assert np.all(actions[games] == i % 2)
    population.act(observations)
    assert all(r.hints[-1] is None for r in recorders)


def test_population_runs_stateful_members_per_game():
    population = Population([
        Member("grim", agents.build("grim_trigger", {}, IPD_CONTEXT, where="a"), 1.0),
        Member("allc", agents.build("always_cooperate", {}, IPD_CONTEXT, where="b"), 1.0),
    ])
    B = 40
    population.reset(B, np.random.default_rng(2))
    grim = population.assignment == 0
    population.act(np.full(B, START))
    # Only the even games see a defection; only grim games among them hold a grudge.
    population.act(np.where(np.arange(B) % 2 == 0, CD, CC))
    actions = population.act(np.full(B, CC))
    assert np.array_equal(actions == D, grim & (np.arange(B) % 2 == 0))


def test_population_forwards_observe_to_members_that_define_it():
    watcher, plain = ObservingRecorder(0), Recorder(1)
    population = Population([Member("w", watcher, 1.0), Member("p", plain, 1.0)])
    B = 20
    population.reset(B, np.random.default_rng(1))
    games = np.flatnonzero(population.assignment == 0)
    assert 0 < games.size < B
    rewards = np.arange(B, dtype=np.float64)
    active = np.arange(B) % 3 != 0
    population.observe(rewards, active)
    assert len(watcher.observed) == 1
    seen_rewards, seen_active = watcher.observed[0]
    assert np.array_equal(seen_rewards, rewards[games])
    assert np.array_equal(seen_active, active[games])


@pytest.mark.parametrize(
    "weights",
    [[-1.0, 2.0], [0.0, 0.0], [float("nan"), 1.0], [float("inf"), 1.0]],
    ids=["negative", "zero-sum", "nan", "inf"],
)
def test_population_bad_weights_are_a_config_error(weights):
    members = [Member(f"m{i}", Recorder(i), w) for i, w in enumerate(weights)]
    with pytest.raises(ConfigError) as error:
        Population(members)
    assert error.value.where == "population.weight"
    assert "non-negative" in str(error.value)


def test_empty_population_is_a_config_error():
    with pytest.raises(ConfigError, match="at least one member"):
        Population([])


# --- plug-ins ---------------------------------------------------------------------------


PLUGIN_SOURCE = '''
import numpy as np

class Constant:
    def __init__(self, context, action):
        self.context = context
        self.action = action

    def reset(self, num_games, rng):
        self.num_games = num_games

    def act(self, observations, hints=None):
        return np.full(observations.shape[0], self.action, dtype=np.int64)

def factory(context, *, action=0, label="none"):
    agent = Constant(context, action)
    agent.label = label
    return agent

def no_params(context):
    return Constant(context, 0)

def not_an_agent(context):
    return object()

class Namespace:
    factory = staticmethod(factory)

NOT_CALLABLE = 42
'''


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """A fresh importable module with plug-in factories; its name is unique per test."""
    name = f"coplay_test_plugin_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def build_plugin(factory, params=None, where="agents.mine"):
    spec = {"factory": factory}
    if params is not None:
        spec["params"] = params
    return agents.build("plugin", spec, IPD_CONTEXT, where=where)


def test_plugin_factory_builds_the_agent_and_receives_params(plugin_module):
    agent = build_plugin(f"{plugin_module}:factory", {"action": 1, "label": "x"})
    assert isinstance(agent, agents.Agent)
    assert agent.context is IPD_CONTEXT
    assert agent.label == "x"
    agent.reset(3, np.random.default_rng(0))
    assert agent.act(np.array([START, CC, DD])).tolist() == [D, D, D]
    assert build_plugin(f"{plugin_module}:factory").label == "none"


def test_plugin_factory_may_be_a_dotted_attribute(plugin_module):
    agent = build_plugin(f"{plugin_module}:Namespace.factory", {"action": 1})
    assert agent.action == 1


def test_load_plugin_returns_the_named_object(plugin_module):
    target = agents.load_plugin(f"{plugin_module}:no_params", where="x")
    assert target.__name__ == "no_params"


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("no_colon_here", "package.module:factory"),
        (":factory", "package.module:factory"),
        ("{module}:", "package.module:factory"),
        ("coplay_no_such_module_xyz:factory", "importable module"),
        ("{module}:missing", "no attribute 'missing'"),
        ("{module}:Namespace.missing", "no attribute 'missing'"),
        ("{module}:NOT_CALLABLE", "callable"),
    ],
    ids=["no-colon", "no-module", "no-attr", "not-importable", "missing", "missing-dotted",
         "not-callable"],
)
def test_plugin_factory_that_cannot_be_loaded_is_a_plugin_error(plugin_module, factory, message):
    with pytest.raises(PluginError) as error:
        build_plugin(factory.format(module=plugin_module))
    assert message in str(error.value)
    # Prefixed with the agent path, so a scenario author knows which agent is at fault.
    assert error.value.where == "agents.mine.factory"


def test_plugin_factory_that_rejects_the_params_is_a_plugin_error(plugin_module):
    with pytest.raises(PluginError) as error:
        build_plugin(f"{plugin_module}:no_params", {"action": 1})
    assert error.value.where == "agents.mine.params"
    assert "action" in str(error.value)


def test_plugin_factory_returning_a_non_agent_is_a_plugin_error(plugin_module):
    with pytest.raises(PluginError) as error:
        build_plugin(f"{plugin_module}:not_an_agent")
    assert error.value.where == "agents.mine.factory"
    assert "reset" in str(error.value) and "act" in str(error.value)
    assert "got object" in str(error.value)


def test_plugin_kind_with_unknown_setting_is_a_config_error(plugin_module):
    with pytest.raises(ConfigError) as error:
        agents.build(
            "plugin", {"factory": f"{plugin_module}:factory", "module": "x"}, IPD_CONTEXT,
            where="agents.mine",
        )
    assert error.value.where == "agents.mine.params"
    assert "factory" in str(error.value)


# --- registry errors --------------------------------------------------------------------


def test_unknown_kind_lists_the_known_kinds():
    with pytest.raises(ConfigError) as error:
        agents.build("tit_for_three_tats", {}, IPD_CONTEXT, where="agents.t3")
    assert error.value.where == "agents.t3.kind"
    message = str(error.value)
    assert "'tit_for_three_tats'" in message
    for kind in agents.kinds():
        assert kind.name in message


def test_unknown_parameter_lists_the_accepted_ones():
    with pytest.raises(ConfigError) as error:
        agents.build("extortionate_zd", {"khi": 3}, IPD_CONTEXT, where="agents.zd")
    assert error.value.where == "agents.zd.params"
    message = str(error.value)
    assert "khi" in message
    for accepted in ("chi", "phi_fraction", "start_cooperation"):
        assert accepted in message


def test_parameter_for_a_kind_without_parameters_is_a_config_error():
    with pytest.raises(ConfigError) as error:
        agents.build("tit_for_tat", {"generosity": 0.1}, IPD_CONTEXT, where="agents.tft")
    assert error.value.where == "agents.tft.params"
    assert "[]" in str(error.value)


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("memory_one", {"table": [1, 0, 1, 0]}, "table"),
        ("memory_one", {"table": [1, 0, 1, 0, 1, 0]}, "table"),
        ("memory_one", {"table": "uniformly"}, "table"),
        ("memory_one", {"table": [1, 0, 1.5, 0, 1]}, "table"),
        ("memory_one", {"table": [1, 0, -0.1, 0, 1]}, "table"),
        ("random", {"p_cooperate": 1.5}, "p_cooperate"),
        ("generous_tit_for_tat", {"generosity": 1.5}, "generosity"),
        ("extortionate_zd", {"start_cooperation": 1.5}, "start_cooperation"),
    ],
    ids=["4-entries", "6-entries", "bad-string", "prob-1.5", "prob-negative", "random-1.5",
         "gtft-1.5", "zd-start-1.5"],
)
def test_bad_parameter_value_error_is_prefixed_with_the_agent_path(kind, params, field):
    with pytest.raises(ConfigError) as error:
        agents.build(kind, params, CLASSIC_CONTEXT, where="scenario.agents.bob")
    assert error.value.where == f"scenario.agents.bob.{field}"
    assert str(error.value).startswith(f"scenario.agents.bob.{field}: expected ")


def test_table_with_four_entries_says_five_are_expected():
    with pytest.raises(ConfigError) as error:
        make("memory_one", {"table": [1, 0, 1, 0]})
    assert "5 probabilities" in str(error.value)


def test_probability_above_one_says_probabilities_must_be_in_unit_interval():
    with pytest.raises(ConfigError) as error:
        make("memory_one", {"table": [1, 1, 1.5, 1, 1]})
    assert "[0, 1]" in str(error.value)


def test_strategies_needing_rstp_reject_an_asymmetric_game():
    asymmetric = AgentContext("custom", Payoffs.parse([[[3, 0], [0, 5]], [[5, 0], [1, 1]]]))
    with pytest.raises(ConfigError) as error:
        agents.build("generous_tit_for_tat", {}, asymmetric, where="agents.g")
    assert error.value.where == "agents.g.payoffs"
    # An explicit generosity needs no R/S/T/P.
    agent = agents.build("generous_tit_for_tat", {"generosity": 0.1}, asymmetric, where="agents.g")
    assert np.allclose(agent.table, [1, 1, 0.1, 1, 0.1])


def test_registering_an_existing_kind_again_is_a_config_error():
    with pytest.raises(ConfigError, match="tit_for_tat"):
        agents.register_kind("tit_for_tat", "duplicate")(lambda context: None)


def test_population_non_numeric_weight_is_a_config_error():
    with pytest.raises(ConfigError):
        Population([Member("a", Recorder(0), "heavy")])


PAPER_GAME = Payoffs.symmetric(R=1, S=-1, T=2, P=0)
TIT_FOR_TAT, ALWAYS_C, ALWAYS_D = [1, 1, 0, 1, 0], [1] * 5, [0] * 5


@pytest.mark.parametrize(("first", "second", "expected"), [
    (TIT_FOR_TAT, TIT_FOR_TAT, (1.0, 1.0)),
    (ALWAYS_D, ALWAYS_C, (2.0, -1.0)),
    (TIT_FOR_TAT, ALWAYS_D, (-0.01, 0.02)),  # one sucker's payoff, then 99 rounds of P = 0
    ([1, 0, 0, 0, 0], [1, 0, 0, 0, 0], (1 / 100, 1 / 100)),  # cooperate once, then never
])
def test_memory_one_rewards_are_computed_exactly(first, second, expected) -> None:
    assert memory_one_play.rewards_per_step(first, second, PAPER_GAME, rounds=100) == pytest.approx(expected)


def test_memory_one_rewards_match_sampled_play() -> None:
    # Two mixed strategies played out with MemoryOneAgent: the exact figure within sampling error.
    first, second = [0.3, 0.9, 0.2, 0.7, 0.4], [0.6, 0.8, 0.5, 0.1, 0.3]
    games, rounds = 4000, 20
    rng = np.random.default_rng(0)
    players = [coplayers.MemoryOneAgent(np.array(t)) for t in (first, second)]
    for player in players:
        player.reset(games, rng)
    tokens = [np.full(games, START), np.full(games, START)]
    totals = np.zeros(2)
    for _ in range(rounds):
        a, b = (player.act(token) for player, token in zip(players, tokens))
        totals += PAPER_GAME.table[a, b].sum(axis=0)
        tokens = [1 + 2 * a + b, 1 + 2 * b + a]
    sampled = totals / (games * rounds)
    exact = memory_one_play.rewards_per_step(first, second, PAPER_GAME, rounds=rounds)
    assert sampled == pytest.approx(exact, abs=0.02)


@pytest.mark.parametrize(("coplayer", "gamma", "cooperates"), [
    (ALWAYS_D, 0.97, [False] * 4),
    (ALWAYS_C, 0.97, [False] * 4),
    (TIT_FOR_TAT, 0.97, [True] * 4),  # patient enough: never provoke it
    (TIT_FOR_TAT, 0.1, [False] * 4),  # myopic: take the temptation
    # One that forgives three defections in four is exploited from mutual cooperation (after DC
    # the two moves are nearly worth the same, so that entry is not checked).
    ([1, 1, 0.75, 1, 0.2], 0.97, [False, False, None, True]),
    # One that defects from mutual cooperation now and then and answers every retaliation in
    # turn is best forgiven: retaliating starts an echo of temptations and sucker's payoffs.
    ([1, 0.85, 0, 1, 0.1], 0.97, [True] * 4),
])
def test_best_reply_to_a_memory_one_coplayer(coplayer, gamma, cooperates) -> None:
    margins = memory_one_play.best_reply_margins(coplayer, PAPER_GAME, gamma=gamma)
    assert margins.shape == (4,)
    checked = [i for i, c in enumerate(cooperates) if c is not None]
    assert [bool(margins[i] > 0) for i in checked] == [cooperates[i] for i in checked]


def test_best_reply_margin_is_the_value_difference_of_one_step_lookahead() -> None:
    # Against tit-for-tat with gamma g, after any outcome: cooperating forever earns R / (1 - g);
    # defecting once then cooperating forever earns T + g * (S + g * R / (1 - g)).
    g = 0.9
    margin = memory_one_play.best_reply_margins(TIT_FOR_TAT, PAPER_GAME, gamma=g)
    # Tit-for-tat cooperates after CC and DC (our move C) and defects after CD and DD (our D).
    cooperate_forever = 1 / (1 - g)
    defect_then_cooperate = 2 + g * (-1 + g / (1 - g))
    assert margin[0] == pytest.approx(cooperate_forever - defect_then_cooperate)


def test_memory_one_play_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="gamma"):
        memory_one_play.best_reply_margins(TIT_FOR_TAT, PAPER_GAME, gamma=1.0)
    with pytest.raises(ConfigError, match="5 probabilities"):
        memory_one_play.best_reply_margins([1, 0, 1], PAPER_GAME, gamma=0.9)
    with pytest.raises(ConfigError, match="rounds"):
        memory_one_play.rewards_per_step(TIT_FOR_TAT, TIT_FOR_TAT, PAPER_GAME, rounds=0)


def test_a_plugin_gets_the_horizon_and_may_decide_on_the_whole_history():
    """A history plug-in sees every round so far, rebuilt from its observations, and is
    sized by the horizon the scenario gives it."""
    import scenarios

    scenario = scenarios.parse("""\
kind: simulation
name: history-plugin
env: {id: coplay/ipd-v0, horizon: 12}
agents:
  two_in_three: {kind: plugin, factory: "tests.plugins:make_two_in_three"}
  pattern: {kind: memory_one, table: [0, 0, 1, 0, 1]}
matchups: {mode: round_robin, players: [two_in_three, pattern]}
run: {episodes: 2, seed: 0, record_trajectories: true}
""")
    from tests.plugins import make_two_in_three

    context = scenarios.schema.agent_context(scenario.env)
    assert context.horizon == 12
    sized = make_two_in_three(context)
    sized.reset(3, np.random.default_rng(0))
    assert sized._own.shape == (3, 12)  # the horizon sized it once
    (pairing,) = scenarios.run(scenario).pairings
    joint = pairing.episodes.joint_actions[0]
    own, theirs = joint // 2, joint % 2
    for t in range(12):
        expected = int((theirs[max(t - 3, 0):t] == 1).sum() >= 2)
        assert own[t] == expected
    assert {0, 1} <= set(own.tolist())


def test_a_history_agent_without_a_horizon_keeps_every_round():
    seen = []
    agent = agents.HistoryAgent(lambda history, rng: seen.append(history) or np.zeros(2, np.int64))
    agent.reset(2, np.random.default_rng(0))
    agent.act(np.array([START, START]))
    for t in range(100):
        agent.act(np.array([DC if t % 3 else CD, CC]))  # game 0: own D or C, theirs C or D
    last = seen[-1]
    assert last.rounds == 100
    assert last.own[0].tolist() == [0 if t % 3 == 0 else 1 for t in range(100)]
    assert last.theirs[0].tolist() == [1 if t % 3 == 0 else 0 for t in range(100)]
    assert not last.own[1].any() and not last.theirs[1].any()
