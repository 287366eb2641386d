"""The demo's port sheet: 21 ports as people keep them, a few rows asking for agent work, one that hits the cap."""

from __future__ import annotations

from jada_pipelines.emulators.anthropic import DEMO_TURN_CAP
from jada_pipelines.emulators.google import Formula
from jada_pipelines.port_sheet.layout import DEFAULT_OWNED_COLUMNS

SPREADSHEET_ID = "demo-port-sheet"
TAB = "Ports"

HEADER = [
    "id",
    "port",
    "country",
    "owner",
    "berths",
    "notes",
    "task",
    *DEFAULT_OWNED_COLUMNS,
]
_PORTS = [
    ("P001", "Lisbon", "PT", "ana", 12),
    ("P002", "Rotterdam", "NL", "bram", 42),
    ("P003", "Hamburg", "DE", "clara", 30),
    ("P004", "Antwerp", "BE", "bram", 35),
    ("P005", "Valencia", "ES", "diego", 18),
    ("P006", "Piraeus", "GR", "eleni", 16),
    ("P007", "Gdansk", "PL", "filip", 9),
    ("P008", "Genoa", "IT", "giulia", 14),
    ("P009", "Marseille", "FR", "hugo", 11),
    ("P010", "Felixstowe", "GB", "isla", 8),
    ("P011", "Algeciras", "ES", "diego", 10),
    ("P012", "Le Havre", "FR", "hugo", 13),
    ("P013", "Bremerhaven", "DE", "clara", 15),
    ("P014", "Gothenburg", "SE", "johan", 7),
    ("P015", "Aarhus", "DK", "johan", 6),
    ("P016", "Koper", "SI", "eleni", 5),
    ("P017", "Constanta", "RO", "filip", 9),
    ("P018", "Sines", "PT", "ana", 4),
    ("P019", "Tallinn", "EE", "johan", 3),
    ("P020", "Riga", "LV", "johan", 4),
    # Someone forgot the id: the pull sets this row aside and its check says so.
    ("", "Bilbao", "ES", "diego", 7),
]
_TASKS = {
    "P002": "Summarise this week's berth schedule changes for Rotterdam.",
    "P003": "Check the Hamburg tide table links in the wiki still work.",
    "P005": "Draft a short note on Valencia's new gate opening hours.",
    "P008": "List Genoa vessel calls with missing ETAs.",
    "P011": "Compare Algeciras crane counts with last quarter.",
    "P013": "Find duplicate contacts for Bremerhaven.",
    "P017": f"{DEMO_TURN_CAP} Reconcile every Constanta invoice since 2019 (a long job: it hits the turn cap).",
}


def seed_rows() -> list[list]:
    """The demo port sheet: a header, 21 ports (one without an id), a formula people own, a few rows asking for work."""
    rows: list[list] = [list(HEADER)]
    for row_number, (key, port, country, owner, berths) in enumerate(_PORTS, start=2):
        notes = Formula(f'=CONCATENATE(B{row_number}, " (", C{row_number}, ")")', f"{port} ({country})")
        rows.append([key, port, country, owner, berths, notes, _TASKS.get(key, "")])
    return rows
