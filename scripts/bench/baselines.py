"""Baselines for scripts/bench-similarity: numpy, simsimd (f32 and i8), faiss-cpu, usearch.

Each runs on the same vectors.npy / queries.npy the Rust side generated, per thread count,
and writes baselines-<threads>.json with timings, top-10 rows and the BLAS kernels in use.
"""
import argparse, json, os, time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

K = 10


def stats(samples):
    s = np.sort(np.asarray(samples))
    pick = lambda p: float(s[int(round((len(s) - 1) * p))]) * 1e3
    return {"median_ms": pick(0.5), "p99_ms": pick(0.99), "min_ms": pick(0.0), "samples": len(s)}


def timed(fn, queries, n):
    for q in queries[:2]:
        fn(q)
    lat, tops = [], []
    for i in range(n):
        t = time.perf_counter()
        rows = fn(queries[i % len(queries)])
        lat.append(time.perf_counter() - t)
        tops.append([int(r) for r in rows])
    return stats(lat), tops


def batch_qps(fn, batch, reps):
    fn(batch)
    t = time.perf_counter()
    for _ in range(reps):
        fn(batch)
    return 32 * reps / (time.perf_counter() - t)


def topk_desc(scores, k=K):
    idx = np.argpartition(-scores, k)[:k]
    return idx[np.lexsort((idx, -scores[idx]))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir")
    ap.add_argument("--out")
    ap.add_argument("--threads")
    a = ap.parse_args()
    M = np.load(os.path.join(a.dir, "vectors.npy"), mmap_mode=None)
    Q = np.load(os.path.join(a.dir, "queries.npy"))
    batch = Q[:32]
    import simsimd, faiss, usearch
    from usearch.index import search as usearch_search, MetricKind

    # int8 copy for simsimd i8: per-row symmetric quantisation, cosine on int8.
    scale = 127.0 / np.abs(M).max(axis=1, keepdims=True)
    M8 = np.clip(np.rint(M * scale), -127, 127).astype(np.int8)
    index = faiss.IndexFlatIP(M.shape[1])
    index.add(M)
    default_threshold = faiss.cvar.distance_compute_blas_threshold

    for t in [int(x) for x in a.threads.split()]:
        res = {"threads": t}
        with threadpool_limits(limits=t):
            faiss.omp_set_num_threads(t)
            res["numpy"] = {}
            res["numpy"]["single"], res["numpy"]["top"] = timed(lambda q: topk_desc(M @ q), Q, 40)
            res["numpy"]["batch32_qps"] = batch_qps(
                lambda B: [topk_desc(row) for row in (B @ M.T)], batch, 4)

            def ss(q):
                d = np.asarray(simsimd.cdist(q[None, :], M, metric="dot", threads=t)).ravel()
                return topk_desc(d)
            res["simsimd"] = {}
            res["simsimd"]["single"], res["simsimd"]["top"] = timed(ss, Q, 40)
            res["simsimd"]["batch32_qps"] = batch_qps(
                lambda B: [topk_desc(r) for r in np.asarray(simsimd.cdist(B, M, metric="dot", threads=t))], batch, 4)

            def ss8(q):
                q8 = np.clip(np.rint(q * 127.0 / np.abs(q).max()), -127, 127).astype(np.int8)
                d = np.asarray(simsimd.cdist(q8[None, :], M8, metric="cosine", threads=t)).ravel()
                return topk_desc(-d)
            res["simsimd_i8"] = {}
            res["simsimd_i8"]["single"], res["simsimd_i8"]["top"] = timed(ss8, Q, 100)

            def fs(q):
                _, I = index.search(q[None, :], K)
                return I[0]
            faiss.cvar.distance_compute_blas_threshold = default_threshold
            res["faiss"] = {}
            res["faiss"]["single"], res["faiss"]["top"] = timed(fs, Q, 40)
            faiss.cvar.distance_compute_blas_threshold = 1
            res["faiss"]["single_blas"], _ = timed(fs, Q, 40)
            res["faiss"]["batch32_qps"] = batch_qps(lambda B: index.search(B, K), batch, 4)
            faiss.cvar.distance_compute_blas_threshold = default_threshold

            def us(q):
                m = usearch_search(M, q, K, MetricKind.IP, exact=True, threads=t)
                return m.keys
            res["usearch"] = {}
            res["usearch"]["single"], res["usearch"]["top"] = timed(us, Q, 40)
            res["usearch"]["batch32_qps"] = batch_qps(
                lambda B: usearch_search(M, B, K, MetricKind.IP, exact=True, threads=t), batch, 4)
            res["blas"] = [
                {k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "filepath")}
                for i in threadpool_info()
            ]
        res["env"] = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        res["faiss_default_blas_threshold"] = int(default_threshold)
        res["versions"] = {"numpy": np.__version__, "simsimd": simsimd.__version__,
                           "faiss": faiss.__version__, "usearch": usearch.__version__}
        with open(os.path.join(a.out, f"baselines-{t}.json"), "w") as f:
            json.dump(res, f)


if __name__ == "__main__":
    main()
