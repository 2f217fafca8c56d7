/* The sliding-window ops of ops/windows.py in C: im2col, col2im, max-pooling and convolution.

   Each kernel works on rows [start, stop) of its problem, a row being one (n, c) image plane: rows
   write disjoint parts of the output, so the thread pool may run chunks of rows at once. Sizes come in
   `g`, an int64 array the Python side fills (its layout is named in each kernel). Arrays are
   contiguous and row-major. Every value is summed in the order of the numpy kernels these replace,
   so either gives the same bits: col2im adds the window positions in window order into zeros. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* im2col's and col2im's g: N, C, H, W, kh, kw, sh, sw, dh, dw, Ho, Wo, batch_inside, top, left: the
   image is (H, W) and its windows see it padded with zeros, top rows above and left columns before */
#define G_WINDOW_SIZES(g) \
    const int64_t N = g[0], C = g[1], H = g[2], W = g[3], kh = g[4], kw = g[5], sh = g[6], sw = g[7]; \
    const int64_t dh = g[8], dw = g[9], Ho = g[10], Wo = g[11], inside = g[12], top = g[13], left = g[14];

/* Rows of a small image are a few dozen bytes: as loops of their own they cost less than calls of
   memcpy and memset, into which gcc would otherwise turn them (4x4 images: 3.4 GB/s with the calls) */
#define G_NO_LIBC_CALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))

/* the windows [*lo, *hi) of a row whose column wo reads image column first + wo * step, inside [0, W) */
static inline void g_inside(int64_t first, int64_t step, int64_t W, int64_t Wo, int64_t* lo, int64_t* hi) {
    int64_t a = first >= 0 ? 0 : (-first + step - 1) / step;
    int64_t b = W - first <= 0 ? 0 : (W - first + step - 1) / step;
    *lo = a < Wo ? a : Wo;
    *hi = b < *lo ? *lo : b < Wo ? b : Wo;
}

/* which Ho*Wo block of the columns holds window position k of plane (n, c), in either layout */
static inline int64_t g_columns_at(int64_t inside, int64_t N, int64_t C, int64_t kk, int64_t plane, int64_t k) {
    return inside ? ((plane % C * kk + k) * N + plane / C) : (plane * kk + k);
}

/* One image plane (H, W), padded with zeros by `top` rows and `left` columns as its windows read it,
   to its kh*kw rows of columns, for the band of output rows [ho0, ho1): row k (window position k)
   starts at columns + k * row_stride and holds (ho1 - ho0) * Wo values. The window geometry is
   G_WINDOW_SIZES's. */
#define G_PLANE_TO_ROWS(suffix, T) \
G_NO_LIBC_CALLS static void g_plane_to_rows_##suffix(const T* image, T* columns, int64_t row_stride, const int64_t* g, \
                                                     int64_t ho0, int64_t ho1) { \
    G_WINDOW_SIZES(g) \
    (void)N; (void)C; (void)inside; \
    for (int64_t k = 0; k < kh * kw; k++) { \
        const int64_t i = k / kw, j = k % kw, first = j * dw - left; \
        int64_t lo, hi; \
        g_inside(first, sw, W, Wo, &lo, &hi); \
        T* out = columns + k * row_stride; \
        for (int64_t ho = ho0; ho < ho1; ho++) { \
            const int64_t r = ho * sh + i * dh - top; \
            T* row = out + (ho - ho0) * Wo; \
            if (r < 0 || r >= H) { for (int64_t wo = 0; wo < Wo; wo++) row[wo] = 0; continue; } \
            const T* in = image + r * W + first; \
            for (int64_t wo = 0; wo < lo; wo++) row[wo] = 0; \
            if (sw == 1) for (int64_t wo = lo; wo < hi; wo++) row[wo] = in[wo]; \
            else for (int64_t wo = lo; wo < hi; wo++) row[wo] = in[wo * sw]; \
            for (int64_t wo = hi; wo < Wo; wo++) row[wo] = 0; \
        } \
    } \
}

/* The adjoint: kh*kw rows of columns (as above) for the band [ho0, ho1) added into an image plane;
   values of window positions in the padding are dropped. Added in window order, as numpy's col2im. */
#define G_ROWS_TO_PLANE(suffix, T) \
static void g_rows_to_plane_##suffix(const T* columns, int64_t row_stride, T* image, const int64_t* g, int64_t ho0, \
                                     int64_t ho1) { \
    G_WINDOW_SIZES(g) \
    (void)N; (void)C; (void)inside; (void)Ho; \
    for (int64_t k = 0; k < kh * kw; k++) { \
        const int64_t i = k / kw, j = k % kw, first = j * dw - left; \
        int64_t lo, hi; \
        g_inside(first, sw, W, Wo, &lo, &hi); \
        const T* in = columns + k * row_stride; \
        for (int64_t ho = ho0; ho < ho1; ho++) { \
            const int64_t r = ho * sh + i * dh - top; \
            if (r < 0 || r >= H) continue; \
            T* row = image + r * W; \
            const T* values = in + (ho - ho0) * Wo; \
            if (sw == 1) for (int64_t wo = lo; wo < hi; wo++) row[first + wo] += values[wo]; \
            else for (int64_t wo = lo; wo < hi; wo++) row[first + wo * sw] += values[wo]; \
        } \
    } \
}

/* the distance between window positions k and k + 1 of a plane's rows, in either layout */
static inline int64_t g_row_stride(int64_t inside, int64_t N, int64_t Ho, int64_t Wo) {
    return (inside ? N : 1) * Ho * Wo;
}

/* Plane (n, c) of x (N, C, H, W) to columns (N, C, kh*kw, Ho, Wo), or with batch_inside
   (C, kh*kw, N, Ho, Wo). */
