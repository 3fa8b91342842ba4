//! The configuration's tests: precedence, errors naming the culprit, paths.

use super::*;

/// An environment of `(name, value)` pairs (also for `show`'s tests).
pub(super) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults() {
    let c = Config::from_env(&env(&[("HOME", "/home/u")])).unwrap();
    assert_eq!(c.dir, PathBuf::from("/home/u/.cache/larder"));
    assert_eq!(c.max_size, DEFAULT_MAX_SIZE);
    assert!(!c.disable);
    let c = Config::from_env(&env(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x")])).unwrap();
    assert_eq!(c.dir, PathBuf::from("/x/larder"));
}

#[test]
fn sizes() {
    assert_eq!(parse_size("X", "1024").unwrap(), 1024);
    assert_eq!(parse_size("X", "10GiB").unwrap(), 10 << 30);
    assert_eq!(parse_size("X", "500M").unwrap(), 500 << 20);
    assert_eq!(parse_size("X", "1.5GB").unwrap(), 1_500_000_000);
    assert!(parse_size("X", "lots").is_err());
    assert!(parse_size("X", "10 parsecs").is_err());
    // 0 is no bound, as in ccache and sccache.
    assert_eq!(parse_size("X", "0").unwrap(), u64::MAX);
    assert_eq!(parse_size("X", "0M").unwrap(), u64::MAX);
}

#[test]
fn a_remote_in_the_file_may_be_one_string() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        "remote = \"redis://127.0.0.1:1/0\"\nmax_age = \"30days\"\nmax_size = 0\n",
    )
    .unwrap();
    let c = Config::from_env(&env(&[
        ("HOME", "/h"),
        ("LARDER_CONFIG", file.to_str().unwrap()),
    ]))
    .unwrap();
    assert_eq!(c.remotes.len(), 1);
    assert_eq!(c.max_age, Some(std::time::Duration::from_secs(30 * 86400)));
    assert_eq!(c.max_size, u64::MAX);
    let e = Config::from_env(&env(&[("HOME", "/h"), ("LARDER_MAX_AGE", "soon")])).unwrap_err();
    assert!(e.to_string().contains("LARDER_MAX_AGE"), "{e}");
}

#[test]
fn bad_values_name_the_variable() {
    let e = Config::from_env(&env(&[("HOME", "/h"), ("LARDER_MAX_SIZE", "huge")])).unwrap_err();
    assert!(e.to_string().contains("LARDER_MAX_SIZE"), "{e}");
    let e = Config::from_env(&env(&[("HOME", "/h"), ("LARDER_DISABLE", "maybe")])).unwrap_err();
    assert!(e.to_string().contains("LARDER_DISABLE"), "{e}");
    let e =
        Config::from_env(&env(&[("HOME", "/h"), ("LARDER_COMPRESSION_LEVEL", "99")])).unwrap_err();
    assert!(e.to_string().contains("LARDER_COMPRESSION_LEVEL"), "{e}");
}

