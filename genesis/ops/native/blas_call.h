/* blas_call.h: the BLAS's row-major cblas gemm, called through its address (runtime/blas.py finds
   numpy's OpenBLAS and says whether its integers are 64-bit). Sources that call it start with this
   text (ops/native_kernels.py puts it first). g_gemm_f32/_f64(gemm, ilp64, ...) compute
   c = op(a) op(b) + beta c, with op the transpose where ta/tb is set, on the calling thread. */
#include <stdint.h>

enum { G_ROW_MAJOR = 101, G_NO_TRANS = 111, G_TRANS = 112 };

typedef void (*g_sgemm32)(int, int, int, int32_t, int32_t, int32_t, float, const float*, int32_t, const float*,
                          int32_t, float, float*, int32_t);
typedef void (*g_sgemm64)(int, int, int, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                          int64_t, float, float*, int64_t);
typedef void (*g_dgemm32)(int, int, int, int32_t, int32_t, int32_t, double, const double*, int32_t, const double*,
                          int32_t, double, double*, int32_t);
typedef void (*g_dgemm64)(int, int, int, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                          int64_t, double, double*, int64_t);

#define G_GEMM_CALL(suffix, T, gemm32, gemm64) \
static inline void g_gemm_call_##suffix(int64_t gemm, int64_t ilp64, int ta, int tb, int64_t m, int64_t n, int64_t k, \
                                        const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) { \
    const int at = ta ? G_TRANS : G_NO_TRANS, bt = tb ? G_TRANS : G_NO_TRANS; \
    if (ilp64) \
        ((gemm64)(intptr_t)gemm)(G_ROW_MAJOR, at, bt, m, n, k, 1, a, lda, b, ldb, beta, c, ldc); \
    else \
        ((gemm32)(intptr_t)gemm)(G_ROW_MAJOR, at, bt, (int32_t)m, (int32_t)n, (int32_t)k, 1, a, (int32_t)lda, b, \
                                 (int32_t)ldb, beta, c, (int32_t)ldc); \
}

G_GEMM_CALL(f32, float, g_sgemm32, g_sgemm64)
G_GEMM_CALL(f64, double, g_dgemm32, g_dgemm64)
