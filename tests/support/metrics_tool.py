"""Helpers for tests/metrics.rs, run with the test venv's Python.

parse            read a Prometheus text exposition on stdin with
                 prometheus_client's own parser; print one sample per line,
                 `name{k="v",...} value`, labels sorted
dashboard PATH   print every aserve_* metric name the Grafana dashboard's
                 queries refer to, one per line, after checking that the
                 dashboard is importable as is (a datasource input or
                 variable, panels with queries)
"""

import json
import re
import sys


def parse():
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(sys.stdin.read()):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            print(f"{sample.name}{{{labels}}} {sample.value!r}")


def exprs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                yield value
            else:
                yield from exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from exprs(item)


def dashboard(path):
    with open(path) as f:
        board = json.load(f)
    inputs = [i for i in board.get("__inputs", []) if i.get("type") == "datasource"]
    variables = [
        v for v in board.get("templating", {}).get("list", []) if v.get("type") == "datasource"
    ]
    assert inputs or variables, "no datasource input or variable: not importable as is"
    assert board.get("panels"), "no panels"
    found = list(exprs(board))
    assert found, "no queries"
    names = set()
    for expr in found:
        names.update(re.findall(r"aserve_[a-z_]+", expr))
    for name in sorted(names):
        print(name)


if __name__ == "__main__":
    if sys.argv[1] == "parse":
        parse()
    else:
        dashboard(sys.argv[2])
