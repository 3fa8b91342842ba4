//! `larder key generate` (issue 12, item 1): the secret key in a file only its owner can
//! read, never overwritten, and the public key printed as one `NAME:<base64>` line.

use crate::support::{Cmd, Project};

fn generate(p: &Project, name: &str, out: &std::path::Path) -> Cmd {
    p.larder(&[
        "key",
        "generate",
        "--name",
        name,
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn key_generate_writes_the_secret_and_prints_the_public_key() {
    let p = Project::fixture();
    let out = p.tmp().join("team-ci-1.secret");
    let run = generate(&p, "team-ci-1", &out).run();
    let line = run.stdout.trim();
    let (name, b64) = line.split_once(':').expect("NAME:<base64>");
    assert_eq!(name, "team-ci-1", "{}", run.context());
    assert_eq!(b64.len(), 44, "32 bytes in base64: {line}");
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.context());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let secret = std::fs::read_to_string(&out).unwrap();
    assert!(secret.starts_with("team-ci-1:"), "{secret}");
    assert!(
        !secret.contains(b64),
        "the secret file holds the seed first"
    );

    let again = generate(&p, "team-ci-1", &out).run_unchecked();
    assert_eq!(again.status.code(), Some(2), "{}", again.context());
    assert!(
        again.stderr.contains("never overwrites"),
        "{}",
        again.context()
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), secret);

    let bad = generate(&p, "a:b", &p.tmp().join("x")).run_unchecked();
    assert_eq!(bad.status.code(), Some(2), "{}", bad.context());
    assert!(bad.stderr.contains("key name"), "{}", bad.context());
}
