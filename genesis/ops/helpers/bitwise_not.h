/* bitwise not: logical for bool, ~ for integers */
#define g_not(x) _Generic((x), _Bool: !(x), default: ~(x))
