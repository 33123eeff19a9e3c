"""Nothing a user gives crashes coplay or loses data: every bad input below, given through
the command line, prints one line on stderr naming its cause, exits with 2, and leaves
nothing half-written in the store."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from memory import RunStore, TrainingStore, migrations, open_engine
from tests.conftest import TINY_SCENARIO, write
from tests.test_cli import coplay


def one_error_line(code: int, stdout: str, stderr: str) -> str:
    """The error line, after checking that it is the only one and the exit code is 2."""
    assert code == 2, stderr
    assert stderr.startswith("coplay: error: ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stdout + stderr
    return stderr


@pytest.fixture
def no_simulation(monkeypatch):
    """Fails the test if a simulation starts: the fault must be found before it."""
    def simulate(*_args, **_kwargs):
        raise AssertionError("the simulation started before the fault was found")

    monkeypatch.setattr("scenarios.runner.run", simulate)


# --- plug-ins -------------------------------------------------------------------------------


PLUGIN_SOURCE = '''
import numpy as np


class Agent:
    """Defects, or misbehaves in the way ``mode`` names."""

    def __init__(self, mode):
        self.mode = mode

    def reset(self, num_games, rng):
        if self.mode == "reset_raises":
            raise RuntimeError("cannot reset")

    def act(self, observations, hints=None):
        n = observations.shape[0]
        if self.mode == "act_raises":
            return 1 // 0
        if self.mode == "list":
            return [1] * n
        if self.mode == "shape":
            return np.ones(n + 1, dtype=np.int64)
        if self.mode == "float":
            return np.ones(n, dtype=np.float64)
        if self.mode == "nan":
            return np.full(n, np.nan)
        if self.mode == "range":
            return np.full(n, 2, dtype=np.int64)
        if self.mode == "negative":
            return np.full(n, -1, dtype=np.int64)
        return np.ones(n, dtype=np.int64)

    def observe(self, rewards, active):
        if self.mode == "observe_raises":
            raise KeyError("last reward")


def factory(context, *, mode="fine"):
    if mode == "factory_raises":
        raise ValueError("no such strategy")
    return Agent(mode)
'''

PLUGIN_SCENARIO = """\
kind: simulation
name: plugged
env: {{id: coplay/ipd-v0, horizon: 5}}
agents:
  mine: {{kind: plugin, factory: "{factory}", params: {{mode: {mode}}}}}
  alld: {{kind: always_defect}}
matchups: {{mode: round_robin, players: [mine, alld]}}
run: {{episodes: 4, seed: 0, batch_size: 4}}
"""


@pytest.fixture
def plugin_folder(tmp_path, monkeypatch):
    """A folder on the import path for plug-in modules; each test's names are its own."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    names: list[str] = []

    def add(source: str) -> str:
        name = f"coplay_robust_plugin_{uuid.uuid4().hex}"
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return name

    yield add
    for name in names:
        sys.modules.pop(name, None)


ACTIONS = "expected a numpy integer array of shape (4,) with actions in 0..1, got "


@pytest.mark.parametrize(("mode", "method", "cause"), [
    ("act_raises", "act",
     "expected act to run, got ZeroDivisionError: integer division or modulo by zero. Fix the plug-in."),
    ("reset_raises", "reset", "expected reset to run, got RuntimeError: cannot reset."),
    ("observe_raises", "observe", "expected observe to run, got KeyError: 'last reward'."),
    ("list", "act", ACTIONS + "list. Fix the plug-in's act."),
    ("shape", "act", ACTIONS + "shape (5,)."),
    ("float", "act", ACTIONS + "dtype float64."),
    ("nan", "act", ACTIONS + "NaN actions (dtype float64)."),
    ("range", "act", ACTIONS + "action 2."),
    ("negative", "act", ACTIONS + "action -1."),
])
def test_a_misbehaving_plugin_stops_the_run_with_one_line_naming_it(
        monkeypatch, capsys, tmp_path, db_url, plugin_folder, mode, method, cause):
    module = plugin_folder(PLUGIN_SOURCE)
    scenario = write(tmp_path, "s.yaml", PLUGIN_SCENARIO.format(factory=f"{module}:factory", mode=mode))
    line = one_error_line(*coplay(monkeypatch, capsys, "run", str(scenario), "--db", db_url,
                                  "--no-plots"))
    assert line.startswith(f"coplay: error: agents.mine.{method} (plug-in {module}:factory): {cause}")
    assert RunStore(db_url).list() == []


