//! Documented passwords only where a local or demo installation opts in: `seed demo` and a
//! documented `ADMIN_PASSWORD` are refused without `ALLOW_DEMO_CREDENTIALS=true`, before
//! anything is contacted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn seed(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_seed"));
    command.args(args).env_remove("ALLOW_DEMO_CREDENTIALS");
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_data_and_documented_passwords_need_the_explicit_opt_in() {
    let (ok, stderr) = seed(&["demo"], &[("ADMIN_PASSWORD", "Some-Real-Secret-91")]);
    assert!(!ok && stderr.contains("ALLOW_DEMO_CREDENTIALS"), "{stderr}");
    let (ok, stderr) = seed(&["admin"], &[("ADMIN_PASSWORD", "Demo-Platform-2026!")]);
    assert!(
        !ok && stderr.contains("printed in the project's documentation"),
        "{stderr}"
    );
    // With the opt-in the password passes the check (and the seeder goes on to need its
    // configuration: here, no JWT keys).
    let (ok, stderr) = seed(
        &["admin"],
        &[
            ("ADMIN_PASSWORD", "Demo-Platform-2026!"),
            ("ALLOW_DEMO_CREDENTIALS", "true"),
            ("JWT_PUBLIC_KEYS", ""),
        ],
    );
    assert!(!ok && !stderr.contains("documentation"), "{stderr}");
}
