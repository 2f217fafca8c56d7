/* gather and scatter_add along one dim (ops/movement.py) in C, for a (outer, A, inner) input and
   an (outer, K, inner) index and source, contiguous and row-major. A position out of [0, A) stops the
   kernel, which returns 1 (ops/movement.py then names the position). A row is one outer index, whose reads and writes stay in its own slice, so the thread
   pool may run chunks of rows at once. scatter_add adds the sources in their own order, as numpy's
   np.add.at does: the same bits. Sizes come in `g`: outer, A, K, inner. */
#include <stdint.h>

/* out[o, k, i] = a[o, index[o, k, i], i] */
#define G_GATHER(suffix, T) \
int g_gather_##suffix(const void* a_, const void* index_, void* out_, const void* g_, int64_t start, int64_t stop) { \
    const T* a = a_; const int64_t* index = index_; T* out = out_; const int64_t* g = g_; \
    const int64_t A = g[1], K = g[2], inner = g[3]; \
    for (int64_t o = start; o < stop; o++) { \
        const T* from = a + o * A * inner; \
        const int64_t* at = index + o * K * inner; \
        T* to = out + o * K * inner; \
        for (int64_t e = 0; e < K * inner; e++) \
            if ((uint64_t)at[e] >= (uint64_t)A) return 1; \
        if (inner == 1) for (int64_t e = 0; e < K; e++) to[e] = from[at[e]]; \
        else for (int64_t e = 0; e < K * inner; e++) to[e] = from[at[e] * inner + e % inner]; \
    } \
    return 0; \
}

/* out[o, index[o, k, i], i] += src[o, k, i], in src's order; out holds the input already */
#define G_SCATTER_ADD(suffix, T) \
int g_scatter_add_##suffix(void* out_, const void* index_, const void* src_, const void* g_, int64_t start, int64_t stop) { \
    T* out = out_; const int64_t* index = index_; const T* src = src_; const int64_t* g = g_; \
    const int64_t A = g[1], K = g[2], inner = g[3]; \
    for (int64_t o = start; o < stop; o++) { \
        T* to = out + o * A * inner; \
        const int64_t* at = index + o * K * inner; \
        const T* from = src + o * K * inner; \
        for (int64_t e = 0; e < K * inner; e++) \
            if ((uint64_t)at[e] >= (uint64_t)A) return 1; \
        if (inner == 1) for (int64_t e = 0; e < K; e++) to[at[e]] += from[e]; \
        else for (int64_t e = 0; e < K * inner; e++) to[at[e] * inner + e % inner] += from[e]; \
    } \
    return 0; \
}

/* out[index[k], :] += src[k, :] for whole rows of `inner` elements (an embedding's gradient), in
   index order; sizes in `g`: A, K, inner. Two of the K rows may add into one row of out, so the rows
   [start, stop) of src are one chunk: the caller runs it on one thread. */
#define G_ADD_ROWS(suffix, T) \
int g_add_rows_##suffix(void* out_, const void* index_, const void* src_, const void* g_, int64_t start, int64_t stop) { \
    T* out = out_; const int64_t* index = index_; const T* src = src_; const int64_t* g = g_; \
    const int64_t A = g[0], inner = g[2]; \
    for (int64_t k = start; k < stop; k++) { \
        if ((uint64_t)index[k] >= (uint64_t)A) return 1; \
        T* to = out + index[k] * inner; \
        const T* from = src + k * inner; \
        _Pragma("omp simd") \
        for (int64_t i = 0; i < inner; i++) to[i] += from[i]; \
    } \
    return 0; \
}

/* the thread pool's entries (templates/c_pool.c.j2): the arguments from an array */
#define G_CHUNK4(name) \
int name##_chunk(void* const* a, int64_t chunk, int64_t start, int64_t stop) { return name(a[0], a[1], a[2], a[3], start, stop); }

#define G_KERNELS(suffix, T) \
    G_GATHER(suffix, T) G_CHUNK4(g_gather_##suffix) \
    G_SCATTER_ADD(suffix, T) G_CHUNK4(g_scatter_add_##suffix) \
    G_ADD_ROWS(suffix, T) G_CHUNK4(g_add_rows_##suffix)

G_KERNELS(f32, float)
G_KERNELS(f64, double)
