"""Batched retrieval of this checkout against an earlier commit's, side by side in one process.

    python benchmarks/retrieval_ab.py --against COMMIT          # 10k behaviors, 8 rounds
    python benchmarks/retrieval_ab.py --against COMMIT --quick  # 2k behaviors, 2 rounds

On this VM a process's speed moves by up to 20% with what the host is doing, so two runs of
``memory_retrieval.py`` cannot tell a 10% change from noise. Here the earlier commit's
``memory`` package is unpacked beside this one (renamed, its imports rewritten), both fill a
handbook with the same behaviors, and their batched calls alternate: whatever the host does
slows both alike. Each round takes, per handbook and contexts kind (1,024 distinct contexts,
and 1,024 simulation contexts), ``memory_retrieval.throughput`` over five calls; the figures
are medians over rounds. The last line printed is one JSON object of named figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from memory_retrieval import behaviors, distinct_contexts, simulation_contexts, throughput

BASE_PACKAGE = "memory_at_base"
IMPORT = re.compile(r"\b(from|import) memory\b")


def unpack_base(commit: str, folder: Path) -> None:
    """``memory/`` at ``commit`` as the package ``memory_at_base`` in ``folder``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "memory"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    package = folder / BASE_PACKAGE
    (folder / "memory").rename(package)
    for source in package.rglob("*.py"):
        source.write_text(IMPORT.sub(rf"\1 {BASE_PACKAGE}", source.read_text()))


def filled(package: str, folder: Path, count: int):
    """A handbook of ``package`` holding ``count`` synthetic behaviors, and its contexts."""
    handbook_module = importlib.import_module(f"{package}.handbook")
    records = importlib.import_module(f"{package}.behaviors")
    handbook = handbook_module.Handbook.open(f"sqlite:///{folder / package}.db")
    made = [records.NewBehavior(**{
        f.name: getattr(b, f.name) for f in dataclasses.fields(b) if f.name != "provenance"
    }, provenance=records.Provenance(extractor="benchmark")) for b in behaviors(count)]
    for start in range(0, len(made), 5000):
        handbook.add_many(made[start:start + 5000])
    contexts = {
        "distinct": [records.Context(c.text, c.entities) for c in distinct_contexts(1024)],
        "simulation": [records.Context(c.text, c.entities) for c in simulation_contexts(1024)],
    }
    handbook.retrieve(contexts["distinct"])  # builds the index
    return handbook, contexts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", required=True, help="the earlier commit (any git revision)")
    parser.add_argument("--size", type=int, default=10_000, help="behaviors [10000]")
    parser.add_argument("--rounds", type=int, default=8, help="alternations [8]")
    parser.add_argument("--quick", action="store_true", help="2k behaviors, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.size, args.rounds = 2000, 2
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        try:
            unpack_base(args.against, folder)
        except subprocess.CalledProcessError as error:
            sys.exit(f"retrieval_ab: git cannot read memory/ at {args.against!r}: "
                     f"{error.stderr.decode().strip()}")
        sys.path.insert(0, str(folder))
        contenders = {"base": filled(BASE_PACKAGE, folder, args.size),
                      "this": filled("memory", folder, args.size)}
        rates: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for name, (handbook, contexts) in contenders.items():
                for kind, batch in contexts.items():
                    rates.setdefault((name, kind), []).append(throughput(handbook, batch, calls=5))
        for handbook, _ in contenders.values():
            handbook.close()
    print(f"{args.size} behaviors, {args.rounds} rounds; contexts/s, median (min-max)")
    figures: dict[str, object] = {"against": args.against, "size": args.size}
    for kind in ("distinct", "simulation"):
        base, this = (np.array(rates[(name, kind)]) for name in ("base", "this"))
        ratio = np.median(this) / np.median(base)
        print(f"  {kind:<10}  {args.against}: {np.median(base):,.0f} ({base.min():,.0f}-{base.max():,.0f})"
              f"   this checkout: {np.median(this):,.0f} ({this.min():,.0f}-{this.max():,.0f})"
              f"   ratio {ratio:.2f}")
        figures[f"{kind}_contexts_per_s_base"] = round(float(np.median(base)))
        figures[f"{kind}_contexts_per_s_this"] = round(float(np.median(this)))
        figures[f"{kind}_this_over_base"] = round(float(ratio), 3)
    figures["quick"] = args.quick
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
