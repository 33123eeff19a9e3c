"""`coplay memory ...` and `coplay db ...`: inspect and edit the behavior handbook and its
knowledge graph, and upgrade a database's schema. Every listing has ``--json`` for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.options import DEFAULT_DB_URL, DbOption, EmbedderOption, JsonOption
from cli.output import compact_table, console, print_json
from coplay.errors import ConfigError

if TYPE_CHECKING:
    from rich.table import Table

    from memory.behaviors import Behavior, EffectStats
    from memory.handbook import Handbook, Hit
memory_app = typer.Typer(
    help="The behavior handbook and its knowledge graph.",
    no_args_is_help=True,
)
db_app = typer.Typer(help="The database's schema: show its revision, upgrade it.",
                     no_args_is_help=True)

TagOption = Annotated[list[str] | None, typer.Option(
    "--tag", help="Require this tag (repeatable).")]
KindOption = Annotated[list[str] | None, typer.Option(
    "--kind", help="Only this kind: text, response_rule, action_macro, approach (repeatable).")]


def open_handbook(db: str, embedder: str = "hashing", *, writing: bool = False) -> Handbook:
    """The handbook at ``db``; ``writing`` checks at once that the database can be written
    (not read-only, not locked past its timeout)."""
    from coplay.errors import StoreError
    from memory.db import check_writable
    from memory.embedding import make_embedder
    from memory.handbook import Handbook

    handbook = Handbook.open(db, embedder=make_embedder(embedder))
    if writing:
        try:
            check_writable(handbook.engine)
        except StoreError:
            handbook.close()
            raise
    return handbook


def _record(behavior: Behavior) -> dict[str, Any]:
    data = asdict(behavior)
    data["stats"].update(mean_return_used=behavior.stats.mean_return_used,
                         mean_return_unused=behavior.stats.mean_return_unused,
                         effect=behavior.stats.effect)
    return data


def _effect_record(stats: EffectStats) -> dict[str, Any]:
    return {"used": stats.used.n, "not_used": stats.unused.n, "effect": stats.effect,
            "stderr": stats.stderr, "interval": stats.interval(), "verdict": stats.verdict}


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _longest_word(texts: Iterable[str], cap: int = 16) -> int:
    """The width a column needs so that no word in it breaks (up to ``cap``)."""
    return min(cap, max((len(word) for text in texts for word in text.split()), default=1))


def _behavior_table(
    behaviors: list[Behavior], *, title: str, scores: list[float] | None = None
) -> Table:
    """Names and tags wrap between words; ids, kinds and figures never break. An invalidated
    behavior's name says so; its version and why it was invalidated are in `memory show`."""
    table = compact_table(title)
    if scores is not None:
        table.add_column("score", justify="right", no_wrap=True)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("name", ratio=2, min_width=_longest_word(b.name for b in behaviors))
    table.add_column("kind", no_wrap=True)
    table.add_column("tags", ratio=1, min_width=_longest_word(t for b in behaviors for t in b.tags))
    table.add_column("used/shown", justify="right", no_wrap=True)
    table.add_column("effect", justify="right", no_wrap=True)
    for position, b in enumerate(behaviors):
        name = b.name if b.valid else f"{b.name} (invalid)"
        row = [str(b.id), name, b.kind, ", ".join(b.tags),
               f"{b.stats.uses}/{b.stats.shown}", _number(b.stats.effect)]
        if scores is not None:
            row.insert(0, f"{scores[position]:.4f}")
        table.add_row(*row)
    return table


