#!/usr/bin/env python3
"""Finds import cycles between the modules of each workspace crate (ARCHITECTURE.md: no cycles).

A module is a top-level module of the crate: a file under src/, or a directory with everything
in it (`proxy/` is one module). An edge a -> b is any `crate::b` path or `use crate::{b, ...}` item in a's code
(comments and `#[cfg(test)] mod tests` are ignored); a child depending on its parent (or the
reverse) is not an edge. Prints each cycle (strongly connected component) and exits 1 if any.

    python3 tests/tools/module_cycles.py        # from the repository root
"""
import os
import re
import sys

CRATES = ["core", "protocol", "store", "server", "cli", "testkit"]


def module_of(root, path):
    parts = os.path.relpath(path, root)[:-3].split("/")
    if parts[-1] == "mod":
        parts = parts[:-1]
    if parts in (["lib"], ["main"]):
        return None
    return parts[0]


def graph(crate):
    root = f"crates/{crate}/src"
    mods = set()
    g = {}
    for dp, _, fs in os.walk(root):
        for f in fs:
            if not f.endswith(".rs"):
                continue
            p = os.path.join(dp, f)
            key = module_of(root, p)
            if key is None:
                continue
            mods.add(key)
            src = open(p, encoding="utf-8").read()
            src = re.sub(r"(?m)^\s*//.*$", "", src)
            src = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", src, flags=re.S)
            deps = set()
            for m in re.finditer(r"crate::([a-z_][a-z0-9_]*)", src):
                deps.add(m.group(1))
            for m in re.finditer(r"use crate::\{([^}]*)\}", src):
                for item in m.group(1).split(","):
                    head = item.strip().split("::")
                    if re.fullmatch(r"[a-z_][a-z0-9_]*", head[0]) and head[0] != "self":
                        deps.add(head[0])
            g.setdefault(key, set()).update(deps)
    for k in g:
        g[k] = {d for d in g[k] if d in mods and d != k}
    return g


def cycles(g):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(g):
        if v not in index:
            visit(v)
    return out


def main():
    found = False
    for crate in CRATES:
        for c in cycles(graph(crate)):
            found = True
            print(f"tollgate-{crate}: import cycle between {', '.join(c)}")
    if not found:
        print("no import cycles between modules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
