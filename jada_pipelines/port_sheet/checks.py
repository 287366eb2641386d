"""The port sheet's asset checks: their specs, and their verdicts built from what the engines returned.

On ``port_sheet_rows``: ``google_credentials_fresh`` (does the token work, and for how long) and
``port_sheet_rows_valid`` (is the pulled sheet usable, and which rows were set aside). On
``port_sheet_status``: ``port_sheet_status_columns_present`` and ``port_sheet_status_rows_located``.

Every check is declared on its asset (``check_specs``) and evaluated in the asset's step, not as a separate
``@asset_check`` step; the push's checks run in their own run, after a pull that materialized (``jobs.py``). The reason is "one cause, one red": in Dagster 1.13 a check step that is
skipped because its asset's step failed never gets an evaluation, and a planned check with no evaluation in a
failed run resolves to "Execution failed" (``AssetCheckExecutionRecord.resolve_status``), with no way to mark
it skipped. So a credentials failure showed two red checks. Evaluated in the asset's step, the check can say
instead that it was not evaluated, and why (``not_evaluated``), as a WARN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from jada_pipelines.google_api.errors import CredentialsError
    from jada_pipelines.port_sheet.plan import PushPlan
    from jada_pipelines.port_sheet.snapshot import PortSheetSnapshot

LISTED_ROWS = 100
# Keys listed in a check's metadata; the description gives the counts.
LISTED_KEYS = 50
CREDENTIALS_CHECK = "google_credentials_fresh"
ROWS_CHECK = "port_sheet_rows_valid"

CREDENTIALS_CHECK_SPEC = dg.AssetCheckSpec(
    CREDENTIALS_CHECK,
    asset="port_sheet_rows",
    blocking=True,
    description="The Google token refreshes and can read the port sheet; WARN when it expires within "
    "10% of its 7-day Testing life. A failure stops the sync and names the fix.",
)

ROWS_CHECK_SPEC = dg.AssetCheckSpec(
    ROWS_CHECK,
    asset="port_sheet_rows",
    blocking=True,
    description="ERROR when the header row or the key column is missing (nothing downstream runs); "
    "WARN when rows are quarantined, with each row's reason; WARN 'not evaluated' when the sheet could not "
    "be read (the failing check says why).",
)


def not_evaluated(
    check_name: str, *, because: str, so: str = "the sheet was not read"
) -> dg.AssetCheckResult:
    """A check that could not run because another one failed: a WARN naming the cause, so one cause shows as
    one red check, not two (Dagster 1.13 has no "skipped" check result)."""
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"Not evaluated: {because} failed, so {so}. Fix that check first.",
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


def credentials_check_failed(error: CredentialsError) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=CREDENTIALS_CHECK,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=error.description,
        metadata=error.metadata,
    )


def credentials_check_result(verdict: Any) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=CREDENTIALS_CHECK,
        passed=verdict.severity == "OK",
        severity=dg.AssetCheckSeverity.WARN,
        description=verdict.description,
        metadata=verdict.metadata,
    )


STATUS_CHECK_SPECS = [
    dg.AssetCheckSpec(
        "port_sheet_status_columns_present",
        asset="port_sheet_status",
        description="Every pipeline-owned column is in the sheet's header row, so every status can land.",
    ),
    dg.AssetCheckSpec(
        "port_sheet_status_rows_located",
        asset="port_sheet_status",
        description="Every row to update was found exactly once by its key at write time.",
    ),
]


def status_columns_present(plan: PushPlan, tab: str) -> dg.AssetCheckResult:
    missing = plan.missing_columns
    return dg.AssetCheckResult(
        check_name="port_sheet_status_columns_present",
        passed=not missing,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"Add the column(s) {', '.join(repr(name) for name in missing)} to the header row of tab {tab!r}: "
            "the pipeline writes its status there and never adds columns itself."
            if missing
            else "Every pipeline-owned column is in the header."
        ),
        metadata={"missing_columns": dg.MetadataValue.json(missing)},
    )


def status_rows_located(plan: PushPlan) -> dg.AssetCheckResult:
    problems = []
    if plan.missing_keys:
        problems.append(
            f"{len(plan.missing_keys)} key(s) no longer in the sheet (deleted or edited since the pull)"
        )
    if plan.duplicate_keys:
        problems.append(f"{len(plan.duplicate_keys)} key(s) on more than one row: give each row its own key")
    return dg.AssetCheckResult(
        check_name="port_sheet_status_rows_located",
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description=("; ".join(problems) + ". Those rows got no agent status.")
        if problems
        else "Every row was found by its key.",
        metadata={
            "missing_keys": dg.MetadataValue.json(plan.missing_keys[:LISTED_KEYS]),
            "duplicate_keys": dg.MetadataValue.json(plan.duplicate_keys[:LISTED_KEYS]),
        },
    )