#define G_IM2COL(suffix, T) \
int g_im2col_##suffix(const void* x_, void* columns_, const void* g_, int64_t start, int64_t stop) { \
    const T* x = x_; T* columns = columns_; const int64_t* g = g_; \
    G_WINDOW_SIZES(g) \
    for (int64_t plane = start; plane < stop; plane++) \
        g_plane_to_rows_##suffix(x + plane * H * W, columns + g_columns_at(inside, N, C, kh * kw, plane, 0) * Ho * Wo, \
                                 g_row_stride(inside, N, Ho, Wo), g, 0, Ho); \
    return 0; \
}

/* The columns added back into plane (n, c) of the image (N, C, H, W). */
#define G_COL2IM(suffix, T) \
int g_col2im_##suffix(const void* columns_, void* x_, const void* g_, int64_t start, int64_t stop) { \
    const T* columns = columns_; T* x = x_; const int64_t* g = g_; \
    G_WINDOW_SIZES(g) \
    for (int64_t plane = start; plane < stop; plane++) { \
        memset(x + plane * H * W, 0, H * W * sizeof(T)); \
        g_rows_to_plane_##suffix(columns + g_columns_at(inside, N, C, kh * kw, plane, 0) * Ho * Wo, \
                                 g_row_stride(inside, N, Ho, Wo), x + plane * H * W, g, 0, Ho); \
    } \
    return 0; \
}

/* g: H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo. For output row `ho` of windows over an image
   plane (H, W): each window's maximum (`best`) and its position in the H*W plane (`at`), as
   PyTorch's kernel picks it: the first maximum in window order, a NaN over any number (the last
   NaN), never the padding; a window of -inf only gives its first position inside the image. The
   row is done at once, one window position after another over all its windows, without branches:
   the loop over the windows vectorises (a branch per value mispredicted on random data: 13 ns a
   window of 2x2, against 1 this way). `best` ends as the value at `at`, bit for bit; with `at`
   null, only the values are found. */
#define G_POOL_ROW(suffix, T) \
static inline void g_pool_row_##suffix(const T* image, const int64_t* g, int64_t ho, T* best, int64_t* at) { \
    const int64_t H = g[0], W = g[1], kh = g[2], kw = g[3], sh = g[4], sw = g[5], ph = g[6], pw = g[7]; \
    const int64_t dh = g[8], dw = g[9], Wo = g[11]; \
    int64_t top = ho * sh - ph; \
    while (top < 0) top += dh; \
    for (int64_t wo = 0; wo < Wo; wo++) { \
        int64_t left = wo * sw - pw; \
        while (left < 0) left += dw; \
        best[wo] = -INFINITY; \
        if (at) at[wo] = top * W + left; \
    } \
    for (int64_t i = 0; i < kh; i++) { \
        const int64_t r = ho * sh - ph + i * dh; \
        if (r < 0 || r >= H) continue; \
        for (int64_t j = 0; j < kw; j++) { \
            const int64_t offset = j * dw - pw; /* column of window wo: wo * sw + offset */ \
            int64_t first = 0, last = Wo; \
            while (first < Wo && first * sw + offset < 0) first++; \
            while (last > first && (last - 1) * sw + offset >= W) last--; \
            const T* row = image + r * W + offset; \
            const int64_t base = r * W + offset; \
            if (!at) { /* the values alone: half the work */ \
                _Pragma("omp simd") \
                for (int64_t wo = first; wo < last; wo++) { \
                    const T value = row[wo * sw]; \
                    best[wo] = (value > best[wo]) | (value != value) ? value : best[wo]; \
                } \
                continue; \
            } \
            _Pragma("omp simd") \
            for (int64_t wo = first; wo < last; wo++) { \
                const T value = row[wo * sw]; \
                const int take = (value > best[wo]) | (value != value); \
                best[wo] = take ? value : best[wo]; \
                at[wo] = take ? base + wo * sw : at[wo]; \
            } \
        } \
    } \
}

/* 2x2 windows of stride 2 inside the image (no padding or dilation; ceil_mode's last window may not
   stick out), the common CNN pooling: output row ho reads image rows 2ho and 2ho+1 whole, so each
   window's four values load straight (the general loop gathers them) and the backward writes each
   of dx's elements once, the gradient or 0, where a zero-filled plane and a scatter made two
   passes. The winner is g_pool_row's, bit for bit: candidates in window order, a greater value or a
   NaN taking over, so the first maximum and the last NaN win. */
static inline int g_pool_2x2(const int64_t* g) {
    return g[2] == 2 && g[3] == 2 && g[4] == 2 && g[5] == 2 && g[6] == 0 && g[7] == 0 && g[8] == 1 && g[9] == 1 &&
           2 * g[10] <= g[0] && 2 * g[11] <= g[1];
}
#define G_POOL_2X2(suffix, T) \
/* which of the window's four values wins (0..3, in window order), and its value */ \
static inline int g_pool_2x2_winner_##suffix(T a, T b, T c, T d, T* best) { \
    T m = -INFINITY; int k = 0; \
    int take = (a > m) | (a != a); m = take ? a : m; k = take ? 0 : k; \
    take = (b > m) | (b != b); m = take ? b : m; k = take ? 1 : k; \
    take = (c > m) | (c != c); m = take ? c : m; k = take ? 2 : k; \
    take = (d > m) | (d != d); m = take ? d : m; k = take ? 3 : k; \
    *best = m; \
    return k; \
} \
static void g_pool_2x2_plane_##suffix(const T* image, const int64_t* g, T* y) { \
    const int64_t W = g[1], Ho = g[10], Wo = g[11]; \
    for (int64_t ho = 0; ho < Ho; ho++) { \
        const T *top = image + 2 * ho * W, *bottom = top + W; \
        T* out = y + ho * Wo; \
        _Pragma("omp simd") \
        for (int64_t wo = 0; wo < Wo; wo++) { \
            T best; \
            g_pool_2x2_winner_##suffix(top[2 * wo], top[2 * wo + 1], bottom[2 * wo], bottom[2 * wo + 1], &best); \
            out[wo] = best; \
        } \
    } \
} \
/* dx's plane from dy's: 0 + the gradient at the winner (as the scatter into zeros rounds), 0 \
   elsewhere. A row's winners first, then dx's two rows in order: contiguous stores that vectorise \
   (four selects a window, stored two apart, ran scalar and slower than the scatter); 1 when the \
   row's winners cannot be had */ \
