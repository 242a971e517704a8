"""The reference scenario: the March 2025 violence in coastal north-western Syria as events.

Drawn from the reference news report (``/work/shared/reference``): at least 1,311 people,
mostly civilians, were killed in north-western Syria after an ambush by forces loyal to the
former president Bashar al-Assad was met with retaliation by government security forces;
Alawites were chiefly targeted, Christians and Druze also affected. The United States and
Russia jointly asked for a closed-door UN Security Council meeting; the US Secretary of State
condemned the killings and called for accountability; "in recent days" the US Director of
National Intelligence had warned about the dangers of Assad's removal and the rise of
extremist groups in Syria.

How it is modelled:

- One incident for the coastal region (``adm1`` Latakia, Tartus named in the notes): the
  monitor's toll covers both governorates and no source splits it, so two incidents would
  need an invented split. No community lines: no source gives a per-community figure, so
  the whole toll stays unattributed.
- The monitor's later revisions (1,383, then 1,476) are scenario figures; the report gives
  only the first toll. Their reasons say so.
- A duplicate report from a second feed (merged into the first) and an unverified report
  from a third feed (retracted) carry illustrative figures, marked as such in their notes.
  Neither counts towards any total.
- The statements on the coastal violence (:data:`SUBJECT`) are the joint request (made
  through the two countries' missions to the UN: ``un_representative``), and Rubio's
  condemnation and his call for accountability, two statements of the ``foreign_minister``.
  The report dates them to its own day and gives no time: ``issued_precision`` ``day``.
- The intelligence director's warning is on its own subject (:data:`SUBJECT_EXTREMISM`), not
  on the killings, and the report dates it only "in recent days": a ``range`` of the week
  before the report, not a fabricated time. Her office ranks ``other_official``.
- The toll is "at least" 1,311 (then 1,383, 1,476): each figure carries ``at_least``, so
  every total it is part of says so.

Event ids are uuid5 over :data:`NAMESPACE` and a fixed name, so seeding twice writes nothing
new (appends are idempotent by event id).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Final

from events import (
    AnyEvent,
    CasualtiesRevised,
    Fatalities,
    IncidentMerged,
    IncidentReported,
    IncidentRetracted,
    Place,
    Source,
    Speaker,
    StatementIssued,
    Target,
)

NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://incident-ledger.invalid/reference")
"""The namespace of the scenario's event ids."""

MONITOR_FEED: Final = "sohr"
DUPLICATE_FEED: Final = "syria-field-desk"
UNVERIFIED_FEED: Final = "social-media-watch"
STATEMENTS_FEED: Final = "diplomatic-monitor"
REFERENCE_FEEDS: Final = (MONITOR_FEED, DUPLICATE_FEED, UNVERIFIED_FEED, STATEMENTS_FEED)
"""Every feed the scenario publishes as (the tokens or inbox allow-list need these)."""

SUBJECT: Final = "syria-coastal-violence-2025-03"
"""The coastal killings of March 2025 and the reactions to them."""
SUBJECT_EXTREMISM: Final = "syria-post-assad-extremism-risks"
"""The dangers of Assad's removal and the rise of extremist groups in Syria."""

MAIN_INCIDENT: Final = "syr-coast-2025-03-06"
"""The monitor's incident: the coastal killings of 6-9 March 2025."""
DUPLICATE_INCIDENT: Final = "syr-coast-2025-03-06-dup"
"""The second feed's report of the same killings, merged into :data:`MAIN_INCIDENT`."""
UNVERIFIED_INCIDENT: Final = "syr-tartus-2025-03-08-unverified"
"""The third feed's unverified report, retracted."""

STATEMENT_UNSC_REQUEST: Final = "stmt-usa-rus-unsc-request-2025-03-09"
STATEMENT_RUBIO: Final = "stmt-usa-rubio-2025-03-09"
"""The Secretary of State condemns the killings."""
STATEMENT_RUBIO_ACCOUNTABILITY: Final = "stmt-usa-rubio-accountability-2025-03-09"
"""The Secretary of State calls for accountability for those responsible."""
STATEMENT_GABBARD: Final = "stmt-usa-gabbard-2025-03-09"
"""The intelligence director's warning, "in recent days" before the report."""
REPORT_DAY: Final = dt.datetime(2025, 3, 9, tzinfo=dt.UTC)
"""The day of the reference report (midnight UTC): the request, Rubio's statements."""

