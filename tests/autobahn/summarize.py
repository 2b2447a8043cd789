#!/usr/bin/env python3
"""Summarize an Autobahn|Testsuite report (index.json): one line per behaviour with case
counts, per section and in total. Exit 1 if any case FAILED or is UNIMPLEMENTED (or if
a case has no result)."""
import argparse
import collections
import json
import sys

BAD = {"FAILED", "UNIMPLEMENTED", "MISSING"}
ORDER = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "MISSING"]


def key(case_id):
    return [int(p) for p in case_id.split(".")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("index", nargs="+", help="index.json of each shard; merged")
    ap.add_argument("--elapsed", type=int)
    ap.add_argument("--cases", default="")
    ap.add_argument("--markdown")
    args = ap.parse_args()
    agent, results = None, {}
    for path in args.index:
        with open(path) as f:
            index = json.load(f)
        if len(index) != 1:
            print("expected one agent in %s" % path, file=sys.stderr)
            return 1
        agent, part = next(iter(index.items()))
        results.update(part)
    total = collections.Counter()
    close_total = collections.Counter()
    sections = collections.defaultdict(collections.Counter)
    bad = []
    for case_id in sorted(results, key=key):
        r = results[case_id]
        b = r.get("behavior", "MISSING")
        total[b] += 1
        close_total[r.get("behaviorClose", "MISSING")] += 1
        sections[case_id.split(".")[0]][b] += 1
        if b in BAD or r.get("behaviorClose") in BAD:
            bad.append("%s: %s (close: %s)" % (case_id, b, r.get("behaviorClose")))

    def line(counter):
        names = [n for n in ORDER if counter[n]] + sorted(n for n in counter if n not in ORDER)
        return ", ".join("%s %d" % (n, counter[n]) for n in names)

    lines = []
    lines.append("Autobahn|Testsuite fuzzingclient against %s: %d cases (%s)%s"
                 % (agent, sum(total.values()), args.cases,
                    "" if args.elapsed is None else ", %d s" % args.elapsed))
    for b in ORDER + sorted(n for n in total if n not in ORDER):
        if b in total or b in ("OK", "FAILED", "UNIMPLEMENTED"):
            lines.append("%-14s %d" % (b + ":", total[b]))
    lines.append("close behaviour: %s" % line(close_total))
    for s in sorted(sections, key=int):
        lines.append("section %-3s %s" % (s + ":", line(sections[s])))
    for b in bad:
        lines.append("BAD " + b)
    print("\n".join(lines))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("# Autobahn|Testsuite summary\n\n")
            f.write("Produced by `tests/autobahn/run.sh --summary tests/autobahn/summary.md` "
                    "(fuzzingclient, autobahntestsuite 0.8.2) against the `ws_echo` example.\n\n")
            f.write("```\n" + "\n".join(lines) + "\n```\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
