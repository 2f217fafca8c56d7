/* floor_divide, remainder and fmod, as numpy's (and PyTorch's): Python's rounding for the first two
   (the remainder takes the divisor's sign), C's for fmod. A float quotient is numpy's: the exact
   multiple a - fmod(a, b) over b, snapped to a whole number (1 // 0.1 is 9). Integers divide in
   int64 (every integer dtype fits); a divisor of 0 gives 0 (eager raises ZeroDivisionError; a kernel
   cannot) and the most negative value over -1 wraps, as numpy's do: x86's division would trap on
   either (SIGFPE), so neither reaches it. */
static inline int64_t g_floor_divide_i(int64_t a, int64_t b) {
    if (b == 0) return 0;
    if (b == -1) return (int64_t)(0 - (uint64_t)a);
    const int64_t q = a / b;
    return q - (a % b != 0 && (a < 0) != (b < 0));
}
static inline int64_t g_fmod_i(int64_t a, int64_t b) { return b == 0 || b == -1 ? 0 : a % b; }
static inline int64_t g_remainder_i(int64_t a, int64_t b) {
    const int64_t r = g_fmod_i(a, b);
    return r != 0 && (r < 0) != (b < 0) ? r + b : r;
}
#define G_FLOAT_DIVISION(suffix, T, FMOD, FLOOR, COPYSIGN) \
static inline T g_floor_divide_##suffix(T a, T b) { \
    if (b == 0) return a / b; \
    const T mod = FMOD(a, b); \
    T quotient = (a - mod) / b; \
    if (mod != 0 && (b < 0) != (mod < 0)) quotient -= 1; \
    if (quotient == 0) return COPYSIGN((T)0, a / b); \
    const T whole = FLOOR(quotient); \
    return quotient - whole > (T)0.5 ? whole + 1 : whole; \
} \
static inline T g_remainder_##suffix(T a, T b) { \
    const T mod = FMOD(a, b); \
    return mod != 0 && (mod < 0) != (b < 0) ? mod + b : mod; \
}
G_FLOAT_DIVISION(f, float, fmodf, floorf, copysignf)
G_FLOAT_DIVISION(d, double, fmod, floor, copysign)
#define g_floor_divide(a, b) _Generic((a) + (b), float: g_floor_divide_f, double: g_floor_divide_d, \
                                      default: g_floor_divide_i)((a), (b))
#define g_remainder(a, b) _Generic((a) + (b), float: g_remainder_f, double: g_remainder_d, \
                                   default: g_remainder_i)((a), (b))
#define g_fmod(a, b) _Generic((a) + (b), float: fmodf, double: fmod, default: g_fmod_i)((a), (b))
