//! Records the git commit the binary is built from, for `tollgate --version`
//! (`TOLLGATE_GIT_COMMIT`: the variable of that name when the build sets it — a container build
//! without `.git` passes it as a build argument —, else `git rev-parse`, else `unknown`).

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=TOLLGATE_GIT_COMMIT");
    let commit = std::env::var("TOLLGATE_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=TOLLGATE_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself (a branch switch), the branch's ref, packed refs.
    if let (Some(git_dir), Some(common)) = (git(&["rev-parse", "--git-dir"]), git(&["rev-parse", "--git-common-dir"])) {
        println!("cargo:rerun-if-changed={}", PathBuf::from(&git_dir).join("HEAD").display());
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", PathBuf::from(&common).join(branch).display());
        }
        println!("cargo:rerun-if-changed={}", PathBuf::from(&common).join("packed-refs").display());
    }
    println!("cargo:rerun-if-changed=build.rs");
}
