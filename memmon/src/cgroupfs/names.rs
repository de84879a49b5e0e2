//! Names a cgroup path carries: the systemd unit, and under kubepods the
//! pod uid, the container id and the QoS class. Shapes handled (cgroupfs
//! and systemd drivers, v1 and v2):
//! - `/system.slice/nginx.service` → unit `nginx.service`;
//! - `/kubepods/burstable/pod<uid>/<64 hex>` (cgroupfs driver);
//! - `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid
//!   with _ for ->.slice/cri-containerd-<64 hex>.scope` (systemd driver;
//!   `docker-`, `crio-`, `libpod-` prefixes too; `crio-conmon-` is cri-o's
//!   monitor process, not the container);
//! - `/docker/<64 hex>`, `/system.slice/docker-<64 hex>.scope`.
//!
//! Every value is made of the path's own bytes after validation (hex,
//! dashes, a unit suffix), so a hostile directory name cannot inject into
//! labels beyond what the sinks escape anyway.

pub use crate::sample::cgroup::{CgroupNames, QosClass};

/// All names of `cgroup`.
pub fn names(cgroup: &str) -> CgroupNames {
    let (pod_uid, qos) = match kubepods(cgroup) {
        Some((uid, qos)) => (uid, Some(qos)),
        None => (None, None),
    };
    CgroupNames {
        unit: unit(cgroup),
        pod_uid,
        container_id: container_id(cgroup),
        qos,
    }
}

fn components(cgroup: &str) -> impl DoubleEndedIterator<Item = &str> {
    cgroup.split('/').filter(|p| !p.is_empty())
}

/// The innermost `.service`, else the innermost `.scope`, else the
/// innermost `.slice`: `/system.slice/docker.service/x.scope` is
/// `docker.service` (the service owns its scopes), `/user.slice/
/// user-1000.slice/session-3.scope` is `session-3.scope`, `/user.slice`
/// is `user.slice`.
pub fn unit(cgroup: &str) -> Option<String> {
    [".service", ".scope", ".slice"].iter().find_map(|suffix| {
        components(cgroup)
            .rev()
            .find(|p| p.len() > suffix.len() && p.ends_with(suffix))
            .map(str::to_string)
    })
}

