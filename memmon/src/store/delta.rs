//! A frame as a patch against a key frame. The publication's JSON is first
//! keyed (`processes` by `pid:start_time_ticks`, `cgroups` by path), so an
//! idle process costs nothing in a delta; a patch is `{"s": {key: new
//! value}, "p": {key: patch of a child object}, "d": [removed keys]}`.

use serde_json::{Map, Value};

/// The publication JSON with `processes` and `cgroups` as objects keyed by
/// identity (what frames store).
pub fn keyed(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        for (field, key) in [
            ("processes", key_process as fn(&Value) -> Option<String>),
            ("cgroups", key_cgroup),
        ] {
            if let Some(Value::Array(items)) = obj.remove(field) {
                let mut m = Map::new();
                for item in items {
                    if let Some(k) = key(&item) {
                        m.insert(k, item);
                    }
                }
                obj.insert(field.into(), Value::Object(m));
            }
        }
    }
    v
}

fn key_process(p: &Value) -> Option<String> {
    Some(format!(
        "{}:{}",
        p.get("pid")?.as_u64()?,
        p.get("start_time_ticks")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    ))
}

fn key_cgroup(c: &Value) -> Option<String> {
    c.get("cgroup")?.as_str().map(str::to_string)
}

/// The publication JSON back from its keyed form (processes by pid).
pub fn unkeyed(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        for field in ["processes", "cgroups"] {
            if let Some(Value::Object(m)) = obj.remove(field) {
                let mut items: Vec<Value> = m.into_iter().map(|(_, v)| v).collect();
                if field == "processes" {
                    items.sort_by_key(|p| p.get("pid").and_then(Value::as_u64).unwrap_or(0));
                }
                obj.insert(field.into(), Value::Array(items));
            }
        }
    }
    v
}

/// The patch turning object `a` into object `b` (None: equal).
pub fn diff(a: &Map<String, Value>, b: &Map<String, Value>) -> Option<Value> {
    let mut set = Map::new();
    let mut patch = Map::new();
    for (k, bv) in b {
        match (a.get(k), bv) {
            (Some(Value::Object(ao)), Value::Object(bo)) => {
                if let Some(d) = diff(ao, bo) {
                    patch.insert(k.clone(), d);
                }
            }
            (Some(av), _) if av == bv => {}
            _ => {
                set.insert(k.clone(), bv.clone());
            }
        }
    }
    let del: Vec<Value> = a
        .keys()
        .filter(|k| !b.contains_key(*k))
        .map(|k| Value::String(k.clone()))
        .collect();
    if set.is_empty() && patch.is_empty() && del.is_empty() {
        return None;
    }
    let mut out = Map::new();
    if !set.is_empty() {
        out.insert("s".into(), Value::Object(set));
    }
    if !patch.is_empty() {
        out.insert("p".into(), Value::Object(patch));
    }
    if !del.is_empty() {
        out.insert("d".into(), Value::Array(del));
    }
    Some(Value::Object(out))
}

/// A patch that does not fit its base (a bug or a mismatched key frame).
#[derive(Debug, thiserror::Error)]
#[error("delta does not apply to its key frame at `{0}`")]
pub struct PatchError(pub String);

/// Applies `patch` (from [`diff`]) to `base` in place.
pub fn apply(base: &mut Map<String, Value>, patch: &Value) -> Result<(), PatchError> {
    if let Some(Value::Array(del)) = patch.get("d") {
        for k in del.iter().filter_map(Value::as_str) {
            base.remove(k);
        }
    }
    if let Some(Value::Object(set)) = patch.get("s") {
        for (k, v) in set {
            base.insert(k.clone(), v.clone());
        }
    }
    if let Some(Value::Object(p)) = patch.get("p") {
        for (k, sub) in p {
            match base.get_mut(k) {
                Some(Value::Object(child)) => apply(child, sub)?,
                _ => return Err(PatchError(k.clone())),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_then_apply_gives_the_new_frame_and_idle_processes_cost_nothing() {
        let a = keyed(json!({"unix_ms": 1, "processes": [
            {"pid": 1, "start_time_ticks": 5, "rss_bytes": 10, "comm": "a"},
            {"pid": 2, "start_time_ticks": 6, "rss_bytes": 20, "comm": "b"},
            {"pid": 3, "start_time_ticks": 7, "rss_bytes": 30, "comm": "c"}],
            "system": {"meminfo": {"MemFree": 5, "MemTotal": 9}}}));
        let b = keyed(json!({"unix_ms": 2, "processes": [
            {"pid": 1, "start_time_ticks": 5, "rss_bytes": 10, "comm": "a"},
            {"pid": 2, "start_time_ticks": 6, "rss_bytes": 25, "comm": "b"},
            {"pid": 4, "start_time_ticks": 8, "rss_bytes": null, "comm": "d"}],
            "system": {"meminfo": {"MemFree": 6, "MemTotal": 9}}}));
        let (Value::Object(ao), Value::Object(bo)) = (&a, &b) else {
            panic!("objects")
        };
        let d = diff(ao, bo).expect("differs");
        let text = d.to_string();
        assert!(
            !text.contains("\"1:5\""),
            "idle process in the delta: {text}"
        );
        assert!(
            !text.contains("MemTotal"),
            "unchanged value in the delta: {text}"
        );
        let mut c = ao.clone();
        apply(&mut c, &d).expect("applies");
        assert_eq!(Value::Object(c.clone()), b);
        assert_eq!(unkeyed(Value::Object(c))["processes"][2]["pid"], 4);
        assert!(diff(ao, ao).is_none());
    }
}
