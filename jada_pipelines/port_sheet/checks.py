"""``port_sheet_rows_valid``: is the pulled sheet usable, and which rows were set aside?

The check is declared on ``port_sheet_rows`` itself (``ROWS_CHECK_SPEC``) and evaluated in its step, not as a
separate ``@asset_check`` step. The reason is "one cause, one red": in Dagster 1.13 a check step that is
skipped because its asset's step failed never gets an evaluation, and a planned check with no evaluation in a
failed run resolves to "Execution failed" (``AssetCheckExecutionRecord.resolve_status``), with no way to mark
it skipped. So a credentials failure showed two red checks. Evaluated in the asset's step, the check can say
instead that it was not evaluated, and why (``not_evaluated``), as a WARN.
"""

import dagster as dg

from jada_pipelines.port_sheet.snapshot import PortSheetSnapshot

LISTED_ROWS = 100
ROWS_CHECK = "port_sheet_rows_valid"

ROWS_CHECK_SPEC = dg.AssetCheckSpec(
    ROWS_CHECK,
    asset="port_sheet_rows",
    blocking=True,
    description="ERROR when the header row or the key column is missing (nothing downstream runs); "
    "WARN when rows are quarantined, with each row's reason; WARN 'not evaluated' when the sheet could not "
    "be read (the failing check says why).",
)


def not_evaluated(check_name: str, *, because: str) -> dg.AssetCheckResult:
    """A check that could not run because another one failed: a WARN naming the cause, so one cause shows as
    one red check, not two (Dagster 1.13 has no "skipped" check result)."""
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"Not evaluated: {because} failed, so the sheet was not read. Fix that check first.",
        metadata={"evaluated": False, "blocked_by": because},
    )


def port_sheet_rows_valid(snapshot: PortSheetSnapshot) -> dg.AssetCheckResult:
    """The check's verdict on a pulled snapshot."""
    if snapshot.problems:
        return dg.AssetCheckResult(
            check_name=ROWS_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=" ".join(snapshot.problems),
            metadata={"header": ", ".join(snapshot.header) or "(empty)", "key_column": snapshot.key_column},
        )
    quarantined = snapshot.quarantined
    metadata = {"row_count": len(snapshot.rows), "quarantined_count": len(quarantined)}
    if not quarantined:
        return dg.AssetCheckResult(
            check_name=ROWS_CHECK,
            passed=True,
            description="Every row has a unique key and typed values.",
            metadata=metadata,
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
        check_name=ROWS_CHECK,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(quarantined)} {'row is' if len(quarantined) == 1 else 'rows are'} quarantined and left out of the sync until fixed in the sheet: "
        + "; ".join(f"row {q.row_number}: {q.reason}" for q in quarantined[:5])
        + (" …" if len(quarantined) > 5 else ""),
        metadata=metadata,
    )