def test_a_well_behaved_plugin_plays(monkeypatch, capsys, tmp_path, db_url, plugin_folder):
    module = plugin_folder(PLUGIN_SOURCE)
    scenario = write(tmp_path, "s.yaml", PLUGIN_SCENARIO.format(factory=f"{module}:factory", mode="fine"))
    code, _, stderr = coplay(monkeypatch, capsys, "run", str(scenario), "--db", db_url, "--no-plots")
    assert code == 0, stderr
    assert RunStore(db_url).pairings(1)[0].cooperations == (0, 0)


@pytest.mark.parametrize(("source", "cause"), [
    ("raise RuntimeError('no licence for this strategy')\n",
     ("expected module '{module}' to import, got RuntimeError: no licence for this strategy. "
      "Fix the plug-in module.")),
    ("def factory(context:\n    pass\n", "got SyntaxError: "),
    ("import coplay_robust_missing_dependency\n",
     ("expected module '{module}' to import, got ModuleNotFoundError: No module named "
      "'coplay_robust_missing_dependency'. Install what the plug-in needs.")),
    ("import sys\nsys.exit(3)\n", "got SystemExit: 3"),
    (PLUGIN_SOURCE.replace('mode="fine"', 'mode="factory_raises"'),
     "expected {module}:factory(context, ...) to build an agent, got ValueError: no such strategy"),
])
def test_a_plugin_that_fails_to_load_is_reported_before_anything_runs(
        monkeypatch, capsys, tmp_path, db_url, plugin_folder, no_simulation, source, cause):
    module = plugin_folder(source)
    text = PLUGIN_SCENARIO.format(factory=f"{module}:factory", mode="fine")
    scenario = write(tmp_path, "s.yaml", text.replace(", params: {mode: fine}", ""))
    line = one_error_line(*coplay(monkeypatch, capsys, "run", str(scenario), "--db", db_url))
    assert line.startswith(f"coplay: error: {scenario}: agents.mine.factory: ")
    assert cause.format(module=module) in line
    if "SyntaxError" in cause:
        assert f"{module}.py, line 1)" in line
    assert RunStore(db_url).list() == []


# --- scenario files -------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["run"], ["scenarios", "validate"], ["train"]])
@pytest.mark.parametrize(("content", "cause"), [
    (TINY_SCENARIO.replace("  alld: {kind: always_defect}\n",
                           "  alld: {kind: always_defect}\n  tft: {kind: always_cooperate}\n"),
     (": line 7: expected each key once in a mapping, got key 'tft' again (first given at "
      "line 5). Remove or rename one of them.\n")),
    (TINY_SCENARIO + "name: other\n",
     (": line 10: expected each key once in a mapping, got key 'name' again (first given at "
      "line 2).")),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
     ": expected a YAML text file, got a binary file. Pass the scenario's .yaml file.\n"),
    (TINY_SCENARIO.replace("name: tiny", "name: tiny\ndescription: caf\xe9").encode("latin-1"),
     ": line 3: expected UTF-8 text, got byte 0xe9, which is not UTF-8. Save the file as UTF-8.\n"),
], ids=["duplicate-agent", "duplicate-top-level-key", "binary", "latin-1"])
def test_unreadable_scenario_files_are_refused_in_one_line(
        monkeypatch, capsys, tmp_path, db_url, command, content, cause):
    path = tmp_path / "bad.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    extra = ["--db", db_url] if command[0] != "scenarios" else []
    line = one_error_line(*coplay(monkeypatch, capsys, *command, str(path), *extra))
    assert line.startswith(f"coplay: error: {path}") and cause in line
    if extra:
        assert RunStore(db_url).list() == [] and TrainingStore(db_url).list() == []


