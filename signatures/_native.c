/* Compiled twins of signatures.minhash.MinHasher.signature (datasketch's affine32 scheme) and of
 * signatures.shingles.shingle_hashes: identical values (tests/test_speedups.py).
 *
 *   signature(hashes32, a, b, out) -> None
 *   nested_signatures(hashes32, owner, parent, a, b, out) -> None   (MinHasher.nested_signatures)
 *   shingle_hashes(tokens, k) -> bytearray of uint64 (one per window of k tokens)
 *   segment_unique(values, ends) -> (bytearray of uint64, bytearray of int64)   (shingles.segment_unique)
 *   range_sets(tokens, starts, ends, k) -> (bytearray of uint64, bytearray of int64 sizes)   (shingles.range_sets)
 *   RangeSets(tokens, starts, ends, k).intersections(ids, *queries) -> tuple of int64 bytearrays   (shingles.RangeSets)
 *   verify_groups(abstract_sets, concrete_sets, member_reps, member_fids, reps, q_abstract, q_informative,
 *                 q_concrete, min_similarity, min_shared, boilerplate_min_concrete, config)
 *       -> None or (float64 similarities, float64 concrete similarities, int64 fragment ids)   (scanner.match._verify_groups)
 *   rank_copies(sims, csims, fids, noted, path_rank, start) -> bytearray of intp   (scanner.match._ranked, one reference)
 *   band_query(keys, ids, qkeys, bands, id_bound) -> (bytearray of int64 rows, of int64 ids)   (lsh.BandTable.query)
 *   agreement(ref, ref_rows, query, q_rows, width) -> bytearray of int16   (lsh.agreement)
 *   filter_candidates(rows, fids, levels, q_levels, sig_row, ref, query, width, need) -> (int64, int64)   (lsh.filter_candidates)
 *   aligned_runs(s_seq, r_seq) -> list of (i, j, n)   (shingles.aligned_runs)
 *   aligned_blocks(s_tokens, s_lines, r_tokens, r_lines, k) -> list of (start, end, ref_start, ref_end)   (shingles.aligned_blocks)
 *   intersection_sizes(a, flat, starts, sizes) -> bytearray of int64   (shingles.intersections_at)
 *
 * hashes32: uint32 buffer of shingle hashes; a, b: uint32 permutation parameters (num_perm each);
 * out: writable uint32 buffer of num_perm, filled with min over h of (a * fmix32(h) + b) mod 2^32.
 * numpy computes the same through a (rows x num_perm) temporary; here the inner loop over the
 * permutations is one vector multiply-add-min, compiled for AVX2 where the CPU has it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <signal.h>
#include <unistd.h>
#endif

static inline uint32_t fmix32(uint32_t h) {
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    return h ^ (h >> 16);
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
static void minhash(const uint32_t *hashes, Py_ssize_t n, const uint32_t *a, const uint32_t *b, uint32_t *out,
                    Py_ssize_t perms) {
    for (Py_ssize_t j = 0; j < perms; j++) out[j] = 0xFFFFFFFFu;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t h = fmix32(hashes[i]);
        for (Py_ssize_t j = 0; j < perms; j++) {
            uint32_t v = a[j] * h + b[j];
            out[j] = v < out[j] ? v : out[j];
        }
    }
}

/* One signature per row: row r is the minimum over the hashes i with owner[i] == r, then over the
 * rows whose parent is r (parent[r] < r: a parent's row comes first, so children are folded into
 * their parents last to first and a row ends up covering its whole subtree). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
static void nested_minhash(const uint32_t *hashes, const int32_t *owner, Py_ssize_t n, const int32_t *parent,
                           Py_ssize_t rows, const uint32_t *a, const uint32_t *b, uint32_t *out, Py_ssize_t perms) {
    for (Py_ssize_t j = 0; j < rows * perms; j++) out[j] = 0xFFFFFFFFu;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (owner[i] < 0) continue;
        uint32_t h = fmix32(hashes[i]);
        uint32_t *row = out + (Py_ssize_t)owner[i] * perms;
        for (Py_ssize_t j = 0; j < perms; j++) {
            uint32_t v = a[j] * h + b[j];
            row[j] = v < row[j] ? v : row[j];
        }
    }
    for (Py_ssize_t r = rows - 1; r > 0; r--) {
        if (parent[r] < 0) continue;
        uint32_t *up = out + (Py_ssize_t)parent[r] * perms, *row = out + r * perms;
        for (Py_ssize_t j = 0; j < perms; j++) up[j] = row[j] < up[j] ? row[j] : up[j];
    }
}

static PyObject *nested_signatures(PyObject *self, PyObject *args) {
    Py_buffer h, owner, parent, a, b, out;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*w*", &h, &owner, &parent, &a, &b, &out)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = h.len / 4, rows = parent.len / 4, perms = a.len / 4;
    int ok = a.len == b.len && a.len % 4 == 0 && h.len % 4 == 0 && owner.len == h.len && parent.len % 4 == 0 &&
             out.len == rows * perms * 4;
    if (ok) {
        const int32_t *o = owner.buf, *p = parent.buf;
        for (Py_ssize_t i = 0; i < n && ok; i++) ok = o[i] < rows;
        for (Py_ssize_t r = 0; r < rows && ok; r++) ok = p[r] < r;
    }
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "nested_signatures: uint32 hashes, int32 owner (one per hash, < rows), "
                                          "int32 parent (parent[r] < r), a and b of num_perm, out of rows x num_perm");
    } else {
        Py_BEGIN_ALLOW_THREADS
        nested_minhash(h.buf, owner.buf, n, parent.buf, rows, a.buf, b.buf, out.buf, perms);
        Py_END_ALLOW_THREADS
        result = Py_None;
        Py_INCREF(result);
    }
    PyBuffer_Release(&h);
    PyBuffer_Release(&owner);
    PyBuffer_Release(&parent);
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    PyBuffer_Release(&out);
    return result;
}

static PyObject *signature(PyObject *self, PyObject *args) {
    Py_buffer h, a, b, out;
    if (!PyArg_ParseTuple(args, "y*y*y*w*", &h, &a, &b, &out)) return NULL;
    PyObject *result = NULL;
    if (a.len != b.len || a.len != out.len || a.len % 4 || h.len % 4) {
        PyErr_SetString(PyExc_ValueError, "signature: buffers of uint32, a, b and out of num_perm each");
    } else {
        Py_BEGIN_ALLOW_THREADS
        minhash(h.buf, h.len / 4, a.buf, b.buf, out.buf, a.len / 4);
        Py_END_ALLOW_THREADS
        result = Py_None;
        Py_INCREF(result);
    }
    PyBuffer_Release(&h);
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    PyBuffer_Release(&out);
    return result;
}

/* shingles.shingle_hashes: acc = acc * MULT + token over the window, then MurmurHash3's fmix64. */
static inline uint64_t shingle_hash(const uint64_t *t, Py_ssize_t k) {
    uint64_t acc = 0;
    for (Py_ssize_t j = 0; j < k; j++) acc = acc * 0x9E3779B97F4A7C15ULL + t[j];
    acc ^= acc >> 33;
    acc *= 0xFF51AFD7ED558CCDULL;
    acc ^= acc >> 33;
    acc *= 0xC4CEB9FE1A85EC53ULL;
    return acc ^ (acc >> 33);
}

static PyObject *shingle_hashes(PyObject *self, PyObject *args) {
    Py_buffer tok;
    Py_ssize_t k;
    if (!PyArg_ParseTuple(args, "y*n", &tok, &k)) return NULL;
    Py_ssize_t n = tok.len / 8 - k + 1;
    if (k < 1 || tok.len % 8) {
        PyBuffer_Release(&tok);
        PyErr_SetString(PyExc_ValueError, "shingle_hashes: a uint64 buffer and k >= 1");
        return NULL;
    }
    if (n < 0) n = 0;
    PyObject *out = PyByteArray_FromStringAndSize(NULL, n * 8);
    if (!out) {
        PyBuffer_Release(&tok);
        return NULL;
    }
    const uint64_t *t = tok.buf;
    uint64_t *o = (uint64_t *)PyByteArray_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) o[i] = shingle_hash(t + i, k);
    PyBuffer_Release(&tok);
    return out;
}

