#!/usr/bin/env python3
"""The Docker scenario table: ripgrep 14.1.1 (release) built by `docker build` with each
way our users cache Rust builds in Docker, through five scenarios, interleaved.

    python3 bench/docker.py                      # 3 rounds of every tool (about an hour per round)
    ROUNDS=1 TOOLS=plain,larder python3 bench/docker.py

Tools (one Dockerfile each, written into the series' copy of the sources):
  plain          COPY . . and cargo build: BuildKit's layer cache only
  mounts         BuildKit cache mounts for cargo's registry, git and target/
  chef           cargo-chef's planner/cook recipe (its README's three stages)
  sccache-mount  RUSTC_WRAPPER=sccache, its local cache in a cache mount (+ registry mount)
  sccache-redis  RUSTC_WRAPPER=sccache with a Redis server (URL as a BuildKit secret)
  larder         the Dockerfile `larder docker init` writes, the same Redis as its remote
                 tier (BuildKit secret `larder_remote`)
Scenarios (each tool's series starts from an engine with no build cache, Redis emptied):
  a  first build
  b  no-change rebuild
  c  code change: one line appended to ripgrep's crates/core/main.rs
  d  dependency update: itoa 1.0.11 -> 1.0.12 in Cargo.lock (serde_json -> grep-printer)
  e  fresh runner: the engine's build cache deleted (cache mounts and layers) and dockerd
     restarted, then state d built again: only a remote helps
Wall seconds of `docker build` and machine-wide CPU seconds (/proc/stat: user, nice,
system, irq, softirq over the build, every process on the machine: run it on a quiet
machine), medians over rounds; ratios are to plain's first build of the same run. The
series of one round run in a rotated tool order so that no tool always goes first.

Needs root (or sudo) for scripts/dockerd.sh (a private dockerd, base images by
debootstrap, no registry), redis-server on PATH, and cargo-chef and sccache from
`BENCH_TOOLS_ROOT/bin` (default ~/.larder-bench-tools: `cargo install --locked
--root ~/.larder-bench-tools cargo-chef sccache`); a tool that is missing is left out.
Results: $BENCH_WORK/docker-results.{md,json} (default BENCH_WORK=/tmp/larder-bench-docker),
rewritten after every series. Not run in CI.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.environ.get("BENCH_WORK", "/tmp/larder-bench-docker")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
ALL_TOOLS = ["plain", "mounts", "chef", "sccache-mount", "sccache-redis", "larder"]
TOOLS = os.environ.get("TOOLS", ",".join(ALL_TOOLS)).split(",")
SCENARIOS = ["a", "b", "c", "d", "e"]
SCENARIO_NAMES = {
    "a": "first build",
    "b": "no-change rebuild",
    "c": "code change",
    "d": "dependency update",
    "e": "fresh runner",
}
RG_VERSION = os.environ.get("RG_VERSION", "14.1.1")
BUMP = ("itoa", "1.0.12")  # locked: 1.0.11
REDIS_PORT = 26391
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
TOOLS_ROOT = os.environ.get("BENCH_TOOLS_ROOT", os.path.expanduser("~/.larder-bench-tools"))
BUILD_SECS = 1800


def log(msg):
    print(f"bench-docker: {msg}", file=sys.stderr, flush=True)


def run(args, **kw):
    return subprocess.run(args, check=True, **kw)


def cpu_jiffies():
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in parts[:7])
    return user + nice + system + irq + softirq


TICK = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------------------------------------
# Dockerfiles


def dockerfile(tool, base, runtime):
    head = f"ARG BASE_IMAGE={base}\nARG RUNTIME_IMAGE={runtime}\n\n"
    tail = (
        "\nFROM ${RUNTIME_IMAGE}\nCOPY --from=build /rg /usr/local/bin/rg\n"
        'ENTRYPOINT ["/usr/local/bin/rg"]\n'
    )
    build = "cargo build --release --locked --bin rg && cp target/release/rg /rg"
    reg = (
        f"--mount=type=cache,id=bench-{tool}-registry,target=/root/.cargo/registry "
        f"--mount=type=cache,id=bench-{tool}-git,target=/root/.cargo/git"
    )
    if tool == "plain":
        body = f"FROM ${{BASE_IMAGE}} AS build\nWORKDIR /src\nCOPY . .\nRUN {build}\n"
    elif tool == "mounts":
        body = (
            "FROM ${BASE_IMAGE} AS build\nWORKDIR /src\n"
            f"RUN --mount=type=bind,target=/src,rw {reg} "
            f"--mount=type=cache,id=bench-{tool}-target,target=/src/target \\\n    {build}\n"
        )
    elif tool == "chef":
        body = (
            "FROM ${BASE_IMAGE} AS chef\nCOPY .bench/cargo-chef /usr/local/bin/cargo-chef\n"
            "WORKDIR /src\n\n"
            "FROM chef AS planner\nCOPY . .\nRUN cargo chef prepare --recipe-path recipe.json\n\n"
            "FROM chef AS build\nCOPY --from=planner /src/recipe.json recipe.json\n"
            "RUN cargo chef cook --release --locked --recipe-path recipe.json\n"
            f"COPY . .\nRUN {build}\n"
        )
    elif tool == "sccache-mount":
        body = (
            "FROM ${BASE_IMAGE} AS build\nCOPY .bench/sccache /usr/local/bin/sccache\n"
            "ENV RUSTC_WRAPPER=sccache SCCACHE_DIR=/sccache SCCACHE_SERVER_PORT=4327 "
            "CARGO_INCREMENTAL=0\nWORKDIR /src\n"
            f"RUN --mount=type=bind,target=/src,rw {reg} "
            f"--mount=type=cache,id=bench-{tool}-dir,target=/sccache \\\n    "
            f"{build} && sccache --show-stats\n"
        )
    elif tool == "sccache-redis":
        body = (
            "FROM ${BASE_IMAGE} AS build\nCOPY .bench/sccache /usr/local/bin/sccache\n"
            "ENV RUSTC_WRAPPER=sccache SCCACHE_SERVER_PORT=4328 CARGO_INCREMENTAL=0\n"
            "WORKDIR /src\n"
            f"RUN --mount=type=bind,target=/src,rw {reg} "
            "--mount=type=secret,id=sccache_redis \\\n    "
            'export SCCACHE_REDIS_ENDPOINT="$(cat /run/secrets/sccache_redis)" '
            f"&& {build} && sccache --show-stats\n"
        )
    else:
        raise ValueError(tool)
    return head + body + tail


# ---------------------------------------------------------------------------------------------
# Set-up


def dockerd_env():
    run([f"{REPO}/scripts/dockerd.sh", "start"])
    path = subprocess.run(
        [f"{REPO}/scripts/dockerd.sh", "env"], check=True, capture_output=True, text=True
    ).stdout.strip()
    env = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"export (\w+)=(.*)", line.strip())
            if m:
                env[m.group(1)] = m.group(2)
    return env


def fresh_engine():
    run([f"{REPO}/scripts/dockerd.sh", "fresh"], stdout=subprocess.DEVNULL)


def tool_bin(name):
    path = os.path.join(TOOLS_ROOT, "bin", name)
    return path if os.access(path, os.X_OK) else shutil.which(name)


def prepare_sources():
    src = os.path.join(WORK, "ripgrep-src")
    env = dict(os.environ, RG_VERSION=RG_VERSION)
    run([f"{REPO}/scripts/fetch-ripgrep.sh", src], env=env)
    shutil.rmtree(os.path.join(src, "target"), ignore_errors=True)
    # The bumped lockfile, made once.
    scratch = os.path.join(WORK, "bump")
    shutil.copytree(src, scratch)
    run(["cargo", "update", "-p", BUMP[0], "--precise", BUMP[1]], cwd=scratch,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bumped = os.path.join(WORK, "Cargo.lock.bumped")
    shutil.copy(os.path.join(scratch, "Cargo.lock"), bumped)
    shutil.rmtree(scratch)
    return src, bumped


# ---------------------------------------------------------------------------------------------
# One series


class Redis:
    def __init__(self):
        d = os.path.join(WORK, "redis")
        os.makedirs(d, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", d],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(100):
            if self.cli("ping") == "PONG":
                return
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(REDIS_PORT), *args],
                           capture_output=True, text=True)
        return r.stdout.strip()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def series(tool, rnd, src, bumped, larder, denv, bins):
    sdir = os.path.join(WORK, f"r{rnd}-{tool}")
    shutil.rmtree(sdir, ignore_errors=True)
    proj = os.path.join(sdir, "ripgrep")
    shutil.copytree(src, proj, symlinks=True)
    os.makedirs(os.path.join(proj, ".bench"))
    if tool == "larder":
        run([larder, "docker", "init", "--bin", "rg", "--larder-binary", larder,
             "--base", denv["LARDER_DOCKER_BUILDER"], "--runtime", denv["LARDER_DOCKER_BASE"]],
            cwd=proj, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        with open(os.path.join(proj, "Dockerfile"), "w") as f:
            f.write(dockerfile(tool, denv["LARDER_DOCKER_BUILDER"], denv["LARDER_DOCKER_BASE"]))
        with open(os.path.join(proj, ".dockerignore"), "w") as f:
            f.write("target/\n.git/\n")
        for name in {"chef": ["cargo-chef"], "sccache-mount": ["sccache"],
                     "sccache-redis": ["sccache"]}.get(tool, []):
            shutil.copy(bins[name], os.path.join(proj, ".bench", name))
    env = dict(os.environ, DOCKER_HOST=denv["DOCKER_HOST"], DOCKER_BUILDKIT="1",
               LARDER_REMOTE=REDIS_URL, SCCACHE_REDIS=REDIS_URL)
    args = [denv["LARDER_DOCKER"], "build", "--network", "host", "--progress", "plain",
            "-t", f"bench/{tool}"]
    if tool == "larder":
        args += ["--secret", "id=larder_remote,env=LARDER_REMOTE"]
    if tool == "sccache-redis":
        args += ["--secret", "id=sccache_redis,env=SCCACHE_REDIS"]
    args.append(".")

    results = {}
    fresh_engine()
    redis.cli("flushall")
    for sc in SCENARIOS:
        if sc == "c":
            with open(os.path.join(proj, "crates/core/main.rs"), "a") as f:
                f.write("\n#[used]\nstatic LARDER_BENCH_EDIT: u8 = 1;\n")
        elif sc == "d":
            shutil.copy(bumped, os.path.join(proj, "Cargo.lock"))
        elif sc == "e":
            fresh_engine()
        logf = os.path.join(sdir, f"{sc}.log")
        c0, t0 = cpu_jiffies(), time.monotonic()
        with open(logf, "w") as out:
            r = subprocess.run(args, cwd=proj, env=env, stdout=out, stderr=subprocess.STDOUT,
                               timeout=BUILD_SECS)
        wall, cpu = time.monotonic() - t0, (cpu_jiffies() - c0) / TICK
        if r.returncode != 0:
            raise RuntimeError(f"{tool} {sc} failed: see {logf}")
        text = open(logf, errors="replace").read()
        m = re.findall(r"larder: (\d+) units: (\d+) hits, (\d+) misses", text)
        note = f"{m[-1][1]}/{m[-1][0]} hits" if m else ""
        results[sc] = {"wall": round(wall, 2), "cpu": round(cpu, 2), "log": logf, "note": note}
        log(f"round {rnd} {tool:14} {sc} {SCENARIO_NAMES[sc]:18} {wall:7.1f} s wall "
            f"{cpu:7.1f} s CPU {note}")
    return results


# ---------------------------------------------------------------------------------------------
# Report


def report(all_results, meta):
    def med(tool, sc, what):
        vals = [r[sc][what] for r in all_results.get(tool, []) if sc in r]
        return statistics.median(vals) if vals else None

    base_w = med("plain", "a", "wall")
    base_c = med("plain", "a", "cpu")
    tools = [t for t in TOOLS if all_results.get(t)]
    lines = [
        f"ripgrep {RG_VERSION} release, `docker build` on dockerd {meta['engine']}, "
        f"{meta['rounds']} round(s), medians; {meta['cores']} cores, load before the run "
        f"{meta['load']}. Cells: wall seconds (ratio to plain's first build), then CPU "
        "seconds of the whole machine (ratio).",
        "",
        "| scenario | " + " | ".join(tools) + " |",
        "|---|" + "---|" * len(tools),
    ]
    for sc in SCENARIOS:
        cells = []
        for t in tools:
            w, c = med(t, sc, "wall"), med(t, sc, "cpu")
            if w is None:
                cells.append("")
                continue
            rw = f" ({w / base_w:.2f}x)" if base_w else ""
            rc = f" ({c / base_c:.2f}x)" if base_c else ""
            cells.append(f"{w:.1f} s{rw}<br>{c:.1f} CPU-s{rc}")
        lines.append(f"| {sc}: {SCENARIO_NAMES[sc]} | " + " | ".join(cells) + " |")
    md = "\n".join(lines) + "\n"
    with open(os.path.join(WORK, "docker-results.md"), "w") as f:
        f.write(md)
    with open(os.path.join(WORK, "docker-results.json"), "w") as f:
        json.dump({"meta": meta, "results": all_results}, f, indent=1)
    return md


def main():
    global redis
    for t in TOOLS:
        if t not in ALL_TOOLS:
            sys.exit(f"bench-docker: unknown tool {t!r} in TOOLS (known: {', '.join(ALL_TOOLS)})")
    if WORK in ("", "/", os.path.expanduser("~"), REPO):
        sys.exit(f"bench-docker: refusing BENCH_WORK={WORK}")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    larder_src = os.environ.get("LARDER_BIN")
    if not larder_src:
        run(["cargo", "build", "--release", "--locked", "-p", "larder"], cwd=REPO)
        larder_src = os.path.join(REPO, "target/release/larder")
    larder = os.path.join(WORK, "larder")
    if subprocess.run(["objcopy", "--strip-debug", larder_src, larder]).returncode != 0:
        shutil.copy(larder_src, larder)
    bins = {n: tool_bin(n) for n in ["cargo-chef", "sccache"]}
    tools = []
    for t in TOOLS:
        need = {"chef": "cargo-chef", "sccache-mount": "sccache", "sccache-redis": "sccache"}
        if t in need and not bins[need[t]]:
            log(f"{need[t]} not found in {TOOLS_ROOT}/bin or PATH: leaving {t} out")
            continue
        tools.append(t)
    denv = dockerd_env()
    src, bumped = prepare_sources()
    engine = subprocess.run([denv["LARDER_DOCKER"], "version", "-f", "{{.Server.Version}}"],
                            env=dict(os.environ, DOCKER_HOST=denv["DOCKER_HOST"]),
                            capture_output=True, text=True).stdout.strip()
    meta = {"engine": engine, "rounds": ROUNDS, "cores": os.cpu_count(),
            "load": open("/proc/loadavg").read().split()[0], "tools": tools,
            "bins": {k: v for k, v in bins.items() if v}}
    redis = Redis()
    all_results = {}
    try:
        for rnd in range(1, ROUNDS + 1):
            k = (rnd - 1) % len(tools)
            for tool in tools[k:] + tools[:k]:
                all_results.setdefault(tool, []).append(
                    series(tool, rnd, src, bumped, larder, denv, bins))
                report(all_results, meta)
    finally:
        redis.stop()
    print(report(all_results, meta))


redis = None

if __name__ == "__main__":
    main()
