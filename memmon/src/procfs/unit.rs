//! The systemd unit and the container id a cgroup path belongs to:
//! `/system.slice/nginx.service` → unit `nginx.service`;
//! `/kubepods/burstable/pod…/cri-containerd-<64 hex>.scope` or
//! `/docker/<64 hex>` → that container id.

/// The innermost `.service` or `.scope` component (a scope only when no
/// service contains it), e.g. `nginx.service`, `session-3.scope`.
pub fn systemd_unit(cgroup: &str) -> Option<String> {
    let parts: Vec<&str> = cgroup.split('/').filter(|p| !p.is_empty()).collect();
    parts
        .iter()
        .rev()
        .find(|p| p.ends_with(".service"))
        .or_else(|| parts.iter().rev().find(|p| p.ends_with(".scope")))
        .map(|s| s.to_string())
}

/// A 64-hex-digit container id in the path (docker, containerd, cri-o,
/// podman naming), if any.
pub fn container_id(cgroup: &str) -> Option<String> {
    for part in cgroup.split('/').rev() {
        let stem = part.strip_suffix(".scope").unwrap_or(part);
        let id = stem.rsplit(['-', ':']).next().unwrap_or(stem);
        if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(id.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn units() {
        assert_eq!(
            systemd_unit("/system.slice/nginx.service").as_deref(),
            Some("nginx.service")
        );
        assert_eq!(
            systemd_unit("/user.slice/user-1000.slice/session-3.scope").as_deref(),
            Some("session-3.scope")
        );
        assert_eq!(
            systemd_unit("/system.slice/docker.service/x.scope").as_deref(),
            Some("docker.service")
        );
        assert_eq!(systemd_unit("/"), None);
        assert_eq!(systemd_unit("/memmon-test-1"), None);
    }

    #[test]
    fn containers() {
        assert_eq!(container_id(&format!("/docker/{ID}")).as_deref(), Some(ID));
        assert_eq!(
            container_id(&format!(
                "/kubepods.slice/kubepods-pod1.slice/cri-containerd-{ID}.scope"
            ))
            .as_deref(),
            Some(ID)
        );
        assert_eq!(
            container_id(&format!("/system.slice/docker-{ID}.scope")).as_deref(),
            Some(ID)
        );
        assert_eq!(container_id("/system.slice/nginx.service"), None);
    }
}
