#!/usr/bin/env python3
"""Prints the median over repetitions of each benchmark in Google Benchmark JSON files (used by scripts/bench).

usage: bench_table.py [--merge OUT] FILE.json...
Exits 1 if any benchmark reported an error.
"""
import json
import statistics
import sys

KNOWN = {"name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
         "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit",
         "items_per_second", "bytes_per_second", "label", "error_occurred", "error_message",
         "aggregate_name", "aggregate_unit"}
TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_num(v):
    if v is None:
        return "-"
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.3g}"


def fmt_mib(v):
    v = v or 0.0
    return f"{v * 1024:.0f} KiB" if abs(v) < 1 else f"{v:.3g} MiB"


def admission_summary(runs, medians):
    """Issue 3's admission targets, read off the BM_admission_* cases."""
    lines = []

    def case(prefix, suffix=""):
        name = next((n for n in medians if n.startswith(prefix) and n.endswith(suffix)), None)
        return (name, medians[name]) if name else (None, None)

    _, one = case("BM_admission_acquire_release", "threads:1")
    if one:
        verdict = "met" if one["time_ns"] <= 50 else "NOT met"
        line = f"admission: acquire+release, uncontended = {fmt_time(one['time_ns'])} (target <= 50 ns: {verdict})"
        _, two = case("BM_admission_acquire_release", "threads:2")
        if two:
            line += f"; 2 threads, one controller = {fmt_time(two['time_ns'])}"
        lines.append(line)
    _, refuse = case("BM_admission_refuse")
    if refuse:
        lines.append(f"admission: one refusal (reason formatted) = {fmt_time(refuse['time_ns'])}")
    name, over = case("BM_admission_overload/")
    if over:
        c = over["counters"]
        # Per-iteration averages: equal up to float rounding when every offer was accepted or rejected.
        adds_up = all(abs(r.get("accepted", 0) + r.get("rejected", 0) - r.get("offered", -1)) < 1e-6 * r.get("offered", 1)
                      for r in runs[name])
        lines.append(
            f"admission: overload at {c.get('offered_x', 0):.2f}x capacity: offered {fmt_num(c.get('offered'))} = "
            f"accepted {fmt_num(c.get('accepted'))} + rejected {fmt_num(c.get('rejected'))} "
            f"({'adds up in every run' if adds_up else 'DOES NOT ADD UP'}); peak queue {fmt_num(c.get('peak_queued'))}, "
            f"peak load {fmt_num(c.get('peak_load'))}; RSS +{fmt_mib(c.get('rss_growth_mib'))}; accepted p99 "
            f"queue wait {fmt_time(c.get('p99_wait_us', 0) * 1e3)}; utilization {c.get('utilization', 0):.2f}")
    _, base = case("BM_admission_overload_no_admission")
    if base:
        c = base["counters"]
        lines.append(
            f"admission: same offered load, no admission control: peak queue {fmt_num(c.get('peak_queued'))}; "
            f"RSS +{fmt_mib(c.get('rss_growth_mib'))}; p99 queue wait {fmt_time(c.get('p99_wait_us', 0) * 1e3)}; "
            f"utilization {c.get('utilization', 0):.2f}")
    return lines


