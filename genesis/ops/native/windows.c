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
    for (int64_t plane = start; plane < stop; plane++) \
        for (int64_t ho = 0; ho < Ho; ho++) \
            g_pool_row_##suffix(x + plane * H * W, g, ho, y + (plane * Ho + ho) * Wo, 0); \
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
    G_POOL_ROW(suffix, T) G_MAX_POOL_POSITIONS(suffix, T) G_CHUNK3(g_max_pool2d_positions_##suffix) \
    G_MAX_POOL(suffix, T) G_CHUNK3(g_max_pool2d_##suffix) \
    G_MAX_POOL_BACKWARD(suffix, T) G_CHUNK4(g_max_pool2d_backward_##suffix) \
    G_GROUP_ROWS(suffix, T) G_GROUP_COLUMNS(suffix, T) \
    G_CONV(suffix, T) G_CHUNK4(g_conv2d_##suffix) \
    G_CONV_INPUT_GRAD(suffix, T) G_CHUNK4(g_conv2d_input_grad_##suffix) \
    G_CONV_WEIGHT_GRAD(suffix, T)

G_KERNELS(f32, float)
G_KERNELS(f64, double)
