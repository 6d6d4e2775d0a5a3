#!/usr/bin/env python3
"""graph2yaml.py GRAPH_JSON OUT_YAML [--tool noop|shell]: turn gen.py's graph.json into a workflow.

Every node becomes a task with `needs` on its parents. `--tool shell` makes each node run
/bin/true (the command gen.py's Makefile runs); `noop` (the default) measures kairos alone.
"""
import argparse
import json


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("graph")
    parser.add_argument("out")
    parser.add_argument("--tool", choices=["noop", "shell"], default="noop")
    args = parser.parse_args()
    with open(args.graph) as f:
        graph = json.load(f)
    lines = ["version: 1", "name: bench-%s" % graph["shape"], "policy: { preset: permissive }", "nodes:"]
    for node in graph["nodes"]:
        lines.append("  - id: %s" % node["id"])
        if node["deps"]:
            lines.append("    needs: [%s]" % ", ".join(node["deps"]))
        lines.append("    run: /bin/true" if args.tool == "shell" else "    tool: noop")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
