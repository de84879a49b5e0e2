//! `/api/v1/incidents`: the post-mortems the daemon keeps (the newest
//! `model::incident::RECENT`), short form, oldest first, with the counts
//! by kind; `/api/v1/incidents/ID` (or `latest`) one whole. Both read the
//! latest publication only; `http.rs` routes and answers.

use std::sync::Arc;

use serde::Serialize;

use crate::model::{
    incident::{self, Incident},
    published::Published,
};

/// The path of one incident, before its id.
pub const PATH_PREFIX: &str = "/api/v1/incidents/";

/// The list's body.
#[derive(Serialize)]
pub struct List<'a> {
    incidents_total: &'a std::collections::BTreeMap<&'static str, u64>,
    incidents: &'a [incident::Summary],
}

/// The list.
pub fn list(p: &Published) -> List<'_> {
    List {
        incidents_total: &p.incidents_total,
        incidents: &p.incidents,
    }
}

/// One incident by id, or the newest for `latest`; else the 404's text,
/// naming what to do.
pub fn one(p: &Published, id: &str) -> Result<Arc<Incident>, String> {
    let found = match id {
        "latest" => p.incident_records.last(),
        id => p.incident_records.iter().rev().find(|i| i.id == id),
    };
    match found {
        Some(i) => Ok(Arc::clone(i)),
        None if p.incident_records.is_empty() => {
            Err("no incident: no OOM kill or userspace SIGKILL since the daemon started\n".into())
        }
        None => Err(format!(
            "no incident {id}: the daemon keeps the newest {} (list them at /api/v1/incidents); \
             older ones are in its store: memmon incidents --store DIR\n",
            incident::RECENT
        )),
    }
}
