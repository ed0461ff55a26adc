"""Prints the scripts/bench-similarity table from the JSON files in --out; --json writes all
figures plus `targets: {name: {measured, goal, met}}`."""
import argparse, json, os, statistics


def load(out, name):
    """One figure file, or, when --out holds round-1/, round-2/, ... (scripts/bench-similarity
    --rounds R), the median over rounds of every number in it (lists, e.g. result rows, and
    strings are taken from the first round)."""
    rounds = round_dirs(out)
    if not rounds:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    trees = []
    for r in rounds:
        with open(os.path.join(out, r, name)) as f:
            trees.append(json.load(f))
    return median_tree(trees)


def round_dirs(out):
    return sorted(d for d in os.listdir(out) if d.startswith("round-"))


def median_tree(trees):
    first = trees[0]
    if isinstance(first, dict):
        return {k: median_tree([t[k] for t in trees if isinstance(t, dict) and k in t])
                for k in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        values = sorted(t for t in trees if isinstance(t, (int, float)))
        return statistics.median(values)
    return first


def recall(got, want):
    hit = sum(len(set(g) & set(w)) for g, w in zip(got, want))
    return hit / max(1, sum(len(w) for w in want))


def identical(a, b):
    n = min(len(a), len(b))
    return sum(a[i] == b[i] for i in range(n)), n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--threads")
    ap.add_argument("--json")
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split()]
    figures, targets, lines = {}, {}, []
    rounds = len(round_dirs(a.out))
    if rounds:
        lines.append(f"every figure: the median of {rounds} rounds (ours, then the baselines, per round)")
    for t in threads:
        f32, i8, base, bw = (load(a.out, f"ours-f32-{t}.json"), load(a.out, f"ours-int8-{t}.json"),
                             load(a.out, f"baselines-{t}.json"), load(a.out, f"membw-{t}.json"))
        figures[t] = {"ours_f32": f32, "ours_int8": i8, "baselines": base, "membw": bw}
        exact = f32["top"]
        same, n = identical(exact, base["numpy"]["top"])
        figures[t]["exact_identical_to_numpy"] = f"{same}/{n}"
        for name in ("simsimd", "faiss", "usearch"):
            s, m = identical(exact, base[name]["top"])
            figures[t][f"exact_identical_to_{name}"] = f"{s}/{m}"
        r8 = recall(i8["top"], exact)
        r8s = recall(base["simsimd_i8"]["top"], base["numpy"]["top"])
        gb = f32["n"] * f32["dim"] * 4 / 1e9
        ours_single = f32["single"]["median_ms"]
        singles = {k: base[k]["single"]["median_ms"] for k in ("numpy", "simsimd", "faiss", "usearch")}
        singles["faiss"] = min(singles["faiss"], base["faiss"]["single_blas"]["median_ms"])
        best = min(singles, key=singles.get)
        blas_batch = max(base["faiss"]["batch32_qps"], base["numpy"]["batch32_qps"])
        single_qps = 1000 / ours_single
        lines.append(f"\n== {t} thread(s)   memory read bandwidth {bw['gbps']:.1f} GB/s   kernels {f32['levels']}")
        lines.append(f"{'engine':<22}{'single med ms':>14}{'p99 ms':>9}{'GB/s':>7}{'% bw':>6}{'batch32 q/s':>13}{'recall@10':>10}")
        def row(name, single, batch, rec, bytes_gb):
            gbps = bytes_gb / (single["median_ms"] / 1e3)
            lines.append(f"{name:<22}{single['median_ms']:>14.2f}{single['p99_ms']:>9.2f}{gbps:>7.1f}"
                         f"{100 * gbps / bw['gbps']:>6.0f}{batch if isinstance(batch, str) else f'{batch:.0f}':>13}{rec:>10}")
        row("ours f32", f32["single"], f32["batch32_qps"], "1.000", gb)
        row("ours int8+rescore", i8["single"], i8["batch32_qps"], f"{r8:.3f}", gb / 4)
        for k in ("numpy", "simsimd", "faiss", "usearch"):
            row(k, base[k]["single"], base[k].get("batch32_qps", float("nan")), "1.000", gb)
        row("faiss (blas path)", base["faiss"]["single_blas"], "-", "1.000", gb)
        row("simsimd i8", base["simsimd_i8"]["single"], "-", f"{r8s:.3f}", gb / 4)
        c32, c8 = f32["concurrent32"], i8["concurrent32"]
        lines.append(f"32 concurrent clients (coalescing): f32 {c32['qps']:.0f} q/s p99 {c32['latency']['p99_ms']:.0f} ms"
                     f" (mean batch {c32['mean_batch']:.1f}); int8 {c8['qps']:.0f} q/s p99 {c8['latency']['p99_ms']:.0f} ms")
        lines.append(f"load {f32['load_s']:.2f} s (file read {f32['read_file_s']:.2f} s, ratio {f32['load_s'] / f32['read_file_s']:.2f});"
                     f" RSS after load f32 {f32['rss_after_load'] / 1e6:.0f} MB = {f32['rss_after_load'] / f32['f32_matrix_raw_bytes']:.3f}x matrix;"
                     f" int8 {i8['rss_after_load'] / 1e6:.0f} MB = {i8['rss_after_load'] / f32['f32_matrix_raw_bytes']:.3f}x;"
                     f" on huge pages f32 {f32.get('anon_huge_pages_after_load', 0) / 1e6:.0f} MB")
        lines.append(f"exact top-10 identical to numpy: {same}/{n} queries; BLAS: "
                     + "; ".join(f"{b['internal_api']} {b['version']} {b['architecture']}" for b in base["blas"]))
        def target(name, measured, goal, ge=True):
            targets[f"{name}_t{t}"] = {"measured": round(measured, 3), "goal": goal,
                                       "met": bool(measured >= goal if ge else measured <= goal)}
        target("single_f32_vs_fastest_baseline", singles[best] / ours_single, 1.0)
        target("batch32_f32_vs_blas", f32["batch32_qps"] / blas_batch, 1.0)
        target("batch32_f32_vs_own_single", f32["batch32_qps"] / single_qps, 4.0)
        target("concurrent32_f32_vs_blas", c32["qps"] / blas_batch, 1.0)
        target("concurrent32_f32_vs_own_single", c32["qps"] / single_qps, 4.0)
        target("int8_single_vs_simsimd_i8", base["simsimd_i8"]["single"]["median_ms"] / i8["single"]["median_ms"], 1.0)
        target("int8_recall_at_10", r8, 0.99)
        target("int8_batch_vs_f32_batch", i8["batch32_qps"] / f32["batch32_qps"], 2.0)
        target("int8_concurrent_vs_f32_concurrent", c8["qps"] / c32["qps"], 2.0)
        target("load_vs_file_read", f32["load_s"] / f32["read_file_s"], 2.0, ge=False)
        target("rss_vs_f32_matrix", f32["rss_after_load"] / f32["f32_matrix_raw_bytes"], 1.15, ge=False)
    lines.append("\ntargets:")
    for k, v in targets.items():
        lines.append(f"  {'MET ' if v['met'] else 'MISS'} {k}: {v['measured']} (goal {'>=' if 'load' not in k and 'rss' not in k else '<='} {v['goal']})")
    print("\n".join(lines))
    if a.json:
        for t in figures:
            for k in ("ours_f32", "ours_int8"):
                figures[t][k].pop("top", None)
            for k, v in figures[t]["baselines"].items():
                if isinstance(v, dict):
                    v.pop("top", None)
        with open(a.json, "w") as f:
            json.dump({"rounds": max(1, rounds), "figures": figures, "targets": targets}, f, indent=1)


if __name__ == "__main__":
    main()
