/* relu of a float by its bits: a value with the sign bit set that is not NaN becomes +0.0 (numpy's
   maximum(x, 0) gives +0.0 for -0.0 too). As `x < 0 ? 0 : x`, gcc threads a later `relu(x) > 0`
   (ReLU's mask for the backward) through the branch and then leaves the loop scalar: 6x slower on
   values of random sign, where the branch mispredicts. */
static inline float g_relu_f(float x) {
    uint32_t u; memcpy(&u, &x, 4);
    const uint32_t drop = (uint32_t)((int32_t)u >> 31) & ~(uint32_t)-(int32_t)(x != x);
    u &= ~drop; memcpy(&x, &u, 4); return x;
}
static inline double g_relu_d(double x) {
    uint64_t u; memcpy(&u, &x, 8);
    const uint64_t drop = (uint64_t)((int64_t)u >> 63) & ~(uint64_t)-(int64_t)(x != x);
    u &= ~drop; memcpy(&x, &u, 8); return x;
}
#define g_relu(x) _Generic((x), float: g_relu_f(x), double: g_relu_d(x), default: ((x) < 0 ? 0 : (x)))
