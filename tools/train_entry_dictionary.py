"""Train the zstd dictionary of the log's entry codec 2 (``events/data/entries-2.zdict``).

The samples are the ``d`` fields codec 1 writes (an event's MessagePack without ``type``,
``source`` and ``schema_version``) of a corpus that is not the benchmark's workload: the
reference scenario (:mod:`services.reference`) and a generated stream of another seed and
id namespace than any stage of ``benchmarks/bench.py`` uses (seeds 7 to 14 there).

Usage::

    python tools/train_entry_dictionary.py [--size 16384] [--events 50000] [OUT]

A dictionary once shipped is never changed: entries compressed with it name it by codec
(``c`` = 2) and by the id in every frame. A better one is a new codec with a new id and file,
and the old file stays for the entries written with it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import zstandard

from benchmarks.workload import Workload
from events import codec
from services.reference import scenario

SEED = 1234
"""The corpus's workload seed (the benchmark uses 7 and the seeds just above it)."""


def samples(count: int) -> list[bytes | bytearray | memoryview]:
    """The ``d`` fields (codec 1) of the corpus's events."""
    corpus = [*scenario(), *Workload(seed=SEED, namespace="dict-").take(count)]
    return [codec.to_fields(event, codec.ENTRY_MSGPACK)["d"] for event in corpus]  # type: ignore[misc]


def train(
    description: str,
    samples: Callable[[int], list[bytes | bytearray | memoryview]],
    dict_id: int,
    default: Path,
) -> None:
    """Parse the command line (``--size``, ``--events``, ``OUT`` else ``default``), train a
    dictionary of id ``dict_id`` on ``samples(events)`` and write it (the view documents'
    trainer, ``tools/train_view_dictionary.py``, runs this too)."""
    parser = argparse.ArgumentParser(description=description.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--size", type=int, default=16384, help="dictionary bytes")
    parser.add_argument("--events", type=int, default=50_000, help="generated events")
    parser.add_argument("out", nargs="?", type=Path, default=default)
    args = parser.parse_args()
    trained = zstandard.train_dictionary(args.size, samples(args.events), dict_id=dict_id, level=19)
    args.out.write_bytes(trained.as_bytes())
    print(f"{args.out}: {len(trained.as_bytes()):,} bytes, id {trained.dict_id()}")


def main() -> None:
    """Train and write the dictionary."""
    default = Path(codec.__file__).parent / "data" / codec.DICTIONARY
    train(__doc__ or "", samples, codec.DICTIONARY_ID, default)


if __name__ == "__main__":
    main()
