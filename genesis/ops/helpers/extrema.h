/* maximum and minimum: NaN propagates from either side, as numpy's do */
#define g_max(a, b) ((a) > (b) || (a) != (a) ? (a) : (b))
#define g_min(a, b) ((a) < (b) || (a) != (a) ? (a) : (b))
