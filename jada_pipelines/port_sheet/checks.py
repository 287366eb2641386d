"""``port_sheet_rows_valid``: is the pulled sheet usable, and which rows were set aside?"""

import dagster as dg

from jada_pipelines.port_sheet.assets import port_sheet_rows
from jada_pipelines.port_sheet.snapshot import PortSheetSnapshot

LISTED_ROWS = 100


@dg.asset_check(
    asset=port_sheet_rows,
    blocking=True,
    description="ERROR when the header row or the key column is missing (nothing downstream runs); "
    "WARN when rows are quarantined, with each row's reason.",
)
def port_sheet_rows_valid(port_sheet_rows: PortSheetSnapshot) -> dg.AssetCheckResult:
    snapshot = port_sheet_rows
    if snapshot.problems:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=" ".join(snapshot.problems),
            metadata={"header": ", ".join(snapshot.header) or "(empty)", "key_column": snapshot.key_column},
        )
    quarantined = snapshot.quarantined
    metadata = {"row_count": len(snapshot.rows), "quarantined_count": len(quarantined)}
    if not quarantined:
        return dg.AssetCheckResult(
            passed=True, description="Every row has a unique key and typed values.", metadata=metadata
        )
    listed = quarantined[:LISTED_ROWS]
    metadata["quarantined_rows"] = dg.MetadataValue.table(
        records=[dg.TableRecord({"row": q.row_number, "key": q.key, "reason": q.reason}) for q in listed],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("row", "int"),
                dg.TableColumn("key", "string"),
                dg.TableColumn("reason", "string"),
            ]
        ),
    )
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(quarantined)} rows are quarantined and left out of the sync until fixed in the sheet: "
        + "; ".join(f"row {q.row_number}: {q.reason}" for q in quarantined[:5])
        + (" …" if len(quarantined) > 5 else ""),
        metadata=metadata,
    )
