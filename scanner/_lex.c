/* Compiled twin of scanner.parse._lex + signatures.shingles.token_hashes.
 *
 * Lexing and hashing every token was most of the Python-side cost of fingerprinting (a regular
 * expression, a classification per token, a dict lookup per token to hash it). This module does
 * the same in one pass over the bytes and returns the token hashes directly:
 *
 *   lex(data: bytes, docstrings: list[tuple[int, int]])
 *     -> (abstract: bytearray of uint64, concrete: bytearray of uint64, lines: bytearray of int32,
 *         comments: list[tuple[int, str]])
 *   anchors(data: bytes) -> list[int]: offsets of the tokens def, class, import, from
 *   outline(data: bytes) -> (bytes, bytes of int64 pairs): parse.outline_source
 *
 * It must give exactly what the Python path gives (tests/test_speedups.py compares them on every
 * file of a real package and on generated and random inputs), so each rule below names the part
 * of parse._TOKEN or parse._lex it mirrors. Token hashes are XXH64 (seed 0) of the token's bytes,
 * as xxhash.xxh64_intdigest computes them; the implementation follows the published XXH64
 * specification.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- XXH64 -------------------------------------------------------------------------------- */

static const uint64_t P1 = 0x9E3779B185EBCA87ULL, P2 = 0xC2B2AE3D27D4EB4FULL,
                      P3 = 0x165667B19E3779F9ULL, P4 = 0x85EBCA77C2B2AE63ULL,
                      P5 = 0x27D4EB2F165667C5ULL;

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t read64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint32_t read32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static inline uint64_t xxh_round(uint64_t acc, uint64_t input) {
    acc += input * P2;
    acc = rotl64(acc, 31);
    return acc * P1;
}

static inline uint64_t xxh_merge(uint64_t acc, uint64_t val) {
    acc ^= xxh_round(0, val);
    return acc * P1 + P4;
}

