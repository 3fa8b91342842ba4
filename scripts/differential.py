#!/usr/bin/env python3
"""Differential test: every build through larder equals a clean build by plain cargo.

Builds one real crates.io project with a C build script (zstd 0.13.4: zstd-sys compiles
zstd's C sources with the cc crate, and its build script declares only
`rerun-if-env-changed`) in a sequence of states, through `larder cargo` with one store, in
one checkout whose target directory is kept from state to state as a user's is. After
each state it moves that target directory aside and builds the same state with plain
cargo from nothing at the same path, then compares every file the clean build wrote
(rlibs, rmeta, executables, dep-info, build-script outputs, C objects and archives):

- byte for byte (with `CARGO_INCREMENTAL=0`: an incremental compile need not give a
  clean compile's bytes, and only larder's target directory is kept);
- else, executables, objects and archives (rlibs included) without their debug info and
  GNU build-id ("same but debug info": the same code and data; debug info names source
  paths, and the linker hashes it into the build-id);
- a build script's binary behind larder's shim, and a build script's `output` that
  differs only in cc-rs's report of the compiler variables (`larder cargo` sets
  `HOST_CC` to its C compiler shim), as `through_shim` says ("same behind shim");
- in the relocated checkout, whose hits come from entries made in the first, a file that
  is what plain cargo builds from the same sources there ("as built where made"): rustc
  writes the location, and hashes of it, into rlib metadata;
- a file that still differs is built by plain cargo a second time: if plain cargo's two
  builds differ too, rustc or the C compiler is not deterministic there ("plain-varies");
  otherwise the difference is unexplained, and the run fails.

It also checks behaviour (the `zstd` example compresses a file and `zstdcat` gives it
back) where examples are built, that the states expected to be answered from the store
(a revert, a relocated checkout) hit on every unit, and prints a Markdown table (also in
$WORK/differential.md).

    scripts/differential.py [--states NAME,...] [--list]

Environment:
  LARDER_DIFF_WORK   work directory, emptied at start (default /tmp/larder-differential)
  LARDER_BIN         the larder binary (default: built with `cargo build --release`)
  LARDER_DIFF_BIN_TARGET  target directory for building larder (default: $CARGO_TARGET_DIR,
                     else the repository's target/)
  CARGO              cargo (default cargo)
  LARDER_DIFF_KEEP   keep plain cargo's target directory of each state in $WORK/plain-<state>

The musl state needs the `x86_64-unknown-linux-musl` target and `musl-gcc`
(Debian's musl-tools); without them it is skipped, saying so.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.environ.get("LARDER_DIFF_WORK", "/tmp/larder-differential")
CARGO = os.environ.get("CARGO", "cargo")
CRATE, VERSION = "zstd", "0.13.4"
MUSL = "x86_64-unknown-linux-musl"
MARKER = "larder-differential"

# Files cargo writes that are not outputs of a compile (timestamps, locks, fingerprints).
SKIP_NAMES = {".cargo-lock", "invoked.timestamp", "CACHEDIR.TAG", ".rustc_info.json"}
SKIP_DIRS = {"incremental", ".fingerprint"}


def log(msg):
    print(f"differential: {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"differential: FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


# --- the states --------------------------------------------------------------------------


def edit(path, old, new):
    with open(path) as f:
        text = f.read()
    if old not in text:
        die(f"{path}: expected text {old!r} not found")
    with open(path, "w") as f:
        f.write(text.replace(old, new, 1))


def append(path, text):
    with open(path, "a") as f:
        f.write(text)


def workspace_edit(tree):
    # The default compression level, a constant of the library's own source.
    edit(
        os.path.join(tree, "src", "lib.rs"),
        "pub use zstd_safe::CLEVEL_DEFAULT as DEFAULT_COMPRESSION_LEVEL;",
        "pub const DEFAULT_COMPRESSION_LEVEL: i32 = 5;",
    )


def vendored_c_edit(tree):
    # Vendor every dependency, then edit a C source of zstd-sys (whose build script
    # declares only variables, so cargo itself would not rerun it for this edit).
    run(
        [CARGO, "vendor", "--locked", "--quiet", "--versioned-dirs", "vendor"],
        cwd=tree,
        capture=True,
    )
    os.makedirs(os.path.join(tree, ".cargo"), exist_ok=True)
    with open(os.path.join(tree, ".cargo", "config.toml"), "w") as f:
        f.write(
            '[source.crates-io]\nreplace-with = "vendored-sources"\n\n'
            '[source.vendored-sources]\ndirectory = "vendor"\n'
        )
    sys_dir = next(
        os.path.join(tree, "vendor", d)
        for d in sorted(os.listdir(os.path.join(tree, "vendor")))
        if d.startswith("zstd-sys")
    )
    rel = "zstd/lib/common/zstd_common.c"
    path = os.path.join(sys_dir, rel)
    edit(path, "return ZSTD_VERSION_STRING;", f'return "{MARKER}";')
    checksums = os.path.join(sys_dir, ".cargo-checksum.json")
    with open(checksums) as f:
        sums = json.load(f)
    with open(path, "rb") as f:
        sums["files"][rel] = hashlib.sha256(f.read()).hexdigest()
    with open(checksums, "w") as f:
        json.dump(sums, f)


def profile_override(tree):
    append(
        os.path.join(tree, "Cargo.toml"),
        '\n[profile.dev.package."*"]\nopt-level = 1\n',
    )


def reads_env(tree):
    append(
        os.path.join(tree, "src", "lib.rs"),
        "\n/// Added by larder's differential test: a variable read through `env!`.\n"
        "pub fn larder_differential() -> Option<&'static str> {\n"
        '    option_env!("LARDER_DIFFERENTIAL")\n}\n',
    )


BUILD = ["build", "--locked", "--examples"]

# The vendored copies answered by the registry checkouts' entries: rustc and the C compiler
# write a package's location into panic locations and debug info, so these two states
# remap both locations (`{registry}`: cargo's registry sources, `{a}`: checkout a) to one,
# under which the registry and the vendored sources compile to the same bytes. Without the
# remapping, such a hit names the registry checkout (README, "Paths inside restored
# artifacts").
REMAPPED = {
    "RUSTFLAGS": "--remap-path-prefix={registry}=/deps --remap-path-prefix={a}/vendor=/deps",
    "CFLAGS": "-ffile-prefix-map={registry}=/deps -ffile-prefix-map={a}/vendor=/deps",
}

# name, what changes, cargo arguments, extra environment, change to the sources,
# checkout ("a", or "b" for the relocated one), expectation. The target directory of
# checkout a is kept from state to state, but for the states in FRESH_TARGET: cargo
# itself does not rebuild a vendored package for an edit its build script does not
# declare, so that state starts from an empty target directory as the reported defect did
# (`rm -rf target`).
STATES = [
    ("base", "pristine sources, empty store", BUILD, {}, None, "a", None),
    ("workspace-edit", "a constant in the package's own src/lib.rs", BUILD, {}, workspace_edit, "a", None),
    ("vendored-seed", "paths remapped (`--remap-path-prefix`, `-ffile-prefix-map`): registry and vendored sources compile alike", BUILD, REMAPPED, None, "a", None),
    ("vendored-c-edit", "`cargo vendor`, then a C source of zstd-sys edited; paths remapped as above", BUILD, REMAPPED, vendored_c_edit, "a", None),
    ("feature", "`--features zstdmt` (C defines and Rust cfgs)", BUILD + ["--features", "zstdmt"], {}, None, "a", None),
    ("rustflags", "`RUSTFLAGS=-C overflow-checks=off`", BUILD, {"RUSTFLAGS": "-C overflow-checks=off"}, None, "a", None),
    ("profile-override", '`[profile.dev.package."*"] opt-level = 1`', BUILD, {}, profile_override, "a", None),
    ("env-var-1", "`option_env!(\"LARDER_DIFFERENTIAL\")` added, value `one`", BUILD, {"LARDER_DIFFERENTIAL": "one"}, reads_env, "a", None),
    ("env-var-2", "the same source, value `two`", BUILD, {"LARDER_DIFFERENTIAL": "two"}, reads_env, "a", None),
    ("cflags", "`CFLAGS=-O1`", BUILD, {"CFLAGS": "-O1"}, None, "a", None),
    ("musl", f"`--target {MUSL}` (C through musl-gcc)", BUILD + ["--target", MUSL], {}, None, "a", None),
    ("cargo-test", "`cargo test --test issue_182` (test profile, runs the test)", ["test", "--locked", "--test", "issue_182"], {}, None, "a", None),
    ("revert", "pristine sources again, target directory removed", BUILD, {}, None, "a", "all-hit"),
    ("relocated", "pristine sources in another checkout, empty target directory", BUILD, {}, None, "b", "all-hit"),
]

FRESH_TARGET = {"vendored-c-edit", "revert"}

# States whose hits come from entries made elsewhere, and the sources plain cargo builds
# in checkout a to check them against: the relocated checkout's (the same sources).
ORIGIN = {"relocated": "same sources"}

# --- helpers -----------------------------------------------------------------------------


def run(cmd, cwd=None, env=None, capture=False, check=True):
    res = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        text=True,
    )
    if check and res.returncode != 0:
        detail = f"\n{res.stderr}" if capture else ""
        die(f"`{' '.join(cmd)}` in {cwd} failed with {res.returncode}{detail}")
    return res


def base_env():
    env = dict(os.environ)
    for name in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CFLAGS",
        "CC",
        "LARDER_REPORT",
        "LARDER_REMOTE",
    ]:
        env.pop(name, None)
    env["CARGO_TERM_COLOR"] = "never"
    # rustc's incremental compiles need not give the bytes of a clean compile: larder's
    # target directory is kept from state to state, plain cargo's is not.
    env["CARGO_INCREMENTAL"] = "0"
    return env


def larder_binary():
    if os.environ.get("LARDER_BIN"):
        return os.environ["LARDER_BIN"]
    target = os.environ.get("LARDER_DIFF_BIN_TARGET") or os.environ.get(
        "CARGO_TARGET_DIR"
    ) or os.path.join(REPO, "target")
    log("building larder (release)")
    run(
        [CARGO, "build", "--release", "--locked", "--quiet", "-p", "larder"],
        cwd=REPO,
        env={**os.environ, "CARGO_TARGET_DIR": target},
    )
    return os.path.join(target, "release", "larder")


def sync_tree(src, dst):
    """Makes `dst` (but its target directories) hold exactly `src`'s files, rewriting
    only files whose content differs (as `git checkout` does: cargo sees new mtimes only
    where content changed)."""
    keep = {"target", "target.larder", "target.plain", "target.parked"}
    wanted = set()
    for root, dirs, files in os.walk(src):
        rel_root = os.path.relpath(root, src)
        os.makedirs(os.path.join(dst, rel_root), exist_ok=True)
        for name in files:
            rel = os.path.normpath(os.path.join(rel_root, name))
            wanted.add(rel)
            s, d = os.path.join(src, rel), os.path.join(dst, rel)
            if not os.path.exists(d) or not same_file(s, d):
                if os.path.exists(d):
                    os.remove(d)
                shutil.copyfile(s, d)
                shutil.copymode(s, d)
    for root, dirs, files in os.walk(dst, topdown=True):
        rel_root = os.path.relpath(root, dst)
        if rel_root == ".":
            dirs[:] = [d for d in dirs if d not in keep]
        for name in files:
            rel = os.path.normpath(os.path.join(rel_root, name))
            if rel not in wanted:
                os.remove(os.path.join(dst, rel))
    for root, dirs, files in os.walk(dst, topdown=False):
        if os.path.relpath(root, dst).split(os.sep)[0] in keep:
            continue
        if root != dst and not os.listdir(root):
            os.rmdir(root)


def same_file(a, b):
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def outputs(profile_dir):
    """Relative paths of the files a build wrote under `profile_dir`."""
    found = []
    for root, dirs, files in os.walk(profile_dir):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            if name in SKIP_NAMES:
                continue
            found.append(os.path.relpath(os.path.join(root, name), profile_dir))
    return sorted(found)


# What cc-rs prints about the compiler variables it looks up (`HOST_CC = Some(..)`,
# `CC = None`) and the `rerun-if-env-changed` it prints for each, as
# `cargo:rerun-if-env-changed=CC`.
CC_LOOKUP = re.compile(
    r"^(cargo:rerun-if-env-changed=)?((HOST|TARGET)_)?(CC|CXX)(_[A-Za-z0-9_-]+)?( = .*)?$"
)


def through_shim(rel, larder_file, plain_file, tmp):
    """Whether a difference is larder cargo's own doing, with the outputs the same:

    - a build script's binary is larder's `/bin/sh` shim, the real one beside it as
      `<name>.larder-real`: compare that one;
    - a build script's `output` differs only in cc-rs's report of the compiler variables,
      where `larder cargo` sets `HOST_CC` to its C compiler shim (and cc-rs then no longer
      looks at `CC`), or in the order of lines that are not directives
      ([`script_output`]): every cargo directive is compared, in order.
    """
    parts = rel.split(os.sep)
    if len(parts) == 3 and parts[0] == "build":
        pkg_dir, name = parts[1], parts[2]
        if name == "output":
            return script_output(larder_file) == script_output(plain_file)
        with open(larder_file, "rb") as f:
            head = f.read(2)
        if head == b"#!" and "-" in pkg_dir:
            hash_ = pkg_dir.rsplit("-", 1)[1]
            # `build-script-<stem>` (cargo's copy) or `build_script_<stem>-<hash>`.
            crate = name.split("-" + hash_)[0].replace("-", "_")
            real = os.path.join(os.path.dirname(larder_file), f"{crate}-{hash_}.larder-real")
            if os.path.exists(real):
                return same_file(real, plain_file) or same_without_debug_info(real, plain_file, tmp)
    return False


def script_output(path):
    """A build script's `output` as compared: its cargo directives in order, and its other
    lines as a sorted list (cc-rs compiles in parallel and prints `exit status: 0` as each
    job ends, in any order), both without cc-rs's compiler-variable report."""
    with open(path, errors="replace") as f:
        lines = [l for l in f.read().splitlines() if not CC_LOOKUP.match(l)]
    directives = [l for l in lines if l.startswith("cargo:") or l.startswith("cargo::")]
    others = sorted(l for l in lines if not (l.startswith("cargo:") or l.startswith("cargo::")))
    return directives, others


