"""The port sheet's Dagster resources: ``port_sheet`` (which spreadsheet, tab and key column, and which
columns the pipeline owns) and ``port_sheet_store`` (the IO manager that keeps snapshots in ``store.py``)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from jada_pipelines import settings
from jada_pipelines.port_sheet.layout import DEFAULT_OWNED_COLUMNS
from jada_pipelines.port_sheet.snapshot import PortSheetSnapshot
from jada_pipelines.port_sheet.store import StoreError, read_snapshot, snapshot_path, write_snapshot

DEFAULT_TAB = settings.default("JADA_PORT_SHEET_TAB")
DEFAULT_KEY_COLUMN = settings.default("JADA_PORT_SHEET_KEY")
# Every other column is read as text; see pull.COLUMN_TYPES for the names.
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
        value = self.sheet_id or settings.get("JADA_PORT_SHEET_ID")
        if value is None:
            raise settings.ConfigError(
                "JADA_PORT_SHEET_ID is not set: set it to the port sheet's spreadsheet id, the long id in its URL "
                "https://docs.google.com/spreadsheets/d/<id>/edit."
            )
        return value

    @property
    def tab(self) -> str:
        return self.sheet_tab or settings.get("JADA_PORT_SHEET_TAB")

    @property
    def key_column(self) -> str:
        return self.key or settings.get("JADA_PORT_SHEET_KEY")


class PortSheetStore(dg.IOManager):
    """Stores port-sheet snapshots as JSON under ``$JADA_DATA_DIR/port_sheet/<asset>.json``.

    A plain IO manager, not a ``ConfigurableIOManager``: it has no config, and Dagster's pydantic layer reads
    the deprecated ``__fields__`` of a config class without fields (a ``PydanticDeprecatedSince20`` warning on
    every load of the definitions). Dagster wraps an ``IOManager`` instance in ``resources`` itself.

    Example::

        @dg.asset(io_manager_key="port_sheet_store")
        def port_sheet_rows(...) -> dg.Output: ...

        resources={"port_sheet_store": PortSheetStore()}
    """

    def handle_output(self, context: dg.OutputContext, obj: PortSheetSnapshot) -> None:
        write_snapshot(snapshot_path(context.asset_key.path[-1]), obj)

    def load_input(self, context: dg.InputContext) -> PortSheetSnapshot:
        name = context.asset_key.path[-1]
        try:
            snapshot = read_snapshot(snapshot_path(name))
        except StoreError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        if snapshot is None:
            raise dg.Failure(
                description=f"{name} has not been pulled yet (no {snapshot_path(name)}): "
                f"materialize {name} first, or run port_sheet_sync_job.",
                allow_retries=False,
            )
        return snapshot