/// A 64-hex container id: a whole component, or the tail of
/// `<runtime>-<id>[.scope]` / `<runtime>:<id>`, innermost first.
pub fn container_id(cgroup: &str) -> Option<String> {
    components(cgroup).rev().find_map(|part| {
        let stem = part.strip_suffix(".scope").unwrap_or(part);
        if stem.starts_with("crio-conmon-") {
            return None;
        }
        let id = stem.rsplit(['-', ':']).next().unwrap_or(stem);
        (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
    })
}

/// The pod uid and QoS class when the path is under kubepods.
fn kubepods(cgroup: &str) -> Option<(Option<String>, QosClass)> {
    let mut parts = components(cgroup);
    // The kubepods level may sit under another (e.g. a node-level slice).
    parts.find(|p| *p == "kubepods" || *p == "kubepods.slice")?;
    let rest: Vec<&str> = parts.collect();
    let mut qos = QosClass::Guaranteed;
    let mut i = 0;
    if let Some(level) = rest.first() {
        let level = level.strip_suffix(".slice").unwrap_or(level);
        let level = level.strip_prefix("kubepods-").unwrap_or(level);
        match level {
            "burstable" => (qos, i) = (QosClass::Burstable, 1),
            "besteffort" => (qos, i) = (QosClass::BestEffort, 1),
            _ => {}
        }
    }
    let uid = rest.get(i).and_then(|p| pod_uid_of(p));
    Some((uid, qos))
}

/// `pod<uid>` or `kubepods[-qos]-pod<uid_with_underscores>.slice` → the
/// dashed uid (UUID, or the 32-hex hash of a static pod).
fn pod_uid_of(component: &str) -> Option<String> {
    let stem = component.strip_suffix(".slice").unwrap_or(component);
    let raw = match stem.rfind("pod") {
        Some(i) if i == 0 || stem[..i].ends_with('-') => &stem[i + 3..],
        _ => return None,
    };
    let uid = raw.replace('_', "-");
    let ok = matches!(uid.len(), 32 | 36)
        && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && !uid.starts_with('-');
    ok.then_some(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "7f3c2a1e-9b4d-4e8a-a2c1-5d6e7f8a9b0c";

    #[test]
    fn units() {
        assert_eq!(
            unit("/system.slice/nginx.service").as_deref(),
            Some("nginx.service")
        );
        assert_eq!(
            unit("/user.slice/user-1000.slice/session-3.scope").as_deref(),
            Some("session-3.scope")
        );
        assert_eq!(
            unit("/system.slice/docker.service/x.scope").as_deref(),
            Some("docker.service")
        );
        assert_eq!(
            unit("/user.slice/user-1000.slice").as_deref(),
            Some("user-1000.slice")
        );
        // user@1000.service owns the per-app scopes of a user session.
        assert_eq!(
            unit("/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-x.scope")
                .as_deref(),
            Some("user@1000.service")
        );
        assert_eq!(unit("/"), None);
        assert_eq!(unit("/memmon-test-1"), None);
        assert_eq!(unit("/.service"), None);
    }

    #[test]
    fn containers() {
        assert_eq!(container_id(&format!("/docker/{ID}")).as_deref(), Some(ID));
        for prefix in ["cri-containerd-", "docker-", "crio-", "libpod-"] {
            assert_eq!(
                container_id(&format!(
                    "/kubepods.slice/kubepods-pod1.slice/{prefix}{ID}.scope"
                ))
                .as_deref(),
                Some(ID),
                "{prefix}"
            );
        }
        assert_eq!(
            container_id(&format!(
                "/kubepods/besteffort/pod{UID}/crio-conmon-{ID}.scope"
            )),
            None
        );
        assert_eq!(
            container_id(&format!(
                "/system.slice/containerd.service/kubepods-burstable-pod1.slice:cri-containerd:{ID}"
            ))
            .as_deref(),
            Some(ID)
        );
        assert_eq!(container_id("/system.slice/nginx.service"), None);
        assert_eq!(container_id(&format!("/docker/{}", &ID[1..])), None);
    }

    #[test]
    fn kubernetes_cgroupfs_driver() {
        let n = names(&format!("/kubepods/burstable/pod{UID}/{ID}"));
        assert_eq!(n.pod_uid.as_deref(), Some(UID));
        assert_eq!(n.container_id.as_deref(), Some(ID));
        assert_eq!(n.qos, Some(QosClass::Burstable));
        assert_eq!(n.unit, None);
        let n = names(&format!("/kubepods/pod{UID}/{ID}"));
        assert_eq!(n.qos, Some(QosClass::Guaranteed));
        assert_eq!(n.pod_uid.as_deref(), Some(UID));
        let n = names(&format!("/kubepods/besteffort/pod{UID}"));
        assert_eq!(n.qos, Some(QosClass::BestEffort));
        assert_eq!(n.pod_uid.as_deref(), Some(UID));
        assert_eq!(n.container_id, None);
        // The QoS level itself: a class, no pod.
        let n = names("/kubepods/burstable");
        assert_eq!((n.qos, n.pod_uid), (Some(QosClass::Burstable), None));
    }

    #[test]
    fn kubernetes_systemd_driver() {
        let u = UID.replace('-', "_");
        let n = names(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/cri-containerd-{ID}.scope"
        ));
        assert_eq!(n.pod_uid.as_deref(), Some(UID));
        assert_eq!(n.container_id.as_deref(), Some(ID));
        assert_eq!(n.qos, Some(QosClass::Burstable));
        assert_eq!(
            n.unit.as_deref(),
            Some(format!("cri-containerd-{ID}.scope").as_str())
        );
        let n = names(&format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice"
        ));
        assert_eq!(n.qos, Some(QosClass::BestEffort));
        assert_eq!(n.pod_uid.as_deref(), Some(UID));
        let n = names(&format!(
            "/kubepods.slice/kubepods-pod{u}.slice/docker-{ID}.scope"
        ));
        assert_eq!(n.qos, Some(QosClass::Guaranteed));
        assert_eq!(n.pod_uid.as_deref(), Some(UID));
        // A static pod's uid is a 32-hex config hash.
        let n = names("/kubepods/pod0123456789abcdef0123456789abcdef");
        assert_eq!(
            n.pod_uid.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
    }

    #[test]
    fn outside_kubernetes_and_hostile_names() {
        assert_eq!(names("/system.slice/nginx.service").qos, None);
        assert_eq!(names(&format!("/mypod{UID}")).pod_uid, None);
        let n = names("/kubepods/burstable/pod\"}\n{evil");
        assert_eq!((n.pod_uid, n.qos), (None, Some(QosClass::Burstable)));
        assert_eq!(names("/kubepods/burstable/podnot-a-uid").pod_uid, None);
        assert_eq!(names("/").unit, None);
        assert_eq!(names(""), CgroupNames::default());
    }
}