def main(argv):
    merge_out = None
    if argv[:1] == ["--merge"]:
        merge_out, argv = argv[1], argv[2:]
    docs = [json.load(open(path)) for path in argv]
    if merge_out:
        merged = dict(docs[0])
        merged["benchmarks"] = [b for d in docs for b in d.get("benchmarks", [])]
        json.dump(merged, open(merge_out, "w"), indent=2)
        return 0

    runs, order, errors = {}, [], []
    for doc in docs:
        for b in doc.get("benchmarks", []):
            name = b.get("run_name", b["name"])
            if b.get("error_occurred"):
                errors.append(f"{name}: {b.get('error_message', '')}")
                continue
            if b.get("run_type") == "aggregate":
                continue
            if name not in runs:
                runs[name] = []
                order.append(name)
            runs[name].append(b)

    # Registration order (the JSON lists repetitions in random-interleaving order).
    order.sort(key=lambda n: (runs[n][0].get("family_index", 0), runs[n][0].get("per_family_instance_index", 0)))
    rows, medians = [], {}
    for name in order:
        reps = runs[name]
        med = lambda key: statistics.median(r[key] for r in reps) if all(key in r for r in reps) else None
        counters = sorted({k for r in reps for k, v in r.items() if k not in KNOWN and isinstance(v, (int, float))})
        m = {"time_ns": statistics.median(r["real_time"] * TO_NS[r.get("time_unit", "ns")] for r in reps),
             "items": med("items_per_second"), "counters": {c: med(c) for c in counters}}
        medians[name] = m
        extra = "  ".join(f"{c}={fmt_num(v)}" for c, v in m["counters"].items())
        rows.append((name, str(len(reps)), fmt_time(m["time_ns"]), fmt_num(m["items"]), extra))

    header = ("benchmark (median)", "reps", "real time", "items/s", "counters")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    line = lambda r: "  ".join(r[i].ljust(widths[i]) if i == 0 else r[i].rjust(widths[i]) for i in range(4)) + \
        ("  " + r[4] if r[4] else "")
    print(line(header))
    print("-" * min(110, sum(widths) + 8 + max([len("counters")] + [len(r[4]) for r in rows])))
    for r in rows:
        print(line(r))

    def find(prefix):
        return next((m for n, m in medians.items() if n.startswith(prefix)), None)

    ratios = []
    th, mp, tg = find("BM_empty_taskhive"), find("BM_empty_mutex_pool"), find("BM_empty_tbb_task_group")
    if th and th["items"]:
        if mp and mp["items"]:
            ratios.append(f"empty: taskhive / mutex pool      = {th['items'] / mp['items']:.2f}x items/s")
        if tg and tg["items"]:
            ratios.append(f"empty: taskhive / tbb task_group  = {th['items'] / tg['items']:.2f}x items/s")
        nv = find("BM_empty_naive_enqueue_per_task")
        if nv and nv["items"]:
            ratios.append(f"empty: taskhive / naive enqueue   = {th['items'] / nv['items']:.2f}x items/s"
                          "  (one arena job per task, the design not taken)")
    for who in ("taskhive", "tbb_task_group", "mutex_pool", "taskhive_one_worker", "taskhive_prefilled",
                "shared_heap_floor"):
        m = find(f"BM_10us_{who}/")  # the slash: BM_10us_taskhive is a prefix of BM_10us_taskhive_prefilled
        if m and m["counters"].get("efficiency") is not None:
            note = {"taskhive_one_worker": "  (1 worker: the submitting thread has the other core)",
                    "taskhive_prefilled": "  (queue filled before the workers start: no submitter)",
                    "shared_heap_floor": "  (no scheduler: 2 threads pop one prefilled tbb::concurrent_priority_queue)"}
            ratios.append(f"10us:  efficiency {who:<19} = {m['counters']['efficiency']:.3f}{note.get(who, '')}")
    ratios += admission_summary(runs, medians)
    handoffs = [r["handoff_ns"] for n, rs in runs.items() if n.startswith("BM_machine_cross_core_handoff")
                for r in rs if "handoff_ns" in r]
    if handoffs:
        ratios.append(f"machine: cross-core cache-line handoff {statistics.median(handoffs):.0f} ns median, "
                      f"{min(handoffs):.0f}-{max(handoffs):.0f} ns over {len(handoffs)} reps "
                      "(this VM: ~45 ns usually, ~200 ns in slow spells, when contention-heavy figures drop)")
    if ratios:
        print()
        print("\n".join(ratios))
    if errors:
        print()
        print("ERRORS:\n  " + "\n  ".join(errors))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