static int g_pool_2x2_backward_plane_##suffix(const T* image, const T* grad, const int64_t* g, T* dx) { \
    const int64_t H = g[0], W = g[1], Ho = g[10], Wo = g[11]; \
    int32_t* winner = malloc(Wo * sizeof(int32_t)); \
    if (!winner) return 1; \
    for (int64_t ho = 0; ho < Ho; ho++) { \
        const T *top = image + 2 * ho * W, *bottom = top + W, *dy = grad + ho * Wo; \
        T *dx_top = dx + 2 * ho * W, *dx_bottom = dx_top + W; \
        _Pragma("omp simd") \
        for (int64_t wo = 0; wo < Wo; wo++) { \
            T best; \
            winner[wo] = g_pool_2x2_winner_##suffix(top[2 * wo], top[2 * wo + 1], bottom[2 * wo], \
                                                    bottom[2 * wo + 1], &best); \
        } \
        _Pragma("omp simd") \
        for (int64_t w = 0; w < 2 * Wo; w++) { \
            const int32_t k = winner[w >> 1], at = (int32_t)(w & 1); \
            const T value = (T)0 + dy[w >> 1]; \
            dx_top[w] = k == at ? value : 0; \
            dx_bottom[w] = k == at + 2 ? value : 0; \
        } \
        for (int64_t w = 2 * Wo; w < W; w++) dx_top[w] = dx_bottom[w] = 0; /* an odd last column */ \
    } \
    if (2 * Ho < H) memset(dx + 2 * Ho * W, 0, (H - 2 * Ho) * W * sizeof(T)); /* an odd last row */ \
    free(winner); \
    return 0; \
}

/* Each window's position (PyTorch's return_indices) for the planes [start, stop) of x (N, C, H, W). */
#define G_MAX_POOL_POSITIONS(suffix, T) \
int g_max_pool2d_positions_##suffix(const void* x_, void* positions_, const void* g_, int64_t start, int64_t stop) { \
    const T* x = x_; int64_t* positions = positions_; const int64_t* g = g_; \
    const int64_t H = g[0], W = g[1], Ho = g[10], Wo = g[11]; \
    T* best = malloc(Wo * sizeof(T)); \
    if (!best) return 1; \
    for (int64_t plane = start; plane < stop; plane++) \
        for (int64_t ho = 0; ho < Ho; ho++) \
            g_pool_row_##suffix(x + plane * H * W, g, ho, best, positions + (plane * Ho + ho) * Wo); \
    free(best); \
    return 0; \
}

/* Each window's maximum: the values at the positions above, in one pass over x (the positions,
   then a gather at them, read x twice and wrote and read 8 bytes a window besides). */
#define G_MAX_POOL(suffix, T) \
int g_max_pool2d_##suffix(const void* x_, void* y_, const void* g_, int64_t start, int64_t stop) { \
    const T* x = x_; T* y = y_; const int64_t* g = g_; \
    const int64_t H = g[0], W = g[1], Ho = g[10], Wo = g[11]; \
    for (int64_t plane = start; plane < stop; plane++) { \
        if (g_pool_2x2(g)) { \
            g_pool_2x2_plane_##suffix(x + plane * H * W, g, y + plane * Ho * Wo); \
            continue; \
        } \
        for (int64_t ho = 0; ho < Ho; ho++) \
            g_pool_row_##suffix(x + plane * H * W, g, ho, y + (plane * Ho + ho) * Wo, 0); \
    } \
    return 0; \
}

/* The gradient of the maxima: dy (N, C, Ho, Wo) added into zeros of x's shape at each window's
   position, found again from x, window after window (so overlapping windows add in the order of
   a scatter at the positions). A plane is zeroed and filled while it is in cache, in one pass
   over dx (a zero-filled dx, then a scatter at stored positions, made two). */
