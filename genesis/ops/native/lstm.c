/* An LSTM layer's time loop in C, forward and backward (ops/recurrent.py).

   The batch's sequences do not interact, so a chunk is a block of sequences [start, stop) that
   runs the whole time loop on its own, one thread, no synchronisation between steps. Per step it
   makes one gemm call for the hidden state's product (blas_call.h, beta = 1 onto the step's
   input projection) and one loop over the gates.

   Sizes come in `g` as int64: T, N, H, reverse, the gemm's address, whether its integers are
   64-bit. The forward's result is one flat array of three parts: the hidden states (T, N, H), the
   cell states (T, N, H) and the gates after their activations (T, N, 4H, PyTorch's order i, f, g,
   o), which the backward reads. The backward's result is the gradient of the gates before their
   activations (T, N, 4H: the input projection's, and the biases' summed over rows), then those
   of h0 and c0 (N, H each). With `reverse` the steps run from T - 1 down to 0. */
#include <stdlib.h>
#include <string.h>
#include <math.h>

#ifdef G_LIBMVEC
/* glibc's libmvec has SIMD versions: declared so, the gate loops vectorise */
__attribute__((simd("notinbranch"))) float tanhf(float);
__attribute__((simd("notinbranch"))) double tanh(double);
__attribute__((simd("notinbranch"))) double exp(double);
#endif

/* the sigmoid op's C snippet (ops/elementwise.py), so a gate rounds as a generated kernel's sigmoid */
#define G_SIGMOID(x) (1 / (1 + g_exp(-(x))))

