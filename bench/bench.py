#!/usr/bin/env python3
"""larder bench harness (run it through bench/run.sh; knobs and scenarios in bench/README.md).

For every run i in 1..RUNS, project, profile and tool, one *series* in a fresh directory with
a fresh, empty cache store:

  a  first build: empty store, fresh checkout, fresh target dir
  b  no-change rebuild
  (limit, plain cargo series only: fresh checkout elsewhere + `cp -a` of the finished target
   dir + a no-op `cargo build`: the floor for e and f)
  c  one-line edit of the top crate (a `#[used] static` appended to its main.rs), rebuild
  d  one dependency bumped (a Cargo.lock prepared at set-up with `cargo update -p X
     --precise V`, so the scenario is offline and reproducible), rebuild
  e  fresh checkout of the pristine sources in another directory (new path, new target
     dir), same (warm) store
  f  `cargo clean` in the first checkout (`mbx clean` for mbx, whose target/ is a link that
     `cargo clean` would only unlink), rebuild with the warm store
  g  next commit: a fresh checkout of the pristine sources in another directory with the
     top crate edited (a one-line edit like c's, with a text no earlier build compiled), same
     (warm) store: what a CI runner sees on every push
  r  fresh runner from a remote (needs BENCH_REMOTE=s3): every build of the series also
     uses a remote S3 bucket (moto on loopback, started here; BENCH_REMOTE_RTT_MS puts a
     delay line in front), so a pushes; r then builds a fresh checkout at another path with
     the tool's local state (store, daemon, runtime dirs) empty: what a fresh CI runner
     sees

Each build is timed (wall), with CPU time (user+sys of cargo's whole process tree plus the
tool's server/daemon processes, which compile outside cargo's tree for sccache and kache),
the CPU time other processes used meanwhile (the machine's load), and the tool's hit and
miss counts. Medians over runs go to BENCH_WORK/results.md (also printed) and results.json.
"""

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CLK = os.sysconf("SC_CLK_TCK")

ALL_TOOLS = ["cargo", "larder", "sccache", "kache", "mbx"]
# Tools found or installed like sccache (find_or_install), as opposed to larder (built here).
EXTERNAL_TOOLS = ["sccache", "kache", "mbx"]
ALL_SCENARIOS = ["a", "b", "c", "d", "e", "f", "g", "r"]
SCENARIO_NAMES = {
    "a": "(a) first build, empty cache",
    "b": "(b) no-change rebuild",
    "c": "(c) one-line edit, top crate",
    "d": "(d) one dependency bumped",
    "e": "(e) fresh checkout elsewhere, warm cache",
    "f": "(f) cargo clean + rebuild, warm cache",
    "g": "(g) next commit: fresh checkout + one-line edit, warm cache",
    "r": "(r) fresh runner: fresh checkout, empty local cache, warm remote",
    "limit": "limit: fresh checkout + cp -a target + no-op build",
}

# Projects. `edit`: the file of the top crate that scenarios (c) and (g) append a line to.
# `bump`: (package, version) for scenario (d): a patch version next to the locked one.
# `fetch`: for crates.io packages, the script in scripts/ that puts the published sources
# (with their own Cargo.lock) into a directory and fetches their dependencies.
PROJECTS = {
    "ripgrep": {
        "desc": "ripgrep 14.1.1 (crates.io package, its Cargo.lock, --locked)",
        "edit": "crates/core/main.rs",
        "bump": ("itoa", "1.0.12"),  # locked: 1.0.11 (serde_json -> grep-printer -> rg)
        "fetch": "fetch-ripgrep.sh",
    },
    "heavy": {
        "desc": "bench/heavy: tokio, serde+derive, serde_json, clap+derive, reqwest+rustls+ring",
        "edit": "src/main.rs",
        "bump": ("itoa", "1.0.17"),  # locked: 1.0.18 (http, serde_json -> hyper, reqwest...)
    },
    # Not in the default PROJECTS (opt in with PROJECTS=hk): about 400 units per profile
    # (cargo's unit graph: 344 compilations + 45 build-script runs in debug, 358 + 50 in
    # release), aws-lc-sys's C code among them; a long build on 2 cores. Needs rustc 1.94
    # (its rust-version).
    "hk": {
        "desc": "hk 2.11.0 (crates.io package, its Cargo.lock, --locked; aws-lc-rs and its C code)",
        "edit": "src/main.rs",
        "bump": ("itoa", "1.0.17"),  # locked: 1.0.18 (http, hyper, serde_json -> ... hk)
        "fetch": "fetch-hk.sh",
    },
    # Not in the default PROJECTS: a one-dependency crate to check the harness in a minute.
    "smoke": {
        "desc": "smoke test of the harness: a binary depending on itoa",
        "edit": "src/main.rs",
        "bump": ("itoa", "1.0.12"),
    },
}


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def die(msg):
    log("FAIL:", msg)
    sys.exit(1)


def env_list(name, default, allowed):
    raw = os.environ.get(name, "").strip()
    items = [x.strip() for x in raw.replace(" ", ",").split(",") if x.strip()] if raw else default
    for x in items:
        if x not in allowed:
            die(f"{name}: unknown value '{x}' (expected some of {','.join(allowed)})")
    return items


# ------------------------------------------------------------------------------------------
# Measurement helpers
# ------------------------------------------------------------------------------------------
def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def system_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / CLK