#define G_MAX_POOL_BACKWARD(suffix, T) \
int g_max_pool2d_backward_##suffix(const void* dy_, const void* x_, void* dx_, const void* g_, int64_t start, \
                                   int64_t stop) { \
    const T* dy = dy_; const T* x = x_; T* dx = dx_; const int64_t* g = g_; \
    const int64_t H = g[0], W = g[1], Ho = g[10], Wo = g[11]; \
    T* best = malloc(Wo * sizeof(T)); \
    int64_t* at = malloc(Wo * sizeof(int64_t)); \
    if (!best || !at) { free(best); free(at); return 1; } \
    for (int64_t plane = start; plane < stop; plane++) { \
        T* image = dx + plane * H * W; \
        if (g_pool_2x2(g)) { \
            if (g_pool_2x2_backward_plane_##suffix(x + plane * H * W, dy + plane * Ho * Wo, g, image)) return 1; \
            continue; \
        } \
        memset(image, 0, H * W * sizeof(T)); \
        for (int64_t ho = 0; ho < Ho; ho++) { \
            g_pool_row_##suffix(x + plane * H * W, g, ho, best, at); \
            const T* grad = dy + (plane * Ho + ho) * Wo; \
            for (int64_t wo = 0; wo < Wo; wo++) \
                image[at[wo]] += grad[wo]; \
        } \
    } \
    free(best); free(at); \
    return 0; \
}

/* Convolution (ops/convolution.py) as im2col and gemm per item, the item's columns in a scratch
   buffer that stays in cache instead of a (C*kh*kw, N*Ho*Wo) array in memory. An item is a group of
   B images (small images: their products are made wide enough) or one image in bands of output
   rows (big images: a band's columns fit the cache). g: G_WINDOW_SIZES's 15 values (inside 0), then
   O (output channels), B (images per item), the rows of a band, the gemm's address and whether its
   integers are 64-bit; [start, stop) counts items. x (N, C, H, W), w (O, C*kh*kw), y (N, O, Ho, Wo).
   A group's columns are (C*kh*kw, B*Ho*Wo), image b's at column b*Ho*Wo, and its output gradient
   is gathered to (O, B*Ho*Wo) (`g_group_rows`), or its output scattered back from there. */
#define G_CONV_SIZES(g) \
    G_WINDOW_SIZES(g) \
    const int64_t O = g[15], B = g[16], band = g[17], gemm = g[18], ilp64 = g[19]; \
    const int64_t HW = Ho * Wo, CKK = C * kh * kw, kk = kh * kw; \
    (void)inside; (void)N; (void)O; (void)band; (void)gemm; (void)ilp64; (void)CKK; (void)kk;

/* the rows of a group of images: (count, O, HW) <-> (O, count*HW) */
#define G_GROUP_ROWS(suffix, T) \
static void g_group_rows_##suffix(T* grouped, T* images, int64_t count, int64_t O, int64_t HW, int to_images) { \
    for (int64_t b = 0; b < count; b++) \
        for (int64_t o = 0; o < O; o++) { \
            T* at_group = grouped + o * count * HW + b * HW; \
            T* at_image = images + (b * O + o) * HW; \
            if (to_images) memcpy(at_image, at_group, HW * sizeof(T)); \
            else memcpy(at_group, at_image, HW * sizeof(T)); \
        } \
}

/* the columns of images [n0, n0 + count) of x, output rows [ho0, ho1): (C*kh*kw, count*(ho1-ho0)*Wo) */
#define G_GROUP_COLUMNS(suffix, T) \
static void g_group_columns_##suffix(const T* x, int64_t n0, int64_t count, T* columns, const int64_t* g, \
                                     int64_t ho0, int64_t ho1) { \
    G_CONV_SIZES(g) \
    const int64_t width = (ho1 - ho0) * Wo; \
    for (int64_t b = 0; b < count; b++) \
        for (int64_t c = 0; c < C; c++) \
            g_plane_to_rows_##suffix(x + ((n0 + b) * C + c) * H * W, columns + c * kk * count * width + b * width, \
                                     count * width, g, ho0, ho1); \
}

/* an item's images (n0, count) and the scratch it needs, or 1 from the kernel when it cannot have it */
#define G_CONV_ITEM_SCRATCH(T) \
    T* columns = malloc(CKK * (B > 1 ? B * HW : band * Wo) * sizeof(T)); \
    T* grouped = B > 1 ? malloc(O * B * HW * sizeof(T)) : 0; \
    if (!columns || (B > 1 && !grouped)) { free(columns); free(grouped); return 1; }
#define G_CONV_ITEM \
    const int64_t n0 = item * B, count = N - n0 < B ? N - n0 : B; \
    const int64_t step = count > 1 ? Ho : band;

/* y[n] = w x's columns of n, for the items [start, stop) */
#define G_CONV(suffix, T) \
int g_conv2d_##suffix(const void* x_, const void* w_, void* y_, const void* g_, int64_t start, int64_t stop) { \
    const T* x = x_; const T* w = w_; T* y = y_; const int64_t* g = g_; \
    G_CONV_SIZES(g) \
    G_CONV_ITEM_SCRATCH(T) \
    for (int64_t item = start; item < stop; item++) { \
        G_CONV_ITEM \
        for (int64_t ho0 = 0; ho0 < Ho; ho0 += step) { \
            const int64_t ho1 = ho0 + step < Ho ? ho0 + step : Ho, width = count * (ho1 - ho0) * Wo; \
            g_group_columns_##suffix(x, n0, count, columns, g, ho0, ho1); \
            T* out = count > 1 ? grouped : y + n0 * O * HW + ho0 * Wo; \
            g_gemm_call_##suffix(gemm, ilp64, 0, 0, O, width, CKK, w, CKK, columns, width, 0, out, \
                                 count > 1 ? width : HW); \
        } \
        if (count > 1) g_group_rows_##suffix(grouped, y + n0 * O * HW, count, O, HW, 1); \
    } \
    free(columns); free(grouped); \
    return 0; \
}

/* dx[n] = col2im(w^T dy[n]), for the items [start, stop) */
#define G_CONV_INPUT_GRAD(suffix, T) \
int g_conv2d_input_grad_##suffix(const void* dy_, const void* w_, void* dx_, const void* g_, int64_t start, \
                                 int64_t stop) { \
    const T* dy = dy_; const T* w = w_; T* dx = dx_; const int64_t* g = g_; \
    G_CONV_SIZES(g) \
    G_CONV_ITEM_SCRATCH(T) \
    for (int64_t item = start; item < stop; item++) { \
        G_CONV_ITEM \
        memset(dx + n0 * C * H * W, 0, count * C * H * W * sizeof(T)); \
        const T* rows = dy + n0 * O * HW; \
        if (count > 1) { g_group_rows_##suffix(grouped, (T*)rows, count, O, HW, 0); rows = grouped; } \
        for (int64_t ho0 = 0; ho0 < Ho; ho0 += step) { \
            const int64_t ho1 = ho0 + step < Ho ? ho0 + step : Ho, width = count * (ho1 - ho0) * Wo; \
            g_gemm_call_##suffix(gemm, ilp64, 1, 0, CKK, width, O, w, CKK, rows + ho0 * Wo, count > 1 ? width : HW, \
                                 0, columns, width); \
            for (int64_t b = 0; b < count; b++) \
                for (int64_t c = 0; c < C; c++) \
                    g_rows_to_plane_##suffix(columns + c * kk * width + b * (width / count), width, \
                                             dx + ((n0 + b) * C + c) * H * W, g, ho0, ho1); \
        } \
    } \
    free(columns); free(grouped); \
    return 0; \
}

