"""Reuse studies (`coplay reuse`): the held-out split is enforced, every condition plays the
same seeds, the comparison is stored and shown again, and its figures are what they say."""

from __future__ import annotations

import json

import numpy as np
import pytest

import scenarios
from scenarios.domains.matrix_reuse import first_rounds_returns
from scenarios.reuse import _averaged, _paired
from tests.test_cli import coplay

STUDY = """\
kind: reuse
name: tiny-reuse
env: {id: coplay/ipd-v0, horizon: 20}
agents:
  follower: {kind: handbook_follower}
  tft: {kind: tit_for_tat}
  alld: {kind: always_defect}
  allc: {kind: always_cooperate}
  gradual: {kind: gradual}
  stft: {kind: suspicious_tit_for_tat}
subject: follower
train: {against: [tft, alld, allc], runs: 2, episodes: 16}
evaluate: {against: [gradual, stft], episodes: 8, first_rounds: 5}
seeds: [0]
bootstrap: 200
"""


def write(tmp_path, text: str, name: str = "study.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("change", "message"), [
    ("evaluate: {against: [gradual, tft]", "expected co-players held out of training, got 'tft'"),
    ("  stft: {kind: suspicious_tit_for_tat}",  # another name for a training co-player
     "got 'stft' (the same as training's 'tft')"),
    ("subject: follower", "expected an agent outside both splits"),
    ("env: {id: coplay/ipd-v0, horizon: 20}", "expected the split's layouts on a grid task"),
])
def test_the_split_is_held_out_or_the_study_is_refused(monkeypatch, capsys, tmp_path, db_url,
                                                       change, message) -> None:
    replacements = {
        "evaluate: {against: [gradual, tft]": ("evaluate: {against: [gradual, stft]",
                                               "evaluate: {against: [gradual, tft]"),
        "  stft: {kind: suspicious_tit_for_tat}": ("  stft: {kind: suspicious_tit_for_tat}",
                                                   "  stft: {kind: tit_for_tat}"),
        "subject: follower": ("train: {against: [tft,", "train: {against: [follower, tft,"),
        "env: {id: coplay/ipd-v0, horizon: 20}": (
            "env: {id: coplay/ipd-v0, horizon: 20}", "env: {id: coplay/grid-keydoor-v0}"),
    }
    old, new = replacements[change]
    path = write(tmp_path, STUDY.replace(old, new))
    code, _, err = coplay(monkeypatch, capsys, "reuse", "run", path, "--db", db_url)
    assert code == 2 and message in err and err.count("\n") == 1


def test_a_study_runs_is_stored_listed_and_shown_again(monkeypatch, capsys, tmp_path, db_url) -> None:
    path = write(tmp_path, STUDY)
    code, out, err = coplay(monkeypatch, capsys, "reuse", "run", path, "--db", db_url, "--json",
                            "--out", str(tmp_path / "plots"))
    assert code == 0, err
    stored = json.loads(out)
    figures = stored["figures"]
    assert figures["conditions"] == ["none", "handbook", "oracle"]
    assert figures["family"] == "matrix"
    assert [m["key"] for m in figures["measures"]] == ["episode", "opening"]
    assert set(figures["units"]) == {"gradual", "stft"}
    assert (tmp_path / "plots" / "reuse.png").stat().st_size > 10_000
    assert all(len(sizes) == 1 and sizes[0] > 0 for sizes in figures["handbook_behaviors"].values())
    for entry in figures["units"].values():
        for gain in (*entry["episode_gain"].values(), *entry["opening_gain"].values()):
            assert gain["low"] <= gain["mean"] + 1e-9 and gain["mean"] <= gain["high"] + 1e-9
    # "none" is the subject without memory on the evaluation's seeds, as a plain run plays it.
    study = scenarios.load(path)
    plain = scenarios.run(study.simulation(name="plain", seed=10_000, episodes=8, memory=None,
                                           evaluation=True))
    for outcome in plain.pairings:
        returns = outcome.episodes.returns[:, 0] / outcome.episodes.lengths
        assert figures["units"][outcome.stats.agents[1]]["episode"]["none"] == pytest.approx(
            returns.mean())
    code, out, _ = coplay(monkeypatch, capsys, "reuse", "list", "--db", db_url, "--json")
    assert [c["id"] for c in json.loads(out)] == [stored["id"]]
    code, out, _ = coplay(monkeypatch, capsys, "reuse", "show", str(stored["id"]), "--db", db_url,
                          "--json")
    assert json.loads(out)["figures"] == figures
    code, out, _ = coplay(monkeypatch, capsys, "reuse", "show", str(stored["id"]), "--db", db_url)
    assert code == 0 and "tiny-reuse" in out and "retrieval precision" in out
    code, _, err = coplay(monkeypatch, capsys, "reuse", "show", "99", "--db", db_url)
    assert code == 2 and "coplay reuse list" in err


