//! deploy/kubernetes checked offline: the DaemonSet (and Namespace) against
//! the Kubernetes API's own schemas with kubernetes-validate (PyPI,
//! installed into .tools/venv) in strict mode, which refuses unknown
//! fields; a deliberately broken copy must fail it, so the check can fail.
//! The PodMonitor is a prometheus-operator CRD that those schemas do not
//! hold, so it gets a structural check instead: its kind and apiVersion,
//! and that its selector, namespace and port name match the DaemonSet it
//! scrapes.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use crate::cmd;

/// kubernetes-validate, pinned (its version follows Kubernetes').
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

fn manifest(name: &str) -> PathBuf {
    cmd::workspace().join("deploy/kubernetes").join(name)
}

/// `.tools/venv/bin/NAME` after `pip install SPEC` there if it is missing.
fn ensure_venv_tool(name: &str, spec: &str) -> anyhow::Result<PathBuf> {
    let venv = cmd::tools_dir().join("venv");
    let tool = venv.join("bin").join(name);
    if tool.exists() {
        return Ok(tool);
    }
    if !venv.join("bin/pip").exists() {
        cmd::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("creating a Python venv in .tools/venv (Debian package python3-venv)")?;
    }
    cmd::run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", spec]))
        .with_context(|| format!("pip install {spec}"))?;
    if !tool.exists() {
        bail!("pip installed {spec} but {} is missing", tool.display());
    }
    Ok(tool)
}

/// (success, output) of kubernetes-validate --strict on `file`.
fn kubernetes_validate(
    tool: &std::path::Path,
    file: &std::path::Path,
) -> anyhow::Result<(bool, String)> {
    let out = Command::new(tool)
        .arg("--strict")
        .arg(file)
        .output()
        .with_context(|| format!("running {}", tool.display()))?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// The structural check of the PodMonitor against the DaemonSet.
const PODMONITOR_CHECK: &str = r#"
import sys, yaml
ds = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "DaemonSet"]
pm = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d]
assert len(ds) == 1, "one DaemonSet in %s" % sys.argv[1]
assert len(pm) == 1, "one document in %s" % sys.argv[2]
ds, pm = ds[0], pm[0]
def need(cond, what):
    if not cond:
        sys.exit("PodMonitor: " + what)
need(pm.get("apiVersion") == "monitoring.coreos.com/v1", "apiVersion must be monitoring.coreos.com/v1")
need(pm.get("kind") == "PodMonitor", "kind must be PodMonitor")
meta, spec = pm.get("metadata", {}), pm.get("spec", {})
need(meta.get("name"), "metadata.name")
known = {"selector", "namespaceSelector", "podMetricsEndpoints", "jobLabel", "podTargetLabels",
         "sampleLimit", "targetLimit", "labelLimit", "attachMetadata"}
need(set(spec) <= known, "unknown spec keys %s" % sorted(set(spec) - known))
pod_labels = ds["spec"]["template"]["metadata"]["labels"]
sel = spec.get("selector", {}).get("matchLabels", {})
need(sel and all(pod_labels.get(k) == v for k, v in sel.items()),
     "selector %s does not match the DaemonSet's pod labels %s" % (sel, pod_labels))
ns = ds["metadata"]["namespace"]
need(meta.get("namespace") == ns or ns in spec.get("namespaceSelector", {}).get("matchNames", []),
     "neither metadata.namespace nor namespaceSelector is the DaemonSet's namespace %s" % ns)
ports = {p.get("name") for c in ds["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
eps = spec.get("podMetricsEndpoints", [])
need(eps, "no podMetricsEndpoints")
ep_keys = {"port", "portNumber", "targetPort", "path", "scheme", "interval", "scrapeTimeout",
           "honorLabels", "honorTimestamps", "relabelings", "metricRelabelings", "params",
           "basicAuth", "authorization", "tlsConfig", "followRedirects", "enableHttp2", "filterRunning",
           "proxyUrl", "bearerTokenSecret", "oauth2", "trackTimestampsStaleness"}
for ep in eps:
    need(set(ep) <= ep_keys, "unknown endpoint keys %s" % sorted(set(ep) - ep_keys))
    need(ep.get("port") in ports, "endpoint port %r is not a container port name %s" % (ep.get("port"), sorted(ports)))
    need(ep.get("path", "/metrics") == "/metrics", "path must be /metrics")
    for r in ep.get("relabelings", []):
        need(set(r) <= {"sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"},
             "unknown relabeling keys in %s" % r)
print("PodMonitor ok: selects %s in %s on port %s" % (sel, ns, [e.get("port") for e in eps]))
"#;

/// kubernetes-validate over the DaemonSet file (strict), a broken copy
/// that must fail, and the PodMonitor's structural check.
pub fn validate() -> anyhow::Result<()> {
    let tool = ensure_venv_tool("kubernetes-validate", KUBERNETES_VALIDATE)?;
    let ds = manifest("memmon-daemonset.yaml");
    let (ok, text) = kubernetes_validate(&tool, &ds)?;
    if !ok {
        bail!("kubernetes-validate --strict {}: {text}", ds.display());
    }
    // A field the API does not have must be refused (strict mode works).
    let broken_dir = cmd::workspace().join("target/k8s-check");
    std::fs::create_dir_all(&broken_dir)?;
    let broken = broken_dir.join("broken-daemonset.yaml");
    let content = std::fs::read_to_string(&ds)?;
    if !content.contains("      hostPID: true\n") {
        bail!("{} has no `hostPID: true` line to break", ds.display());
    }
    std::fs::write(
        &broken,
        content.replace(
            "      hostPID: true\n",
            "      hostPID: true\n      hostPid: true\n",
        ),
    )?;
    let (ok, text) = kubernetes_validate(&tool, &broken)?;
    if ok {
        bail!("kubernetes-validate accepted an unknown field (hostPid): {text}");
    }
    let podmonitor = manifest("memmon-podmonitor.yaml");
    podmonitor_check(&ds, &podmonitor)?;
    // A PodMonitor naming a port the pods do not have must be refused.
    let text = std::fs::read_to_string(&podmonitor)?;
    if !text.contains("- port: metrics\n") {
        bail!(
            "{} has no `- port: metrics` line to break",
            podmonitor.display()
        );
    }
    let broken_pm = broken_dir.join("broken-podmonitor.yaml");
    std::fs::write(
        &broken_pm,
        text.replace("- port: metrics\n", "- port: metric\n"),
    )?;
    if podmonitor_check(&ds, &broken_pm).is_ok() {
        bail!("the PodMonitor check accepted a port the DaemonSet does not name");
    }
    Ok(())
}

/// Runs [`PODMONITOR_CHECK`] on a DaemonSet file and a PodMonitor file.
fn podmonitor_check(ds: &std::path::Path, podmonitor: &std::path::Path) -> anyhow::Result<()> {
    let python = cmd::tools_dir().join("venv/bin/python3");
    let out = Command::new(&python)
        .args(["-c", PODMONITOR_CHECK])
        .arg(ds)
        .arg(podmonitor)
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Every `image:` in the DaemonSet is `tag` (the image `dist` builds).
pub fn check_image_tag(tag: &str) -> anyhow::Result<()> {
    let ds = manifest("memmon-daemonset.yaml");
    let text = std::fs::read_to_string(&ds).with_context(|| format!("reading {}", ds.display()))?;
    let images: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image:"))
        .map(str::trim)
        .collect();
    if images.is_empty() || images.iter().any(|i| *i != tag) {
        bail!("{} uses images {images:?}; want {tag}", ds.display());
    }
    Ok(())
}