def is_object(path):
    """An ELF file (executable, shared object, object) or an archive of them (`.a`,
    `.rlib`)."""
    with open(path, "rb") as f:
        head = f.read(8)
    return head[:4] == b"\x7fELF" or head == b"!<arch>\n"


def same_without_debug_info(a, b, tmp):
    """Whether two objects are the same once their debug info, which names source paths,
    and the GNU build-id, which the linker hashes over the whole file, debug info included,
    are left out: the same code and data."""
    outs = []
    for i, src in enumerate([a, b]):
        dst = os.path.join(tmp, f"nodebug-{i}")
        cmd = ["objcopy", "--strip-debug", "--remove-section=.note.gnu.build-id", src, dst]
        if run(cmd, capture=True, check=False).returncode != 0:
            return False
        outs.append(dst)
    return same_file(*outs)


def units(report):
    counts = {"hit": 0, "miss": 0, "not_cacheable": 0, "error": 0}
    misses = []
    if not os.path.exists(report):
        return counts, misses
    with open(report) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            e = json.loads(line)
            if e.get("crate") is None:
                continue
            counts[e["outcome"]] = counts.get(e["outcome"], 0) + 1
            if e["outcome"] != "hit":
                kinds = ",".join(e.get("crate_types") or [])
                misses.append(f"{e['crate']}({kinds}):{e['outcome']}:{e.get('reason')}")
    return counts, misses