_MONITOR: Final = Source(publisher="Syrian Observatory for Human Rights")
_NEWS_REPORT: Final = Source(publisher="News report on the UN Security Council request")
_PERPETRATORS: Final = [
    "Syrian government security forces",
    "Forces loyal to former president Bashar al-Assad",
]


def event_id(name: str) -> uuid.UUID:
    """The deterministic event id of the scenario event called ``name``."""
    return uuid.uuid5(NAMESPACE, name)


def _incidents() -> list[AnyEvent]:
    main = IncidentReported(
        event_id=event_id("incident.reported/main"),
        source=MONITOR_FEED,
        incident_id=MAIN_INCIDENT,
        occurred_start=dt.date(2025, 3, 6),
        occurred_end=dt.date(2025, 3, 9),
        date_precision=2,  # UCDP: a range of two to six days
        country="SYR",
        place=Place(adm1="Latakia", name="Syrian coast (Latakia and Tartus)"),
        geo_precision=4,  # UCDP: the first-order administrative division
        violence_type="one_sided",
        event_type="Violence against civilians",
        perpetrators=list(_PERPETRATORS),
        civilian_targeting=True,
        fatalities=Fatalities(low=1311, best=1311, high=1311, qualifier="at_least"),
        sources=[_MONITOR, _NEWS_REPORT],
        grading="weak",  # one monitor's count, relayed by the news report
        notes=(
            "Killings across the coastal governorates of Latakia and Tartus after an ambush "
            "by forces loyal to the former president was met with retaliation by government "
            "security forces. At least 1,311 killed, mostly civilians. Alawite civilians were "
            "chiefly targeted; Christians and Druze were also affected. No source splits the "
            "toll by governorate, community or perpetrator: the toll stays unattributed."
        ),
    )
    duplicate = IncidentReported(
        event_id=event_id("incident.reported/duplicate"),
        source=DUPLICATE_FEED,
        incident_id=DUPLICATE_INCIDENT,
        occurred_start=dt.date(2025, 3, 6),
        occurred_end=dt.date(2025, 3, 8),
        date_precision=2,
        country="SYR",
        place=Place(adm1="Latakia"),
        geo_precision=4,
        violence_type="one_sided",
        event_type="Violence against civilians",
        sub_event_type="Attack",
        perpetrators=["Syrian government security forces"],
        civilian_targeting=True,
        fatalities=Fatalities(low=800, best=1000, high=1200, qualifier="approximately"),
        sources=[Source(publisher="Syria field desk")],
        grading="weak",
        notes=(
            "A second feed's report of the coastal massacres of March 2025. Illustrative "
            "figures: the reference report gives no second count."
        ),
    )
    unverified = IncidentReported(
        event_id=event_id("incident.reported/unverified"),
        source=UNVERIFIED_FEED,
        incident_id=UNVERIFIED_INCIDENT,
        occurred_start=dt.date(2025, 3, 8),
        date_precision=1,
        country="SYR",
        place=Place(adm1="Tartus"),
        geo_precision=4,
        violence_type="one_sided",
        event_type="Violence against civilians",
        civilian_targeting=True,
        fatalities=Fatalities(low=200, best=200, high=200, qualifier="approximately"),
        sources=[Source(publisher="Social-media monitoring desk")],
        grading="weak",
        notes="An unverified social-media claim. Illustrative figures.",
    )
    first_revision = CasualtiesRevised(
        event_id=event_id("incident.casualties_revised/main/1"),
        source=MONITOR_FEED,
        incident_id=MAIN_INCIDENT,
        fatalities=Fatalities(low=1383, best=1383, high=1383, qualifier="at_least"),
        sources=[_MONITOR],
        reason=(
            "The monitor raised its toll as further deaths were documented. Scenario figure: "
            "the reference report gives only the first toll of at least 1,311."
        ),
    )
    second_revision = CasualtiesRevised(
        event_id=event_id("incident.casualties_revised/main/2"),
        source=MONITOR_FEED,
        incident_id=MAIN_INCIDENT,
        fatalities=Fatalities(low=1476, best=1476, high=1476, qualifier="at_least"),
        sources=[_MONITOR],
        reason=(
            "The monitor raised its toll again as further deaths were documented. Scenario "
            "figure: the reference report gives only the first toll of at least 1,311."
        ),
    )
    merge = IncidentMerged(
        event_id=event_id("incident.merged/duplicate"),
        source=DUPLICATE_FEED,
        incident_id=DUPLICATE_INCIDENT,
        into=MAIN_INCIDENT,
        reason="Reports the same coastal killings of 6-9 March 2025 as the monitor's incident.",
    )
    retraction = IncidentRetracted(
        event_id=event_id("incident.retracted/unverified"),
        source=UNVERIFIED_FEED,
        incident_id=UNVERIFIED_INCIDENT,
        reason="The claim could not be verified by any second source.",
    )
    return [
        main,
        duplicate,
        unverified,
        first_revision,
        merge,
        retraction,
        second_revision,
    ]