/* An introsort: quicksort (median of three) with insertion sort for short ranges and heapsort past
 * 2 log n levels; inlined comparisons are several times faster than qsort's comparator calls.
 * sort_u64 sorts shingle hashes, sort_i32 fragment ids, sort_qkeys query keys (band_query), sort_pos
 * (value, position) pairs (aligned runs). */
#define DEFINE_SORT(NAME, T, LESS)                                                                           \
    static void NAME##_sift(T *v, Py_ssize_t root, Py_ssize_t n) {                                      \
        for (;;) {                                                                                     \
            Py_ssize_t child = 2 * root + 1;                                                           \
            if (child >= n) return;                                                                    \
            if (child + 1 < n && LESS(v[child], v[child + 1])) child++;                                     \
            if (!LESS(v[root], v[child])) return;                                                           \
            T t = v[root];                                                                             \
            v[root] = v[child];                                                                        \
            v[child] = t;                                                                              \
            root = child;                                                                              \
        }                                                                                              \
    }                                                                                                  \
    static void NAME##_depth(T *v, Py_ssize_t n, int depth) {                                           \
        while (n > 16) {                                                                               \
            if (depth-- == 0) {                                                                        \
                for (Py_ssize_t i = n / 2 - 1; i >= 0; i--) NAME##_sift(v, i, n);                      \
                for (Py_ssize_t end = n - 1; end > 0; end--) {                                         \
                    T t = v[0];                                                                        \
                    v[0] = v[end];                                                                     \
                    v[end] = t;                                                                        \
                    NAME##_sift(v, 0, end);                                                            \
                }                                                                                      \
                return;                                                                                \
            }                                                                                          \
            T a = v[0], b = v[n / 2], c = v[n - 1];                                                    \
            T pivot = LESS(a, b) ? (LESS(b, c) ? b : (LESS(a, c) ? c : a)) : (LESS(a, c) ? a : (LESS(b, c) ? c : b));           \
            Py_ssize_t i = 0, j = n - 1;                                                               \
            for (;;) { /* Hoare partition */                                                           \
                while (LESS(v[i], pivot)) i++;                                                              \
                while (LESS(pivot, v[j])) j--;                                                              \
                if (i >= j) break;                                                                     \
                T t = v[i];                                                                            \
                v[i++] = v[j];                                                                         \
                v[j--] = t;                                                                            \
            }                                                                                          \
            /* [0, j] <= pivot <= [j + 1, n): recurse into the smaller part, loop on the larger */     \
            if (j + 1 < n - j - 1) {                                                                   \
                NAME##_depth(v, j + 1, depth);                                                         \
                v += j + 1;                                                                            \
                n -= j + 1;                                                                            \
            } else {                                                                                   \
                NAME##_depth(v + j + 1, n - j - 1, depth);                                             \
                n = j + 1;                                                                             \
            }                                                                                          \
        }                                                                                              \
        for (Py_ssize_t i = 1; i < n; i++) {                                                           \
            T x = v[i];                                                                                \
            Py_ssize_t j = i;                                                                          \
            for (; j > 0 && LESS(x, v[j - 1]); j--) v[j] = v[j - 1];                                        \
            v[j] = x;                                                                                  \
        }                                                                                              \
    }                                                                                                  \
    static void NAME(T *v, Py_ssize_t n) {                                                              \
        int depth = 0;                                                                                 \
        for (Py_ssize_t m = n; m > 1; m >>= 1) depth += 2;                                             \
        NAME##_depth(v, n, depth);                                                                     \
    }

#define LESS_VALUE(a, b) ((a) < (b))
DEFINE_SORT(sort_u64, uint64_t, LESS_VALUE)
DEFINE_SORT(sort_i32, int32_t, LESS_VALUE)

static void insertion_sort_u64(uint64_t *v, Py_ssize_t n) {
    for (Py_ssize_t i = 1; i < n; i++) {
        uint64_t x = v[i];
        Py_ssize_t j = i;
        for (; j > 0 && v[j - 1] > x; j--) v[j] = v[j - 1];
        v[j] = x;
    }
}

/* Sorts shingle hashes: uniformly spread values, so a pass that buckets them by their top bits
 * (about two per bucket) leaves buckets that insertion sort finishes; about twice as fast as the
 * introsort on fragments' few hundred values. A crowded bucket (repeats of one shingle are common)
 * is finished by the introsort, so no input is worse than n log n. */
static void sort_hashes(uint64_t *v, Py_ssize_t n) {
    if (n <= 32) {
        insertion_sort_u64(v, n);
        return;
    }
    int bits = 1;
    while (bits < 16 && ((Py_ssize_t)1 << bits) < n / 2) bits++;
    Py_ssize_t buckets = (Py_ssize_t)1 << bits;
    uint64_t stack_tmp[1024];
    Py_ssize_t stack_ends[513];
    uint64_t *tmp = n <= 1024 ? stack_tmp : malloc(n * sizeof(uint64_t));
    Py_ssize_t *ends = buckets <= 512 ? stack_ends : calloc(buckets + 1, sizeof(Py_ssize_t));
    if (!tmp || !ends) {
        if (tmp != stack_tmp) free(tmp);
        if (ends != stack_ends) free(ends);
        sort_u64(v, n);
        return;
    }
    if (ends == stack_ends) memset(ends, 0, (buckets + 1) * sizeof(Py_ssize_t));
    int shift = 64 - bits;
    for (Py_ssize_t i = 0; i < n; i++) ends[(v[i] >> shift) + 1]++;
    for (Py_ssize_t b = 1; b <= buckets; b++) ends[b] += ends[b - 1];
    for (Py_ssize_t i = 0; i < n; i++) tmp[ends[v[i] >> shift]++] = v[i]; /* ends[b]: where bucket b ends */
    memcpy(v, tmp, n * sizeof(uint64_t));
    for (Py_ssize_t b = 0, start = 0; b < buckets; start = ends[b++]) {
        Py_ssize_t size = ends[b] - start;
        if (size > 64) sort_u64(v + start, size);
        else insertion_sort_u64(v + start, size);
    }
    if (tmp != stack_tmp) free(tmp);
    if (ends != stack_ends) free(ends);
}

/* v[lo:hi] sorted, then its distinct values moved to v[w:] (w <= lo); returns the new end of v[w:]. */
static Py_ssize_t sort_unique(uint64_t *v, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t w) {
    sort_hashes(v + lo, hi - lo);
    for (Py_ssize_t i = lo; i < hi; i++)
        if (i == lo || v[i] != v[i - 1]) v[w++] = v[i];
    return w;
}

/* The distinct shingle hashes of the n tokens at t, sorted, written at v[w:] (room for n - k + 1 values
 * there); returns the new end. */
static Py_ssize_t range_set(const uint64_t *t, Py_ssize_t n, Py_ssize_t k, uint64_t *v, Py_ssize_t w) {
    Py_ssize_t windows = n - k + 1 > 0 ? n - k + 1 : 0;
    for (Py_ssize_t i = 0; i < windows; i++) v[w + i] = shingle_hash(t + i, k);
    return sort_unique(v, w, w + windows, w);
}

/* shingles.segment_unique: each run of values (ends[i]: where run i ends) sorted, repeats dropped. */