/* The transformed filters G f G^T of F(2x2, 3x3), u (16, P, Q): for the convolution, f = w[p][q]
   (w (O, C, 3, 3): P = O, Q = C); with `flipped`, for the input gradient (a convolution of dy by
   the transposed filters turned half a turn), f = w[q][p] turned (P = C, Q = O). Computed in double,
   rounded once. A tile of filters is first copied into `a` with q innermost, so the arithmetic runs
   over contiguous q in vectors (one filter at a time, 512 x 512 filters cost 7 ms a call, as much as
   a stage's products). g: P, Q, flipped; [start, stop) counts p. */
#define G_FILTER_TILE 64
#define G_WINOGRAD_FILTERS(suffix, T) \
int g_winograd_filters_##suffix(const void* w_, void* u_, const void* g_, int64_t start, int64_t stop) { \
    const T* w = w_; T* u = u_; const int64_t* g = g_; \
    const int64_t P = g[0], Q = g[1], flipped = g[2]; \
    double a[9][G_FILTER_TILE], b[4][3][G_FILTER_TILE]; \
    for (int64_t p = start; p < stop; p++) \
        for (int64_t q0 = 0; q0 < Q; q0 += G_FILTER_TILE) { \
            const int64_t n = Q - q0 < G_FILTER_TILE ? Q - q0 : G_FILTER_TILE; \
            for (int64_t t = 0; t < n; t++) { \
                const int64_t q = q0 + t; \
                const T* f = w + (flipped ? q * P + p : p * Q + q) * 9; \
                for (int k = 0; k < 9; k++) a[k][t] = flipped ? f[8 - k] : f[k]; \
            } \
            for (int j = 0; j < 3; j++) { /* G f */ \
                _Pragma("omp simd") \
                for (int64_t t = 0; t < n; t++) { \
                    const double f0 = a[j][t], f1 = a[3 + j][t], f2 = a[6 + j][t]; \
                    b[0][j][t] = f0; \
                    b[1][j][t] = (f0 + f1 + f2) * 0.5; \
                    b[2][j][t] = (f0 - f1 + f2) * 0.5; \
                    b[3][j][t] = f2; \
                } \
            } \
            for (int i = 0; i < 4; i++) { /* (G f) G^T */ \
                T* at = u + (4 * i * P + p) * Q + q0; \
                _Pragma("omp simd") \
                for (int64_t t = 0; t < n; t++) { \
                    const double b0 = b[i][0][t], b1 = b[i][1][t], b2 = b[i][2][t]; \
                    at[t] = (T)b0; \
                    at[P * Q + t] = (T)((b0 + b1 + b2) * 0.5); \
                    at[2 * P * Q + t] = (T)((b0 - b1 + b2) * 0.5); \
                    at[3 * P * Q + t] = (T)b2; \
                } \
            } \
        } \
    return 0; \
}

/* A 3x3 convolution of stride 1 by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast
   Algorithms for Convolutional Neural Networks", 2015): each 2x2 block of outputs is A^T [(G w G^T)
   . (B^T d B)] A over the 4x4 input patch d that covers it, so a block costs 16 multiplies per
   (output channel, input channel) where im2col's product costs 36. Per item (a group of images):
   every patch of every input channel is transformed (V, 16 x C x T for T patches), then 16 gemms
   multiply the transformed weights u (16 x O x C, made once per call by the caller) into M
   (16 x O x T), and each 2x2 block is transformed back into y. The input is first copied into a
   zero-bordered plane, so the patches read no padding checks. The sums differ from im2col's in the
   last bits (the transforms add and subtract before the products), as PyTorch's oneDNN kernels do.
   g: N, C, H, W, O, Ho, Wo, top, left (padding), B (images per item), the gemm's address and
   whether its integers are 64-bit; [start, stop) counts items. */
#define G_WINOGRAD_SIZES(g, T) \
    const int64_t N = g[0], C = g[1], O = g[4], Ho = g[5], Wo = g[6], B = g[9], gemm = g[10], ilp64 = g[11]; \
    const int64_t th = (Ho + 1) / 2, tw = (Wo + 1) / 2, per_image = th * tw; \
    /* the 16 matrices of a transform lie a power of two apart but for this: a block's 16 values, \
       read or written together, would then share one set of the L1 cache (3x slower at 4x4 images) */ \
    const int64_t apart = 64 / sizeof(T); \
    T* v = malloc(16 * (C * B * per_image + apart) * sizeof(T)); \
    T* plane = malloc((2 * th + 2) * (2 * tw + 2) * sizeof(T));

/* the item's images [n0, n0 + count) and T, its 2x2 blocks; vk: from one of V's matrices to the next */
#define G_WINOGRAD_ITEM \
    const int64_t n0 = item * B, count = N - n0 < B ? N - n0 : B, tiles = count * per_image; \
    const int64_t vk = C * tiles + apart;

