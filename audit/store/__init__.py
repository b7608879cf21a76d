"""The audit directory: the decision store that every later analysis reads.

Writes are atomic (temporary name, then rename), so a killed run leaves nothing
half-written, and per-job files keep concurrent writers apart. `load(path)` reads
an audit back as an `AuditResult` of pandas frames and numpy arrays; every reader
of decisions goes through `read_decisions`. No training, no metrics, no printing here.

- `files`: AuditError and the atomic writers;
- `state`: the run state (complete, running, interrupted, failed) from the manifest;
- `decisions`: the decision tables, built and read back;
- `directory`: AuditDir, the writer, and the directory's layout (the report's file names included);
- `result`: AuditResult and `load`;
- `listing`: finding audits (`list_audits`), their change stamp, and why a folder is not one.
"""

from audit.store.decisions import (
    DECISION_COLUMNS,
    DECISION_FIELDS,
    NO_ANSWER,
    SCORE_FIELDS,
    decision_path,
    decisions_by_epoch,
    decisions_frame,
    final_decisions,
    has_fields,
    read_decisions,
    read_many,
    read_partial_decisions,
)
from audit.store.directory import (
    BASE_IMAGE_COLUMNS,
    CONFUSION_TABLES,
    DEEP_FIGURES,
    DEEP_TABLES,
    DEEPER_FIGURES,
    EXTRA_FOLDERS,
    FORMAT,
    HUMAN_TABLES,
    IMAGES_ARRAY,
    IMAGES_TABLE,
    MANIFEST_FILE,
    MODELS_TABLE,
    REPORT_DIR,
    REPORT_FIGURES,
    REPORT_FILES,
    REPORT_MAPS,
    REPORT_TABLES,
    REPRESENTATION_TABLES,
    SCORE_TABLES,
    SCORED_KIND,
    SCORED_TABLE,
    SPLITS,
    SUMMARY_FILE,
    AuditDir,
    clear_for_replacement,
    folder_state,
    refuse_foreign,
)
from audit.store.files import (
    AuditError,
    atomic_path,
    read_json,
    write_csv,
    write_json,
    write_npy,
    write_parquet,
)
from audit.store.listing import audit_problem, audit_stamp, is_audit_dir, list_audits
from audit.store.result import AuditResult, load
from audit.store.state import (
    RESUME_HINT,
    RUN_STATES,
    current_process,
    describe_run_state,
    process_alive,
    run_state,
    utc_now,
)

__all__ = [
    "BASE_IMAGE_COLUMNS", "CONFUSION_TABLES", "DEEPER_FIGURES", "REPRESENTATION_TABLES", "DECISION_COLUMNS", "DECISION_FIELDS", "NO_ANSWER", "SCORE_FIELDS", "has_fields", "DEEP_FIGURES", "DEEP_TABLES", "EXTRA_FOLDERS",
    "FORMAT", "HUMAN_TABLES", "REPORT_DIR", "REPORT_FIGURES", "REPORT_FILES", "REPORT_MAPS", "REPORT_TABLES", "RESUME_HINT",
    "RUN_STATES", "SCORED_KIND", "SCORE_TABLES", "SCORED_TABLE", "SPLITS", "SUMMARY_FILE", "AuditDir", "AuditError", "AuditResult", "atomic_path", "current_process",
    "decision_path", "decisions_by_epoch", "decisions_frame", "describe_run_state", "final_decisions", "load",
    "process_alive", "read_decisions", "read_json", "read_many", "read_partial_decisions", "run_state", "utc_now", "write_csv", "write_json",
    "write_npy", "write_parquet", "folder_state", "refuse_foreign", "clear_for_replacement",
    "audit_problem", "audit_stamp", "is_audit_dir", "list_audits", "IMAGES_ARRAY", "IMAGES_TABLE", "MANIFEST_FILE",
    "MODELS_TABLE",
]
