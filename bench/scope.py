"""Scope benchmark: lockfile and workflow scanning, side by side with plain parsing.

Generates N repository checkouts (default 200; the issue's full set is
``--n 1000``) in a temp dir, each with a lockfile of P packages (default 2,000;
npm package-lock v3 and pnpm-lock v9 alternate, pnpm with peer suffixes) and
one workflow file, and an advisory that hits one transitive package in every
lockfile. Then, on one core:

read             read every lockfile's bytes (the floor)
json.loads       read + ``json.loads`` of the package-lock files: the plain
                 baseline scope's npm parser is compared with
yaml (C)         read + ``yaml.load(CSafeLoader)`` of (up to 20 of) the pnpm files:
                 what a general YAML parser costs on them
scope npm        read + ``npm_lock.parse`` + matching, with the hit's line and path
scope pnpm       read + ``pnpm_lock.parse`` + matching, with the hit's line and path
scope.scope      the whole scoping of the N checkouts (lockfiles, workflows,
                 classification, catalog mapping) as ``keyturn scope`` runs it

MB/s counts lockfile bytes per second of the process's CPU time (one core; the
wall time is printed too, and is longer when other work shares the machine);
"x baseline" is scope's MB/s over the baseline's on the same kind of file
(json.loads for npm, libyaml for pnpm, both for the whole).
A linearity check parses single lockfiles of P/4 to 4P packages and prints
the time per MB, which stays flat when parsing is linear in input size.

    .venv/bin/python bench/scope.py [--n 200] [--packages 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from figures import print_table

from keyturn.scope import npm_lock, pnpm_lock, scan
from keyturn.scope.advisory import from_command_line
from keyturn.scope.inventory import Inventory

WORKFLOW = """name: ci
on: [push, pull_request]
jobs:
  test:
    runs-on: ubuntu-latest
    environment: staging
    steps:
      - uses: actions/checkout@v4
      - run: {tool} install
      - run: {tool} test
        env:
          NPM_TOKEN: ${{{{ secrets.NPM_TOKEN }}}}
          DEPLOY_KEY: ${{{{ secrets['DEPLOY_KEY'] }}}}
