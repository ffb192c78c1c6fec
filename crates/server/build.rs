//! The commit and its date, for `srvr`'s "built on" and `--version`
//! (ZooKeeper shows its revision and build date there). The commit's date,
//! not the build's, so a build of one commit reads the same every time.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .env("TZ", "UTC")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let date = git(&[
        "log",
        "-1",
        "--format=%cd",
        "--date=format-local:%Y-%m-%d %H:%M UTC",
    ])
    .unwrap_or_else(|| "an unknown date".into());
    println!("cargo:rustc-env=PADDOCK_COMMIT={commit}");
    println!("cargo:rustc-env=PADDOCK_COMMIT_DATE={date}");
    // Rebuilt when HEAD moves (a commit, a checkout).
    for path in [
        "../../.git/HEAD",
        "../../.git/refs/heads",
        "../../.git/packed-refs",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}