#[test]
fn tiers_that_require_signatures_and_keys_named_on_error() {
    let base = [
        ("HOME", "/h"),
        ("LARDER_REMOTE", "redis://r:6379/0,grpc://g:9092"),
        ("LARDER_REMOTE_READ_ONLY", "https://public.example/larder"),
    ];
    let required = |extra: &[(&str, &str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(extra);
        Config::from_env(&env(&pairs)).map(|c| {
            let remotes: Vec<bool> = c.remotes.iter().map(|r| r.require_signatures).collect();
            (c.require_local_signatures, remotes)
        })
    };
    // By default only the read-only (public) tier.
    assert_eq!(required(&[]).unwrap(), (false, vec![false, false, true]));
    assert_eq!(
        required(&[("LARDER_REQUIRE_SIGNATURES", "1")]).unwrap(),
        (true, vec![true; 3])
    );
    assert_eq!(
        required(&[("LARDER_REQUIRE_SIGNATURES", "0")]).unwrap(),
        (false, vec![false; 3])
    );
    assert_eq!(
        required(&[("LARDER_REQUIRE_SIGNATURES", "local,grpc://g:9092")]).unwrap(),
        (true, vec![false, true, false])
    );
    assert_eq!(
        required(&[("LARDER_REQUIRE_SIGNATURES", "remotes")]).unwrap(),
        (false, vec![true; 3])
    );
    let e = required(&[("LARDER_REQUIRE_SIGNATURES", "redis://other:1/0")]).unwrap_err();
    assert!(e.to_string().contains("LARDER_REQUIRE_SIGNATURES"), "{e}");
    let e = required(&[("LARDER_TRUSTED_KEYS", "team-ci-1:abc")]).unwrap_err();
    assert!(e.to_string().contains("LARDER_TRUSTED_KEYS"), "{e}");
    let e = required(&[("LARDER_SIGNING_KEY", "/nonexistent/key")]).unwrap_err();
    assert!(e.to_string().contains("LARDER_SIGNING_KEY"), "{e}");
    let e = required(&[("LARDER_REMOTE_WRITE", "sometimes")]).unwrap_err();
    assert!(e.to_string().contains("LARDER_REMOTE_WRITE"), "{e}");
    // A pull-request run reads only; the remotes keep their configured kind.
    let c = Config::from_env(&env(&[
        ("HOME", "/h"),
        ("LARDER_REMOTE", "redis://r:6379/0"),
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", "pull_request"),
    ]))
    .unwrap();
    assert!(!c.remote_write.writes && !c.remotes[0].read_only);
    assert!(c.remote_tiers()[0].read_only);
}

#[test]
fn remotes_in_order_and_named_on_error() {
    let c = Config::from_env(&env(&[
        ("HOME", "/h"),
        ("LARDER_REMOTE", "redis://r:6379/0, memcached://m:11211"),
        ("LARDER_REMOTE_READ_ONLY", "https://public.example/larder"),
        ("LARDER_REMOTE_TIMEOUT", "0.5"),
    ]))
    .unwrap();
    let names: Vec<_> = c.remotes.iter().map(|r| (r.name(), r.read_only)).collect();
    assert_eq!(
        names,
        [
            ("redis://r:6379/0".to_string(), false),
            ("memcached://m:11211".to_string(), false),
            ("https://public.example/larder".to_string(), true)
        ]
    );
    assert_eq!(c.remotes[0].timeout, std::time::Duration::from_millis(500));
    let e =
        Config::from_env(&env(&[("HOME", "/h"), ("LARDER_REMOTE", "memcache://m:1")])).unwrap_err();
    assert!(
        e.to_string().contains("LARDER_REMOTE") && e.to_string().contains("scheme"),
        "{e}"
    );
    let e = Config::from_env(&env(&[
        ("HOME", "/h"),
        ("LARDER_REMOTE", "redis://u:hunter2@r:6379/x"),
    ]))
    .unwrap_err();
    assert!(
        !e.to_string().contains("hunter2") && !format!("{e:?}").contains("hunter2"),
        "{e}"
    );
    let e =
        Config::from_env(&env(&[("HOME", "/h"), ("LARDER_REMOTE_TIMEOUT", "soon")])).unwrap_err();
    assert!(e.to_string().contains("LARDER_REMOTE_TIMEOUT"), "{e}");
    let c = Config::from_env(&env(&[
        ("HOME", "/h"),
        ("LARDER_REMOTE", "redis://u:hunter2@r:6379/0"),
    ]))
    .unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn file_values_and_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "dir = \"/s\"\nmax_size = \"2G\"\nextra_env = [\"DATABASE_URL\"]\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let c = Config::from_env(&env(&[("HOME", "/h"), ("LARDER_CONFIG", p)])).unwrap();
    assert_eq!(c.dir, PathBuf::from("/s"));
    assert_eq!(c.max_size, 2 << 30);
    assert_eq!(c.extra_env, vec!["DATABASE_URL".to_string()]);
    // The environment wins over the file.
    let c = Config::from_env(&env(&[
        ("HOME", "/h"),
        ("LARDER_CONFIG", p),
        ("LARDER_DIR", "/e"),
    ]))
    .unwrap();
    assert_eq!(c.dir, PathBuf::from("/e"));

    std::fs::write(&path, "max_sise = 5\n").unwrap();
    let e = Config::from_env(&env(&[("HOME", "/h"), ("LARDER_CONFIG", p)])).unwrap_err();
    assert!(e.to_string().contains("max_sise"), "{e}");
    std::fs::write(&path, "max_size = \"big\"\n").unwrap();
    let e = Config::from_env(&env(&[("HOME", "/h"), ("LARDER_CONFIG", p)])).unwrap_err();
    assert!(e.to_string().contains("max_size in"), "{e}");

    // `incremental`: a string or a boolean in the file; the variable wins.
    std::fs::write(&path, "incremental = false\n").unwrap();
    let c = Config::from_env(&env(&[("HOME", "/h"), ("LARDER_CONFIG", p)])).unwrap();
    assert!(!c.incremental.keep);
    std::fs::write(&path, "incremental = \"auto\"\n").unwrap();
    let in_ci = [("HOME", "/h"), ("LARDER_CONFIG", p), ("CI", "true")];
    assert!(!Config::from_env(&env(&in_ci)).unwrap().incremental.keep);
    let on = [
        ("HOME", "/h"),
        ("LARDER_CONFIG", p),
        ("CI", "true"),
        ("LARDER_INCREMENTAL", "on"),
    ];
    assert!(Config::from_env(&env(&on)).unwrap().incremental.keep);
    std::fs::write(&path, "incremental = \"sometimes\"\n").unwrap();
    let e = Config::from_env(&env(&[("HOME", "/h"), ("LARDER_CONFIG", p)])).unwrap_err();
    assert!(e.to_string().contains("incremental in"), "{e}");
    let e = Config::from_env(&env(&[("HOME", "/h"), ("LARDER_INCREMENTAL", "x")])).unwrap_err();
    assert!(e.to_string().contains("LARDER_INCREMENTAL"), "{e}");
}

#[test]
fn relative_paths_are_refused_or_resolved_against_the_file() {
    let e = Config::from_env(&env(&[("HOME", "/h"), ("LARDER_DIR", "store")])).unwrap_err();
    assert!(e.to_string().contains("LARDER_DIR=store"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "dir = \"cache\"\n").unwrap();
    let p = path.to_str().unwrap();
    let c = Config::from_env(&env(&[("HOME", "/h"), ("LARDER_CONFIG", p)])).unwrap();
    assert_eq!(c.dir, dir.path().join("cache"));
}