def roundtrip(bin_dir, tmp):
    """The `zstd` example compresses a file and `zstdcat` gives it back."""
    zstd, zstdcat = os.path.join(bin_dir, "zstd"), os.path.join(bin_dir, "zstdcat")
    if not (os.path.exists(zstd) and os.path.exists(zstdcat)):
        return "n/a"
    sample = os.path.join(tmp, "sample.txt")
    with open(os.path.join(WORK, "src", "assets", "example.txt"), "rb") as f:
        data = f.read()
    with open(sample, "wb") as f:
        f.write(data)
    if os.path.exists(sample + ".zst"):
        os.remove(sample + ".zst")
    run([zstd, sample], capture=True)
    out = subprocess.run([zstdcat, sample + ".zst"], stdout=subprocess.PIPE).stdout
    return "ok" if out == data else "WRONG"


def registry_dir(src):
    """cargo's registry source directory holding the project's dependencies."""
    home = os.environ.get("CARGO_HOME") or os.path.expanduser("~/.cargo")
    base = os.path.join(home, "registry", "src")
    for index in sorted(os.listdir(base)):
        if os.path.isdir(os.path.join(base, index, f"{CRATE}-{VERSION}")):
            return os.path.join(base, index)
    die(f"no {CRATE}-{VERSION} under {base}")


