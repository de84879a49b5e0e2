//! JSON output: an array of [`ProcessView`] objects.

use crate::model::ProcessView;

/// Pretty-printed JSON array of the rows.
pub fn rows_to_json(rows: &[ProcessView]) -> String {
    // Serializing plain structs of strings and integers cannot fail.
    serde_json::to_string_pretty(rows).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
