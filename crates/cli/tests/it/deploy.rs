//! The packaging in `deploy/`: the systemd unit passes `systemd-analyze verify`, and the
//! Dockerfile keeps the properties the README promises (multi-stage, non-root, health check on
//! `/readyz` through `tollgate health`, which `cli::e2e_version_and_health` tests against a
//! real gateway). Building the image needs a container engine, which CI does not have.

#![allow(clippy::unwrap_used)] // test code: a failed step is the failure

use std::process::Command;

fn repo_file(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The unit as shipped, with only the binary's location changed to the one this test built
/// (verify checks that `ExecStart` is executable). Warnings (unknown keys, bad values) fail it.
#[test]
fn the_systemd_unit_verifies() {
    let Ok(analyze) = which("systemd-analyze") else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "systemd-analyze is missing under CI=true");
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "the_systemd_unit_verifies: SKIPPED: systemd-analyze is not installed");
        return;
    };
    let unit = repo_file("deploy/tollgate.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/tollgate serve"), "{unit}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/tollgate", env!("CARGO_BIN_EXE_tollgate"))).unwrap();
    let out = Command::new(analyze).arg("verify").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
    for must in ["User=tollgate", "StateDirectory=tollgate", "NoNewPrivileges=yes", "KillSignal=SIGTERM"] {
        assert!(unit.contains(must), "the unit lost {must}");
    }
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_with_a_health_check() {
    let d = repo_file("deploy/Dockerfile");
    let froms: Vec<&str> = d.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage: {froms:?}");
    assert!(froms[0].ends_with(" AS build") && froms[1].contains("distroless"), "{froms:?}");
    assert!(d.contains("cargo build --release --locked -p tollgate-cli"), "builds the CLI crate as the README says");
    let user = d.lines().find(|l| l.starts_with("USER ")).unwrap_or_default();
    assert!(!user.is_empty() && !user.contains("root") && !user.contains(" 0"), "runs as non-root: {user}");
    assert!(d.contains(r#"CMD ["/usr/local/bin/tollgate", "health", "--url", "http://127.0.0.1:8080"]"#), "{d}");
    assert!(d.contains("TOLLGATE_LISTEN=0.0.0.0:8080") && d.contains("EXPOSE 8080"), "{d}");
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()).ok_or(())
}
