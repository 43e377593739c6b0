/* Compiled twins of signatures.minhash.MinHasher.signature (datasketch's affine32 scheme) and of
 * signatures.shingles.shingle_hashes: identical values (tests/test_speedups.py).
 *
 *   signature(hashes32, a, b, out) -> None
 *   nested_signatures(hashes32, owner, parent, a, b, out) -> None   (MinHasher.nested_signatures)
 *   shingle_hashes(tokens, k) -> bytearray of uint64 (one per window of k tokens)
 *   segment_unique(values, ends) -> (bytearray of uint64, bytearray of int64)   (shingles.segment_unique)
 *
 * hashes32: uint32 buffer of shingle hashes; a, b: uint32 permutation parameters (num_perm each);
 * out: writable uint32 buffer of num_perm, filled with min over h of (a * fmix32(h) + b) mod 2^32.
 * numpy computes the same through a (rows x num_perm) temporary; here the inner loop over the
 * permutations is one vector multiply-add-min, compiled for AVX2 where the CPU has it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

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
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t acc = 0;
        for (Py_ssize_t j = 0; j < k; j++) acc = acc * 0x9E3779B97F4A7C15ULL + t[i + j];
        acc ^= acc >> 33;
        acc *= 0xFF51AFD7ED558CCDULL;
        acc ^= acc >> 33;
        acc *= 0xC4CEB9FE1A85EC53ULL;
        o[i] = acc ^ (acc >> 33);
    }
    PyBuffer_Release(&tok);
    return out;
}

/* shingles.segment_unique: each run of values (ends[i]: where run i ends) sorted, repeats dropped. */
static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

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
        qsort(v + lo, hi - lo, 8, cmp_u64);
        for (Py_ssize_t i = lo; i < hi; i++)
            if (i == lo || v[i] != v[i - 1]) v[w++] = v[i];
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

static PyMethodDef methods[] = {
    {"signature", signature, METH_VARARGS, "MinHash (affine32) of uint32 hashes into out."},
    {"nested_signatures", nested_signatures, METH_VARARGS, "One MinHash per row of nested fragments, into out."},
    {"shingle_hashes", shingle_hashes, METH_VARARGS, "Hash of every window of k uint64 token hashes."},
    {"segment_unique", segment_unique, METH_VARARGS, "Each run of uint64 values sorted, repeats dropped."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "signatures._native", NULL, -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
