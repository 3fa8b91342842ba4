//! `larder docker init` (issue 11, item 1) on the fixture workspace: the Dockerfile it
//! writes (pinned as a snapshot), that it passes its own `--check`, that it never
//! replaces a Dockerfile unasked, and that `--check` names what the old README recipe
//! lacks. Building the file with a real dockerd is the Docker suite's work.

use crate::support::Project;

#[test]
fn docker_init_writes_a_dockerfile_that_passes_its_own_check() {
    let p = Project::fixture();
    let run = p
        .larder(&[
            "docker",
            "init",
            "--user",
            "builder",
            "--larder-git",
            "https://example.invalid/larder",
        ])
        .run();
    assert!(run.stdout.contains("(ships app)"), "{}", run.context());
    let dockerfile = std::fs::read_to_string(p.path("Dockerfile")).unwrap();
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("docker_init_user_git", dockerfile));
    assert_eq!(
        std::fs::read_to_string(p.path(".dockerignore")).unwrap(),
        "target/\n.git/\n"
    );
    // The build binds `.larder/` (the CI cache file goes there) even without larder's
    // binary in it; git keeps the directory, not its files.
    let keep = std::fs::read_to_string(p.path(".larder/.gitignore")).unwrap();
    assert!(keep.contains("*\n!.gitignore"), "{keep}");
    let check = p.larder(&["docker", "init", "--check"]).run();
    assert!(
        check.stdout.contains("nothing missing"),
        "{}",
        check.context()
    );

    let again = p.larder(&["docker", "init"]).run_unchecked();
    assert_eq!(again.status.code(), Some(2), "{}", again.context());
    assert!(again.stderr.contains("exists"), "{}", again.context());

    // The default copies this larder into the build context.
    p.larder(&["docker", "init", "--force"]).run();
    assert!(p.path(".larder/larder").is_file());
    let dockerfile = std::fs::read_to_string(p.path("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("COPY .larder/larder /usr/local/bin/larder"),
        "{dockerfile}"
    );
}

#[test]
fn docker_check_names_what_the_old_recipe_lacks() {
    let p = Project::fixture();
    p.write(
        "Dockerfile",
        "# syntax=docker/dockerfile:1\nFROM rust:1\nARG LARDER_REMOTE\nRUN useradd u\nUSER u\nRUN --mount=type=cache,target=/home/u/.cache/larder \\\n    larder cargo build --release --locked\n",
    );
    let run = p.larder(&["docker", "init", "--check"]).run_unchecked();
    assert_eq!(run.status.code(), Some(1), "{}", run.context());
    for expected in [
        "Dockerfile:1: a `# syntax` line",
        "Dockerfile:3: ARG LARDER_REMOTE puts its value in `docker history`",
        "Dockerfile:6: the cache mount at /home/u/.cache/larder is owned by root",
        "Dockerfile: no cache mount for cargo's registry",
    ] {
        assert!(
            run.stdout.contains(expected),
            "{expected}:\n{}",
            run.context()
        );
    }
}