def test_yaml_merge_keys_are_not_duplicates(monkeypatch, capsys, tmp_path, db_url):
    text = TINY_SCENARIO.replace(
        "  alld: {kind: always_defect}\n",
        "  alld: &base {kind: always_defect}\n  alld2:\n    <<: *base\n    kind: always_cooperate\n")
    path = write(tmp_path, "merge.yaml", text)
    code, _, stderr = coplay(monkeypatch, capsys, "scenarios", "validate", str(path))
    assert code == 0, stderr


# --- database faults ------------------------------------------------------------------------


def stored_db(tmp_path) -> str:
    path = tmp_path / "store.db"
    open_engine(f"sqlite:///{path}").dispose()
    return str(path)


def test_a_corrupted_database_file_is_refused_and_left_as_it_was(monkeypatch, capsys, tmp_path,
                                                                  no_simulation):
    path = tmp_path / "store.db"
    garbage = b"these are my notes, not a database\n" * 200
    path.write_bytes(garbage)
    scenario = write(tmp_path, "tiny.yaml", TINY_SCENARIO)
    for args in (["run", str(scenario)], ["runs", "list"], ["memory", "list"], ["db", "upgrade"]):
        line = one_error_line(*coplay(monkeypatch, capsys, *args, "--db", f"sqlite:///{path}"))
        assert line == (f"coplay: error: --db: expected an SQLite database file at sqlite:///{path}, "
                        "got file is not a database. Pass --db with another file, or move this "
                        "one aside.\n")
    assert path.read_bytes() == garbage


def test_a_read_only_database_is_refused_before_simulating(monkeypatch, capsys, tmp_path,
                                                           no_simulation):
    path = stored_db(tmp_path)
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    scenario = write(tmp_path, "tiny.yaml", TINY_SCENARIO)
    line = one_error_line(*coplay(monkeypatch, capsys, "run", str(scenario), "--db", read_only))
    assert "expected a database coplay can write to" in line
    assert "got attempt to write a readonly database" in line
    line = one_error_line(*coplay(monkeypatch, capsys, "memory", "add", "--name", "x",
                                  "--instruction", "y", "--db", read_only))
    assert "attempt to write a readonly database" in line
    # Reading still works.
    assert coplay(monkeypatch, capsys, "runs", "list", "--db", read_only)[0] == 0
    assert RunStore(f"sqlite:///{path}").list() == []


def test_a_database_locked_past_the_timeout_is_refused_before_simulating(
        monkeypatch, capsys, tmp_path, no_simulation):
    path = stored_db(tmp_path)
    scenario = write(tmp_path, "tiny.yaml", TINY_SCENARIO)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, for longer than we wait
    try:
        start = time.perf_counter()
        line = one_error_line(*coplay(monkeypatch, capsys, "run", str(scenario), "--db",
                                      f"sqlite:///{path}?timeout=0.2"))
        assert time.perf_counter() - start < 10
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert line == (f"coplay: error: --db: expected the database at sqlite:///{path}?timeout=0.2 "
                    "free within 0.2 s, got database is locked (another process is writing to "
                    "it). Wait for it to finish, or wait longer with ?timeout=SECONDS in the URL.\n")
    assert RunStore(f"sqlite:///{path}").list() == []


def test_a_bad_timeout_in_the_url_is_refused(monkeypatch, capsys, tmp_path):
    line = one_error_line(*coplay(monkeypatch, capsys, "runs", "list", "--db",
                                  f"sqlite:///{tmp_path / 's.db'}?timeout=soon"))
    assert line == "coplay: error: --db: expected ?timeout= a number of seconds, 0 or more, got 'soon'.\n"


