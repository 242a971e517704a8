"""The vocabulary of the ledger: event schemas, their codec and upcasters.

Imports nothing else of this project; every other package builds on it.
"""

from .base import (
    GRADING_ORDER,
    Estimate,
    Event,
    Fatalities,
    Grading,
    Place,
    Position,
    Recorded,
    Source,
    VictimLine,
    position_key,
    recorded_at_of,
)
from .codec import (
    EVENT_TYPES,
    MAX_BATCH,
    AnyEvent,
    BatchProblem,
    InvalidBatchError,
    current_version,
    decode,
    encode,
    from_fields,
    parse_batch,
    parse_submission,
    to_fields,
    upcast,
)
from .errors import CodecError, EventsError, InvalidEventError, Problem
from .incidents import (
    CasualtiesRevised,
    IncidentEvent,
    IncidentMerged,
    IncidentReported,
    IncidentRetracted,
)
from .rules import normalise, problems
from .statements import Speaker, StatementEvent, StatementIssued, StatementRetracted, Target
from .tables import goldstein, goldstein_table, iso3_countries

__all__ = [
    "EVENT_TYPES",
    "GRADING_ORDER",
    "MAX_BATCH",
    "AnyEvent",
    "BatchProblem",
    "CasualtiesRevised",
    "CodecError",
    "Estimate",
    "Event",
    "EventsError",
    "Fatalities",
    "Grading",
    "IncidentEvent",
    "IncidentMerged",
    "IncidentReported",
    "IncidentRetracted",
    "InvalidBatchError",
    "InvalidEventError",
    "Place",
    "Position",
    "Problem",
    "Recorded",
    "Source",
    "Speaker",
    "StatementEvent",
    "StatementIssued",
    "StatementRetracted",
    "Target",
    "VictimLine",
    "current_version",
    "decode",
    "encode",
    "from_fields",
    "goldstein",
    "goldstein_table",
    "iso3_countries",
    "normalise",
    "parse_batch",
    "parse_submission",
    "position_key",
    "problems",
    "recorded_at_of",
    "to_fields",
    "upcast",
]
