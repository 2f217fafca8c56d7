/* abs of any C type: fabs for floats (-0.0 -> 0.0, NaN kept), a compare for integers */
#define g_abs(x) _Generic((x), float: fabsf(x), double: fabs(x), default: ((x) < 0 ? -(x) : (x)))