def _statements() -> list[AnyEvent]:
    mission = "Mission to the United Nations"
    request = StatementIssued(
        event_id=event_id("statement.issued/unsc-request"),
        source=STATEMENTS_FEED,
        statement_id=STATEMENT_UNSC_REQUEST,
        issued_at=REPORT_DAY,
        issued_precision="day",
        speakers=[
            Speaker(country="USA", name="United States", role="un_representative", title=mission),
            Speaker(
                country="RUS", name="Russian Federation", role="un_representative", title=mission
            ),
        ],
        target=Target(actor="UN Security Council"),
        venue="IGOUNO",
        subject=SUBJECT,
        incident_ids=[MAIN_INCIDENT],
        cameo_code="026",  # appeal to others to meet or negotiate
        stance="call_for_meeting",
        sources=[_NEWS_REPORT],
    )
    rubio = Speaker(
        country="USA", name="Marco Rubio", role="foreign_minister", title="Secretary of State"
    )
    condemnation = StatementIssued(
        event_id=event_id("statement.issued/rubio"),
        source=STATEMENTS_FEED,
        statement_id=STATEMENT_RUBIO,
        issued_at=REPORT_DAY,
        issued_precision="day",
        speakers=[rubio],
        target=Target(country="SYR"),
        subject=SUBJECT,
        incident_ids=[MAIN_INCIDENT],
        cameo_code="111",  # criticize or denounce
        stance="condemn",
        sources=[_NEWS_REPORT],
    )
    accountability = StatementIssued(
        event_id=event_id("statement.issued/rubio-accountability"),
        source=STATEMENTS_FEED,
        statement_id=STATEMENT_RUBIO_ACCOUNTABILITY,
        issued_at=REPORT_DAY,
        issued_precision="day",
        speakers=[rubio],
        target=Target(country="SYR", actor="Those responsible for the killings"),
        subject=SUBJECT,
        incident_ids=[MAIN_INCIDENT],
        cameo_code="111",  # criticize or denounce: a call to hold the killers to account
        stance="demand_accountability",
        sources=[_NEWS_REPORT],
    )
    gabbard = StatementIssued(
        event_id=event_id("statement.issued/gabbard"),
        source=STATEMENTS_FEED,
        statement_id=STATEMENT_GABBARD,
        issued_at=REPORT_DAY - dt.timedelta(days=7),  # "in recent days": the week before
        issued_precision="range",
        issued_end=REPORT_DAY,
        speakers=[
            Speaker(
                country="USA",
                name="Tulsi Gabbard",
                role="other_official",
                title="Director of National Intelligence",
            )
        ],
        target=Target(country="SYR", actor="Extremist groups in Syria"),
        subject=SUBJECT_EXTREMISM,
        cameo_code="012",  # make pessimistic comment
        stance="warn",
        sources=[_NEWS_REPORT],
    )
    return [request, condemnation, accountability, gabbard]


def scenario() -> list[AnyEvent]:
    """The reference scenario's events in the order they are appended.

    The incidents are reported before anything revises, merges or retracts them; the
    statements come after the incident they name.
    """
    incidents = _incidents()
    reported, later = incidents[:3], incidents[3:]
    return [*reported, *_statements(), *later]
