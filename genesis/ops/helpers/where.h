/* where(c, a, b) of floats by their bits: as a ternary, gcc threads the products of the result (a
   mask times a gradient) through the branch, and the loop stays scalar */
static inline float g_where_f(_Bool c, float a, float b) {
    uint32_t ua, ub; memcpy(&ua, &a, 4); memcpy(&ub, &b, 4);
    const uint32_t take_a = -(uint32_t)c;
    ua = (ua & take_a) | (ub & ~take_a); memcpy(&a, &ua, 4); return a;
}
static inline double g_where_d(_Bool c, double a, double b) {
    uint64_t ua, ub; memcpy(&ua, &a, 8); memcpy(&ub, &b, 8);
    const uint64_t take_a = -(uint64_t)c;
    ua = (ua & take_a) | (ub & ~take_a); memcpy(&a, &ua, 8); return a;
}
#define g_where(c, a, b) _Generic((a) + (b), float: g_where_f((c), (a), (b)), double: g_where_d((c), (a), (b)), \
                                  default: ((c) ? (a) : (b)))