static PyObject *segment_unique(PyObject *self, PyObject *args) {
    Py_buffer vals, ends;
    if (!PyArg_ParseTuple(args, "y*y*", &vals, &ends)) return NULL;
    PyObject *out_vals = NULL, *out_ends = NULL, *result = NULL;
    Py_ssize_t n = vals.len / 8, runs = ends.len / 8;
    const int64_t *e = ends.buf;
    int ok = vals.len % 8 == 0 && ends.len % 8 == 0;
    for (Py_ssize_t r = 0; r < runs && ok; r++) ok = e[r] >= (r ? e[r - 1] : 0) && e[r] <= n;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "segment_unique: uint64 values and non-decreasing int64 run ends <= len(values)");
        goto done;
    }
    out_vals = PyByteArray_FromStringAndSize(vals.buf, vals.len);
    out_ends = PyByteArray_FromStringAndSize(NULL, ends.len);
    if (!out_vals || !out_ends) goto done;
    uint64_t *v = (uint64_t *)PyByteArray_AS_STRING(out_vals);
    int64_t *oe = (int64_t *)PyByteArray_AS_STRING(out_ends);
    Py_ssize_t w = 0, lo = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < runs; r++) {
        Py_ssize_t hi = e[r];
        w = sort_unique(v, lo, hi, w);
        oe[r] = w;
        lo = hi;
    }
    Py_END_ALLOW_THREADS
    if (PyByteArray_Resize(out_vals, w * 8) < 0) goto done;
    result = PyTuple_Pack(2, out_vals, out_ends);
done:
    Py_XDECREF(out_vals);
    Py_XDECREF(out_ends);
    PyBuffer_Release(&vals);
    PyBuffer_Release(&ends);
    return result;
}

/* shingles.RangeSets: for each range tokens[starts[i]:ends[i]], its distinct shingle hashes, sorted;
 * all of them end to end, and how many each range has. */
static PyObject *range_sets(PyObject *self, PyObject *args) {
    Py_buffer tok, sb, eb;
    Py_ssize_t k;
    if (!PyArg_ParseTuple(args, "y*y*y*n", &tok, &sb, &eb, &k)) return NULL;
    PyObject *out_vals = NULL, *out_sizes = NULL, *result = NULL;
    Py_ssize_t n_tok = tok.len / 8, ranges = sb.len / 8, total = 0;
    const int64_t *starts = sb.buf, *ends = eb.buf;
    int ok = k >= 1 && tok.len % 8 == 0 && sb.len % 8 == 0 && sb.len == eb.len;
    for (Py_ssize_t r = 0; r < ranges && ok; r++) {
        ok = starts[r] >= 0 && starts[r] <= ends[r] && ends[r] <= n_tok;
        if (ok && ends[r] - starts[r] >= k) total += ends[r] - starts[r] - k + 1;
    }
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "range_sets: uint64 tokens, int64 ranges inside them, k >= 1");
        goto done;
    }
    out_vals = PyByteArray_FromStringAndSize(NULL, total * 8);
    out_sizes = PyByteArray_FromStringAndSize(NULL, ranges * 8);
    if (!out_vals || !out_sizes) goto done;
    const uint64_t *t = tok.buf;
    uint64_t *v = (uint64_t *)PyByteArray_AS_STRING(out_vals);
    int64_t *sizes = (int64_t *)PyByteArray_AS_STRING(out_sizes);
    Py_ssize_t w = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < ranges; r++) {
        Py_ssize_t lo = w;
        w = range_set(t + starts[r], ends[r] - starts[r], k, v, w);
        sizes[r] = w - lo;
    }
    Py_END_ALLOW_THREADS
    if (PyByteArray_Resize(out_vals, w * 8) < 0) goto done;
    result = PyTuple_Pack(2, out_vals, out_sizes);
done:
    Py_XDECREF(out_vals);
    Py_XDECREF(out_sizes);
    PyBuffer_Release(&tok);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&eb);
    return result;
}

/* lsh.BandTable.query: keys and ids (bands x n, each band's keys sorted), qkeys (q x bands); for
 * each query row in order, the ids found under its key in any band, sorted, unique.
 *
 * A binary search per query and band is a cache miss per step on a large table; instead each band's
 * query keys are sorted and merged with the band's keys, galloping over the gaps (sequential reads
 * for a whole scan's queries, O(q log n) for one file's). The (row, id) pairs go
 * to per-row lists (counted first, then filled), deduplicated with a stamp per id, then sorted. */
typedef struct {
    uint64_t key;
    int64_t row;
} QKey;

#define LESS_KEY(a, b) ((a).key < (b).key) /* rows of equal keys in any order: each row's ids are sorted later */
DEFINE_SORT(sort_qkeys, QKey, LESS_KEY)

/* One band: sorted query keys against sorted keys; count (fill == NULL) or fill each row's list. */
/* The first position at or after a in band (sorted) whose key is not below key: galloping, so that a
 * few queries (one file's, in a fingerprinting worker) cost O(q log n), not a walk of the band. */
static Py_ssize_t gallop(const uint64_t *band, Py_ssize_t a, Py_ssize_t n, uint64_t key) {
    Py_ssize_t step = 1, hi = a;
    while (hi < n && band[hi] < key) {
        a = hi + 1;
        hi += step;
        step <<= 1;
    }
    if (hi > n) hi = n;
    while (a < hi) { /* band[a - 1] < key (or a is where we started); band[hi] >= key or hi == n */
        Py_ssize_t mid = a + (hi - a) / 2;
        if (band[mid] < key) a = mid + 1;
        else hi = mid;
    }
    return a;
}

static void band_merge(const uint64_t *band, const int32_t *ids, Py_ssize_t n, const QKey *qs, Py_ssize_t q,
                       int64_t *count, int32_t *fill, int64_t *next) {
    Py_ssize_t a = 0, b = 0;
    while (a < n && b < q) {
        if (band[a] < qs[b].key) a = gallop(band, a, n, qs[b].key);
        else if (band[a] > qs[b].key) b++;
        else {
            uint64_t key = band[a];
            Py_ssize_t a_end = a;
            while (a_end < n && band[a_end] == key) a_end++;
            for (; b < q && qs[b].key == key; b++) {
                int64_t row = qs[b].row;
                if (fill) {
                    for (Py_ssize_t t = a; t < a_end; t++) fill[next[row]++] = ids[t];
                } else {
                    count[row] += a_end - a;
                }
            }
            a = a_end;
        }
    }
}

/* band_query's work, without the GIL: the (row, id) pairs of q query rows, row by row, in all (ids)
 * and next (each row's end). 0, -1 (out of memory) or -2 (an id out of range). */
static int band_query_pairs(const uint64_t *k, const int32_t *id, Py_ssize_t n, Py_ssize_t bands, const uint64_t *qk,
                            Py_ssize_t q, Py_ssize_t id_bound, int32_t **all_out, int64_t **next_out) {
    int status = 0;
    QKey *qs = malloc((q ? q : 1) * bands * sizeof(QKey));
    int64_t *start = calloc(q + 1, 8), *next = malloc((q + 1) * 8);
    int32_t *stamp = malloc((id_bound ? id_bound : 1) * 4), *all = NULL;
    if (!qs || !start || !next || !stamp) goto nomem;
    for (Py_ssize_t j = 0; j < bands; j++) {
        QKey *band_qs = qs + j * q;
        for (Py_ssize_t i = 0; i < q; i++) {
            band_qs[i].key = qk[i * bands + j];
            band_qs[i].row = i;
        }
        sort_qkeys(band_qs, q);
        band_merge(k + j * n, id + j * n, n, band_qs, q, start + 1, NULL, NULL);
    }
    for (Py_ssize_t i = 0; i < q; i++) start[i + 1] += start[i];
    all = malloc((start[q] ? start[q] : 1) * 4);
    if (!all) goto nomem;
    memcpy(next, start, (q + 1) * 8);
    for (Py_ssize_t j = 0; j < bands; j++) band_merge(k + j * n, id + j * n, n, qs + j * q, q, NULL, all, next);
    /* Per row: drop repeats (a stamp per id: a copy is found in most of the bands), sort; compacted
     * in place, row by row. Only the ids found are read, so only they are checked against the
     * bound (a table's other ids cost nothing per query). */
    memset(stamp, 0xFF, (size_t)id_bound * 4);
    Py_ssize_t w = 0;
    for (Py_ssize_t i = 0; i < q; i++) {
        Py_ssize_t row_start = w;
        for (int64_t t = start[i]; t < start[i + 1]; t++) {
            int32_t v = all[t];
            if (v < 0 || v >= id_bound) {
                status = -2;
                goto done;
            }
            if (stamp[v] != (int32_t)i) {
                stamp[v] = (int32_t)i;
                all[w++] = v;
            }
        }
        sort_i32(all + row_start, w - row_start);
        next[i] = w; /* end of row i's unique ids */
    }
    goto done;
nomem:
    status = -1;
done:
    free(qs);
    free(start);
    free(stamp);
    if (status) {
        free(all);
        free(next);
        all = NULL;
        next = NULL;
    }
    *all_out = all;
    *next_out = next;
    return status;
}

