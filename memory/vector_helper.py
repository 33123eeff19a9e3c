"""Vector ranking in a second process, beside the lexical and graph rankings.

A batched search spends about half its time scoring the contexts' vectors against the IVF
cells, in numpy calls that keep Python's GIL too often for a thread to overlap them with the
rest. With ``IndexSettings(vector_helper=True)``, a batch of at least ``MIN_BATCH`` contexts
sends most of its vectors (``HELPER_SHARE``) to a helper process, ranks the contexts
lexically and through the graph meanwhile, then ranks the remaining vectors itself and takes
the helper's answer: the share is chosen so that the two processes finish at about the same
time. The helper holds a copy of the IVF cells,
sent again whenever the index retrains them, and runs the same ``ivf_top`` the index would,
so the answers are the same.

The helper is started with ``spawn``: as with any multiprocessing, a script that turns it on
must keep its work under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import traceback
from multiprocessing.connection import Connection

import numpy as np

from coplay.errors import StoreError
from memory.rankers.ivf import Ivf, ivf_top

MIN_BATCH = 256  # smaller batches rank faster in process than the round trip costs
HELPER_SHARE = 0.7  # of a batch's queries; the index ranks the rest after its other rankings
JOIN_SECONDS = 5.0


class VectorHelper:
    """One helper process and the IVF version it holds. ``submit`` returns a ticket that
    ``result`` redeems: an answer left unread (the batch failed after submitting) is skipped,
    never handed to the next batch."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, theirs = context.Pipe()
        self._process = context.Process(target=_serve, args=(theirs,), daemon=True,
                                        name="coplay-vector-helper")
        self._process.start()
        theirs.close()
        self._cells_version: int | None = None
        self._tickets = 0

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def submit(self, ivf: Ivf, version: int, queries: np.ndarray, depth: int,
               bias: np.ndarray, probes: int) -> int:
        """Start ranking ``queries`` against ``ivf`` (sent only when ``version`` differs
        from the one the helper holds); returns the ticket."""
        self._tickets += 1
        try:
            if version != self._cells_version:
                self._connection.send(("cells", ivf))
                self._cells_version = version
            self._connection.send(("rank", self._tickets, queries, depth, bias, probes))
        except (BrokenPipeError, ConnectionResetError, EOFError) as error:
            raise self._gone() from error
        return self._tickets

    def result(self, ticket: int) -> tuple[np.ndarray, np.ndarray]:
        """The best slots and scores of the batch ``ticket`` names, as ``ivf_top`` returns
        them."""
        while True:
            try:
                kind, answered, payload = self._connection.recv()
            except (EOFError, ConnectionResetError) as error:
                raise self._gone() from error
            if answered != ticket:  # an earlier batch's, which failed before reading it
                continue
            if kind == "error":  # a bug, not the user's doing: raised with the helper's traceback
                raise RuntimeError(f"the vector helper failed:\n{payload}")
            return payload

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._connection.send(None)
            self._process.join(JOIN_SECONDS)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(JOIN_SECONDS)
        self._connection.close()

    def _gone(self) -> StoreError:
        return StoreError(
            "vector helper", expected="a running helper process",
            got=f"it exited (code {self._process.exitcode})",
            fix="Open the handbook again; if it keeps exiting, turn the helper off "
                "(IndexSettings(vector_helper=False)).",
        )


def _serve(connection: Connection) -> None:
    cells = None
    while True:
        try:
            message = connection.recv()
        except EOFError:  # the index's process has gone
            return
        if message is None:
            return
        if message[0] == "cells":
            cells = message[1]
            continue
        _, ticket, queries, depth, bias, probes = message
        try:
            connection.send(("ok", ticket, ivf_top(cells, queries, depth, bias, probes)))
        except Exception:
            connection.send(("error", ticket, traceback.format_exc()))
