/* clamp's bounds; a missing bound is NaN, which no comparison is true for */
#define g_clamp_lower(x, lo) ((x) < (lo) ? (lo) : (x))
#define g_clamp_upper(x, hi) ((x) > (hi) ? (hi) : (x))