static PyObject *band_query(PyObject *self, PyObject *args) {
    Py_buffer keys, ids, qkeys;
    Py_ssize_t bands, id_bound;
    if (!PyArg_ParseTuple(args, "y*y*y*nn", &keys, &ids, &qkeys, &bands, &id_bound)) return NULL;
    PyObject *rows_out = NULL, *ids_out = NULL, *result = NULL;
    int64_t *next = NULL;
    int32_t *all = NULL;
    Py_ssize_t n = bands > 0 ? keys.len / 8 / bands : 0, q = bands > 0 ? qkeys.len / 8 / bands : 0;
    if (bands < 1 || keys.len != (Py_ssize_t)(n * bands * 8) || ids.len != n * bands * 4 || qkeys.len != q * bands * 8 ||
        id_bound < 0 || id_bound > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "band_query: uint64 keys and int32 ids of bands x n, uint64 qkeys of q x bands");
        goto done;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS  /* a large batch is split over threads (lsh.BandTable.query's callers) */
    status = band_query_pairs(keys.buf, ids.buf, n, bands, qkeys.buf, q, id_bound, &all, &next);
    Py_END_ALLOW_THREADS
    if (status == -1) {
        PyErr_NoMemory();
        goto done;
    }
    if (status == -2) {
        PyErr_SetString(PyExc_ValueError, "band_query: an id out of range");
        goto done;
    }
    Py_ssize_t w = q ? next[q - 1] : 0;
    rows_out = PyByteArray_FromStringAndSize(NULL, w * 8);
    ids_out = PyByteArray_FromStringAndSize(NULL, w * 8);
    if (rows_out && ids_out) {
        int64_t *r = (int64_t *)PyByteArray_AS_STRING(rows_out), *f = (int64_t *)PyByteArray_AS_STRING(ids_out);
        Py_ssize_t t = 0;
        for (Py_ssize_t i = 0; i < q; i++)
            for (; t < next[i]; t++) {
                r[t] = i;
                f[t] = all[t];
            }
        result = PyTuple_Pack(2, rows_out, ids_out);
    }
done:
    free(next);
    free(all);
    Py_XDECREF(rows_out);
    Py_XDECREF(ids_out);
    PyBuffer_Release(&keys);
    PyBuffer_Release(&ids);
    PyBuffer_Release(&qkeys);
    return result;
}

/* match.ReferenceCorpus.candidates' estimate: for each pair p, how many of the width bytes of row
 * ref_rows[p] of ref and row q_rows[p] of query are equal. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
static void count_agreement(const uint8_t *ref, const int64_t *ref_rows, const uint8_t *query, const int64_t *q_rows,
                            Py_ssize_t pairs, Py_ssize_t width, int16_t *out) {
    for (Py_ssize_t p = 0; p < pairs; p++) {
        const uint8_t *a = ref + ref_rows[p] * width, *b = query + q_rows[p] * width;
        int16_t c = 0;
        for (Py_ssize_t j = 0; j < width; j++) c += a[j] == b[j];
        out[p] = c;
    }
}

/* lsh.filter_candidates: of the (row, fid) pairs, those whose fragment's level is the query's and
 * whose signatures' low bytes agree in at least `need` places, as rows and fid << 16 | agreement. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
static Py_ssize_t keep_candidates(const int64_t *rows, const int64_t *fids, Py_ssize_t pairs, const int8_t *ref_levels,
                                  const int8_t *q_levels, const int32_t *sig_row, const uint8_t *ref, const uint8_t *query,
                                  Py_ssize_t width, double need, int64_t *rows_out, int64_t *packed_out) {
    Py_ssize_t w = 0;
    for (Py_ssize_t p = 0; p < pairs; p++) {
        int64_t row = rows[p], fid = fids[p];
        if (ref_levels[fid] != q_levels[row]) continue;
        const uint8_t *a = ref + (Py_ssize_t)sig_row[fid] * width, *b = query + row * width;
        int16_t c = 0; /* 16-bit lanes: the compare-and-count loop vectorises as count_agreement's does */
        for (Py_ssize_t j = 0; j < width; j++) c += a[j] == b[j];
        if ((double)c >= need) {
            rows_out[w] = row;
            packed_out[w++] = fid << 16 | c;
        }
    }
    return w;
}

static PyObject *filter_candidates(PyObject *self, PyObject *args) {
    Py_buffer rb, fb, lb, qlb, sb, refb, qb;
    Py_ssize_t width;
    double need;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*nd", &rb, &fb, &lb, &qlb, &sb, &refb, &qb, &width, &need)) return NULL;
    PyObject *rows_out = NULL, *packed_out = NULL, *result = NULL;
    Py_ssize_t pairs = rb.len / 8, n_frag = lb.len, nq = qlb.len, n_sig = width > 0 ? refb.len / width : 0;
    const int64_t *rows = rb.buf, *fids = fb.buf;
    const int32_t *sig_row = sb.buf;
    int ok = width > 0 && width < 32768 && rb.len % 8 == 0 && fb.len == rb.len && sb.len == n_frag * 4 &&
             refb.len == n_sig * width && qb.len == nq * width;
    for (Py_ssize_t p = 0; p < pairs && ok; p++)
        ok = rows[p] >= 0 && rows[p] < nq && fids[p] >= 0 && fids[p] < n_frag && sig_row[fids[p]] >= 0 &&
             sig_row[fids[p]] < n_sig;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "filter_candidates: pairs of indexed fragments and query rows in range");
        goto done;
    }
    rows_out = PyByteArray_FromStringAndSize(NULL, pairs * 8);
    packed_out = PyByteArray_FromStringAndSize(NULL, pairs * 8);
    if (!rows_out || !packed_out) goto done;
    Py_ssize_t kept;
    Py_BEGIN_ALLOW_THREADS
    kept = keep_candidates(rows, fids, pairs, lb.buf, qlb.buf, sig_row, refb.buf, qb.buf, width, need,
                           (int64_t *)PyByteArray_AS_STRING(rows_out), (int64_t *)PyByteArray_AS_STRING(packed_out));
    Py_END_ALLOW_THREADS
    if (PyByteArray_Resize(rows_out, kept * 8) < 0 || PyByteArray_Resize(packed_out, kept * 8) < 0) goto done;
    result = PyTuple_Pack(2, rows_out, packed_out);
done:
    Py_XDECREF(rows_out);
    Py_XDECREF(packed_out);
    PyBuffer_Release(&rb);
    PyBuffer_Release(&fb);
    PyBuffer_Release(&lb);
    PyBuffer_Release(&qlb);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&refb);
    PyBuffer_Release(&qb);
    return result;
}

