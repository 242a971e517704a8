"""Train the zstd dictionary of stored view documents (``services/views/data/views-3.zdict``).

The samples are the MessagePack of every document (:func:`services.views.codec.packed_doc`)
that folding a corpus into every projection gives. The corpus is not the benchmark's
workload: the reference scenario (:mod:`services.reference`) and a generated stream of
another seed and id namespace than any stage of ``benchmarks/bench.py`` uses (seeds 7 to 14
there), the corpus of the log's dictionary (``tools/train_entry_dictionary.py``).

Usage::

    python tools/train_view_dictionary.py [--size 16384] [--events 50000] [OUT]

A dictionary once shipped is never changed: every compressed document names it by the id
in its frame. A better one gets a new id and file, and the old file stays for the
documents written with it.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.workload import Workload
from events import Event, Recorded, recorded_at_of
from projections import PROJECTIONS
from services.reference import scenario
from services.views import codec
from tools.train_entry_dictionary import train

SEED = 1234
"""The corpus's workload seed (the benchmark uses 7 and the seeds just above it)."""
FIRST_MS = 1_700_000_000_000
"""The millisecond part of the corpus's first log position."""


def recorded(events: list[Event]) -> list[Recorded]:
    """The events as a log records them, eight a millisecond."""
    found = []
    for n, event in enumerate(events):
        position = f"{FIRST_MS + n // 8}-{n % 8}"
        found.append(Recorded(position, recorded_at_of(position), event))
    return found


def samples(count: int) -> list[bytes | bytearray | memoryview]:
    """The MessagePack of every document of every view folded from the corpus."""
    log = recorded([*scenario(), *Workload(seed=SEED, namespace="dict-").take(count)])
    found: list[bytes | bytearray | memoryview] = []
    for projection in PROJECTIONS.values():
        state = projection.initial()
        for one in log:
            projection.apply(state, one)
        found += [codec.packed_doc(doc) for docs in state.kinds().values() for doc in docs.values()]
    return found


def main() -> None:
    """Train and write the dictionary."""
    default = Path(codec.__file__).parent / "data" / codec.DICTIONARY
    train(__doc__ or "", samples, codec.DICTIONARY_ID, default)


if __name__ == "__main__":
    main()