def test_a_schema_newer_than_the_code_is_named_and_db_commands_do_not_crash(
        monkeypatch, capsys, tmp_path):
    path = stored_db(tmp_path)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0999'")
    url = f"sqlite:///{path}"
    expected = (f"coplay: error: --db: expected a database at schema revision {migrations.head()} "
                "or older, got revision 0999, written by a newer coplay. Upgrade coplay "
                "(pip install -U coplay) to use this database.\n")
    for args in (["runs", "list"], ["memory", "list"], ["db", "upgrade"]):
        assert one_error_line(*coplay(monkeypatch, capsys, *args, "--db", url)) == expected
    code, stdout, stderr = coplay(monkeypatch, capsys, "db", "current", "--db", url)
    assert code == 0, stderr
    assert stdout.strip() == (f"schema revision 0999 (written by a newer coplay: upgrade coplay "
                              f"to use it); newest {migrations.head()}")
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("0999",)]


@pytest.mark.parametrize(("old", "new", "cause"), [
    ("name: tiny", "name: " + "t" * 300,
     "scenario name: expected at most 200 characters, got 300 characters ('tttt"),
    ("tft", "t" * 250, f"agent name '{'t' * 40}': expected at most 200 characters, got 250"),
])
def test_a_value_longer_than_its_column_is_refused_before_simulating(
        monkeypatch, capsys, tmp_path, db_url, no_simulation, old, new, cause):
    scenario = write(tmp_path, "long.yaml", TINY_SCENARIO.replace(old, new))
    line = one_error_line(*coplay(monkeypatch, capsys, "run", str(scenario), "--db", db_url))
    assert line.startswith(f"coplay: error: {cause}")
    assert RunStore(db_url).list() == []


# --- training interrupted -------------------------------------------------------------------


INTERRUPTING_PLUGIN = '''
import os
import signal
import time

import numpy as np


class Stopper:
    """Cooperates; while the file ``flag`` exists, its ``after``-th move instead raises
    ``error`` (and the file goes, so a resumed run plays on)."""

    def __init__(self, flag, after, error):
        self.flag, self.after, self.error, self.moves = flag, after, error, 0

    def reset(self, num_games, rng):
        pass

    def act(self, observations, hints=None):
        self.moves += 1
        if self.moves >= self.after and os.path.exists(self.flag):
            os.remove(self.flag)
            if self.error == "hang":  # until the test kills the process with SIGKILL
                open(self.flag + ".ready", "w").close()
                time.sleep(120)
            if self.error == "terminate":  # as `kill PID` or a job scheduler would
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(10)  # the handler interrupts this at once
            raise KeyboardInterrupt if self.error == "interrupt" else OSError("disk on fire")
        return np.zeros(observations.shape[0], dtype=np.int64)


def factory(context, *, flag, after, error):
    return Stopper(flag, after, error)
'''

TRAINING = """\
kind: training
name: stoppable
env: {{id: coplay/ipd-v0, horizon: 10}}
agents:
  stopper: {{kind: plugin, factory: "{factory}", params: {{flag: "{flag}", after: 15, error: {error}}}}}
learners: {{a: {{}}}}
pool: {{learners: 0.5, stopper: 0.5}}
train: {{updates: 3, episodes_per_update: 8, policy: {{hidden_size: 8, embed_size: 4}}, seed: 0}}
"""


def without_timing(points):
    return [(p.update, p.learner, {k: v for k, v in p.metrics.items() if "seconds" not in k})
            for p in points]