def test_first_rounds_returns_read_the_payoffs_of_the_first_rounds() -> None:
    table = np.array([[[1, 1], [-1, 2]], [[2, -1], [0, 0]]], dtype=float)  # R S T P = 1 -1 2 0
    joint = np.array([[0, 1, 3, 2], [2, 2, 2, 2]], dtype=np.uint8)  # CC CD DD DC; DC x4
    lengths = np.array([4, 2])
    assert first_rounds_returns(joint, lengths, table, 3).tolist() == [0.0, 2.0]


def test_bootstrap_intervals_cover_the_mean_and_shrink_to_a_point_without_spread() -> None:
    rng = np.random.default_rng(0)
    flat = _paired(np.full(50, 0.25), rng, 500)
    assert (flat["low"], flat["mean"], flat["high"], flat["verdict"]) == (0.25, 0.25, 0.25, "higher")
    noisy = _paired(rng.normal(0.0, 1.0, 400), rng, 1000)
    assert noisy["low"] < noisy["mean"] < noisy["high"]
    assert noisy["verdict"] == "no significant difference" and noisy["high"] - noisy["low"] < 0.3
    averaged = _averaged([np.full(10, -1.0), np.full(30, 0.0)], rng, 300)
    assert averaged["mean"] == -0.5 and averaged["verdict"] == "lower"  # units weigh alike


GRID_STUDY = """\
kind: reuse
name: tiny-grid-reuse
env: {id: coplay/grid-keydoor-v0, size: 5}
agents:
  follower: {kind: macro_follower}
  explorer: {kind: random_actions}
subject: follower
train: {layouts: {contexts: 4, context_seed: 1}, players: [explorer], runs: 1, episodes: 32}
evaluate: {layouts: {contexts: 4, context_seed: 50}, episodes: 8}
seeds: [0]
bootstrap: 200
"""


def test_a_grid_study_holds_out_layouts_by_content(monkeypatch, capsys, tmp_path, db_url) -> None:
    path = write(tmp_path, GRID_STUDY)
    code, out, err = coplay(monkeypatch, capsys, "reuse", "run", path, "--db", db_url, "--json",
                            "--no-plots")
    assert code == 0, err
    figures = json.loads(out)["figures"]
    assert figures["family"] == "grid"
    assert [m["key"] for m in figures["measures"]] == ["success", "frames"]
    (unit,) = figures["units"]
    entry = figures["units"][unit]
    assert "4 unseen layouts" in unit
    assert 0.0 <= entry["success"]["none"] <= 1.0
    assert all(0 < entry["frames"][c] <= 250 for c in figures["conditions"])  # limit 10 * 5 ** 2
    assert all(sizes[0] > 0 for sizes in figures["handbook_behaviors"].values())
    # Other seeds can draw the same layouts: the first four of seed 1's eight are its four.
    overlapping = write(tmp_path, GRID_STUDY.replace("contexts: 4, context_seed: 50",
                                                     "contexts: 8, context_seed: 1"), "o.yaml")
    code, _, err = coplay(monkeypatch, capsys, "reuse", "run", overlapping, "--db", db_url)
    assert code == 2 and "evaluate.layouts: expected layouts none of which is a training one, " \
        "got 4 shared with train.layouts" in err


@pytest.mark.parametrize("path", scenarios.bundled("reuse"), ids=lambda p: p.stem)
def test_every_bundled_reuse_study_runs_small(path) -> None:
    from scenarios.loading import Override
    from scenarios.reuse import compare

    study = scenarios.load(path, overrides=[
        Override("seeds", [0], "--seeds"), Override("train.runs", 1, "--set"),
        Override("train.episodes", 8, "--set"), Override("evaluate.episodes", 2, "--set"),
        Override("bootstrap", 100, "--set")])
    figures = compare(study)
    assert figures["conditions"] == ["none", "handbook", "oracle"]
    main = figures["measures"][0]["key"]
    assert set(figures[main]) == set(figures["conditions"])