@memory_app.command("list")
def memory_list(
    db: DbOption = DEFAULT_DB_URL, tag: TagOption = None, kind: KindOption = None,
    include_invalid: Annotated[bool, typer.Option(
        "--all", help="Include invalidated (superseded or merged) behaviors.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List behaviors by id."""
    with open_handbook(db) as handbook:
        found = handbook.list(tags=tag or (), kinds=kind or (), include_invalid=include_invalid,
                              limit=limit)
        if as_json:
            print_json([_record(b) for b in found])
            return
        title = f"{len(found)} behaviors (of {len(handbook)} valid)"
        console.print(_behavior_table(found, title=title))


@memory_app.command("show")
def memory_show(
    behavior_id: Annotated[int, typer.Argument(metavar="ID", help="A behavior id.")],
    db: DbOption = DEFAULT_DB_URL, as_json: JsonOption = False,
) -> None:
    """Show one behavior.

    Its instruction, payload, statistics, versions, provenance and graph edges."""
    with open_handbook(db) as handbook:
        behavior = handbook.get(behavior_id)
        versions = handbook.versions(behavior_id)
        provenance = handbook.provenance(behavior_id)
        effects = handbook.effects(behavior_id)
        ref = f"behavior:{behavior_id}"
        edges = [r for r in handbook.graph.relations() if ref in (r.source, r.target)]
    if as_json:
        print_json({**_record(behavior), "versions": [asdict(v) for v in versions],
                     "provenance": [asdict(p) for p in provenance],
                     "effects": {entity: _effect_record(stats) for entity, stats in effects.items()},
                     "relations": [asdict(r) for r in edges]})
        return
    console.print(f"[bold]{behavior.name}[/bold]  (behavior {behavior.id}, version "
                  f"{behavior.version}, {behavior.kind}, "
                  f"{'valid' if behavior.valid else 'invalid: ' + str(behavior.invalid_reason)})")
    console.print(behavior.instruction, soft_wrap=True)
    if behavior.payload:
        console.print(f"payload: {json.dumps(behavior.payload)}", soft_wrap=True)
    console.print(f"trigger: {dict(behavior.trigger)}  tags: {list(behavior.tags)}")
    s = behavior.stats
    console.print(f"a candidate in {s.shown} episodes, used in {s.uses}; return per step when "
                  f"used {_number(s.mean_return_used)}, when no behavior was used "
                  f"{_number(s.mean_return_unused)}")
    table = compact_table("effect by credited entity (used minus no behavior used; 95% interval)")
    for column in ("entity", "used", "not used", "effect", "interval", "verdict"):
        table.add_column(column, no_wrap=True)
    for entity, stats in effects.items():
        interval = stats.interval()
        table.add_row(entity, str(stats.used.n), str(stats.unused.n), _number(stats.effect),
                      "-" if interval is None else f"[{interval[0]:.3f}, {interval[1]:.3f}]",
                      stats.verdict)
    console.print(table)
    table = compact_table("versions")
    for column in ("version", "name", "note", "valid from", "valid to"):
        table.add_column(column)
    for v in versions:
        table.add_row(str(v.version), v.name, v.note, v.valid_from.isoformat(timespec="seconds"),
                      v.valid_to.isoformat(timespec="seconds") if v.valid_to else "-")
    console.print(table)
    table = compact_table("provenance")
    for column in ("extractor", "scenario", "agent", "run", "episodes"):
        table.add_column(column)
    for p in provenance:
        shown = ", ".join(map(str, p.episodes[:8])) + (" ..." if len(p.episodes) > 8 else "")
        table.add_row(p.extractor, p.scenario or "-", p.agent or "-",
                      str(p.run_id) if p.run_id is not None else "-", shown or "-")
    console.print(table)
    table = compact_table("graph edges")
    for column in ("source", "relation", "target", "weight"):
        table.add_column(column)
    for r in edges:
        table.add_row(r.source, r.type, r.target, f"{r.weight:.3f}")
    console.print(table)


@memory_app.command("search")
def memory_search(
    query: Annotated[str, typer.Argument(help="What the agent is facing, in words.")],
    db: DbOption = DEFAULT_DB_URL, embedder: EmbedderOption = "hashing",
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many behaviors.")] = 5,
    entity: Annotated[list[str] | None, typer.Option(
        help="A graph entity of the context, e.g. coplayer:reciprocator (repeatable).")] = None,
    tag: TagOption = None, kind: KindOption = None,
    include_invalid: Annotated[bool, typer.Option(
        "--all", help="Include invalidated ones.")] = False,
    as_json: JsonOption = False,
) -> None:
    """The behaviors retrieval ranks best for a context.

    Lexical, vector and graph rankings, fused."""
    from memory.index import Filters
    from memory.refs import parse_ref

    for ref in entity or ():
        parse_ref(ref, where="--entity")
    filters = Filters(tags=frozenset(tag or ()), kinds=frozenset(kind or ()),
                      include_invalid=include_invalid)
    with open_handbook(db, embedder) as handbook:
        hits: list[Hit] = handbook.search(query, k=k, entities=entity or (), filters=filters)
    if as_json:
        print_json([{"score": h.score, **_record(h.behavior)} for h in hits])
        return
    console.print(_behavior_table([h.behavior for h in hits], title=f"best {k} for {query!r}",
                                  scores=[h.score for h in hits]))


@memory_app.command("add")
def memory_add(
    name: Annotated[str, typer.Option(help="A short name.")],
    instruction: Annotated[str, typer.Option(help="What to do, in words.")],
    db: DbOption = DEFAULT_DB_URL, embedder: EmbedderOption = "hashing",
    kind: Annotated[str, typer.Option(help="text, response_rule, action_macro or approach.")] = "text",
    payload: Annotated[str | None, typer.Option(
        help="The kind's JSON payload, e.g. '{\"actions\": [0, 0, 1]}'.")] = None,
    trigger: Annotated[list[str] | None, typer.Option(
        help="An entity it applies to, TYPE:KEY, e.g. coplayer:defector (repeatable).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")] = None,
) -> None:
    """Add a behavior by hand.

    It is merged into an existing one if it duplicates it."""
    from memory.behaviors import NewBehavior, Provenance
    from memory.refs import parse_ref

    try:
        parsed = json.loads(payload) if payload is not None else None
    except json.JSONDecodeError as error:
        raise ConfigError("--payload", expected="JSON", got=str(error)) from None
    triggers = dict(parse_ref(ref, where="--trigger") for ref in trigger or ())
    new = NewBehavior(name=name, instruction=instruction, kind=kind, payload=parsed,
                      trigger=triggers, tags=tuple(tag or ()),
                      provenance=Provenance(extractor="cli"))
    with open_handbook(db, embedder, writing=True) as handbook:
        result = handbook.add(new)
    verb = "merged into existing" if result.merged else "added"
    console.print(f"{verb} behavior {result.behavior.id}: {result.behavior.name}", soft_wrap=True)


@memory_app.command("edit")
def memory_edit(
    behavior_id: Annotated[int, typer.Argument(metavar="ID")],
    db: DbOption = DEFAULT_DB_URL, embedder: EmbedderOption = "hashing",
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    instruction: Annotated[str | None, typer.Option(help="A new instruction.")] = None,
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", help="Replace the tags (repeatable).")] = None,
    note: Annotated[str, typer.Option(help="Why it changed, kept with the version.")] = "edited",
) -> None:
    """Write a new version of a behavior.

    Earlier versions stay readable."""
    with open_handbook(db, embedder, writing=True) as handbook:
        behavior = handbook.edit(behavior_id, name=name, instruction=instruction,
                                 tags=tag, note=note)
    console.print(f"behavior {behavior.id} is now at version {behavior.version}", soft_wrap=True)


@memory_app.command("invalidate")
def memory_invalidate(
    behavior_id: Annotated[int, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option(help="Why it no longer holds.")],
    db: DbOption = DEFAULT_DB_URL,
) -> None:
    """End a behavior's validity.

    It is kept (and exported) but no longer retrieved."""
    with open_handbook(db, writing=True) as handbook:
        handbook.invalidate(behavior_id, reason)
    console.print(f"behavior {behavior_id} invalidated", soft_wrap=True)


@memory_app.command("stats")
def memory_stats(db: DbOption = DEFAULT_DB_URL, as_json: JsonOption = False) -> None:
    """Count what the handbook holds.

    Behaviors, versions, provenance, graph entities and relations, and usage."""
    with open_handbook(db) as handbook:
        summary = handbook.summary()
    if as_json:
        print_json(asdict(summary))
        return
    table = compact_table("handbook")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in asdict(summary).items():
        if key != "by_kind":
            table.add_row(key.replace("_", " "), str(value))
    for kind, count in sorted(summary.by_kind.items()):
        table.add_row(f"kind {kind}", str(count))
    console.print(table)


@memory_app.command("graph")
def memory_graph(
    db: DbOption = DEFAULT_DB_URL,
    around: Annotated[str | None, typer.Option(
        help="An entity, TYPE:KEY (e.g. behavior:3 or concept:forgiveness): show its "
             "neighbourhood.")] = None,
    depth: Annotated[int, typer.Option(min=1, help="Hops around --around.")] = 1,
    png: Annotated[Path | None, typer.Option(
        help="Draw the (neighbourhood) graph to this PNG.")] = None,
    graphml: Annotated[Path | None, typer.Option(
        help="Write the (neighbourhood) graph as GraphML.")] = None,
    rank: Annotated[str | None, typer.Option(
        help="Rank behaviors by personalized PageRank from this entity.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show the knowledge graph.

    Entity and relation counts, a neighbourhood, a drawing, a ranking."""
    from memory.graph import graph_records
    from memory.refs import parse_ref

    with open_handbook(db) as handbook:
        graph = handbook.graph
        names = {f"behavior:{b.id}": b.name for b in handbook.list(include_invalid=True)}
        if rank is not None:
            parse_ref(rank, where="--rank")
            ranked = graph.personalized_pagerank({rank: 1.0}, entity_type="behavior")
            if as_json:
                print_json([{"entity": ref, "score": score, "name": names.get(ref)}
                            for ref, score in ranked])
                return
            table = compact_table(f"behaviors by personalized PageRank from {rank}")
            for column in ("entity", "name", "score"):
                table.add_column(column)
            for ref, score in ranked:
                table.add_row(ref, names.get(ref, "-"), f"{score:.4f}")
            console.print(table)
            return
        if around is not None:
            parse_ref(around, where="--around")
            view = graph.neighbourhood(around, depth)
        else:
            view = graph.to_networkx()
    if graphml is not None:
        import networkx as nx

        nx.write_graphml(view, str(graphml))
        console.print(f"wrote {graphml}", soft_wrap=True)
    if png is not None:
        from cli.plots import knowledge_graph

        title = f"around {around} ({depth} hop{'s' * (depth > 1)})" if around else "knowledge graph"
        knowledge_graph(view, png, title=title, labels=names)
        console.print(f"wrote {png}", soft_wrap=True)
    if as_json:
        print_json(graph_records(view))
        return
    if png is None and graphml is None:
        _print_graph(view, names, title=f"around {around}" if around else "knowledge graph")


def _print_graph(view, names: dict[str, str], *, title: str) -> None:
    by_type: dict[str, int] = {}
    for _, data in view.nodes(data=True):
        by_type[data["type"]] = by_type.get(data["type"], 0) + 1
    relations: dict[str, int] = {}
    for _, _, data in view.edges(data=True):
        relations[data["type"]] = relations.get(data["type"], 0) + 1
    console.print(f"[bold]{title}[/bold]: {view.number_of_nodes()} entities "
                  f"({', '.join(f'{n} {t}' for t, n in sorted(by_type.items()))}), "
                  f"{view.number_of_edges()} relations "
                  f"({', '.join(f'{n} {t}' for t, n in sorted(relations.items()))})",
                  soft_wrap=True)
    if view.number_of_edges() <= 60:
        table = compact_table()
        for column in ("source", "relation", "target", "weight"):
            table.add_column(column, overflow="fold")
        for a, b, data in view.edges(data=True):
            table.add_row(_label(a, names), data["type"], _label(b, names), f"{data['weight']:.3f}")
        console.print(table)


def _label(ref: str, names: dict[str, str]) -> str:
    return f"{ref} ({names[ref]})" if ref in names else ref


@memory_app.command("export")
def memory_export(file: Annotated[Path, typer.Argument(help="JSON file to write.")],
                  db: DbOption = DEFAULT_DB_URL) -> None:
    """Write the whole handbook and graph to one JSON file.

    `coplay memory import` reproduces it exactly."""
    with open_handbook(db) as handbook:
        count = handbook.export(file)
    console.print(f"exported {count} behaviors to {file}", soft_wrap=True)


@memory_app.command("import")
def memory_import(file: Annotated[Path, typer.Argument(help="A file from `coplay memory export`.")],
                  db: DbOption = DEFAULT_DB_URL, embedder: EmbedderOption = "hashing") -> None:
    """Add an exported handbook.

    The file is checked whole, and nothing is written if it fails. Behaviors already in the
    handbook (imported before, or the same content) are merged, not added again: importing a
    file twice changes nothing the second time."""
    with open_handbook(db, embedder, writing=True) as handbook:
        count = handbook.summary().behaviors
        stored = {b.id for b in handbook.list(include_invalid=True, limit=max(count, 1))}
        mapping = handbook.import_file(file)
    merged = sum(1 for new in mapping.values() if new in stored)
    moved = sum(1 for old, new in mapping.items() if new not in stored and old != new)
    notes = [f"{merged} merged into behaviors already stored"] if merged else []
    notes += [f"{moved} got new ids: theirs were taken"] if moved else []
    note = f" ({'; '.join(notes)})" if notes else ""
    console.print(f"imported {len(mapping)} behaviors from {file}{note}", soft_wrap=True)


@memory_app.command("prune")
def memory_prune(
    db: DbOption = DEFAULT_DB_URL,
    before: Annotated[datetime | None, typer.Option(
        help="Only behaviors invalidated before this time (UTC), e.g. 2026-11-01.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would go.")] = False,
) -> None:
    """Delete invalidated behaviors for good.

    Their versions, provenance and edges go with them."""
    with open_handbook(db, writing=not dry_run) as handbook:
        doomed = handbook.prune(invalidated_before=before, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    console.print(f"{verb} {len(doomed)} behaviors" + (f": {doomed}" if doomed else ""),
                  soft_wrap=True)


@memory_app.command("extract")
def memory_extract(
    run_id: Annotated[int, typer.Argument(help="A run recorded with trajectories.")],
    db: DbOption = DEFAULT_DB_URL, embedder: EmbedderOption = "hashing",
    min_episodes: Annotated[int, typer.Option(min=1, help="Episodes a pairing needs.")] = 8,
) -> None:
    """Distil a stored run's episodes into behaviors.

    Matrix games give response rules; duplicates merge into existing ones."""
    from scenarios.domains import extract_run

    with open_handbook(db, embedder, writing=True) as handbook:
        results = extract_run(handbook, run_id, min_episodes=min_episodes)
    new = sum(not r.merged for r in results)
    console.print(f"extracted {len(results)} behaviors from run {run_id}: {new} new, "
                  f"{len(results) - new} merged into existing ones")
    for r in results:
        merged = " (merged)" if r.merged else ""
        console.print(f"  {r.behavior.id}: {r.behavior.name}{merged}", soft_wrap=True)


@db_app.command("current")
def db_current(db: DbOption = DEFAULT_DB_URL) -> None:
    """Show the schema revision and the newest one known.

    The database's revision, and the newest one this coplay knows."""
    from memory import migrations, open_engine
    from memory.db import reporting

    engine = open_engine(db, check_schema=False)
    with reporting(engine), engine.connect() as connection:
        revision = migrations.revision_of(connection)
    engine.dispose()
    note = ("" if revision is None or migrations.known(revision)
            else " (written by a newer coplay: upgrade coplay to use it)")
    console.print(f"schema revision {revision or 'none'}{note}; newest {migrations.head()}",
                  soft_wrap=True)


@db_app.command("upgrade")
def db_upgrade(db: DbOption = DEFAULT_DB_URL) -> None:
    """Upgrade a database to the newest schema.

    Back it up first."""
    from memory import migrations, open_engine
    from memory.db import newer_schema, reporting

    engine = open_engine(db, check_schema=False)
    try:
        with reporting(engine):
            with engine.connect() as connection:
                revision = migrations.revision_of(connection)
            if revision is not None and not migrations.known(revision):
                raise newer_schema(db, revision)
            before, after = migrations.upgrade(engine)
    finally:
        engine.dispose()
    if before == after:
        console.print(f"already at revision {after}", soft_wrap=True)
    else:
        console.print(f"upgraded from revision {before or 'none'} to {after}", soft_wrap=True)