/* V (16 matrices C x T, vk apart) = B^T d B for the 4x4 patch d of each block of images [n0, n0 + count)
   of x, through `plane`, a zero-bordered copy of one image plane */
#define G_WINOGRAD_PATCHES(suffix, T) \
static void g_winograd_patches_##suffix(const T* x, T* v, T* plane, const int64_t* g, int64_t n0, int64_t count, \
                                        int64_t vk) { \
    const int64_t C = g[1], H = g[2], W = g[3], Ho = g[5], Wo = g[6], top = g[7], left = g[8]; \
    const int64_t th = (Ho + 1) / 2, tw = (Wo + 1) / 2, per_image = th * tw, PW = 2 * tw + 2, PH = 2 * th + 2; \
    const int64_t tiles = count * per_image; \
    for (int64_t b = 0; b < count; b++) \
        for (int64_t c = 0; c < C; c++) { \
            const T* image = x + ((n0 + b) * C + c) * H * W; \
            for (int64_t r = 0; r < PH; r++) { /* a row: zeros, the image's row, zeros */ \
                const int64_t row = r - top; \
                T* to = plane + r * PW; \
                if (row < 0 || row >= H) { \
                    memset(to, 0, PW * sizeof(T)); \
                    continue; \
                } \
                const int64_t first = left < PW ? left : PW, last = left + W < PW ? left + W : PW; \
                memset(to, 0, first * sizeof(T)); \
                memcpy(to + first, image + row * W + (first - left), (last - first) * sizeof(T)); \
                memset(to + last, 0, (PW - last) * sizeof(T)); \
            } \
            T* out = v + c * tiles + b * per_image; \
            for (int64_t ty = 0; ty < th; ty++) { \
                const T* p0 = plane + 2 * ty * PW; const T* p1 = p0 + PW; \
                const T* p2 = p1 + PW; const T* p3 = p2 + PW; \
                T* o = out + ty * tw; \
                _Pragma("omp simd") \
                for (int64_t tx = 0; tx < tw; tx++) { \
                    const int64_t s = 2 * tx; \
                    T t[4][4]; \
                    for (int64_t j = 0; j < 4; j++) { /* B^T d: rows */ \
                        t[0][j] = p0[s + j] - p2[s + j]; t[1][j] = p1[s + j] + p2[s + j]; \
                        t[2][j] = p2[s + j] - p1[s + j]; t[3][j] = p1[s + j] - p3[s + j]; \
                    } \
                    for (int64_t i = 0; i < 4; i++) { /* (B^T d) B: columns */ \
                        o[(4 * i + 0) * vk + tx] = t[i][0] - t[i][2]; \
                        o[(4 * i + 1) * vk + tx] = t[i][1] + t[i][2]; \
                        o[(4 * i + 2) * vk + tx] = t[i][2] - t[i][1]; \
                        o[(4 * i + 3) * vk + tx] = t[i][1] - t[i][3]; \
                    } \
                } \
            } \
        } \
}

#define G_WINOGRAD(suffix, T) \
int g_winograd_##suffix(const void* x_, const void* u_, void* y_, const void* g_, int64_t start, int64_t stop) { \
    const T* x = x_; const T* u = u_; T* y = y_; const int64_t* g = g_; \
    G_WINOGRAD_SIZES(g, T) \
    T* m = malloc(16 * (O * B * per_image + apart) * sizeof(T)); \
    if (!v || !m || !plane) { free(v); free(m); free(plane); return 1; } \
    for (int64_t item = start; item < stop; item++) { \
        G_WINOGRAD_ITEM \
        const int64_t mk = O * tiles + apart; \
        g_winograd_patches_##suffix(x, v, plane, g, n0, count, vk); \
        for (int64_t k = 0; k < 16; k++) \
            g_gemm_call_##suffix(gemm, ilp64, 0, 0, O, tiles, C, u + k * O * C, C, v + k * vk, tiles, 0, m + k * mk, \
                                 tiles); \
        for (int64_t b = 0; b < count; b++) \
            for (int64_t o = 0; o < O; o++) { \
                T* image = y + ((n0 + b) * O + o) * Ho * Wo; \
                const T* in = m + o * tiles + b * per_image; \
                for (int64_t ty = 0; ty < th; ty++) { \
                    const T* q = in + ty * tw; \
                    T* r0 = image + 2 * ty * Wo; \
                    T* r1 = 2 * ty + 1 < Ho ? r0 + Wo : 0; \
                    for (int64_t tx = 0; tx < tw; tx++) { \
                        T a[4][4], s0[4], s1[4]; \
                        for (int64_t k = 0; k < 16; k++) a[k / 4][k % 4] = q[k * mk + tx]; \
                        for (int64_t j = 0; j < 4; j++) { /* A^T m: rows */ \
                            s0[j] = a[0][j] + a[1][j] + a[2][j]; \
                            s1[j] = a[1][j] - a[2][j] - a[3][j]; \
                        } \
                        const int64_t col = 2 * tx; \
                        r0[col] = s0[0] + s0[1] + s0[2]; \
                        if (col + 1 < Wo) r0[col + 1] = s0[1] - s0[2] - s0[3]; \
                        if (r1) { \
                            r1[col] = s1[0] + s1[1] + s1[2]; \
                            if (col + 1 < Wo) r1[col + 1] = s1[1] - s1[2] - s1[3]; \
                        } \
                    } \
                } \
            } \
    } \
    free(v); free(m); free(plane); \
    return 0; \
}