static PyObject *agreement(PyObject *self, PyObject *args) {
    Py_buffer ref, ref_rows, query, q_rows;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "y*y*y*y*n", &ref, &ref_rows, &query, &q_rows, &width)) return NULL;
    PyObject *out = NULL;
    Py_ssize_t pairs = ref_rows.len / 8, nref = width > 0 ? ref.len / width : 0, nq = width > 0 ? query.len / width : 0;
    int ok = width > 0 && width < 32768 && ref.len == nref * width && query.len == nq * width &&
             ref_rows.len % 8 == 0 && q_rows.len == ref_rows.len;
    const int64_t *rr = ref_rows.buf, *qr = q_rows.buf;
    for (Py_ssize_t p = 0; p < pairs && ok; p++) ok = rr[p] >= 0 && rr[p] < nref && qr[p] >= 0 && qr[p] < nq;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "agreement: uint8 rows of width bytes, int64 row indices in range");
    } else if ((out = PyByteArray_FromStringAndSize(NULL, pairs * 2))) {
        int16_t *o = (int16_t *)PyByteArray_AS_STRING(out);
        Py_BEGIN_ALLOW_THREADS
        count_agreement(ref.buf, rr, query.buf, qr, pairs, width, o);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&ref);
    PyBuffer_Release(&ref_rows);
    PyBuffer_Release(&query);
    PyBuffer_Release(&q_rows);
    return out;
}

/* shingles.aligned_runs: greedy monotone alignment of two shingle sequences (see the Python twin).
 * The positions of each value in r are found by binary search over (value, position) pairs. */
typedef struct {
    uint64_t value;
    Py_ssize_t at;
} Pos;

#define LESS_POS(a, b) ((a).value < (b).value || ((a).value == (b).value && (a).at < (b).at))
DEFINE_SORT(sort_pos, Pos, LESS_POS) /* (value, position) pairs are distinct: any sort gives one order */

/* A list of count tuples of width ints each, from values laid end to end (runs, blocks). */
static PyObject *tuple_list(const Py_ssize_t *values, Py_ssize_t count, int width) {
    PyObject *out = PyList_New(count);
    for (Py_ssize_t t = 0; out && t < count; t++) {
        PyObject *item = PyTuple_New(width);
        for (int c = 0; item && c < width; c++) {
            PyObject *v = PyLong_FromSsize_t(values[t * width + c]);
            if (!v) Py_CLEAR(item);
            else PyTuple_SET_ITEM(item, c, v);
        }
        if (!item) Py_CLEAR(out);
        else PyList_SET_ITEM(out, t, item);
    }
    return out;
}

/* The greedy monotone runs (i, j, n) of equal values of s_seq and r_seq (see shingles.aligned_runs),
 * as triples in a malloc'd array (*count of them); NULL with MemoryError set. */
static Py_ssize_t *find_runs(const uint64_t *s_seq, Py_ssize_t ns, const uint64_t *r_seq, Py_ssize_t nr, Py_ssize_t *count) {
    Pos *pos = malloc((nr ? nr : 1) * sizeof(Pos));
    Py_ssize_t cap = 16, *runs = malloc(cap * 3 * sizeof(Py_ssize_t));
    *count = 0;
    if (!pos || !runs) goto nomem;
    for (Py_ssize_t j = 0; j < nr; j++) {
        pos[j].value = r_seq[j];
        pos[j].at = j;
    }
    sort_pos(pos, nr);
    Py_ssize_t i = 0, last_j = -1;
    while (i < ns) {
        /* the first position of s_seq[i] in r_seq after last_j (bisect_right of last_j) */
        uint64_t v = s_seq[i];
        Py_ssize_t lo = 0, hi = nr;
        while (lo < hi) {
            Py_ssize_t mid = lo + (hi - lo) / 2;
            if (pos[mid].value < v || (pos[mid].value == v && pos[mid].at <= last_j)) lo = mid + 1;
            else hi = mid;
        }
        if (lo == nr || pos[lo].value != v) {
            i++;
            continue;
        }
        Py_ssize_t j = pos[lo].at, n = 1;
        while (i + n < ns && j + n < nr && s_seq[i + n] == r_seq[j + n]) n++;
        if (n >= 2) {
            if (*count == cap) {
                Py_ssize_t *grown = realloc(runs, 2 * cap * 3 * sizeof(Py_ssize_t));
                if (!grown) goto nomem;
                runs = grown;
                cap *= 2;
            }
            runs[3 * *count] = i;
            runs[3 * *count + 1] = j;
            runs[3 * *count + 2] = n;
            (*count)++;
            last_j = j + n - 1;
        }
        i += n;
    }
    free(pos);
    return runs;
nomem:
    free(pos);
    free(runs);
    PyErr_NoMemory();
    return NULL;
}

static PyObject *aligned_runs(PyObject *self, PyObject *args) {
    Py_buffer sb, rb;
    if (!PyArg_ParseTuple(args, "y*y*", &sb, &rb)) return NULL;
    PyObject *out = NULL;
    Py_ssize_t count = 0, *runs = NULL;
    if (sb.len % 8 || rb.len % 8) {
        PyErr_SetString(PyExc_ValueError, "aligned_runs: two uint64 buffers");
        goto done;
    }
    runs = find_runs(sb.buf, sb.len / 8, rb.buf, rb.len / 8, &count);
    if (runs) out = tuple_list(runs, count, 3);
done:
    free(runs);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&rb);
    return out;
}

/* shingles.aligned_blocks: the runs of two token ranges' shingles turned into line ranges
 * (start, end, ref_start, ref_end), runs that continue on the same or next line on both sides merged. */
static PyObject *aligned_blocks(PyObject *self, PyObject *args) {
    Py_buffer stb, slb, rtb, rlb;
    Py_ssize_t k;
    if (!PyArg_ParseTuple(args, "y*y*y*y*n", &stb, &slb, &rtb, &rlb, &k)) return NULL;
    PyObject *out = NULL;
    Py_ssize_t count = 0, *runs = NULL, *blocks = NULL;
    Py_ssize_t s_n = stb.len / 8, r_n = rtb.len / 8;
    uint64_t *s_seq = NULL, *r_seq = NULL;
    if (k < 1 || stb.len % 8 || rtb.len % 8 || slb.len != s_n * 4 || rlb.len != r_n * 4) {
        PyErr_SetString(PyExc_ValueError, "aligned_blocks: uint64 tokens with int32 lines of each side, k >= 1");
        goto done;
    }
    Py_ssize_t ns = s_n - k + 1 > 0 ? s_n - k + 1 : 0, nr = r_n - k + 1 > 0 ? r_n - k + 1 : 0;
    s_seq = malloc((ns ? ns : 1) * 8);
    r_seq = malloc((nr ? nr : 1) * 8);
    if (!s_seq || !r_seq) {
        PyErr_NoMemory();
        goto done;
    }
    const uint64_t *st = stb.buf, *rt = rtb.buf;
    const int32_t *sl = slb.buf, *rl = rlb.buf;
    for (Py_ssize_t i = 0; i < ns; i++) s_seq[i] = shingle_hash(st + i, k);
    for (Py_ssize_t j = 0; j < nr; j++) r_seq[j] = shingle_hash(rt + j, k);
    runs = find_runs(s_seq, ns, r_seq, nr, &count);
    blocks = malloc((count ? count : 1) * 4 * sizeof(Py_ssize_t));
    if (!runs || !blocks) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t nb = 0;
    for (Py_ssize_t t = 0; t < count; t++) {
        Py_ssize_t i = runs[3 * t], j = runs[3 * t + 1], n = runs[3 * t + 2];
        /* a config's leaves are tokenised in key order: its lines need not increase */
        int32_t s_lo = sl[i], s_hi = sl[i], r_lo = rl[j], r_hi = rl[j];
        for (Py_ssize_t x = i; x <= i + n + k - 2; x++) {
            if (sl[x] < s_lo) s_lo = sl[x];
            if (sl[x] > s_hi) s_hi = sl[x];
        }
        for (Py_ssize_t x = j; x <= j + n + k - 2; x++) {
            if (rl[x] < r_lo) r_lo = rl[x];
            if (rl[x] > r_hi) r_hi = rl[x];
        }
        Py_ssize_t *last = nb ? blocks + 4 * (nb - 1) : NULL;
        if (last && s_lo <= last[1] + 1 && r_lo <= last[3] + 1 && r_lo >= last[2]) {
            if (s_hi > last[1]) last[1] = s_hi;
            if (r_hi > last[3]) last[3] = r_hi;
        } else {
            Py_ssize_t *b = blocks + 4 * nb++;
            b[0] = s_lo;
            b[1] = s_hi;
            b[2] = r_lo;
            b[3] = r_hi;
        }
    }
    out = tuple_list(blocks, nb, 4);
done:
    free(s_seq);
    free(r_seq);
    free(runs);
    free(blocks);
    PyBuffer_Release(&stb);
    PyBuffer_Release(&slb);
    PyBuffer_Release(&rtb);
    PyBuffer_Release(&rlb);
    return out;
}