def musl_ready():
    sysroot = run(["rustc", "--print", "sysroot"], capture=True).stdout.strip()
    if not os.path.isdir(os.path.join(sysroot, "lib", "rustlib", MUSL)):
        return f"the {MUSL} target is not installed (rustup target add {MUSL})"
    if shutil.which("musl-gcc") is None:
        return "musl-gcc is not installed (Debian's musl-tools)"
    return None


# --- the run -----------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--states", help="comma-separated state names (default: all)")
    ap.add_argument("--list", action="store_true", help="list the states and exit")
    args = ap.parse_args()
    if args.list:
        for s in STATES:
            print(f"{s[0]:18} {s[1]}")
        return 0
    chosen = STATES
    if args.states:
        names = args.states.split(",")
        unknown = [n for n in names if n not in {s[0] for s in STATES}]
        if unknown:
            die(f"unknown state(s) {unknown}; --list shows them")
        chosen = [s for s in STATES if s[0] in names]

    if WORK in ("", "/", os.path.expanduser("~"), REPO):
        die(f"refusing to use LARDER_DIFF_WORK={WORK}")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    larder = larder_binary()
    src = os.path.join(WORK, "src")
    run([os.path.join(REPO, "scripts", "fetch-crate.sh"), CRATE, VERSION, src])
    # Two checkouts whose paths have the same length.
    checkouts = {"a": os.path.join(WORK, "a", CRATE), "b": os.path.join(WORK, "b", CRATE)}
    store = os.path.join(WORK, "store")
    tmp = os.path.join(WORK, "tmp")
    os.makedirs(tmp)
    rows, failures = [], []
    t_all = time.time()
    load = os.getloadavg()[0]

    for name, what, cargo_args, extra_env, change, where, expect in chosen:
        if name == "musl":
            why = musl_ready()
            if why:
                log(f"{name}: skipped: {why}")
                rows.append({"state": name, "what": what, "skipped": why})
                continue
        t0 = time.time()
        tree = checkouts[where]
        fresh = name in FRESH_TARGET
        os.makedirs(tree, exist_ok=True)
        # The state's sources: pristine, then its change.
        stage = os.path.join(WORK, "stage")
        shutil.rmtree(stage, ignore_errors=True)
        shutil.copytree(src, stage)
        if change:
            change(stage)
        sync_tree(stage, tree)
        target = os.path.join(tree, "target")
        if fresh:
            shutil.rmtree(target, ignore_errors=True)
        places = {"a": checkouts["a"], "registry": registry_dir(src)}
        env = {**base_env(), **{k: v.format(**places) for k, v in extra_env.items()}}
        profile = "debug"
        triple = cargo_args[cargo_args.index("--target") + 1] if "--target" in cargo_args else None
        profile_dir = os.path.join(target, triple, profile) if triple else os.path.join(target, profile)

        # Through larder, in the kept target directory.
        report = os.path.join(WORK, "reports", f"{name}.jsonl")
        os.makedirs(os.path.dirname(report), exist_ok=True)
        lenv = {**env, "LARDER_DIR": store, "LARDER_REPORT": report}
        log(f"{name}: larder cargo {' '.join(cargo_args)}")
        t1 = time.time()
        res = run([larder, "cargo"] + cargo_args, cwd=tree, env=lenv, capture=True, check=False)
        larder_secs = time.time() - t1
        if res.returncode != 0:
            failures.append(f"{name}: larder cargo failed:\n{res.stderr[-3000:]}")
            rows.append({"state": name, "what": what, "failed": "larder build failed"})
            continue
        counts, misses = units(report)
        behaviour = roundtrip(os.path.join(profile_dir, "examples"), tmp)

        # Plain cargo from nothing at the same path.
        larder_target = os.path.join(tree, "target.larder")
        shutil.rmtree(larder_target, ignore_errors=True)
        os.rename(target, larder_target)
        log(f"{name}: cargo {' '.join(cargo_args)} (clean)")
        t1 = time.time()
        run([CARGO] + cargo_args, cwd=tree, env=env, capture=True)
        plain_secs = time.time() - t1
        larder_dir = larder_target + profile_dir[len(target):]
        compared = outputs(profile_dir)

        def explain(rel, ref_dir):
            """How larder's file compares with the one in `ref_dir`: "same", "shim",
            "debug-info", or None (it differs)."""
            a, b = os.path.join(larder_dir, rel), os.path.join(ref_dir, rel)
            if not (os.path.exists(a) and os.path.exists(b)):
                return None
            if same_file(a, b):
                return "same"
            if through_shim(rel, a, b, tmp):
                return "shim"
            if is_object(b) and same_without_debug_info(a, b, tmp):
                return "debug-info"
            return None

        tally = {"same": 0, "shim": 0, "debug-info": 0, "origin": 0}
        differing = []
        for rel in compared:
            how = explain(rel, profile_dir)
            if how:
                tally[how] += 1
            else:
                differing.append(rel)
        origin = ORIGIN.get(name)
        if differing and origin:
            # Restored from entries made elsewhere: is each file what plain cargo builds
            # from those sources there?
            first = checkouts["a"]
            log(f"{name}: {len(differing)} file(s) differ; building plain cargo where the entries were made")
            park = os.path.join(first, "target.parked")
            shutil.rmtree(park, ignore_errors=True)
            first_target = os.path.join(first, "target")
            if os.path.exists(first_target):
                os.rename(first_target, park)
            sync_tree(stage if origin == "same sources" else src, first)
            run([CARGO] + cargo_args, cwd=first, env=env, capture=True)
            origin_dir = first_target + profile_dir[len(target):]
            rest = []
            for rel in differing:
                if explain(rel, origin_dir):
                    tally["origin"] += 1
                else:
                    rest.append(rel)
            differing = rest
            shutil.rmtree(first_target)
            if os.path.exists(park):
                os.rename(park, first_target)
            if first == tree:
                sync_tree(stage, tree)
        varies, unexplained = [], []
        if differing:
            # Is plain cargo itself deterministic there? Build it once more, same path.
            log(f"{name}: {len(differing)} file(s) differ; building plain cargo again")
            plain1 = os.path.join(tree, "target.plain")
            shutil.rmtree(plain1, ignore_errors=True)
            os.rename(target, plain1)
            run([CARGO] + cargo_args, cwd=tree, env=env, capture=True)
            plain1_dir = plain1 + profile_dir[len(target):]
            for rel in differing:
                a, b = os.path.join(plain1_dir, rel), os.path.join(profile_dir, rel)
                if os.path.exists(a) and os.path.exists(b) and not same_file(a, b):
                    varies.append(rel)
                else:
                    unexplained.append(rel)
            shutil.rmtree(plain1)
        if os.environ.get("LARDER_DIFF_KEEP"):
            # Keep plain cargo's target directory of the last state for a look.
            keep = os.path.join(WORK, f"plain-{name}")
            shutil.rmtree(keep, ignore_errors=True)
            os.rename(target, keep)
        else:
            shutil.rmtree(target)
        os.rename(larder_target, target)

        row = {
            "state": name,
            "what": what,
            "units": sum(counts.values()),
            "hits": counts["hit"],
            "misses": counts["miss"],
            "not_cacheable": counts["not_cacheable"] + counts["error"],
            "files": len(compared),
            "same": tally["same"],
            "debug_info": tally["debug-info"],
            "shim": tally["shim"],
            "origin": tally["origin"],
            "plain_varies": len(varies),
            "unexplained": len(unexplained),
            "behaviour": behaviour,
            "larder_secs": round(larder_secs, 1),
            "plain_secs": round(plain_secs, 1),
            "secs": round(time.time() - t0, 1),
        }
        rows.append(row)
        log(f"{name}: {json.dumps(row)}")
        if varies:
            log(f"{name}: plain cargo's own builds differ in: {', '.join(varies)}")
        if unexplained:
            log(f"{name}: unexplained: {', '.join(unexplained)}")
            failures.append(f"{name}: outputs differ from plain cargo's: {', '.join(unexplained)}")
        if behaviour == "WRONG":
            failures.append(f"{name}: the zstd/zstdcat round trip gave other bytes")
        if expect == "all-hit" and (counts["hit"] == 0 or misses):
            failures.append(f"{name}: expected every unit to hit; not: {', '.join(misses) or 'no units'}")
        if counts["error"]:
            failures.append(f"{name}: {counts['error']} unit(s) ended in a larder error")

    table = [
        f"Differential run: {CRATE} {VERSION}, {len(rows)} states, "
        f"{round(time.time() - t_all)} s, load {load:.2f} at start, {os.cpu_count()} cores",
        "",
        "| state | change | units | hits | misses | not cacheable | files compared | same | same but debug info | same behind shim | as built where made | plain varies | unexplained | behaviour | larder s | plain s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "skipped" in r or "failed" in r:
            note = r.get("skipped") or r.get("failed")
            table.append(f"| {r['state']} | {r['what']} | {note} |" + " |" * 13)
            continue
        table.append(
            "| {state} | {what} | {units} | {hits} | {misses} | {not_cacheable} | {files} | "
            "{same} | {debug_info} | {shim} | {origin} | {plain_varies} | {unexplained} | {behaviour} | "
            "{larder_secs} | {plain_secs} |".format(**r)
        )
    text = "\n".join(table) + "\n"
    print(text)
    with open(os.path.join(WORK, "differential.md"), "w") as f:
        f.write(text)
    with open(os.path.join(WORK, "differential.json"), "w") as f:
        json.dump(rows, f, indent=1)
    if failures:
        for f_ in failures:
            print(f"differential: FAIL: {f_}", file=sys.stderr)
        return 1
    print("differential: ok: zero unexplained differences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
