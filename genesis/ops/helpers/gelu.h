/* GELU rounded in the order of eager's kernel (ops/activations.py): the inner term, then + 1, then
   times x, then the exact halving. The constants are the kernel's doubles, narrowed to float as
   numpy narrows a Python float for a float32 array. */
#define G_SQRT1_2 0.7071067811865475
#define G_SQRT_2_OVER_PI 0.7978845608028654
static inline float g_gelu_f(float x) { return x * (erff(x * (float)G_SQRT1_2) + 1.0f) * 0.5f; }
static inline double g_gelu_d(double x) { return x * (erf(x * G_SQRT1_2) + 1.0) * 0.5; }
static inline float g_gelu_tanh_f(float x) {
    return x * (tanhf((x * x * x * (float)0.044715 + x) * (float)G_SQRT_2_OVER_PI) + 1.0f) * 0.5f;
}
static inline double g_gelu_tanh_d(double x) {
    return x * (tanh((x * x * x * 0.044715 + x) * G_SQRT_2_OVER_PI) + 1.0) * 0.5;
}
#define g_gelu(x) _Generic((x), float: g_gelu_f(x), default: g_gelu_d(x))
#define g_gelu_tanh(x) _Generic((x), float: g_gelu_tanh_f(x), default: g_gelu_tanh_d(x))
