"""The ``port_sheet`` resource: which spreadsheet, tab and key column, and which columns the pipeline owns."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from jada_pipelines import settings

DEFAULT_TAB = "Ports"
DEFAULT_KEY_COLUMN = "id"
DEFAULT_OWNED_COLUMNS = (
    "agent_status",
    "agent_turns",
    "agent_cost_usd",
    "agent_summary",
    "agent_updated_at",
    "sync_issue",
)
# Every other column is read as text; see engine.COLUMN_TYPES for the names.
DEFAULT_COLUMN_TYPES = {"agent_turns": "integer", "agent_cost_usd": "float"}


class PortSheetSettings(dg.ConfigurableResource):
    """Where the port sheet is and how to read it.

    The sheet, tab and key column fall back at execution time to ``JADA_PORT_SHEET_ID``,
    ``JADA_PORT_SHEET_TAB`` (default ``Ports``) and ``JADA_PORT_SHEET_KEY`` (default ``id``), so the code
    location loads without them and a run that needs them names the variable to set.

    Example::

        resources={"port_sheet": PortSheetSettings(column_types={"berths": "integer", "open": "boolean"})}

        @dg.asset
        def uses_sheet(port_sheet: PortSheetSettings):
            return port_sheet.spreadsheet_id, port_sheet.tab, port_sheet.key_column
    """

    sheet_id: str | None = Field(
        default=None, description="Spreadsheet id (from its URL); default $JADA_PORT_SHEET_ID."
    )
    sheet_tab: str | None = Field(
        default=None, description="Worksheet (tab) name; default $JADA_PORT_SHEET_TAB, else 'Ports'."
    )
    key: str | None = Field(
        default=None,
        description="Header of the column that identifies a row; default $JADA_PORT_SHEET_KEY, else 'id'.",
    )
    task_column: str = Field(
        default="task", description="Header of the column whose non-empty cell asks for agent work."
    )
    owned_columns: list[str] = Field(
        default=list(DEFAULT_OWNED_COLUMNS),
        description="Headers of the status columns the pipeline writes; people own every other column.",
    )
    column_types: dict[str, str] = Field(
        default=dict(DEFAULT_COLUMN_TYPES),
        description="Column header -> type (string, integer, float, boolean, datetime); other columns are strings. "
        "A cell that fails its type quarantines its row.",
    )

    @property
    def spreadsheet_id(self) -> str:
        value = self.sheet_id or settings.env("JADA_PORT_SHEET_ID")
        if value is None:
            raise settings.ConfigError(
                "JADA_PORT_SHEET_ID is not set: set it to the port sheet's spreadsheet id, the long id in its URL "
                "https://docs.google.com/spreadsheets/d/<id>/edit."
            )
        return value

    @property
    def tab(self) -> str:
        return self.sheet_tab or settings.env("JADA_PORT_SHEET_TAB", DEFAULT_TAB)

    @property
    def key_column(self) -> str:
        return self.key or settings.env("JADA_PORT_SHEET_KEY", DEFAULT_KEY_COLUMN)