@pytest.mark.parametrize(("error", "exit_code"), [("interrupt", 130), ("terminate", 130), ("raise", 2)])
def test_killed_training_is_marked_interrupted_and_resume_continues_it(
        monkeypatch, capsys, tmp_path, db_url, plugin_folder, error, exit_code):
    module = plugin_folder(INTERRUPTING_PLUGIN)
    flag = tmp_path / "flag"
    scenario = write(tmp_path, "t.yaml", TRAINING.format(factory=f"{module}:factory",
                                                         flag=flag, error=error))
    args = ["train", str(scenario), "--db", db_url, "--no-plots", "--checkpoint-every", "1"]
    flag.touch()
    code, _, stderr = coplay(monkeypatch, capsys, *args, "--out", str(tmp_path / "split"))
    assert code == exit_code and stderr.count("\n") == 1, stderr
    if error == "raise":
        assert stderr.startswith(f"coplay: error: agents.stopper.act (plug-in {module}:factory): "
                                 "expected act to run, got OSError: disk on fire.")
    store = TrainingStore(db_url)
    interrupted = store.run(1)
    assert interrupted.status == "interrupted" and interrupted.last_update == 1
    code, stdout, _ = coplay(monkeypatch, capsys, "training", "list", "--db", db_url)
    assert code == 0 and "interrupted" in stdout
    code, _, stderr = coplay(monkeypatch, capsys, *args, "--out", str(tmp_path / "split"), "--resume")
    assert code == 0, stderr
    assert [(r.status, r.last_update) for r in store.list()] == [("finished", 3)]
    if error == "interrupt":  # the resumed curve is that of a run never interrupted
        assert coplay(monkeypatch, capsys, *args, "--out", str(tmp_path / "straight"))[0] == 0
        assert without_timing(store.curve(1)) == without_timing(store.curve(2))


def test_a_training_run_killed_without_a_word_reads_back_as_interrupted(
        monkeypatch, capsys, tmp_path, db_url, plugin_folder):
    """SIGKILL leaves no chance to mark the run: the store sees that the process which set it
    running is gone."""
    module = plugin_folder(INTERRUPTING_PLUGIN)
    flag = tmp_path / "flag"
    scenario = write(tmp_path, "t.yaml", TRAINING.format(factory=f"{module}:factory",
                                                         flag=flag, error="hang"))
    args = ["train", str(scenario), "--db", db_url, "--no-plots", "--checkpoint-every", "1",
            "--out", str(tmp_path / "killed")]
    flag.touch()
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", *args], cwd=root,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "plugins"), str(root)])},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    ready = Path(f"{flag}.ready")
    deadline = time.monotonic() + 120
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ready.exists(), "the training run never reached its hanging move"
    assert TrainingStore(db_url).run(1).status == "running"
    process.kill()
    process.wait()
    assert TrainingStore(db_url).run(1).status == "interrupted"
    code, stdout, _ = coplay(monkeypatch, capsys, "training", "list", "--db", db_url)
    assert code == 0 and "interrupted" in stdout
    code, _, stderr = coplay(monkeypatch, capsys, *args, "--resume")
    assert code == 0, stderr
    assert TrainingStore(db_url).run(1).status == "finished"


def test_resume_without_a_checkpoint_says_so(monkeypatch, capsys, tmp_path, db_url, plugin_folder):
    module = plugin_folder(INTERRUPTING_PLUGIN)
    scenario = write(tmp_path, "t.yaml", TRAINING.format(factory=f"{module}:factory",
                                                         flag=tmp_path / "flag", error="raise"))
    line = one_error_line(*coplay(monkeypatch, capsys, "train", str(scenario), "--db", db_url,
                                  "--out", str(tmp_path / "nothing"), "--resume"))
    assert line == (f"coplay: error: --resume: expected a checkpoint to continue from in "
                    f"{tmp_path / 'nothing'}, got none. Train without --resume to start the run "
                    "afresh.\n")
    assert TrainingStore(db_url).list() == []


# --- memory import --------------------------------------------------------------------------


