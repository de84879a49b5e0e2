//! The systemd unit and the container id a cgroup path belongs to, for the
//! per-process view: thin names over [`crate::cgroupfs::names`], which
//! also knows pods and QoS classes.

/// The innermost `.service`, else `.scope`, else `.slice` component, e.g.
/// `nginx.service`, `session-3.scope` (see [`crate::cgroupfs::names::unit`]).
pub fn systemd_unit(cgroup: &str) -> Option<String> {
    crate::cgroupfs::names::unit(cgroup)
}

/// A 64-hex-digit container id in the path (docker, containerd, cri-o,
/// podman naming), if any.
pub fn container_id(cgroup: &str) -> Option<String> {
    crate::cgroupfs::names::container_id(cgroup)
}