def marked_cpu(marker):
    """CPU seconds (self + reaped children) of live processes whose environment holds
    `marker`: the sccache server or kache daemon of a series (rustc runs under them), or
    anything mbx left running detached from cargo's tree."""
    total = 0.0
    needle = marker.encode() + b"\0"
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle not in f.read():
                    continue
            with open(f"/proc/{pid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        total += sum(int(x) for x in fields[11:15]) / CLK
    return total


def du(path):
    if not os.path.exists(path):
        return None
    # -D: follow `path` itself if it is a link (mbx's target/ links to its managed target).
    out = subprocess.run(["du", "-sbD", path], capture_output=True, text=True)
    try:
        return int(out.stdout.split()[0])
    except (IndexError, ValueError):
        return None


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def run_quiet(cmd, cwd=None, env=None, check=True, logf=None):
    out = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    if logf:
        with open(logf, "a") as f:
            f.write(f"$ {' '.join(cmd)}  (in {cwd})\n{out.stdout}\n")
    if check and out.returncode != 0:
        die(f"command failed ({out.returncode}): {' '.join(cmd)} in {cwd}\n{out.stdout[-3000:]}")
    return out


def timed(cmd, cwd, env, logpath, marker=None):
    """Runs cmd; returns dict(wall, cpu, foreign_cpu, rc, load)."""
    d0 = marked_cpu(marker) if marker else 0.0
    c0, s0, l0 = children_cpu(), system_busy(), loadavg()
    t0 = time.monotonic()
    with open(logpath, "w") as f:
        f.write(f"$ {' '.join(cmd)}  (in {cwd})\n")
        f.flush()
        rc = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    wall = time.monotonic() - t0
    c1, s1 = children_cpu(), system_busy()
    d1 = marked_cpu(marker) if marker else 0.0
    cpu = (c1 - c0) + max(0.0, d1 - d0)
    return {
        "started": datetime.fromtimestamp(time.time() - wall, timezone.utc).strftime("%H:%M:%S"),
        "wall": round(wall, 3),
        "cpu": round(cpu, 2),
        "foreign_cpu": round(max(0.0, (s1 - s0) - cpu), 2),
        "load1_before": l0,
        "rc": rc,
    }


def compiling_lines(logpath):
    n = 0
    with open(logpath, errors="replace") as f:
        for line in f:
            if line.lstrip().startswith("Compiling "):
                n += 1
    return n


def larder_counts(report):
    c = {"units": 0, "hits": 0, "misses": 0, "not_cacheable": 0, "errors": 0, "hit_secs": []}
    if not os.path.exists(report):
        return c  # no rustc invocation at all (a no-op build)
    with open(report, errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except ValueError:
                c["errors"] += 1
                continue
            if r.get("crate") is None:
                continue
            c["units"] += 1
            o = r.get("outcome")
            if o == "hit":
                c["hits"] += 1
                c["hit_secs"].append(float(r.get("secs") or 0.0))
            elif o == "miss":
                c["misses"] += 1
            elif o == "not_cacheable":
                c["not_cacheable"] += 1
            else:
                c["errors"] += 1
    return c


def sum_counts(obj):
    if isinstance(obj, dict):
        if "counts" in obj and isinstance(obj["counts"], dict):
            return sum(int(v) for v in obj["counts"].values())
        return sum(int(v) for v in obj.values() if isinstance(v, (int, float)))
    if isinstance(obj, (int, float)):
        return int(obj)
    return 0


def find_key(obj, key):
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            r = find_key(v, key)
            if r is not None:
                return r
    elif isinstance(obj, list):
        for v in obj:
            r = find_key(v, key)
            if r is not None:
                return r
    return None


# ------------------------------------------------------------------------------------------
# Tools
# ------------------------------------------------------------------------------------------
def in_ci():
    return any(os.environ.get(v) for v in ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE"))


def find_or_install(tool, tools_root):
    env_bin = os.environ.get(f"{tool.upper()}_BIN")
    if env_bin:
        if not os.access(env_bin, os.X_OK):
            die(f"{tool.upper()}_BIN={env_bin} is not executable")
        return os.path.abspath(env_bin)
    cand = os.path.join(tools_root, "bin", tool)
    if os.access(cand, os.X_OK):
        return cand
    onpath = shutil.which(tool)
    if onpath:
        return onpath
    if in_ci() or os.environ.get("BENCH_NO_INSTALL") == "1":
        log(f"{tool} not found and installing is off (CI or BENCH_NO_INSTALL=1): skipping {tool}")
        return None
    args = ["cargo", "install", tool, "--root", tools_root]
    if tool in ("sccache", "mbx"):
        args.insert(3, "--locked")  # kache: installed without --locked, as its docs allow
    log(f"installing {tool}: {' '.join(args)} (this can take 10-20 minutes)")
    t0 = time.monotonic()
    r = subprocess.run(args, cwd="/tmp")
    if r.returncode != 0 or not os.access(cand, os.X_OK):
        log(f"installing {tool} failed; skipping {tool}")
        return None
    log(f"installed {tool} in {time.monotonic() - t0:.0f}s")
    return cand


def tool_version(path):
    if not path:
        return None
    out = subprocess.run([path, "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else None


class Tool:
    """One tool in one series: its environment, start/stop, and per-build counters."""

    def __init__(self, name, bins, sdir, marker, port, remote=None, remote_prefix=None):
        self.name, self.bins, self.sdir, self.marker = name, bins, sdir, marker
        self.store = os.path.join(sdir, "store") if name != "cargo" else None
        self.env = base_env()
        self.env["LARDER_BENCH_SERIES"] = marker.split("=", 1)[1]
        if name == "larder":
            self.env["LARDER_DIR"] = self.store
        elif name == "sccache":
            self.env.update({
                "RUSTC_WRAPPER": bins["sccache"],
                "SCCACHE_DIR": self.store,
                "SCCACHE_CACHE_SIZE": "50G",
                "SCCACHE_IDLE_TIMEOUT": "0",
                "SCCACHE_SERVER_PORT": str(port),
                "SCCACHE_CONF": os.path.join(sdir, "sccache-none.toml"),
                "SCCACHE_ERROR_LOG": os.path.join(sdir, "sccache-server.log"),
            })
        elif name == "kache":
            cfg = os.path.join(sdir, "kache.toml")
            self.env.update({
                "RUSTC_WRAPPER": bins["kache"],
                "KACHE_CACHE_DIR": self.store,
                "KACHE_RUNTIME_DIR": os.path.join(sdir, "kache-runtime"),
                "KACHE_CONFIG": cfg,
                "KACHE_HOST_CONFIG": "",
                "KACHE_AUTO_CLEAN_ORPHANED_TARGETS": "false",
                "XDG_CACHE_HOME": os.path.join(sdir, "xdg-cache"),
                "XDG_CONFIG_HOME": os.path.join(sdir, "xdg-config"),
            })
            self.kache_cfg = cfg
        elif name == "mbx":
            # mbx is a cargo front end (`mbx build ...`, see build_cmd): the command starts its
            # own cache agent (in the mbx process, the parent of cargo, so its CPU is in the
            # timed process tree) and stops it when the build ends; there is no daemon. Its
            # cache directory (store, scheduler pool, private incremental state) is the
            # series' store; XDG dirs of the series keep the user's global mbx config
            # (~/.config/mbx/config.toml) out and anything it would write in. `mbx setup`
            # (the cargo shim, mise and rust-analyzer config) is never run.
            self.env.update({
                "MBX_CACHE_DIR": self.store,
                # Managed targets (mbx moves target/ there and leaves a link): outside the
                # store, so that the store's size is the store's, as for the other tools.
                "MBX_TARGET_ROOT": os.path.join(sdir, "mbx-targets"),
                # The first build of an empty store starts a detached `mbx gc --automatic`
                # sweep of the store and managed targets (then one an hour): it would run on
                # into the next timed build, and a series stays far below mbx's budgets.
                "MBX_GC_AUTO": "false",
                "MBX_DISPLAY": "plain",
                "XDG_CONFIG_HOME": os.path.join(sdir, "xdg-config"),
                "XDG_CACHE_HOME": os.path.join(sdir, "xdg-cache"),
                "XDG_DATA_HOME": os.path.join(sdir, "xdg-data"),
                "XDG_STATE_HOME": os.path.join(sdir, "xdg-state"),
            })
        self.log = os.path.join(sdir, "tool.log")
        self.remote = remote
        if remote and name != "cargo":
            self.env.update(remote.env_for(name, remote_prefix))
            if name == "kache":
                self.kache_remote = remote.kache_toml(remote_prefix)

    def start(self):
        os.makedirs(self.sdir, exist_ok=True)
        if self.store:
            os.makedirs(self.store, exist_ok=True)
        if self.name == "sccache":
            open(self.env["SCCACHE_CONF"], "w").close()
            run_quiet([self.bins["sccache"], "--start-server"], cwd=self.sdir, env=self.env,
                      logf=self.log)
        elif self.name == "kache":
            with open(self.kache_cfg, "w") as f:
                f.write(getattr(self, "kache_remote", ""))
            for d in ("KACHE_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
                os.makedirs(self.env[d], exist_ok=True)
            run_quiet([self.bins["kache"], "daemon", "start"], cwd=self.sdir, env=self.env,
                      check=False, logf=self.log)
        elif self.name == "mbx":
            for d in ("MBX_TARGET_ROOT", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME",
                      "XDG_STATE_HOME"):
                os.makedirs(self.env[d], exist_ok=True)

    def stop(self):
        if self.name == "sccache":
            run_quiet([self.bins["sccache"], "--stop-server"], cwd=self.sdir, env=self.env,
                      check=False, logf=self.log)
        elif self.name == "kache":
            run_quiet([self.bins["kache"], "daemon", "stop"], cwd=self.sdir, env=self.env,
                      check=False, logf=self.log)
        elif self.name == "mbx":
            # Nothing to stop (no daemon); the series' lifetime totals, for the record.
            run_quiet([self.bins["mbx"], "stats", "--json"], cwd=self.sdir, env=self.env,
                      check=False, logf=self.log)

    def build_cmd(self, profile):
        args = ["cargo", "build", "--locked"] + (["--release"] if profile == "release" else [])
        if self.name == "larder":
            return [self.bins["larder"]] + args
        if self.name == "mbx":
            return [self.bins["mbx"]] + args[1:]  # `mbx build --locked ...`
        return args

    def clean_cmd(self):
        """Scenario f's clean (untimed). mbx keeps the target dir under MBX_TARGET_ROOT and
        leaves a `target` link in the checkout, which `cargo clean` would only unlink (the
        rebuild would then find all its outputs in place); `mbx clean` removes the managed
        target, the link and mbx's private incremental state (what target/ held for cargo)."""
        if self.name == "mbx":
            return [self.bins["mbx"], "clean"]
        return ["cargo", "clean"]

    # counters: before() is called untimed before each build, after() untimed after it.
    def before(self, report):
        if self.name == "larder":
            self.env["LARDER_REPORT"] = report
        elif self.name == "sccache":
            run_quiet([self.bins["sccache"], "--zero-stats"], cwd=self.sdir, env=self.env,
                      check=False)
        elif self.name == "kache":
            self.k0 = self.kache_summary()
        elif self.name == "mbx":
            # mbx writes this session's counters as JSON at the end of each build.
            self.env["MBX_STATS_REPORT"] = os.path.splitext(report)[0] + ".mbx.json"

    def after(self, report, cwd):
        if self.name == "larder":
            c = larder_counts(report)
            if c is None:
                return {"hits": None, "misses": None}
            return {"hits": c["hits"], "misses": c["misses"], "not_cacheable": c["not_cacheable"],
                    "errors": c["errors"], "units": c["units"], "hit_secs": c["hit_secs"]}
        if self.name == "sccache":
            out = subprocess.run([self.bins["sccache"], "--show-stats", "--stats-format=json"],
                                 env=self.env, capture_output=True, text=True)
            try:
                s = json.loads(out.stdout)
                s = s.get("stats", s)
                return {"hits": sum_counts(s.get("cache_hits", {})),
                        "misses": sum_counts(s.get("cache_misses", {})),
                        "not_cacheable": int(s.get("requests_not_cacheable", 0) or 0),
                        "not_cached_reasons": s.get("not_cached") or {},
                        "errors": sum_counts(s.get("cache_errors", {}))}
            except (ValueError, AttributeError, TypeError):
                return {"hits": None, "misses": None}
        if self.name == "kache":
            k1 = self.kache_summary()
            if self.k0 is None or k1 is None:
                return {"hits": None, "misses": None}
            d = {k: k1.get(k, 0) - self.k0.get(k, 0) for k in k1}
            return {"hits": d.get("local_hits", 0) + d.get("prefetch_hits", 0)
                    + d.get("remote_hits", 0),
                    "misses": d.get("misses", 0),
                    "not_cacheable": d.get("passthroughs", 0) + d.get("skipped", 0),
                    "errors": d.get("errors", 0)}
        if self.name == "mbx":
            try:
                with open(self.env["MBX_STATS_REPORT"]) as f:
                    s = json.load(f)
            except (OSError, ValueError):
                return {"hits": None, "misses": None}  # no session: mbx ran cargo uncached
            # mbx looks a unit up only under a key it predicted from an earlier build; one
            # without a prediction (every unit of an empty store) is compiled and stored
            # without a lookup ("not looked up", `unconsulted`): counted with the misses.
            # `bypasses` holds rustc probes (-vV, stdin) too; only the others are counted as
            # not cacheable, as mbx's own summary does.
            routine = ("compiler-query", "standard-input", "cc-compiler-query",
                       "cc-standard-input")
            byp = s.get("bypasses") or {}
            return {"hits": int(s.get("hits", 0)),
                    "misses": int(s.get("misses", 0)) + int(s.get("unconsulted", 0)),
                    "not_cacheable": sum(int(v) for k, v in byp.items() if k not in routine),
                    "mbx_unconsulted": int(s.get("unconsulted", 0)),
                    "mbx_incremental": int(s.get("incremental_compilations", 0)),
                    "mbx_bypasses": byp,
                    "mbx_restored_output_files": int(s.get("restored_output_files", 0))}
        return {}

    def kache_summary(self):
        out = subprocess.run([self.bins["kache"], "stats", "--json", "--since", "7d"],
                             cwd=self.sdir, env=self.env, capture_output=True, text=True)
        try:
            doc = json.loads(out.stdout)
        except ValueError:
            return None
        res = {}
        for k in ("local_hits", "prefetch_hits", "remote_hits", "misses", "errors",
                  "passthroughs", "skipped"):
            v = find_key(doc, k)
            if isinstance(v, (int, float)):
                res[k] = int(v)
        return res or None


def base_env():
    env = dict(os.environ)
    for v in ("RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_RUSTC_WRAPPER",
              "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR",
              "CARGO_BUILD_BUILD_DIR", "LARDER_DIR", "LARDER_REPORT", "LARDER_DISABLE",
              "LARDER_EXTRA_ENV", "LARDER_EXTRA_FILES", "SCCACHE_DIR", "KACHE_CACHE_DIR",
              "RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_INCREMENTAL"):
        env.pop(v, None)
    # mbx reads all its settings from MBX_* variables (and an inherited MBX_SOCKET would
    # point builds at another session): none of the user's apply to a series.
    for v in [k for k in env if k.startswith("MBX_")]:
        env.pop(v)
    # A series runs as on a laptop, or with BENCH_CI=1 as in a CI pipeline (every build
    # with CI=true, as CI systems set it: larder then compiles without -C incremental).
    for v in ("CI", "TF_BUILD", "JENKINS_URL", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE"):
        env.pop(v, None)
    if os.environ.get("BENCH_CI") == "1":
        env["CI"] = "true"
    env["CARGO_TERM_COLOR"] = "never"
    env["CARGO_TERM_PROGRESS_WHEN"] = "never"
    return env


# ------------------------------------------------------------------------------------------
# Sources
# ------------------------------------------------------------------------------------------
def copy_tree(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    subprocess.run(["cp", "-a", src, dst], check=True)
    shutil.rmtree(os.path.join(dst, "target"), ignore_errors=True)


def prepare_sources(work, projects):
    srcroot = os.path.join(work, "src")
    os.makedirs(srcroot, exist_ok=True)
    env = base_env()
    for p in projects:
        dst = os.path.join(srcroot, p)
        if PROJECTS[p].get("fetch"):
            run_quiet([os.path.join(REPO, "scripts", PROJECTS[p]["fetch"]), dst], env=env)
        elif p == "smoke":
            if not os.path.exists(dst):
                os.makedirs(os.path.join(dst, "src"))
                with open(os.path.join(dst, "Cargo.toml"), "w") as f:
                    f.write('[package]\nname = "larder-bench-smoke"\nversion = "0.1.0"\n'
                            'edition = "2021"\npublish = false\n\n[dependencies]\n'
                            'itoa = "1"\n\n[workspace]\n')
                with open(os.path.join(dst, "src", "main.rs"), "w") as f:
                    f.write('fn main() {\n    let mut b = itoa::Buffer::new();\n'
                            '    println!("{}", b.format(42u32));\n}\n')
                run_quiet(["cargo", "generate-lockfile"], cwd=dst, env=env)
                run_quiet(["cargo", "update", "-p", "itoa", "--precise", "1.0.11"], cwd=dst,
                          env=env)
            run_quiet(["cargo", "fetch", "--locked"], cwd=dst, env=env)
        else:
            if not os.path.exists(dst):
                os.makedirs(dst)
                for name in ("Cargo.toml", "Cargo.lock", "src"):
                    subprocess.run(["cp", "-a", os.path.join(HERE, "heavy", name), dst],
                                   check=True)
            run_quiet(["cargo", "fetch", "--locked"], cwd=dst, env=env)
        # The bumped Cargo.lock for scenario (d), made once (online) and fetched.
        pkg, ver = PROJECTS[p]["bump"]
        bumped = os.path.join(srcroot, f"{p}.bumped.Cargo.lock")
        if not os.path.exists(bumped):
            scratch = os.path.join(srcroot, f"{p}-bump-scratch")
            shutil.rmtree(scratch, ignore_errors=True)
            copy_tree(dst, scratch)
            run_quiet(["cargo", "update", "-p", pkg, "--precise", ver], cwd=scratch, env=env)
            run_quiet(["cargo", "fetch", "--locked"], cwd=scratch, env=env)
            shutil.copy(os.path.join(scratch, "Cargo.lock"), bumped)
            shutil.rmtree(scratch)
        with open(bumped) as f, open(os.path.join(dst, "Cargo.lock")) as g:
            if f.read() == g.read():
                die(f"{p}: the bumped Cargo.lock equals the original ({pkg} {ver})")
    return srcroot


# ------------------------------------------------------------------------------------------
# The remote of scenario r: an S3 bucket (moto) on loopback, each series under its own prefix
# ------------------------------------------------------------------------------------------
def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Remote:
    """moto's S3 server on 127.0.0.1 (started with setsid, stopped by PID), one bucket, and
    optionally bench/delay-proxy.py in front of it (BENCH_REMOTE_RTT_MS: round trip)."""

    BUCKET = "larder-bench"
    KEY, SECRET, REGION = "bench", "bench-secret", "us-east-1"

    def __init__(self, work, rtt_ms):
        self.pids = []
        self.dir = os.path.join(work, "remote")
        os.makedirs(self.dir, exist_ok=True)
        servers = os.environ.get("LARDER_SERVERS_DIR", "/tmp/larder-servers")
        moto = os.path.join(servers, "venv", "bin", "moto_server")
        if not os.access(moto, os.X_OK):
            moto = shutil.which("moto_server")
        if not moto:
            die("BENCH_REMOTE=s3 needs moto_server (scripts/remote-servers.sh install, or "
                "pip install 'moto[server]')")
        port = free_port()
        self._spawn([moto, "-H", "127.0.0.1", "-p", str(port)], "moto.log")
        self.server = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                import urllib.request
                urllib.request.urlopen(self.server + "/", timeout=1).read()
                break
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    die(f"moto did not answer on {self.server} (see {self.dir}/moto.log)")
                time.sleep(0.2)
        req = urllib.request.Request(f"{self.server}/{self.BUCKET}", method="PUT")
        urllib.request.urlopen(req, timeout=10).read()
        self.endpoint = self.server
        self.rtt_ms = rtt_ms
        if rtt_ms > 0:
            pport = free_port()
            self._spawn([sys.executable, os.path.join(HERE, "delay-proxy.py"), str(pport),
                         f"127.0.0.1:{port}", str(rtt_ms / 2)], "delay-proxy.log")
            self.endpoint = f"http://127.0.0.1:{pport}"
            time.sleep(0.5)
        log(f"remote: S3 bucket {self.BUCKET} at {self.server}"
            + (f", through a {rtt_ms} ms round-trip delay line at {self.endpoint}"
               if rtt_ms > 0 else ""))

    def _spawn(self, cmd, logname):
        with open(os.path.join(self.dir, logname), "w") as f:
            p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        self.pids.append(p.pid)

    def stop(self):
        import signal
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self.pids = []

    def describe(self):
        return (f"S3 (moto) on loopback" + (f" behind a {self.rtt_ms} ms round-trip delay line"
                                            if self.rtt_ms > 0 else ""))

    def env_for(self, tool, prefix):
        """The variables that point `tool` at the bucket, under `prefix` (one per series)."""
        env = {"AWS_ACCESS_KEY_ID": self.KEY, "AWS_SECRET_ACCESS_KEY": self.SECRET,
               "AWS_REGION": self.REGION, "AWS_DEFAULT_REGION": self.REGION}
        if tool == "larder":
            env.update({"LARDER_REMOTE": f"s3://{self.BUCKET}/{prefix}",
                        "AWS_ENDPOINT_URL": self.endpoint})
        elif tool == "sccache":
            env.update({"SCCACHE_BUCKET": self.BUCKET, "SCCACHE_ENDPOINT": self.endpoint,
                        "SCCACHE_REGION": self.REGION, "SCCACHE_S3_USE_SSL": "false",
                        "SCCACHE_S3_KEY_PREFIX": prefix})
        elif tool == "mbx":
            # mbx writes to a remote only from trusted CI unless told to trust writes.
            env.update({"MBX_REMOTE_URL": f"s3://{self.BUCKET}/{prefix}",
                        "MBX_REMOTE_NAMESPACE": "bench",
                        "MBX_REMOTE_S3_ENDPOINT": self.endpoint,
                        "MBX_REMOTE_S3_REGION": self.REGION,
                        "MBX_REMOTE_S3_FORCE_PATH_STYLE": "true",
                        "MBX_REMOTE_TRUST_WRITES": "true", "MBX_REMOTE_MODE": "read-write"})
        return env

    def kache_toml(self, prefix):
        # kache's daemon drops KACHE_S3_* from its environment: its remote is in the file.
        return (f'[cache.remote]\ntype = "s3"\nbucket = "{self.BUCKET}"\n'
                f'endpoint = "{self.endpoint}"\nregion = "{self.REGION}"\nprefix = "{prefix}"\n')


# ------------------------------------------------------------------------------------------
# One series
# ------------------------------------------------------------------------------------------
def series(ctx, run_i, project, profile, tool_name):
    work, srcroot, scenarios = ctx["work"], ctx["srcroot"], ctx["scenarios"]
    sid = f"{project}-{profile}-r{run_i}-{tool_name}"
    sdir = os.path.join(work, "runs", f"{project}-{profile}", f"r{run_i}", tool_name)
    shutil.rmtree(sdir, ignore_errors=True)
    os.makedirs(os.path.join(sdir, "logs"))
    os.makedirs(os.path.join(sdir, "reports"))
    marker = f"LARDER_BENCH_SERIES={sid}-{os.getpid()}"
    port = 4300 + (os.getpid() % 500)
    remote = ctx.get("remote")
    prefix = f"{sid}-{os.getpid()}"
    tool = Tool(tool_name, ctx["bins"], sdir, marker, port, remote, prefix)
    tool.start()
    store = tool.store
    pristine = os.path.join(srcroot, project)
    ws = os.path.join(sdir, "ws", project)
    copy_tree(pristine, ws)
    results = []

    def build(scen, cwd, record=True):
        report = os.path.join(sdir, "reports", f"{scen}.jsonl")
        logp = os.path.join(sdir, "logs", f"{scen}.log")
        tool.before(report)
        m = timed(tool.build_cmd(profile), cwd, tool.env, logp,
                  marker=marker if tool_name in EXTERNAL_TOOLS else None)
        counts = tool.after(report, cwd)
        m.update({"project": project, "profile": profile, "tool": tool_name, "run": run_i,
                  "scenario": scen, "compiling_lines": compiling_lines(logp), "log": logp})
        m.update(counts)
        hs = m.pop("hit_secs", None)
        if hs:
            m["hit_secs"] = hs
        log(f"[{sid}] {scen}: {m['wall']:.1f}s wall, {m['cpu']:.1f}s CPU "
            f"(others {m['foreign_cpu']:.1f}s), hits={m.get('hits')} misses={m.get('misses')} "
            f"compiling={m['compiling_lines']} rc={m['rc']}")
        if m["rc"] != 0:
            with open(logp, errors="replace") as f:
                log("build failed; last lines:\n" + "".join(f.readlines()[-30:]))
        if record:
            results.append(m)
        return m["rc"] == 0

    ok = True
    try:
        # a: always built (the other scenarios start from it); recorded if selected.
        ok = build("a", ws, record="a" in scenarios)
        if ok and "b" in scenarios:
            ok = build("b", ws)
        if ok and tool_name == "cargo" and ctx["limit"]:
            results.append(limit(ctx, sid, run_i, sdir, project, profile, ws, tool.env))
        if ok and "c" in scenarios:
            append_edit(os.path.join(ws, PROJECTS[project]["edit"]),
                        f"larder-bench-edit-r{run_i:03d}")
            ok = build("c", ws)
        if ok and "d" in scenarios:
            shutil.copy(os.path.join(srcroot, f"{project}.bumped.Cargo.lock"),
                        os.path.join(ws, "Cargo.lock"))
            ok = build("d", ws)
        if ok and "e" in scenarios:
            other = os.path.join(sdir, "elsewhere", "some", "deeper", "path", f"{project}-copy")
            copy_tree(pristine, other)
            ok = build("e", other)
            ctx["sizes"].append({"project": project, "profile": profile, "tool": tool_name,
                                 "run": run_i, "what": "e target", "bytes": du(os.path.join(other, "target"))})
        if ok and "f" in scenarios:
            run_quiet(tool.clean_cmd(), cwd=ws, env=tool.env, logf=os.path.join(sdir, "tool.log"))
            ok = build("f", ws)
        if ok and "g" in scenarios:
            # The next commit on a CI runner: a new checkout (new path, new target dir) of
            # the pristine sources whose top crate changed. The edit is c's, with another
            # text: c's exact source was compiled (and maybe stored) already, a new commit's
            # was not, so the top crate must be compiled while its dependencies can be hits.
            nxt = os.path.join(sdir, "next", "runner", "work", f"{project}-next")
            copy_tree(pristine, nxt)
            append_edit(os.path.join(nxt, PROJECTS[project]["edit"]),
                        f"larder-bench-next-r{run_i:03d}")
            ok = build("g", nxt)
        if ok and "r" in scenarios and tool_name != "cargo":
            # A fresh runner: the tool's local state (store, daemon, runtime and XDG dirs)
            # starts empty under runner/; the remote is the series' bucket prefix. Stopping
            # the tool first (untimed) lets a daemon finish its uploads.
            tool.stop()
            tool = Tool(tool_name, ctx["bins"], os.path.join(sdir, "runner"), marker, port + 1,
                        remote, prefix)
            tool.start()
            fresh = os.path.join(sdir, "runner", "ws", "build", f"{project}")
            copy_tree(pristine, fresh)
            ok = build("r", fresh)
        elif ok and "r" in scenarios:
            # plain cargo on a fresh runner: a full build in a fresh checkout
            fresh = os.path.join(sdir, "runner", "ws", "build", f"{project}")
            copy_tree(pristine, fresh)
            ok = build("r", fresh)
    finally:
        tool.stop()
    ctx["sizes"].append({"project": project, "profile": profile, "tool": tool_name, "run": run_i,
                         "what": "store", "bytes": du(store) if store else None})
    ctx["sizes"].append({"project": project, "profile": profile, "tool": tool_name, "run": run_i,
                         "what": "target", "bytes": du(os.path.join(ws, "target"))})
    if not ctx["keep"]:
        for d in ("ws", "elsewhere", "next", "limit", "store", "mbx-targets", "xdg-cache",
                  "runner"):
            shutil.rmtree(os.path.join(sdir, d), ignore_errors=True)
    return results, ok


def append_edit(path, tag):
    """The one-line edit of scenarios c and g: a `#[used] static` holding `tag`, so the
    crate's object code changes (a comment would leave it as it was)."""
    with open(path, "a") as f:
        f.write(f'#[used]\nstatic LARDER_BENCH_EDIT: [u8; {len(tag)}] = *b"{tag}";\n')


def limit(ctx, sid, run_i, sdir, project, profile, ws, env):
    """Floor for e/f: a fresh checkout elsewhere gets a copy of a finished target dir
    (cp -a, timed), then a no-op plain `cargo build` (timed)."""
    dst = os.path.join(sdir, "limit", "another", "place", f"{project}-copy")
    copy_tree(os.path.join(ctx["srcroot"], project), dst)
    c0, t0 = children_cpu(), time.monotonic()
    subprocess.run(["cp", "-a", os.path.join(ws, "target"), os.path.join(dst, "target")],
                   check=True)
    cp_wall, cp_cpu = time.monotonic() - t0, children_cpu() - c0
    logp = os.path.join(sdir, "logs", "limit.log")
    args = ["cargo", "build", "--locked"] + (["--release"] if profile == "release" else [])
    m = timed(args, dst, env, logp)
    m.update({"project": project, "profile": profile, "tool": "limit", "run": run_i,
              "scenario": "limit", "cp_wall": round(cp_wall, 3), "build_wall": m["wall"],
              "compiling_lines": compiling_lines(logp), "log": logp})
    m["wall"] = round(cp_wall + m["wall"], 3)
    m["cpu"] = round(cp_cpu + m["cpu"], 2)
    log(f"[{sid}] limit: cp -a {cp_wall:.1f}s + no-op build {m['build_wall']:.1f}s"
        f" (compiling={m['compiling_lines']})")
    return m


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def fmt_bytes(b):
    if b is None:
        return "-"
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= div:
            return f"{b / div:.1f} {unit}"
    return f"{b} B"


def ratio_str(m, base):
    if not base:
        return ""
    r = m / base
    return f" ({r:.2f}x)" if r >= 0.1 else f" ({r:.3f}x)"


def counts_str(rows):
    vals = []
    for r in rows:
        h, m = r.get("hits"), r.get("misses")
        if r["tool"] in ("cargo", "limit"):
            vals.append(f"{r['compiling_lines']} compiled")
        elif h is None:
            vals.append("n/a")
        else:
            s = f"{h}h/{m}m"
            if r.get("not_cacheable"):
                s += f"/{r['not_cacheable']}nc"
            vals.append(s)
    uniq = list(dict.fromkeys(vals))
    return uniq[0] if len(uniq) == 1 else ", ".join(vals)


def make_report(meta, results, sizes):
    lines = []
    w = lines.append
    w(f"# larder bench results ({meta['date']} to {meta.get('updated', '?')})")
    w("")
    w(f"Machine: {meta['machine']}. Toolchain: {meta['rustc']}; {meta['cargo']}.")
    w(f"Tools: " + "; ".join(f"{k} = {v}" for k, v in meta["versions"].items()) + ".")
    w(f"RUNS={meta['runs']}, PROJECTS={','.join(meta['projects'])}, "
      f"PROFILES={','.join(meta['profiles'])}, TOOLS={','.join(meta['tools'])}, "
      f"SCENARIOS={','.join(meta['scenarios'])}. Medians over runs; run order interleaved "
      f"(for each run: for each project/profile: for each tool: one series).")
    if meta.get("remote"):
        w("")
        w(f"Remote: every build of every tool's series also used {meta['remote']}, one bucket "
          "prefix per series (the cold build a pushes to it); r is a fresh runner: a fresh "
          "checkout with the tool's local state empty, served by the remote.")
    w("")
    w("Cells: median wall seconds of the cargo command, (ratio to plain cargo's cold build a), "
      "then hits/misses of the tool (h/m, nc = not cacheable; for plain cargo and the limit: "
      "cargo's `Compiling` lines)."
      + (" mbx's misses include the units it compiled without a lookup (no key predicted "
         "from an earlier build, e.g. every unit of an empty store)."
         if "mbx" in meta["tools"] else ""))
    for project in meta["projects"]:
        for profile in meta["profiles"]:
            rows = [r for r in results if r["project"] == project and r["profile"] == profile]
            if not rows:
                continue
            base = med([r["wall"] for r in rows if r["tool"] == "cargo" and r["scenario"] == "a"
                        and r["rc"] == 0])
            tools = [t for t in meta["tools"] if any(r["tool"] == t for r in rows)]
            w("")
            w(f"## {project}, {profile}")
            w("")
            w("| scenario | " + " | ".join(tools) + " |")
            w("|---|" + "---|" * len(tools))
            for scen in meta["scenarios"]:
                cells = []
                for t in tools:
                    rs = [r for r in rows if r["tool"] == t and r["scenario"] == scen]
                    good = [r for r in rs if r["rc"] == 0]
                    if not rs:
                        cells.append("-")
                    elif not good:
                        cells.append("FAILED")
                    else:
                        m = med([r["wall"] for r in good])
                        ratio = ratio_str(m, base)
                        cells.append(f"{m:.1f} s{ratio}, {counts_str(good)}")
                w(f"| {SCENARIO_NAMES[scen]} | " + " | ".join(cells) + " |")
            lim = [r for r in rows if r["tool"] == "limit" and r["rc"] == 0]
            if lim:
                m = med([r["wall"] for r in lim])
                ratio = ratio_str(m, base)
                detail = (f"cp -a {med([r['cp_wall'] for r in lim]):.1f} s + build "
                          f"{med([r['build_wall'] for r in lim]):.1f} s, {counts_str(lim)}")
                w(f"| {SCENARIO_NAMES['limit']} | {m:.1f} s{ratio}: {detail} |"
                  + " |" * (len(tools) - 1))
            # CPU and load
            w("")
            w("CPU seconds (median; user+sys of cargo's process tree, with mbx's cache agent "
              "in it, plus the sccache server / kache daemon) and, in brackets, CPU seconds "
              "used by other processes on the machine during the build (median):")
            w("")
            w("| scenario | " + " | ".join(tools) + " |")
            w("|---|" + "---|" * len(tools))
            for scen in meta["scenarios"] + (["limit"] if lim else []):
                cells = []
                for t in tools:
                    tt = "limit" if scen == "limit" else t
                    if scen == "limit" and t != "cargo":
                        cells.append("")
                        continue
                    good = [r for r in rows if r["tool"] == tt and r["scenario"] == scen
                            and r["rc"] == 0]
                    if not good:
                        cells.append("-")
                    else:
                        cells.append(f"{med([r['cpu'] for r in good]):.1f} "
                                     f"[{med([r['foreign_cpu'] for r in good]):.1f}]")
                w(f"| {SCENARIO_NAMES[scen]} | " + " | ".join(cells) + " |")
            # sizes
            sz = [s for s in sizes if s["project"] == project and s["profile"] == profile]
            if sz:
                w("")
                w("Sizes after the series (median over runs; du -sb): the tool's store and the "
                  "first checkout's target/ after (f) (for mbx: the managed target it links to).")
                w("")
                w("| | " + " | ".join(tools) + " |")
                w("|---|" + "---|" * len(tools))
                for what, label in (("store", "store"), ("target", "target/")):
                    cells = []
                    for t in tools:
                        v = med([s["bytes"] for s in sz if s["tool"] == t and s["what"] == what])
                        cells.append(fmt_bytes(v) if t != "cargo" or what != "store" else "-")
                    w(f"| {label} | " + " | ".join(cells) + " |")
            hs = [x for r in rows if r["tool"] == "larder" and r["scenario"] in ("e", "f")
                  for x in r.get("hit_secs", [])]
            if hs:
                w("")
                w(f"larder per-hit wrapper latency (`secs` of the hit lines of LARDER_REPORT in "
                  f"the warm builds e and f, {len(hs)} hits): median {statistics.median(hs) * 1000:.1f} ms, "
                  f"p95 {pct(hs, 95) * 1000:.1f} ms, max {max(hs) * 1000:.1f} ms.")
    loads = [r["foreign_cpu"] / r["wall"] for r in results if r["wall"] > 0]
    if loads:
        w("")
        w(f"Load from other processes during the builds: median {statistics.median(loads):.2f} "
          f"cores busy with other work (max {max(loads):.2f}) of {meta['cores']}.")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
def main():
    runs = int(os.environ.get("RUNS", "3"))
    projects = env_list("PROJECTS", ["ripgrep", "heavy"], list(PROJECTS))
    profiles = env_list("PROFILES", ["debug", "release"], ["debug", "release"])
    tools = env_list("TOOLS", ALL_TOOLS, ALL_TOOLS)
    default_scenarios = [x for x in ALL_SCENARIOS
                         if x != "r" or os.environ.get("BENCH_REMOTE")]
    scenarios = env_list("SCENARIOS", default_scenarios, ALL_SCENARIOS)
    scenarios = [s for s in ALL_SCENARIOS if s in scenarios]
    work = os.path.abspath(os.environ.get("BENCH_WORK", "/tmp/larder-bench"))
    if work in ("/", os.path.expanduser("~"), REPO) or len(work) < 5:
        die(f"refusing BENCH_WORK={work}")
    tools_root = os.environ.get("BENCH_TOOLS_ROOT", os.path.expanduser("~/.larder-bench-tools"))
    keep = os.environ.get("BENCH_KEEP") == "1"
    os.makedirs(work, exist_ok=True)
    shutil.rmtree(os.path.join(work, "runs"), ignore_errors=True)

    bins = {}
    if "larder" in tools:
        lb = os.environ.get("LARDER_BIN")
        if not lb:
            log("building larder: cargo build --release --locked -p larder")
            run_quiet(["cargo", "build", "--release", "--locked", "-p", "larder"], cwd=REPO,
                      env=dict(base_env(), CARGO_TARGET_DIR=os.path.join(REPO, "target")))
            lb = os.path.join(REPO, "target", "release", "larder")
        # A private copy: a rebuild in the repo during the bench must not swap the binary.
        os.makedirs(os.path.join(work, "bin"), exist_ok=True)
        bins["larder"] = os.path.join(work, "bin", "larder")
        shutil.copy2(lb, bins["larder"])
    for t in EXTERNAL_TOOLS:
        if t in tools:
            b = find_or_install(t, tools_root)
            if b:
                bins[t] = b
            else:
                tools.remove(t)
    versions = {"larder": tool_version(bins.get("larder")) if "larder" in bins else None}
    for t in EXTERNAL_TOOLS:
        if t in bins:
            versions[t] = tool_version(bins[t])
    versions = {k: v for k, v in versions.items() if v}
    if "larder" in bins:
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        if os.environ.get("LARDER_BIN"):
            note = os.environ.get("LARDER_BIN_NOTE") or f"LARDER_BIN={os.environ['LARDER_BIN']}"
        else:
            note = f"built from the working tree, HEAD {commit}"
        versions["larder"] += f" ({note})"

    log(f"work dir {work}; runs={runs} projects={projects} profiles={profiles} tools={tools} "
        f"scenarios={scenarios}")
    srcroot = prepare_sources(work, projects)

    def cmd_out(c):
        return subprocess.run(c, capture_output=True, text=True).stdout.strip()

    mem = 0
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // (1024 * 1024)
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.uname().sysname} {os.uname().release}, {os.cpu_count()} cores, "
                   f"{mem} GiB RAM",
        "cores": os.cpu_count(),
        "rustc": cmd_out(["rustc", "--version"]),
        "cargo": cmd_out(["cargo", "--version"]),
        "versions": versions,
        "runs": runs, "projects": projects, "profiles": profiles, "tools": tools,
        "scenarios": scenarios,
    }
    ctx = {"work": work, "srcroot": srcroot, "scenarios": scenarios, "bins": bins,
           "limit": "cargo" in tools, "keep": keep, "sizes": []}
    remote_kind = os.environ.get("BENCH_REMOTE", "")
    if remote_kind not in ("", "s3"):
        die(f"BENCH_REMOTE={remote_kind}: the one remote known is s3")
    if "r" in scenarios and not remote_kind:
        die("scenario r (fresh runner from a remote) needs BENCH_REMOTE=s3")
    if remote_kind:
        ctx["remote"] = S3Remote(work, float(os.environ.get("BENCH_REMOTE_RTT_MS", "0")))
        meta["remote"] = ctx["remote"].describe()
    results = []
    t_start = time.monotonic()

    def save():
        meta["elapsed_s"] = round(time.monotonic() - t_start)
        meta["updated"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump({"meta": meta, "results": results, "sizes": ctx["sizes"]}, f, indent=1)
        md = make_report(meta, results, ctx["sizes"])
        with open(os.path.join(work, "results.md"), "w") as f:
            f.write(md)
        return md

    failures = []
    try:
        run_all(ctx, runs, projects, profiles, tools, results, failures, save)
    finally:
        if ctx.get("remote"):
            ctx["remote"].stop()
    md = save()
    print(md)
    log(f"done in {time.monotonic() - t_start:.0f}s; results in {work}/results.md and .json")
    if failures:
        log("builds failed in: " + "; ".join(failures))
        sys.exit(1)


def run_all(ctx, runs, projects, profiles, tools, results, failures, save):
    for i in range(1, runs + 1):
        for project in projects:
            for profile in profiles:
                for t in tools:
                    log(f"=== run {i}/{runs}: {project} {profile} {t} ===")
                    rs, ok = series(ctx, i, project, profile, t)
                    results.extend(rs)
                    if not ok:
                        failures.append(f"{project} {profile} {t} run {i}")
                    save()


if __name__ == "__main__":
    main()