static uint64_t xxh64(const unsigned char *p, size_t len) {
    const unsigned char *end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = P1 + P2, v2 = P2, v3 = 0, v4 = (uint64_t)0 - P1;
        const unsigned char *limit = end - 32;
        do {
            v1 = xxh_round(v1, read64(p));
            v2 = xxh_round(v2, read64(p + 8));
            v3 = xxh_round(v3, read64(p + 16));
            v4 = xxh_round(v4, read64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = xxh_merge(h, v1);
        h = xxh_merge(h, v2);
        h = xxh_merge(h, v3);
        h = xxh_merge(h, v4);
    } else {
        h = P5;
    }
    h += (uint64_t)len;
    while (p + 8 <= end) {
        h ^= xxh_round(0, read64(p));
        h = rotl64(h, 27) * P1 + P4;
        p += 8;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)read32(p) * P1;
        h = rotl64(h, 23) * P2 + P3;
        p += 4;
    }
    while (p < end) {
        h ^= (*p) * P5;
        h = rotl64(h, 11) * P1;
        p++;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

/* ---- the lexer: parse._TOKEN, alternative by alternative ---------------------------------- */

enum kind { K_OP, K_NL, K_SKIP, K_STR, K_NAME, K_NUM, K_COMMENT };

#define MAX_LITERAL 200 /* parse._MAX_LITERAL */

static inline int is_name_start(unsigned char c) {
    return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c >= 0x80;
}
static inline int is_name_char(unsigned char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline int is_digit_(unsigned char c) { return is_digit(c) || c == '_'; }
static inline int is_hex_(unsigned char c) {
    return is_digit_(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static inline int is_prefix(unsigned char c) { return c != 0 && strchr("rRbBuUfFtT", c) != NULL; }

/* Operators, in the regex's order: the first alternative that matches wins. */
static Py_ssize_t op_len(const unsigned char *d, Py_ssize_t n, Py_ssize_t p) {
    unsigned char c = d[p], c1 = p + 1 < n ? d[p + 1] : 0, c2 = p + 2 < n ? d[p + 2] : 0;
    if (c2 == '=' && ((c == '*' && c1 == '*') || (c == '/' && c1 == '/') || (c == '>' && c1 == '>') ||
                      (c == '<' && c1 == '<')))
        return 3;
    if (c == '.' && c1 == '.' && c2 == '.') return 3;
    if ((c == '-' && c1 == '>') || (c == ':' && c1 == '=')) return 2;
    if (c1 == '=' && c != 0 && strchr("-+*/%&|^@<>=!", c)) return 2;
    if ((c == '*' && c1 == '*') || (c == '/' && c1 == '/') || (c == '<' && c1 == '<') || (c == '>' && c1 == '>'))
        return 2;
    if (c != 0 && strchr("-+*/%&|^~<>()[]{},:;=@", c)) return 1;
    if (c == '.' && !is_digit(c1)) return 1;
    return 0;
}

/* A string body from q (just after the opening quote(s)); returns the end of the token or -1. */
static Py_ssize_t triple_end(const unsigned char *d, Py_ssize_t n, Py_ssize_t q, unsigned char quote) {
    Py_ssize_t p = q;
    while (p < n) {
        unsigned char c = d[p];
        if (c == '\\') {
            if (p + 1 >= n) break;
            p += 2;
        } else if (c == quote) {
            if (p + 2 < n && d[p + 1] == quote && d[p + 2] == quote) break; /* "(?!"") */
            p++;
        } else {
            p++;
        }
    }
    if (p + 2 < n && d[p] == quote && d[p + 1] == quote && d[p + 2] == quote) return p + 3;
    return -1;
}

static Py_ssize_t single_end(const unsigned char *d, Py_ssize_t n, Py_ssize_t q, unsigned char quote) {
    Py_ssize_t p = q;
    while (p < n) {
        unsigned char c = d[p];
        if (c == quote || c == '\r' || c == '\n') break;
        if (c == '\\') {
            if (p + 1 >= n) break;
            p += 2;
        } else {
            p++;
        }
    }
    if (p < n && d[p] == quote) return p + 1;
    return -1;
}

static Py_ssize_t string_len(const unsigned char *d, Py_ssize_t n, Py_ssize_t p) {
    /* [rRbBuUfFtT]{1,2} then a quote: at most one prefix length can be followed by a quote. */
    Py_ssize_t q = p;
    if (is_prefix(d[p])) {
        if (p + 1 < n && (d[p + 1] == '"' || d[p + 1] == '\'')) q = p + 1;
        else if (p + 2 < n && is_prefix(d[p + 1]) && (d[p + 2] == '"' || d[p + 2] == '\'')) q = p + 2;
        else return 0;
    }
    unsigned char quote = d[q];
    if (quote != '"' && quote != '\'') return 0;
    if (q + 2 < n && d[q + 1] == quote && d[q + 2] == quote) {
        Py_ssize_t e = triple_end(d, n, q + 3, quote);
        if (e >= 0) return e - p;
    }
    Py_ssize_t e = single_end(d, n, q + 1, quote);
    return e >= 0 ? e - p : 0;
}

static Py_ssize_t number_len(const unsigned char *d, Py_ssize_t n, Py_ssize_t p) {
    Py_ssize_t e;
    if (d[p] == '0' && p + 2 < n && strchr("xXoObB", d[p + 1]) && d[p + 1] != 0 && is_hex_(d[p + 2])) {
        e = p + 3;
        while (e < n && is_hex_(d[e])) e++;
        return e - p;
    }
    if (is_digit(d[p])) {
        e = p + 1;
        while (e < n && is_digit_(d[e])) e++;
        if (e < n && d[e] == '.') {
            e++;
            while (e < n && is_digit_(d[e])) e++;
        }
    } else if (d[p] == '.' && p + 1 < n && is_digit(d[p + 1])) {
        e = p + 2;
        while (e < n && is_digit_(d[e])) e++;
    } else {
        return 0;
    }
    if (e < n && (d[e] == 'e' || d[e] == 'E')) {
        Py_ssize_t t = e + 1;
        if (t < n && (d[t] == '+' || d[t] == '-')) t++;
        if (t < n && is_digit_(d[t])) {
            while (t < n && is_digit_(d[t])) t++;
            e = t;
        }
    }
    if (e < n && (d[e] == 'j' || d[e] == 'J')) e++;
    return e - p;
}

/* One token at p (not whitespace): its length and kind. */
static Py_ssize_t token_at(const unsigned char *d, Py_ssize_t n, Py_ssize_t p, enum kind *kind) {
    unsigned char c = d[p];
    Py_ssize_t len = op_len(d, n, p);
    if (len) {
        *kind = K_OP;
        return len;
    }
    if (c == '\n') {
        *kind = K_NL;
        return 1;
    }
    if (c == '\r') {
        if (p + 1 < n && d[p + 1] == '\n') {
            *kind = K_NL;
            return 2;
        }
        *kind = K_SKIP;
        return 1;
    }
    if (c == '\\') {
        if (p + 1 < n && d[p + 1] == '\n') {
            *kind = K_NL;
            return 2;
        }
        if (p + 2 < n && d[p + 1] == '\r' && d[p + 2] == '\n') {
            *kind = K_NL;
            return 3;
        }
    }
    len = string_len(d, n, p);
    if (len) {
        *kind = K_STR;
        return len;
    }
    if (is_name_start(c)) {
        Py_ssize_t e = p + 1;
        while (e < n && is_name_char(d[e])) e++;
        *kind = K_NAME;
        return e - p;
    }
    len = number_len(d, n, p);
    if (len) {
        *kind = K_NUM;
        return len;
    }
    if (c == '#') {
        Py_ssize_t e = p + 1;
        while (e < n && d[e] != '\r' && d[e] != '\n') e++;
        *kind = K_COMMENT;
        return e - p;
    }
    /* [^ \t\f\r\n]: one byte; parse._classify makes a lone quote a string. */
    *kind = (c == '"' || c == '\'') ? K_STR : K_OP;
    return 1;
}

/* keyword.kwlist of the Python this was built for; parse.py checks it against its own. */
static const char *KEYWORDS[] = {
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in",
    "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
    NULL};

static int is_keyword(const unsigned char *p, Py_ssize_t len) {
    if (len < 2 || len > 8) return 0;
    for (const char **k = KEYWORDS; *k; k++)
        if ((Py_ssize_t)strlen(*k) == len && memcmp(*k, p, len) == 0) return 1;
    return 0;
}

/* ---- growable output ---------------------------------------------------------------------- */

typedef struct {
    uint64_t *abs, *con;
    int32_t *line;
    unsigned char *is_str; /* kept token is a string */
    Py_ssize_t len, cap;
} Out;

static int out_push(Out *o, uint64_t a, uint64_t c, int32_t line, unsigned char is_str) {
    if (o->len == o->cap) {
        Py_ssize_t cap = o->cap ? o->cap * 2 : 1024;
        uint64_t *abs = realloc(o->abs, cap * sizeof(uint64_t));
        if (!abs) return -1;
        o->abs = abs;
        uint64_t *con = realloc(o->con, cap * sizeof(uint64_t));
        if (!con) return -1;
        o->con = con;
        int32_t *line_ = realloc(o->line, cap * sizeof(int32_t));
        if (!line_) return -1;
        o->line = line_;
        unsigned char *s = realloc(o->is_str, cap);
        if (!s) return -1;
        o->is_str = s;
        o->cap = cap;
    }
    o->abs[o->len] = a;
    o->con[o->len] = c;
    o->line[o->len] = line;
    o->is_str[o->len] = is_str;
    o->len++;
    return 0;
}

static void out_free(Out *o) {
    free(o->abs);
    free(o->con);
    free(o->line);
    free(o->is_str);
}

static uint64_t H_ID, H_NUM, H_STR;

static PyObject *lex(PyObject *self, PyObject *args) {
    Py_buffer buf;
    PyObject *docstrings;
    if (!PyArg_ParseTuple(args, "y*O", &buf, &docstrings)) return NULL;
    const unsigned char *d = buf.buf;
    Py_ssize_t n = buf.len;
    Out o = {0};
    PyObject *comments = PyList_New(0), *result = NULL;
    unsigned char *doc_line = NULL;
    if (!comments) goto done;

    int32_t line = 1;
    Py_ssize_t p = 0;
    while (p < n) {
        while (p < n && (d[p] == ' ' || d[p] == '\t' || d[p] == '\f')) p++;
        if (p >= n) break;
        enum kind kind;
        Py_ssize_t len = token_at(d, n, p, &kind);
        const unsigned char *tok = d + p;
        p += len;
        switch (kind) {
        case K_NL:
            line++;
            continue;
        case K_SKIP:
            continue;
        case K_COMMENT: {
            PyObject *text = PyUnicode_DecodeUTF8((const char *)tok, len, "replace");
            PyObject *item = text ? Py_BuildValue("(iN)", line, text) : NULL;
            if (!item || PyList_Append(comments, item) < 0) {
                Py_XDECREF(item);
                goto done;
            }
            Py_DECREF(item);
            continue;
        }
        case K_STR: {
            uint64_t c = xxh64(tok, len > MAX_LITERAL ? MAX_LITERAL : len);
            if (out_push(&o, H_STR, c, line, 1) < 0) goto nomem;
            for (Py_ssize_t i = 0; i < len; i++)
                if (tok[i] == '\n') line++;
            continue;
        }
        case K_NUM:
            if (out_push(&o, H_NUM, xxh64(tok, len), line, 0) < 0) goto nomem;
            continue;
        case K_NAME: {
            uint64_t c = xxh64(tok, len);
            if (out_push(&o, is_keyword(tok, len) ? c : H_ID, c, line, 0) < 0) goto nomem;
            continue;
        }
        case K_OP: {
            uint64_t c = xxh64(tok, len);
            if (out_push(&o, c, c, line, 0) < 0) goto nomem;
            continue;
        }
        }
    }

    /* Strings: adjacent literals are one (the first is kept); docstrings leave the channels. */
    Py_ssize_t ndoc = PySequence_Size(docstrings);
    if (ndoc < 0) goto done;
    int32_t max_line = line;
    if (ndoc > 0) {
        doc_line = calloc((size_t)max_line + 2, 1);
        if (!doc_line) goto nomem;
        for (Py_ssize_t i = 0; i < ndoc; i++) {
            PyObject *span = PySequence_GetItem(docstrings, i);
            long first, last;
            if (!span || !PyArg_ParseTuple(span, "ll", &first, &last)) {
                Py_XDECREF(span);
                goto done;
            }
            Py_DECREF(span);
            if (first < 1) first = 1;
            if (last > max_line) last = max_line;
            for (long l = first; l <= last; l++) doc_line[l] = 1;
        }
    }
    Py_ssize_t w = 0;
    for (Py_ssize_t r = 0; r < o.len; r++) {
        if (o.is_str[r]) {
            if (r > 0 && o.is_str[r - 1]) continue;
            if (doc_line && doc_line[o.line[r]]) continue;
        }
        o.abs[w] = o.abs[r];
        o.con[w] = o.con[r];
        o.line[w] = o.line[r];
        w++;
    }
    result = Py_BuildValue("(NNNO)", PyByteArray_FromStringAndSize((const char *)o.abs, w * 8),
                           PyByteArray_FromStringAndSize((const char *)o.con, w * 8),
                           PyByteArray_FromStringAndSize((const char *)o.line, w * 4), comments);
    goto done;
nomem:
    PyErr_NoMemory();
done:
    free(doc_line);
    out_free(&o);
    Py_XDECREF(comments);
    PyBuffer_Release(&buf);
    return result;
}

/* Byte offsets of the tokens def, class, import and from (the lexer's tokens: not inside strings
 * or comments), in order: where parse.py asks tree-sitter for definitions and imports. */
static PyObject *anchors(PyObject *self, PyObject *args) {
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*", &buf)) return NULL;
    const unsigned char *d = buf.buf;
    Py_ssize_t n = buf.len, p = 0;
    PyObject *out = PyList_New(0);
    while (out && p < n) {
        while (p < n && (d[p] == ' ' || d[p] == '\t' || d[p] == '\f')) p++;
        if (p >= n) break;
        enum kind kind;
        Py_ssize_t len = token_at(d, n, p, &kind);
        if (kind == K_NAME && len >= 3 && len <= 6 &&
            ((len == 3 && memcmp(d + p, "def", 3) == 0) || (len == 5 && memcmp(d + p, "class", 5) == 0) ||
             (len == 6 && memcmp(d + p, "import", 6) == 0) || (len == 4 && memcmp(d + p, "from", 4) == 0))) {
            PyObject *at = PyLong_FromSsize_t(p);
            if (!at || PyList_Append(out, at) < 0) Py_CLEAR(out);
            Py_XDECREF(at);
        }
        p += len;
    }
    PyBuffer_Release(&buf);
    return out;
}

/* ---- the outline: parse.outline_source ---------------------------------------------------- */

typedef struct {
    unsigned char *out;
    Py_ssize_t w, copied; /* bytes written; source bytes consumed */
    int64_t *map;         /* (outline offset after a placeholder, source offset - outline offset) pairs */
    Py_ssize_t nmap, capmap;
} Outline;

/* Source bytes [a, b) become 'x' (right after the bracket or quote: tree-sitter-python misreads
 * some tokens at column 0 inside brackets), their newlines, and as many spaces as the last line's
 * bytes (the closing bracket or quote keeps its column). Not when that is no shorter. */
static int outline_cut(Outline *o, const unsigned char *d, Py_ssize_t a, Py_ssize_t b) {
    Py_ssize_t nl = 0, last_nl = -1;
    for (Py_ssize_t i = a; i < b; i++)
        if (d[i] == '\n') {
            nl++;
            last_nl = i;
        }
    Py_ssize_t tail = last_nl >= 0 ? b - last_nl - 1 : 0;
    if (1 + nl + tail >= b - a) return 0;
    memcpy(o->out + o->w, d + o->copied, a - o->copied);
    o->w += a - o->copied;
    o->out[o->w++] = 'x';
    memset(o->out + o->w, '\n', nl);
    o->w += nl;
    memset(o->out + o->w, ' ', tail);
    o->w += tail;
    o->copied = b;
    if (o->nmap == o->capmap) {
        Py_ssize_t cap = o->capmap ? o->capmap * 2 : 64;
        int64_t *m = realloc(o->map, cap * 2 * sizeof(int64_t));
        if (!m) return -1;
        o->map = m;
        o->capmap = cap;
    }
    o->map[2 * o->nmap] = o->w;
    o->map[2 * o->nmap + 1] = o->copied - o->w;
    o->nmap++;
    return 0;
}

static PyObject *outline(PyObject *self, PyObject *args) {
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*", &buf)) return NULL;
    const unsigned char *d = buf.buf;
    Py_ssize_t n = buf.len, p = 0, open_end = 0, inner = 0;
    int depth = 0;
    PyObject *result = NULL;
    /* The outline is never longer than the source: a cut is made only where it is shorter. */
    Outline o = {malloc(n ? n : 1), 0, 0, NULL, 0, 0};
    if (!o.out) goto nomem;
    while (p < n) {
        while (p < n && (d[p] == ' ' || d[p] == '\t' || d[p] == '\f')) p++;
        if (p >= n) break;
        enum kind kind;
        Py_ssize_t len = token_at(d, n, p, &kind);
        unsigned char c = d[p];
        if (kind == K_OP && len == 1 && (c == '(' || c == '[' || c == '{')) {
            if (depth == 0) {
                open_end = p + 1;
                inner = 0;
            } else {
                inner++;
            }
            depth++;
        } else if (kind == K_OP && len == 1 && (c == ')' || c == ']' || c == '}')) {
            if (depth == 1 && inner > 0 && outline_cut(&o, d, open_end, p) < 0) goto nomem;
            if (depth > 1) inner++;
            if (depth > 0) depth--;
        } else if (depth > 0) {
            if (kind != K_NL) inner++;
        } else if (kind == K_STR && len >= 2) {
            Py_ssize_t q = p;
            int formatted = 0;
            while (d[q] != '"' && d[q] != '\'') {
                if (strchr("fFtT", d[q])) formatted = 1;
                q++;
            }
            Py_ssize_t body = q + 1, end = p + len - 1;
            if (p + len - q >= 6 && d[q + 1] == d[q] && d[q + 2] == d[q]) {
                body = q + 3;
                end = p + len - 3;
            }
            int continued = 0; /* a one-quote string continued with a backslash: its newline stays escaped */
            if (body == q + 1)
                for (Py_ssize_t i = body; i < end; i++)
                    if (d[i] == '\n' || d[i] == '\r') continued = 1;
            if (!formatted && !continued && end > body && outline_cut(&o, d, body, end) < 0) goto nomem;
        }
        p += len;
    }
    memcpy(o.out + o.w, d + o.copied, n - o.copied);
    o.w += n - o.copied;
    result = Py_BuildValue("(NN)", PyBytes_FromStringAndSize((const char *)o.out, o.w),
                           PyBytes_FromStringAndSize((const char *)o.map, o.nmap * 2 * sizeof(int64_t)));
    goto done;
nomem:
    PyErr_NoMemory();
done:
    free(o.out);
    free(o.map);
    PyBuffer_Release(&buf);
    return result;
}

static PyObject *py_xxh64(PyObject *self, PyObject *args) {
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*", &buf)) return NULL;
    uint64_t h = xxh64(buf.buf, buf.len);
    PyBuffer_Release(&buf);
    return PyLong_FromUnsignedLongLong(h);
}

static PyMethodDef methods[] = {
    {"lex", lex, METH_VARARGS, "Token hashes (abstract, concrete), lines and comments of Python source bytes."},
    {"anchors", anchors, METH_VARARGS, "Byte offsets of the tokens def, class, import and from."},
    {"outline", outline, METH_VARARGS, "The outline tree-sitter parses for definitions: (bytes, offset map)."},
    {"xxh64", py_xxh64, METH_VARARGS, "XXH64 (seed 0) of bytes, as the lexer hashes tokens."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "scanner._lex", NULL, -1, methods};

PyMODINIT_FUNC PyInit__lex(void) {
    H_ID = xxh64((const unsigned char *)"ID", 2);
    H_NUM = xxh64((const unsigned char *)"NUM", 3);
    H_STR = xxh64((const unsigned char *)"STR", 3);
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    PyObject *kw = PyTuple_New(sizeof(KEYWORDS) / sizeof(*KEYWORDS) - 1);
    if (!kw) return NULL;
    for (Py_ssize_t i = 0; KEYWORDS[i]; i++) PyTuple_SET_ITEM(kw, i, PyUnicode_FromString(KEYWORDS[i]));
    if (PyModule_AddObject(m, "KEYWORDS", kw) < 0) return NULL;
    return m;
}