/* The weight gradient of a 3x3 convolution of stride 1 by F(3x3, 2x2), the transpose of F(2x2, 3x3):
   dw = G^T [(A dY A^T) . (B^T d B)] G summed over every 2x2 block dY of dy and the 4x4 patch d of x it
   reads, with A = (A^T)^T of the forward (Lavin and Gray's transposition). Per item, x's patches are
   transformed as in the forward (V, 16 x C x T), dy's blocks into D (16 x O x T), and 16 gemms add
   D V^T into the chunk's partial (16 x O x C): the sum over blocks is the gemms' own. The chunks'
   partials are added in chunk order and turned into dw by g_winograd_filter_grads. g: as
   g_winograd's; [start, stop) counts items. */
#define G_WINOGRAD_WEIGHT_GRAD(suffix, T) \
/* A dY A^T of one 2x2 block of dy into its place in the 16 matrices, `apart` elements from one to \
   the next; a loop over a row's blocks with no edge inside vectorises (it ran scalar with the edge \
   tests in it: a quarter of a CNN's weight gradient) */ \
static inline void g_winograd_dy_block_##suffix(T y00, T y01, T y10, T y11, T* to, int64_t apart) { \
    const T rows[4][2] = {{y00, y01}, {y00 + y10, y01 + y11}, {y00 - y10, y01 - y11}, {-y10, -y11}}; \
    for (int64_t i = 0; i < 4; i++) { \
        to[(4 * i + 0) * apart] = rows[i][0]; \
        to[(4 * i + 1) * apart] = rows[i][0] + rows[i][1]; \
        to[(4 * i + 2) * apart] = rows[i][0] - rows[i][1]; \
        to[(4 * i + 3) * apart] = -rows[i][1]; \
    } \
} \
int g_winograd_weight_grad_##suffix(const void* x_, const void* dy_, void* partial_, const void* g_, int64_t start, \
                                    int64_t stop) { \
    const T* x = x_; const T* dy = dy_; T* partial = partial_; const int64_t* g = g_; \
    G_WINOGRAD_SIZES(g, T) \
    T* d = malloc(16 * (O * B * per_image + apart) * sizeof(T)); \
    if (!v || !d || !plane) { free(v); free(d); free(plane); return 1; } \
    memset(partial, 0, 16 * O * C * sizeof(T)); \
    for (int64_t item = start; item < stop; item++) { \
        G_WINOGRAD_ITEM \
        g_winograd_patches_##suffix(x, v, plane, g, n0, count, vk); \
        const int64_t dk = O * tiles + apart; \
        for (int64_t b = 0; b < count; b++) \
            for (int64_t o = 0; o < O; o++) { \
                const T* image = dy + ((n0 + b) * O + o) * Ho * Wo; \
                T* out = d + o * tiles + b * per_image; \
                for (int64_t ty = 0; ty < th; ty++) { \
                    const T* r0 = image + 2 * ty * Wo; \
                    const T* r1 = 2 * ty + 1 < Ho ? r0 + Wo : 0; \
                    T* to = out + ty * tw; \
                    const int64_t inside = r1 ? Wo / 2 : 0; /* blocks whose four values are all in dy */ \
                    _Pragma("omp simd") \
                    for (int64_t tx = 0; tx < inside; tx++) \
                        g_winograd_dy_block_##suffix(r0[2 * tx], r0[2 * tx + 1], r1[2 * tx], r1[2 * tx + 1], to + tx, dk); \
                    for (int64_t tx = inside; tx < tw; tx++) { /* an odd last row or column: zeros past it */ \
                        const int64_t col = 2 * tx, right = col + 1 < Wo; \
                        const T y00 = r0[col], y01 = right ? r0[col + 1] : 0; \
                        const T y10 = r1 ? r1[col] : 0, y11 = r1 && right ? r1[col + 1] : 0; \
                        g_winograd_dy_block_##suffix(y00, y01, y10, y11, to + tx, dk); \
                    } \
                } \
            } \
        for (int64_t k = 0; k < 16; k++) \
            g_gemm_call_##suffix(gemm, ilp64, 0, 1, O, C, tiles, d + k * dk, tiles, v + k * vk, tiles, 1, \
                                 partial + k * O * C, C); \
    } \
    free(v); free(d); free(plane); \
    return 0; \
} \
int g_winograd_weight_grad_##suffix##_chunk(void* const* a, int64_t chunk, int64_t start, int64_t stop) { \
    const int64_t* g = a[3]; \
    T* partial = (T*)a[2] + chunk * 16 * g[4] * g[1]; \
    return g_winograd_weight_grad_##suffix(a[0], a[1], partial, a[3], start, stop); \
}

/* dw (O, C, 3, 3) from `chunks` partials (chunks, 16, O, C), added in chunk order: G^T m G with
   G^T = [[1, 1/2, 1/2, 0], [0, 1/2, -1/2, 0], [0, 1/2, 1/2, 1]]. g: O, C, chunks; [start, stop)
   counts o. */