"""
HIT = "@bench/evil"


def names(rng: random.Random, count: int) -> list[tuple[str, str]]:
    """`count` distinct (name, version) pairs, some scoped."""
    found = []
    for i in range(count):
        base = f"pkg-{i}-{rng.randrange(10**6):06d}"
        name = f"@scope{i % 50}/{base}" if i % 5 == 0 else base
        found.append((name, f"{rng.randrange(20)}.{rng.randrange(20)}.{rng.randrange(20)}"))
    return found


def fan_out(i: int, count: int) -> list[int]:
    """0 to 4 dependencies of package i, on later packages (a DAG, like a real tree);
    the last package (the advisory's) is reached from package 0 through a chain."""
    found = [j for j in (i + 1 + (i * k * 7919) % 97 for k in range(1, 1 + i % 5)) if j < count - 1]
    if i % 400 == 0 or i == count - 2:
        found.append(count - 1 if i == count - 2 else min(i + 400, count - 2))
    return sorted(set(found))


def package_lock(rng: random.Random, count: int) -> str:
    packages = names(rng, count - 1) + [(HIT, "1.0.0")]
    entries: dict[str, dict] = {"": {"name": "app", "version": "1.0.0", "dependencies": {
        name: f"^{version}" for name, version in packages[:20]}}}
    for i, (name, version) in enumerate(packages):
        deps = {packages[j][0]: f"^{packages[j][1]}" for j in fan_out(i, len(packages))}
        entry = {"version": version,
                 "resolved": f"https://registry.npmjs.org/{name}/-/x-{version}.tgz",
                 "integrity": "sha512-" + "A" * 86 + "==", "license": "MIT"}
        if deps:
            entry["dependencies"] = deps
        entries[f"node_modules/{name}"] = entry
    return json.dumps({"name": "app", "version": "1.0.0", "lockfileVersion": 3,
                       "requires": True, "packages": entries}, indent=2) + "\n"


def quoted(key: str) -> str:
    """As pnpm writes a key: quoted when it starts with '@' (a YAML indicator)."""
    return f"'{key}'" if key.startswith("@") else key


def pnpm_lock_text(rng: random.Random, count: int) -> str:
    packages = names(rng, count - 1) + [(HIT, "1.0.0")]
    lines = ["lockfileVersion: '9.0'", "", "settings:", "  autoInstallPeers: true",
             "  excludeLinksFromLockfile: false", "", "importers:", "", "  .:",
             "    dependencies:"]
    for name, version in packages[:20]:
        lines += [f"      {quoted(name)}:", f"        specifier: ^{version}",
                  f"        version: {version}(react@18.2.0)"]
    lines += ["", "packages:", ""]
    for name, version in packages:
        lines += [f"  {quoted(name + '@' + version)}:",
                  "    resolution: {integrity: sha512-" + "A" * 86 + "==}",
                  "    engines: {node: '>=14'}", ""]
    lines += ["snapshots:", ""]
    for i, (name, version) in enumerate(packages):
        deps = [packages[j] for j in fan_out(i, len(packages))]
        key = quoted(f"{name}@{version}(react@18.2.0)")
        lines.append(f"  {key}:" if deps else f"  {key}: {{}}")
        if deps:
            lines.append("    dependencies:")
            lines += [f"      {quoted(d)}: {v}(react@18.2.0)" for d, v in deps]
        lines.append("")
    return "\n".join(lines)


def generate(root: Path, n: int, count: int) -> tuple[list[Path], list[Path]]:
    rng = random.Random(8)
    npm_files, pnpm_files = [], []
    for i in range(n):
        checkout = root / f"repo{i}"
        (checkout / ".github" / "workflows").mkdir(parents=True)
        if i % 2 == 0:
            path = checkout / "package-lock.json"
            path.write_text(package_lock(rng, count))
            npm_files.append(path)
        else:
            path = checkout / "pnpm-lock.yaml"
            path.write_text(pnpm_lock_text(rng, count))
            pnpm_files.append(path)
        tool = "npm" if i % 2 == 0 else "pnpm"
        (checkout / ".github" / "workflows" / "ci.yml").write_text(WORKFLOW.format(tool=tool))
    return npm_files, pnpm_files


def timed(files: list[Path], work: Callable[[str, str], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) to run `work` on every file."""
    wall, cpu = time.perf_counter(), time.process_time()
    for path in files:
        work(path.read_text(), str(path))
    return time.perf_counter() - wall, time.process_time() - cpu


def scope_file(parser: Callable[[str, str], Inventory]) -> Callable[[str, str], object]:
    """Parse, find the advisory's package, and work out its line and dependency path."""
    advisory = from_command_line(f"npm:{HIT}", ["1.0.0"], None)

    def work(text: str, file: str) -> object:
        inventory = parser(text, file)
        hits = [(inventory.line(node), inventory.path(node))
                for node in scan.matches(advisory, inventory)]
        assert len(hits) == 1, file
        return hits
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="checkouts (default 200)")
    parser.add_argument("--packages", type=int, default=2000, help="per lockfile (default 2000)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="keyturn-bench-scope-"))
    try:
        started = time.perf_counter()
        npm_files, pnpm_files = generate(root, args.n, args.packages)
        npm_mb = sum(p.stat().st_size for p in npm_files) / 1e6
        pnpm_mb = sum(p.stat().st_size for p in pnpm_files) / 1e6
        print(f"{args.n} checkouts, {args.packages} packages a lockfile: {npm_mb:.0f} MB npm, "
              f"{pnpm_mb:.0f} MB pnpm, {args.n} workflows (generated in "
              f"{time.perf_counter() - started:.1f} s)\n")
        rows: list[list[str]] = []

        def row(name: str, times: tuple[float, float], mb: float,
                base: float | None = None) -> float:
            wall, cpu = times
            rate = mb / cpu
            rows.append([name, f"{wall:.2f} s", f"{cpu:.2f} s", f"{rate:.0f} MB/s",
                         f"{rate / base:.2f}" if base else ""])
            return rate

        row("read (all lockfiles)", timed(npm_files + pnpm_files, lambda text, file: text),
            npm_mb + pnpm_mb)
        json_rate = row("json.loads (npm)", timed(npm_files, lambda text, file: json.loads(text)),
                        npm_mb)
        row("scope npm (parse, match, line, path)", timed(npm_files, scope_file(npm_lock.parse)),
            npm_mb, json_rate)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        sample = pnpm_files[:20]
        sample_mb = sum(p.stat().st_size for p in sample) / 1e6
        yaml_rate = row(f"yaml (C) load (pnpm, {len(sample)} files)",
                        timed(sample, lambda text, file: yaml.load(text, Loader=loader)),
                        sample_mb)
        row("scope pnpm (parse, match, line, path)",
            timed(pnpm_files, scope_file(pnpm_lock.parse)), pnpm_mb, yaml_rate)
        repos = sorted(root.iterdir())
        inputs = scan.Inputs(from_command_line(f"npm:{HIT}", ["1.0.0"], None),
                             repos=[(repo, f"bench/{repo.name}") for repo in repos])
        wall, cpu = time.perf_counter(), time.process_time()
        report = scan.scope(inputs)
        whole = time.perf_counter() - wall, time.process_time() - cpu
        assert len(report.affected) == args.n
        mixed = (npm_mb + pnpm_mb) / (npm_mb / json_rate + pnpm_mb / yaml_rate)
        row(f"scope.scope, {args.n} checkouts + workflows", whole, npm_mb + pnpm_mb, mixed)
        print_table(["step", "wall", "CPU", "lockfile MB/s (CPU)", "x baseline"], rows)
        print("\nlinearity: one lockfile, CPU time per MB")
        lin: list[list[str]] = []
        rng = random.Random(9)
        for scale in (args.packages // 4, args.packages, args.packages * 4):
            for kind, make, parse in (("npm", package_lock, npm_lock.parse),
                                      ("pnpm", pnpm_lock_text, pnpm_lock.parse)):
                text = make(rng, scale)
                work = scope_file(parse)
                start = time.process_time()
                for _ in range(3):
                    work(text, kind)
                seconds = (time.process_time() - start) / 3
                mb = len(text.encode()) / 1e6
                lin.append([f"{kind} {scale} packages", f"{mb:.2f} MB", f"{seconds * 1000:.0f} ms",
                            f"{seconds / mb * 1000:.1f} ms/MB"])
        print_table(["lockfile", "size", "time", "per MB"], lin)
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
