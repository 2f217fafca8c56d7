/* g * (Phi(x) + x phi(x)) with Phi(x) = out / x (ops/activations.py), with exp.h's g_expf */
static inline float g_gelu_backward_f(float g, float x, float out) {
    const float cdf = __builtin_fabsf(x) > (float)1e-30 ? out / x : 0.5f;
    return g * (cdf + x * (g_expf(x * x * -0.5f) * (float)0.3989422804014327));
}
static inline double g_gelu_backward_d(double g, double x, double out) {
    const double cdf = fabs(x) > 1e-30 ? out / x : 0.5;
    return g * (cdf + x * (exp(x * x * -0.5) * 0.3989422804014327));
}
#define g_gelu_backward(g, x, out) _Generic((x), float: g_gelu_backward_f(g, x, out), default: g_gelu_backward_d(g, x, out))