#define G_WINOGRAD_FILTER_GRADS(suffix, T) \
int g_winograd_filter_grads_##suffix(const void* partials_, void* dw_, const void* g_, int64_t start, int64_t stop) { \
    const T* partials = partials_; T* dw = dw_; const int64_t* g = g_; \
    const int64_t O = g[0], C = g[1], chunks = g[2]; \
    T m[16][G_FILTER_TILE], r[3][4][G_FILTER_TILE], out[9][G_FILTER_TILE]; \
    for (int64_t o = start; o < stop; o++) \
        for (int64_t c0 = 0; c0 < C; c0 += G_FILTER_TILE) { /* a tile of c at a time, in vectors */ \
            const int64_t n = C - c0 < G_FILTER_TILE ? C - c0 : G_FILTER_TILE; \
            for (int64_t k = 0; k < 16; k++) { \
                const T* first = partials + (k * O + o) * C + c0; \
                for (int64_t t = 0; t < n; t++) m[k][t] = first[t]; \
                for (int64_t chunk = 1; chunk < chunks; chunk++) { \
                    const T* next = partials + ((chunk * 16 + k) * O + o) * C + c0; \
                    _Pragma("omp simd") \
                    for (int64_t t = 0; t < n; t++) m[k][t] += next[t]; \
                } \
            } \
            for (int64_t j = 0; j < 4; j++) { /* G^T m */ \
                _Pragma("omp simd") \
                for (int64_t t = 0; t < n; t++) { \
                    r[0][j][t] = m[j][t] + (m[4 + j][t] + m[8 + j][t]) / 2; \
                    r[1][j][t] = (m[4 + j][t] - m[8 + j][t]) / 2; \
                    r[2][j][t] = (m[4 + j][t] + m[8 + j][t]) / 2 + m[12 + j][t]; \
                } \
            } \
            for (int64_t i = 0; i < 3; i++) { /* (G^T m) G */ \
                _Pragma("omp simd") \
                for (int64_t t = 0; t < n; t++) { \
                    out[i * 3 + 0][t] = r[i][0][t] + (r[i][1][t] + r[i][2][t]) / 2; \
                    out[i * 3 + 1][t] = (r[i][1][t] - r[i][2][t]) / 2; \
                    out[i * 3 + 2][t] = (r[i][1][t] + r[i][2][t]) / 2 + r[i][3][t]; \
                } \
            } \
            T* to = dw + (o * C + c0) * 9; \
            for (int64_t t = 0; t < n; t++) \
                for (int64_t k = 0; k < 9; k++) to[t * 9 + k] = out[k][t]; \
        } \
    return 0; \
}

/* partial = sum over the items [start, stop) of dy[n] (x's columns of n)^T: one (O, C*kh*kw) partial
   per chunk of items, which the caller adds up in chunk order */
#define G_CONV_WEIGHT_GRAD(suffix, T) \
int g_conv2d_weight_grad_##suffix(const void* x_, const void* dy_, void* partial_, const void* g_, int64_t start, \
                                  int64_t stop) { \
    const T* x = x_; const T* dy = dy_; T* partial = partial_; const int64_t* g = g_; \
    G_CONV_SIZES(g) \
    G_CONV_ITEM_SCRATCH(T) \
    int first = 1; \
    for (int64_t item = start; item < stop; item++) { \
        G_CONV_ITEM \
        const T* rows = dy + n0 * O * HW; \
        if (count > 1) { g_group_rows_##suffix(grouped, (T*)rows, count, O, HW, 0); rows = grouped; } \
        for (int64_t ho0 = 0; ho0 < Ho; ho0 += step) { \
            const int64_t ho1 = ho0 + step < Ho ? ho0 + step : Ho, width = count * (ho1 - ho0) * Wo; \
            g_group_columns_##suffix(x, n0, count, columns, g, ho0, ho1); \
            g_gemm_call_##suffix(gemm, ilp64, 0, 1, O, CKK, width, rows + ho0 * Wo, count > 1 ? width : HW, columns, \
                                 width, first ? 0 : 1, partial, CKK); \
            first = 0; \
        } \
    } \
    free(columns); free(grouped); \
    return 0; \
} \
int g_conv2d_weight_grad_##suffix##_chunk(void* const* a, int64_t chunk, int64_t start, int64_t stop) { \
    const int64_t* g = a[3]; \
    T* partial = (T*)a[2] + chunk * g[15] * g[1] * g[4] * g[5]; \
    return g_conv2d_weight_grad_##suffix(a[0], a[1], partial, a[3], start, stop); \
}

/* the thread pool's entries (templates/c_pool.c.j2): the arguments from an array */
#define G_CHUNK3(name) \
int name##_chunk(void* const* a, int64_t chunk, int64_t start, int64_t stop) { return name(a[0], a[1], a[2], start, stop); }
#define G_CHUNK4(name) \
int name##_chunk(void* const* a, int64_t chunk, int64_t start, int64_t stop) { \
    return name(a[0], a[1], a[2], a[3], start, stop); \
}

#define G_KERNELS(suffix, T) \
    G_PLANE_TO_ROWS(suffix, T) G_ROWS_TO_PLANE(suffix, T) \
    G_IM2COL(suffix, T) G_CHUNK3(g_im2col_##suffix) \
    G_COL2IM(suffix, T) G_CHUNK3(g_col2im_##suffix) \
    G_POOL_ROW(suffix, T) G_POOL_2X2(suffix, T) G_MAX_POOL_POSITIONS(suffix, T) G_CHUNK3(g_max_pool2d_positions_##suffix) \
    G_MAX_POOL(suffix, T) G_CHUNK3(g_max_pool2d_##suffix) \
    G_MAX_POOL_BACKWARD(suffix, T) G_CHUNK4(g_max_pool2d_backward_##suffix) \
    G_GROUP_ROWS(suffix, T) G_GROUP_COLUMNS(suffix, T) \
    G_CONV(suffix, T) G_CHUNK4(g_conv2d_##suffix) \
    G_CONV_INPUT_GRAD(suffix, T) G_CHUNK4(g_conv2d_input_grad_##suffix) \
    G_CONV_WEIGHT_GRAD(suffix, T) \
    G_WINOGRAD_FILTERS(suffix, T) G_CHUNK3(g_winograd_filters_##suffix) \
    G_WINOGRAD_PATCHES(suffix, T) G_WINOGRAD(suffix, T) G_CHUNK4(g_winograd_##suffix) \
    G_WINOGRAD_WEIGHT_GRAD(suffix, T) \
    G_WINOGRAD_FILTER_GRADS(suffix, T) G_CHUNK3(g_winograd_filter_grads_##suffix)

G_KERNELS(f32, float)
G_KERNELS(f64, double)