/* shingles.intersections_at: |a & flat[start:start + size]| for each (start, size), given a and each
 * such slice sorted and distinct: a merge of the two when they are of similar size,
 * binary searches of the smaller in the larger otherwise. */
static Py_ssize_t intersect(const uint64_t *a, Py_ssize_t na, const uint64_t *b, Py_ssize_t nb) {
    if (na > nb) {
        const uint64_t *t = a;
        a = b;
        b = t;
        Py_ssize_t tn = na;
        na = nb;
        nb = tn;
    }
    Py_ssize_t count = 0;
    if (na * 16 < nb) {
        Py_ssize_t lo = 0;
        for (Py_ssize_t i = 0; i < na; i++) {
            Py_ssize_t hi = nb;
            while (lo < hi) {
                Py_ssize_t mid = lo + (hi - lo) / 2;
                if (b[mid] < a[i]) lo = mid + 1;
                else hi = mid;
            }
            if (lo < nb && b[lo] == a[i]) count++;
        }
        return count;
    }
    /* Branch-free merge: which side advances is data, not a jump the CPU must guess (the two
     * sets interleave at random). */
    Py_ssize_t i = 0, j = 0;
    while (i < na && j < nb) {
        uint64_t x = a[i], y = b[j];
        count += x == y;
        i += x <= y;
        j += y <= x;
    }
    return count;
}

static PyObject *intersection_sizes(PyObject *self, PyObject *args) {
    Py_buffer ab, fb, tb, sb;
    if (!PyArg_ParseTuple(args, "y*y*y*y*", &ab, &fb, &tb, &sb)) return NULL;
    PyObject *out = NULL;
    Py_ssize_t others = sb.len / 8, n_flat = fb.len / 8;
    const int64_t *starts = tb.buf, *sizes = sb.buf;
    int ok = ab.len % 8 == 0 && fb.len % 8 == 0 && sb.len % 8 == 0 && tb.len == sb.len;
    for (Py_ssize_t t = 0; t < others && ok; t++)
        ok = sizes[t] >= 0 && starts[t] >= 0 && starts[t] <= n_flat - sizes[t];
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "intersection_sizes: uint64 a and flat, int64 starts and sizes inside flat");
    } else if ((out = PyByteArray_FromStringAndSize(NULL, others * 8))) {
        int64_t *o = (int64_t *)PyByteArray_AS_STRING(out);
        const uint64_t *a = ab.buf, *flat = fb.buf;
        for (Py_ssize_t t = 0; t < others; t++) o[t] = intersect(a, ab.len / 8, flat + starts[t], sizes[t]);
    }
    PyBuffer_Release(&ab);
    PyBuffer_Release(&fb);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&sb);
    return out;
}

/* shingles.RangeSets, compiled: the distinct shingles (sorted) of token ranges of one token array,
 * each computed on first use into one growing arena. */
typedef struct {
    PyObject_HEAD
    Py_buffer tokens;
    int64_t *starts, *ends, *at, *size; /* per range; at[i] < 0: not computed yet */
    Py_ssize_t ranges, k;
    uint64_t *arena;
    Py_ssize_t cap, used;
} SetCache;

static void SetCache_dealloc(SetCache *c) {
    if (c->tokens.obj) PyBuffer_Release(&c->tokens);
    PyMem_Free(c->starts);
    PyMem_Free(c->ends);
    PyMem_Free(c->at);
    PyMem_Free(c->size);
    PyMem_Free(c->arena);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static int SetCache_init(SetCache *c, PyObject *args, PyObject *kwds) {
    Py_buffer sb, eb;
    Py_ssize_t k;
    if (c->tokens.obj) {
        PyErr_SetString(PyExc_TypeError, "RangeSets is initialised once");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "y*y*y*n", &c->tokens, &sb, &eb, &k)) return -1;
    Py_ssize_t n_tok = c->tokens.len / 8, ranges = sb.len / 8;
    const int64_t *s = sb.buf, *e = eb.buf;
    int ok = k >= 1 && c->tokens.len % 8 == 0 && sb.len % 8 == 0 && sb.len == eb.len;
    for (Py_ssize_t r = 0; r < ranges && ok; r++) ok = s[r] >= 0 && s[r] <= e[r] && e[r] <= n_tok;
    if (ok) {
        c->starts = PyMem_Malloc(sb.len + 8);
        c->ends = PyMem_Malloc(sb.len + 8);
        c->at = PyMem_Malloc(sb.len + 8);
        c->size = PyMem_Calloc(ranges + 1, 8);
    }
    if (ok && c->starts && c->ends && c->at && c->size) {
        memcpy(c->starts, s, sb.len);
        memcpy(c->ends, e, sb.len);
        for (Py_ssize_t r = 0; r < ranges; r++) c->at[r] = -1;
        c->ranges = ranges;
        c->k = k;
    }
    PyBuffer_Release(&sb);
    PyBuffer_Release(&eb);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "RangeSets: uint64 tokens, int64 ranges inside them, k >= 1");
        return -1;
    }
    if (!c->starts || !c->ends || !c->at || !c->size) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* Range r's set, computed if needed; NULL (MemoryError set) when the arena cannot grow. */
static const uint64_t *set_of(SetCache *c, Py_ssize_t r) {
    if (c->at[r] < 0) {
        Py_ssize_t n = c->ends[r] - c->starts[r] - c->k + 1;
        if (n < 0) n = 0;
        if (!c->arena || c->used + n > c->cap) { /* allocated on first use, even for an empty set */
            Py_ssize_t cap = c->cap ? 2 * c->cap : (Py_ssize_t)1 << 16;
            while (cap < c->used + n) cap *= 2;
            uint64_t *grown = PyMem_Realloc(c->arena, cap * sizeof(uint64_t));
            if (!grown) {
                PyErr_NoMemory();
                return NULL;
            }
            c->arena = grown;
            c->cap = cap;
        }
        Py_ssize_t w = range_set((const uint64_t *)c->tokens.buf + c->starts[r], c->ends[r] - c->starts[r], c->k,
                                 c->arena, c->used);
        c->at[r] = c->used;
        c->size[r] = w - c->used;
        c->used = w;
    }
    return c->arena + c->at[r];
}

static int check_ids(SetCache *c, const int64_t *ids, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->ranges) {
            PyErr_SetString(PyExc_IndexError, "RangeSets: range id out of bounds");
            return -1;
        }
    return 0;
}

