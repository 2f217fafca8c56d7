/* Matrix products as BLAS calls on genesis's C thread pool (ops/gemm.py).

   A product (or a stack of them) is cut into items: whole matrices of the stack, or blocks of one
   matrix's output columns (or rows). Each item is one single-threaded call of the BLAS's row-major
   gemm, and the pool's threads take items as they come free. The BLAS runs with one thread of its
   own: its threads, which poll for the next product for about 0.1 s after each one, would hold a
   core that the kernels after the product need (a C kernel then ran at the speed of one core).

   `g` holds, as int64: the gemm's address, whether its integers are 64-bit, transpose flags of a
   and b, M, N, K, lda, ldb, ldc, blocks per matrix, whether the blocks cut rows (else columns),
   the block size, the stack's length, the pool's g_pool_run (0: none), the number of chunks the
   items go in, then the element offsets of each matrix of a, b and c. g_gemm_*_run hands the
   chunks to the pool itself: one foreign call per product. The gemm call is blas_call.h's. */
#include <stdint.h>

typedef int (*g_chunk_entry)(void* const* args, int64_t chunk, int64_t start, int64_t stop);
typedef int (*g_pool_run)(g_chunk_entry entry, void* const* args, const int64_t* bounds, int64_t count, int64_t threads);

#define G_GEMM(suffix, T) \
int g_gemm_##suffix(const void* a_, const void* b_, void* c_, const void* g_, int64_t start, int64_t stop) { \
    const int64_t* g = g_; \
    const int ilp64 = (int)g[1], ta = (int)g[2], tb = (int)g[3]; \
    const int64_t M = g[4], N = g[5], K = g[6], lda = g[7], ldb = g[8], ldc = g[9]; \
    const int64_t blocks = g[10], cut_rows = g[11], size = g[12], stack = g[13]; \
    const int64_t *a_at = g + 16, *b_at = a_at + stack, *c_at = b_at + stack; \
    for (int64_t item = start; item < stop; item++) { \
        const int64_t matrix = item / blocks, first = (item % blocks) * size; \
        const T* a = (const T*)a_ + a_at[matrix]; \
        const T* b = (const T*)b_ + b_at[matrix]; \
        T* c = (T*)c_ + c_at[matrix]; \
        int64_t m = M, n = N; \
        if (cut_rows) { \
            m = M - first < size ? M - first : size; \
            a += ta ? first : first * lda; \
            c += first * ldc; \
        } else { \
            n = N - first < size ? N - first : size; \
            b += tb ? first * ldb : first; \
            c += first; \
        } \
        g_gemm_call_##suffix(g[0], ilp64, ta, tb, m, n, K, a, lda, b, ldb, 0, c, ldc); \
    } \
    return 0; \
} \
int g_gemm_##suffix##_chunk(void* const* a, int64_t chunk, int64_t start, int64_t stop) { \
    (void)chunk; \
    return g_gemm_##suffix(a[0], a[1], a[2], a[3], start, stop); \
} \
int g_gemm_run_##suffix(const void* a, const void* b, void* c, const void* g_) { \
    const int64_t* g = g_; \
    const int64_t items = g[10] * g[13], chunks = g[15]; \
    if (chunks <= 1 || g[14] == 0) \
        return g_gemm_##suffix(a, b, c, g_, 0, items); \
    void* args[4] = {(void*)a, (void*)b, c, (void*)g_}; \
    int64_t bounds[chunks + 1]; \
    for (int64_t i = 0; i <= chunks; i++) \
        bounds[i] = items * i / chunks; \
    return ((g_pool_run)(intptr_t)g[14])(g_gemm_##suffix##_chunk, args, bounds, chunks, chunks); \
}

G_GEMM(f32, float)
G_GEMM(f64, double)