#define G_LSTM(suffix, T, TANH) \
/* out = (hs | cs | gates) of the sequences [start, stop), from pre = W_ih x + b_ih + b_hh (T, N, 4H) */ \
int g_lstm_forward_##suffix(const void* pre_, const void* h0_, const void* c0_, const void* w_, void* out_, \
                            const void* g_, int64_t start, int64_t stop) { \
    const T *pre = pre_, *h0 = h0_, *c0 = c0_, *w = w_; \
    T* out = out_; \
    const int64_t* g = g_; \
    const int64_t steps = g[0], N = g[1], H = g[2], reverse = g[3], G = 4 * H, rows = stop - start; \
    T *hs = out, *cs = out + steps * N * H, *gates = out + 2 * steps * N * H; \
    /* W_hh^T (H, 4H): gemm multiplies a transposed right operand at half speed for a few rows */ \
    T* wt = malloc(sizeof(T) * H * G); \
    if (wt == NULL) return 1; \
    for (int64_t j0 = 0; j0 < G; j0 += 16) /* in 16 x 16 tiles: a whole column's strided stores took */ \
        for (int64_t k0 = 0; k0 < H; k0 += 16) /* 60% of the layer's own time */ \
            for (int64_t k = k0; k < (k0 + 16 < H ? k0 + 16 : H); k++) \
                for (int64_t j = j0; j < (j0 + 16 < G ? j0 + 16 : G); j++) wt[k * G + j] = w[j * H + k]; \
    for (int64_t s = 0; s < steps; s++) { \
        const int64_t t = reverse ? steps - 1 - s : s, before = reverse ? t + 1 : t - 1; \
        const T* h_prev = s == 0 ? h0 + start * H : hs + (before * N + start) * H; \
        const T* c_prev = s == 0 ? c0 + start * H : cs + (before * N + start) * H; \
        T* a = gates + (t * N + start) * G; \
        memcpy(a, pre + (t * N + start) * G, sizeof(T) * rows * G); \
        g_gemm_call_##suffix(g[4], g[5], 0, 0, rows, G, H, h_prev, H, wt, G, 1, a, G); \
        for (int64_t r = 0; r < rows; r++) { \
            T *ar = a + r * G, *h = hs + (t * N + start + r) * H, *c = cs + (t * N + start + r) * H; \
            const T* cp = c_prev + r * H; \
            _Pragma("omp simd") \
            for (int64_t j = 0; j < H; j++) { \
                const T i = G_SIGMOID(ar[j]), f = G_SIGMOID(ar[H + j]), n = TANH(ar[2 * H + j]); \
                const T o = G_SIGMOID(ar[3 * H + j]); \
                const T cell = f * cp[j] + i * n; \
                ar[j] = i; ar[H + j] = f; ar[2 * H + j] = n; ar[3 * H + j] = o; \
                c[j] = cell; \
                h[j] = o * TANH(cell); \
            } \
        } \
    } \
    free(wt); \
    return 0; \
} \
/* grads = (d pre | d h0 | d c0) from the gradient `dy` of the forward's result and that result */ \
int g_lstm_backward_##suffix(const void* dy_, const void* out_, const void* c0_, const void* w_, void* grads_, \
                             const void* g_, int64_t start, int64_t stop) { \
    const T *dy = dy_, *out = out_, *c0 = c0_, *w = w_; \
    T* grads = grads_; \
    const int64_t* g = g_; \
    const int64_t steps = g[0], N = g[1], H = g[2], reverse = g[3], G = 4 * H, rows = stop - start; \
    const int64_t cells_at = steps * N * H, gates_at = 2 * steps * N * H; \
    T* dh = calloc(2 * rows * H, sizeof(T)); /* the gradients flowing into the step before: h's, c's */ \
    if (dh == NULL) return 1; \
    T* dc = dh + rows * H; \
    for (int64_t s = steps - 1; s >= 0; s--) { \
        const int64_t t = reverse ? steps - 1 - s : s, before = reverse ? t + 1 : t - 1; \
        T* d = grads + (t * N + start) * G; \
        for (int64_t r = 0; r < rows; r++) { \
            const int64_t row = t * N + start + r; \
            const T *a = out + gates_at + row * G, *da = dy + gates_at + row * G; \
            const T *c = out + cells_at + row * H, *dh_out = dy + row * H, *dc_out = dy + cells_at + row * H; \
            const T* cp = s == 0 ? c0 + (start + r) * H : out + cells_at + (before * N + start + r) * H; \
            T *dr = d + r * G, *dhr = dh + r * H, *dcr = dc + r * H; \
            _Pragma("omp simd") \
            for (int64_t j = 0; j < H; j++) { \
                const T i = a[j], f = a[H + j], n = a[2 * H + j], o = a[3 * H + j], tc = TANH(c[j]); \
                const T dh_j = dh_out[j] + dhr[j]; \
                const T dc_j = dc_out[j] + dcr[j] + dh_j * o * (1 - tc * tc); \
                const T di = dc_j * n + da[j], df = dc_j * cp[j] + da[H + j]; \
                const T dn = dc_j * i + da[2 * H + j], d_o = dh_j * tc + da[3 * H + j]; \
                dr[j] = di * i * (1 - i); \
                dr[H + j] = df * f * (1 - f); \
                dr[2 * H + j] = dn * (1 - n * n); \
                dr[3 * H + j] = d_o * o * (1 - o); \
                dcr[j] = dc_j * f; \
            } \
        } \
        g_gemm_call_##suffix(g[4], g[5], 0, 0, rows, H, G, d, G, w, H, 0, dh, H); \
    } \
    T *dh0 = grads + steps * N * G, *dc0 = dh0 + N * H; \
    memcpy(dh0 + start * H, dh, sizeof(T) * rows * H); \
    memcpy(dc0 + start * H, dc, sizeof(T) * rows * H); \
    free(dh); \
    return 0; \
} \
int g_lstm_forward_##suffix##_chunk(void* const* a, int64_t chunk, int64_t start, int64_t stop) { \
    (void)chunk; \
    return g_lstm_forward_##suffix(a[0], a[1], a[2], a[3], a[4], a[5], start, stop); \
} \
int g_lstm_backward_##suffix##_chunk(void* const* a, int64_t chunk, int64_t start, int64_t stop) { \
    (void)chunk; \
    return g_lstm_backward_##suffix(a[0], a[1], a[2], a[3], a[4], a[5], start, stop); \
}

G_LSTM(f32, float, tanhf)
G_LSTM(f64, double, tanh)