/* intersections(ids, *queries) -> (sizes, then |query & set| for each query), int64 arrays as bytes */
static PyObject *SetCache_intersections(SetCache *c, PyObject *args) {
    Py_ssize_t nq = PyTuple_GET_SIZE(args) - 1;
    if (nq < 0) {
        PyErr_SetString(PyExc_TypeError, "intersections(ids, *queries)");
        return NULL;
    }
    Py_buffer idb, *qb = PyMem_Calloc(nq + 1, sizeof(Py_buffer));
    PyObject *result = NULL, **outs = PyMem_Calloc(nq + 1, sizeof(PyObject *));
    Py_ssize_t got = 0;
    if (!qb || !outs) {
        PyErr_NoMemory();
        goto done;
    }
    if (PyObject_GetBuffer(PyTuple_GET_ITEM(args, 0), &idb, PyBUF_SIMPLE) < 0) goto done;
    for (; got < nq; got++)
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(args, got + 1), &qb[got], PyBUF_SIMPLE) < 0) break;
    Py_ssize_t n = idb.len / 8;
    const int64_t *ids = idb.buf;
    if (got == nq && check_ids(c, ids, n) == 0) {
        int ok = 1;
        for (Py_ssize_t q = 0; q <= nq && ok; q++) ok = (outs[q] = PyByteArray_FromStringAndSize(NULL, n * 8)) != NULL;
        for (Py_ssize_t i = 0; i < n && ok; i++) {
            const uint64_t *set = set_of(c, ids[i]);
            if (!set) {
                ok = 0;
                break;
            }
            Py_ssize_t size = c->size[ids[i]];
            ((int64_t *)PyByteArray_AS_STRING(outs[0]))[i] = size;
            for (Py_ssize_t q = 0; q < nq; q++)
                ((int64_t *)PyByteArray_AS_STRING(outs[q + 1]))[i] = intersect(qb[q].buf, qb[q].len / 8, set, size);
        }
        if (ok && (result = PyTuple_New(nq + 1)))
            for (Py_ssize_t q = 0; q <= nq; q++) {
                PyTuple_SET_ITEM(result, q, outs[q]);
                outs[q] = NULL;
            }
    }
    PyBuffer_Release(&idb);
    for (Py_ssize_t q = 0; q < got; q++) PyBuffer_Release(&qb[q]);
done:
    if (outs)
        for (Py_ssize_t q = 0; q <= nq; q++) Py_XDECREF(outs[q]);
    PyMem_Free(outs);
    PyMem_Free(qb);
    return result;
}

static PyMethodDef SetCache_methods[] = {
    {"intersections", (PyCFunction)SetCache_intersections, METH_VARARGS,
     "(sizes, then |query & set| for each query) of int64 range ids, as int64 bytes."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject SetCacheType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "signatures._native.RangeSets",
    .tp_basicsize = sizeof(SetCache),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)SetCache_init,
    .tp_dealloc = (destructor)SetCache_dealloc,
    .tp_methods = SetCache_methods,
};

/* scanner.match._verify_groups for candidates of one reference (see there): the abstract check of
 * each group representative, its members, their names where they decide, the verified copies in
 * the same order. Returns None, or (similarities, concrete similarities, fragment ids) as bytes. */
static PyObject *verify_groups(PyObject *self, PyObject *args) {
    PyObject *abs_obj, *con_obj;
    Py_buffer mrb, mfb, rb, qa, qi, qc;
    double min_sim, boiler_min_concrete;
    long long min_shared;
    int config;
    if (!PyArg_ParseTuple(args, "O!O!y*y*y*y*y*y*dLdp", &SetCacheType, &abs_obj, &SetCacheType, &con_obj, &mrb, &mfb,
                          &rb, &qa, &qi, &qc, &min_sim, &min_shared, &boiler_min_concrete, &config))
        return NULL;
    SetCache *abs_sets = (SetCache *)abs_obj, *con_sets = (SetCache *)con_obj;
    PyObject *result = NULL, *o_sim = NULL, *o_csim = NULL, *o_fid = NULL;
    Py_ssize_t n = rb.len / 8, n_members = mrb.len / 4, nqa = qa.len / 8, nqi = qi.len / 8, nqc = qc.len / 8;
    const int64_t *reps = rb.buf;
    const int32_t *member_reps = mrb.buf, *member_fids = mfb.buf;
    /* per group: similarity, boilerplate?, members' range; per member: group, concrete similarity */
    double *g_sim = PyMem_Malloc((n + 1) * sizeof(double));
    char *g_boiler = PyMem_Malloc(n + 1);
    Py_ssize_t *g_lo = PyMem_Malloc((n + 1) * sizeof(Py_ssize_t)), *g_hi = PyMem_Malloc((n + 1) * sizeof(Py_ssize_t));
    double *m_csim = NULL;
    Py_ssize_t *m_group = NULL;
    if (!g_sim || !g_boiler || !g_lo || !g_hi) {
        PyErr_NoMemory();
        goto done;
    }
    if (mfb.len != mrb.len || check_ids(abs_sets, reps, n) < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "verify_groups: int32 member reps and fids");
        goto done;
    }
    Py_ssize_t groups = 0, members = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint64_t *set = set_of(abs_sets, reps[i]);
        if (!set) goto done;
        Py_ssize_t size = abs_sets->size[reps[i]], inter = intersect(qa.buf, nqa, set, size);
        Py_ssize_t uni = nqa + size - inter;
        double sim = uni > 0 ? (double)inter / (double)uni : 0.0;
        if (!(sim >= min_sim)) continue;
        /* |informative & reference's abstract| is |informative & reference's informative| */
        Py_ssize_t shared = intersect(qi.buf, nqi, set, size);
        int64_t key = reps[i];
        Py_ssize_t lo = 0, hi = n_members;
        while (lo < hi) { /* first member_reps[j] >= key */
            Py_ssize_t mid = lo + (hi - lo) / 2;
            if (member_reps[mid] < key) lo = mid + 1;
            else hi = mid;
        }
        Py_ssize_t end = lo;
        while (end < n_members && member_reps[end] == key) end++;
        g_sim[groups] = sim;
        g_boiler[groups] = config || shared < min_shared;
        g_lo[groups] = lo;
        g_hi[groups] = end;
        members += end - lo;
        groups++;
    }
    if (groups == 0) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    double best = 0.0;
    int any_plain = 0;
    for (Py_ssize_t g = 0; g < groups; g++)
        if (!g_boiler[g] && (!any_plain || g_sim[g] > best)) {
            best = g_sim[g];
            any_plain = 1;
        }
    m_csim = PyMem_Malloc((members + 1) * sizeof(double));
    m_group = PyMem_Malloc((members + 1) * sizeof(Py_ssize_t));
    if (!m_csim || !m_group) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t m = 0, rows = 0;
    double best2 = best;
    for (Py_ssize_t g = 0; g < groups; g++)
        for (Py_ssize_t j = g_lo[g]; j < g_hi[g]; j++, m++) {
            m_group[m] = g;
            m_csim[m] = -1.0;
            if (g_boiler[g] || g_sim[g] >= best) { /* names decide here */
                int64_t fid = member_fids[j];
                if (fid < 0 || fid >= con_sets->ranges) {
                    PyErr_SetString(PyExc_IndexError, "verify_groups: member id out of bounds");
                    goto done;
                }
                const uint64_t *set = set_of(con_sets, fid);
                if (!set) goto done;
                Py_ssize_t size = con_sets->size[fid], inter = intersect(qc.buf, nqc, set, size);
                Py_ssize_t uni = nqc + size - inter;
                m_csim[m] = uni > 0 ? (double)inter / (double)uni : 0.0;
            }
            if (g_boiler[g] && m_csim[m] >= boiler_min_concrete) {
                rows++;
                if (g_sim[g] > best2) best2 = g_sim[g];
            } else if (!g_boiler[g]) {
                rows++;
            }
        }
    if (rows == 0) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    o_sim = PyByteArray_FromStringAndSize(NULL, rows * 8);
    o_csim = PyByteArray_FromStringAndSize(NULL, rows * 8);
    o_fid = PyByteArray_FromStringAndSize(NULL, rows * 8);
    if (!o_sim || !o_csim || !o_fid) goto done;
    double *sim_out = (double *)PyByteArray_AS_STRING(o_sim), *csim_out = (double *)PyByteArray_AS_STRING(o_csim);
    int64_t *fid_out = (int64_t *)PyByteArray_AS_STRING(o_fid);
    Py_ssize_t w = 0;
    for (int pass = 0; pass < 2; pass++) /* kept boilerplate members first, then the others */
        for (Py_ssize_t g = 0, mm = 0; g < groups; g++)
            for (Py_ssize_t j = g_lo[g]; j < g_hi[g]; j++, mm++) {
                int boiler = g_boiler[g];
                if (pass == 0 ? !(boiler && m_csim[mm] >= boiler_min_concrete) : boiler) continue;
                sim_out[w] = g_sim[g];
                csim_out[w] = (!boiler && g_sim[g] < best2) ? -1.0 : m_csim[mm];
                fid_out[w] = member_fids[j];
                w++;
            }
    result = PyTuple_Pack(3, o_sim, o_csim, o_fid);
