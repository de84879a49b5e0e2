//! JSON output of process rows: an array of [`ProcessView`] objects, keyed
//! by the field catalog (the same keys as `/api/v1/snapshot`).

use crate::model::ProcessView;

/// Pretty-printed JSON array of the rows.
pub fn rows_to_json(rows: &[ProcessView]) -> String {
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_string_pretty(rows).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