def test_importing_the_same_file_twice_merges_instead_of_duplicating(
        monkeypatch, capsys, tmp_path, db_url):
    for name, trigger in (("Probe", "coplayer:reciprocator"), ("Retaliate", "coplayer:defector")):
        code, _, stderr = coplay(monkeypatch, capsys, "memory", "add", "--db", db_url, "--name", name,
                                 "--instruction", f"{name} against this co-player.",
                                 "--trigger", trigger, "--tag", "t")
        assert code == 0, stderr
    exported = tmp_path / "handbook.json"
    assert coplay(monkeypatch, capsys, "memory", "export", str(exported), "--db", db_url)[0] == 0

    def stats(url: str) -> dict:
        return json.loads(coplay(monkeypatch, capsys, "memory", "stats", "--db", url, "--json")[1])

    other = f"sqlite:///{tmp_path / 'other.db'}"
    code, stdout, _ = coplay(monkeypatch, capsys, "memory", "import", str(exported), "--db", other)
    assert (code, stdout.strip()) == (0, f"imported 2 behaviors from {exported}")
    once = stats(other)
    assert once["behaviors"] == 2 and once["relations"] >= 2
    code, stdout, _ = coplay(monkeypatch, capsys, "memory", "import", str(exported), "--db", other)
    assert (code, stdout.strip()) == (
        0, f"imported 2 behaviors from {exported} (2 merged into behaviors already stored)")
    twice = stats(other)
    assert {k: v for k, v in twice.items() if k != "revision"} == {
        k: v for k, v in once.items() if k != "revision"}
    # Into the database it came from: nothing changes either.
    before = stats(db_url)
    assert coplay(monkeypatch, capsys, "memory", "import", str(exported), "--db", db_url)[0] == 0
    assert {k: v for k, v in stats(db_url).items() if k != "revision"} == {
        k: v for k, v in before.items() if k != "revision"}


# --- real file permissions (as an unprivileged user: root may write anywhere) ---------------


def coplay_as_user(folder, *args: str) -> tuple[int, str, str]:
    """`coplay ARGS` in a child process; run as the unprivileged user `nobody` (through
    util-linux's setpriv) when the tests run as root, for whom file permissions do not apply."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    command = [sys.executable, "-m", "cli", *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop privileges")
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    repository = Path(__file__).resolve().parent.parent
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(folder), "PYTHONPATH": str(repository),
           "MPLCONFIGDIR": str(folder), "NUMBA_CACHE_DIR": str(folder)}
    done = subprocess.run(command, cwd=repository, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def shared_folder():
    """A folder the unprivileged user can enter (pytest's tmp_path is private to root)."""
    import shutil
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="coplay-robust-"))
    folder.chmod(0o777)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    shutil.rmtree(folder)


@pytest.mark.parametrize("locked", ["file", "folder"])
def test_a_database_in_a_read_only_file_or_folder_is_refused_before_simulating(shared_folder, locked):
    store = shared_folder / "runs"
    store.mkdir()
    path = store / "store.db"
    open_engine(f"sqlite:///{path}").dispose()
    scenario = write(shared_folder, "tiny.yaml", TINY_SCENARIO)
    for item in (store, path, scenario):
        item.chmod(0o777 if item.is_dir() else 0o666)
    (path if locked == "file" else store).chmod(0o444 if locked == "file" else 0o555)
    before = path.read_bytes()
    code, stdout, stderr = coplay_as_user(shared_folder, "run", str(scenario), "--db",
                                          f"sqlite:///{path}", "--no-plots")
    line = one_error_line(code, stdout, stderr)
    assert line.startswith(f"coplay: error: --db: expected a database coplay can write to at "
                           f"sqlite:///{path}, got attempt to write a readonly database.")
    assert "episodes" not in stdout  # refused before the simulation started
    assert path.read_bytes() == before


def test_a_database_failure_after_the_checks_is_still_one_line(monkeypatch, capsys, tmp_path, db_url):
    def locked_at_the_end(*_args, **_kwargs):
        from sqlalchemy.exc import OperationalError

        raise OperationalError("INSERT INTO runs ...", {}, sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(RunStore, "save", locked_at_the_end)
    scenario = write(tmp_path, "tiny.yaml", TINY_SCENARIO)
    line = one_error_line(*coplay(monkeypatch, capsys, "run", str(scenario), "--db", db_url,
                                  "--no-plots"))
    assert line.startswith("coplay: error: --db: expected the database free within 30.0 s, got "
                           "database is locked (another process is writing to it).")