done:
    Py_XDECREF(o_sim);
    Py_XDECREF(o_csim);
    Py_XDECREF(o_fid);
    PyMem_Free(g_sim);
    PyMem_Free(g_boiler);
    PyMem_Free(g_lo);
    PyMem_Free(g_hi);
    PyMem_Free(m_csim);
    PyMem_Free(m_group);
    PyBuffer_Release(&mrb);
    PyBuffer_Release(&mfb);
    PyBuffer_Release(&rb);
    PyBuffer_Release(&qa);
    PyBuffer_Release(&qi);
    PyBuffer_Release(&qc);
    return result;
}

/* scanner.match._ranked for verified copies in one reference: their order, best first, as
 * np.lexsort((start, path_rank, pos, noted, -round(csim, 6), -round(sim, 6))) gives it (pos is one
 * value): the similarities rounded as Python's round() rounds them (the decimal digits correctly
 * rounded, then read back), equal keys in their first order. noted (bool), path_rank and start
 * (int64) are columns by fragment id. */
typedef struct {
    double sim, csim; /* -round(x, 6) */
    int64_t noted, path, start;
    Py_ssize_t at;
} RankKey;

#define LESS_RANK(a, b)                                                                                 \
    ((a).sim != (b).sim       ? (a).sim < (b).sim                                                     \
     : (a).csim != (b).csim   ? (a).csim < (b).csim                                                   \
     : (a).noted != (b).noted ? (a).noted < (b).noted                                                 \
     : (a).path != (b).path   ? (a).path < (b).path                                                   \
     : (a).start != (b).start ? (a).start < (b).start                                                 \
                              : (a).at < (b).at)
DEFINE_SORT(sort_rank, RankKey, LESS_RANK)

/* -round(x, 6) as Python computes round(x, 6); -1 with an exception set on failure. */
static int neg_round6(double x, double *out) {
    char *text = PyOS_double_to_string(x, 'f', 6, 0, NULL);
    if (!text) return -1;
    double r = PyOS_string_to_double(text, NULL, NULL);
    PyMem_Free(text);
    if (r == -1.0 && PyErr_Occurred()) return -1;
    *out = -r;
    return 0;
}

static PyObject *rank_copies(PyObject *self, PyObject *args) {
    Py_buffer sb, cb, fb, nb, pb, tb;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*", &sb, &cb, &fb, &nb, &pb, &tb)) return NULL;
    PyObject *out = NULL;
    RankKey *keys = NULL;
    Py_ssize_t n = fb.len / 8, n_frag = nb.len;
    const double *sim = sb.buf, *csim = cb.buf;
    const int64_t *fid = fb.buf, *path = pb.buf, *start = tb.buf;
    const uint8_t *noted = nb.buf;
    int ok = fb.len % 8 == 0 && sb.len == fb.len && cb.len == fb.len && pb.len == n_frag * 8 && tb.len == n_frag * 8;
    for (Py_ssize_t i = 0; i < n && ok; i++) ok = fid[i] >= 0 && fid[i] < n_frag;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "rank_copies: float64 similarities and int64 fragment ids of columns in range");
        goto done;
    }
    keys = PyMem_Malloc((n ? n : 1) * sizeof(RankKey));
    if (!keys) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        /* copies of one group share their similarity: round each value once */
        if (i > 0 && sim[i] == sim[i - 1]) keys[i].sim = keys[i - 1].sim;
        else if (neg_round6(sim[i], &keys[i].sim) < 0) goto done;
        if (i > 0 && csim[i] == csim[i - 1]) keys[i].csim = keys[i - 1].csim;
        else if (neg_round6(csim[i], &keys[i].csim) < 0) goto done;
        keys[i].noted = noted[fid[i]] != 0;
        keys[i].path = path[fid[i]];
        keys[i].start = start[fid[i]];
        keys[i].at = i;
    }
    sort_rank(keys, n);
    out = PyByteArray_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(Py_ssize_t));
    if (out) {
        Py_ssize_t *order = (Py_ssize_t *)PyByteArray_AS_STRING(out);
        for (Py_ssize_t i = 0; i < n; i++) order[i] = keys[i].at;
    }
done:
    PyMem_Free(keys);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&fb);
    PyBuffer_Release(&nb);
    PyBuffer_Release(&pb);
    PyBuffer_Release(&tb);
    return out;
}

/* ---- a clear exit on SIGBUS ------------------------------------------------------------------ */

/* A memory-mapped file (an index array, a weights file) truncated by another process while it is
 * mapped: touching a page past its new end raises SIGBUS, which would otherwise kill the process
 * with no word. Python cannot handle it (its handler runs between bytecodes, and the faulting
 * instruction runs again): this one writes one line and exits 2, as every other bad input does.
 * Only async-signal-safe calls (write, _exit). */
#ifndef _WIN32
static char bus_message[1024];
static size_t bus_length;

static void on_bus_error(int sig) {
    (void)sig;
    ssize_t written = write(2, bus_message, bus_length);
    (void)written;
    _exit(2);
}
#endif

static PyObject *py_exit_on_bus_error(PyObject *self, PyObject *args) {
    const char *message;
    Py_ssize_t length;
    if (!PyArg_ParseTuple(args, "y#", &message, &length)) return NULL;
#ifndef _WIN32
    if ((size_t)length > sizeof(bus_message)) length = sizeof(bus_message);
    memcpy(bus_message, message, (size_t)length);
    bus_length = (size_t)length;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_bus_error;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGBUS, &action, NULL) != 0) return PyErr_SetFromErrno(PyExc_OSError);
#endif
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"exit_on_bus_error", py_exit_on_bus_error, METH_VARARGS,
     "On SIGBUS, write this message to stderr and exit 2."},
    {"signature", signature, METH_VARARGS, "MinHash (affine32) of uint32 hashes into out."},
    {"nested_signatures", nested_signatures, METH_VARARGS, "One MinHash per row of nested fragments, into out."},
    {"shingle_hashes", shingle_hashes, METH_VARARGS, "Hash of every window of k uint64 token hashes."},
    {"segment_unique", segment_unique, METH_VARARGS, "Each run of uint64 values sorted, repeats dropped."},
    {"range_sets", range_sets, METH_VARARGS, "Distinct shingle hashes of token ranges, sorted, end to end."},
    {"band_query", band_query, METH_VARARGS, "LSH candidates (query row, id) of a band table, sorted, unique."},
    {"filter_candidates", filter_candidates, METH_VARARGS, "LSH pairs of the same level whose low bytes agree enough."},
    {"agreement", agreement, METH_VARARGS, "Equal bytes of pairs of rows of two uint8 matrices."},
    {"aligned_blocks", aligned_blocks, METH_VARARGS, "Aligned line ranges of two token ranges, merged."},
    {"aligned_runs", aligned_runs, METH_VARARGS, "Greedy monotone runs (i, j, n) of equal values of two sequences."},
    {"intersection_sizes", intersection_sizes, METH_VARARGS, "Intersection size of a sorted set with each slice of flat."},
    {"verify_groups", verify_groups, METH_VARARGS, "scanner.match._verify_groups for the candidates of one reference."},
    {"rank_copies", rank_copies, METH_VARARGS, "scanner.match._ranked for the verified copies of one reference."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "signatures._native", NULL, -1, methods};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&SetCacheType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&SetCacheType);
    if (PyModule_AddObject(m, "RangeSets", (PyObject *)&SetCacheType) < 0) {
        Py_DECREF(&SetCacheType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
