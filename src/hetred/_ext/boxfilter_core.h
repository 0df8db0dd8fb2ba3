/* boxfilter_core.h: the C core of hetred._ext.boxfilter (included by boxfilter.pyx). */
#ifndef HETRED_BOXFILTER_CORE_H
#define HETRED_BOXFILTER_CORE_H
/* ---- lane core (plain C) --------------------------------------------------------------
   Karl's biwgt on the 8 lanes of a (n x 8) float tile, excluded entries +inf.  On x86-64
   the hot loops use SSE2 intrinsics (part of the x86-64 baseline); elsewhere GCC/Clang
   vector extensions.  Conditional terms are masks, not branches; each term is Karl's and
   each lane sums in sorted order, so a lane's result equals biwgt's bit for bit. */
#include <math.h>
#include <string.h>
#define HR_L 8

#if defined(__SSE2__)
#include <emmintrin.h>
typedef __m128 hr_f4;
typedef __m128d hr_d2;
#define HR_LD4(p) _mm_loadu_ps(p)
#define HR_ST4(p, v) _mm_storeu_ps((p), (v))
#define HR_MIN4(a, b) _mm_min_ps((a), (b))          /* a < b ? a : b */
#define HR_MAX4(a, b) _mm_max_ps((a), (b))          /* a > b ? a : b */
#define HR_SUB4(a, b) _mm_sub_ps((a), (b))
#define HR_ABS4(a) _mm_and_ps((a), _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff)))
#define HR_LO2D(v) _mm_cvtps_pd(v)
#define HR_HI2D(v) _mm_cvtps_pd(_mm_movehl_ps((v), (v)))
#define HR_LD2D(p) _mm_loadu_pd(p)
#define HR_ST2D(p, v) _mm_storeu_pd((p), (v))
#define HR_DUP2D(a) _mm_set1_pd(a)
#define HR_ADD2D(a, b) _mm_add_pd((a), (b))
#define HR_SUB2D(a, b) _mm_sub_pd((a), (b))
#define HR_MUL2D(a, b) _mm_mul_pd((a), (b))
#define HR_ABS2D(a) _mm_and_pd((a), _mm_castsi128_pd(_mm_set1_epi64x(0x7fffffffffffffffLL)))
#define HR_MASKLT2D(a, b, x) _mm_and_pd(_mm_cmplt_pd((a), (b)), (x))   /* a < b ? x : +0 */
/* finite test and +inf fill for one row of 4: returns the kept values, adds 1 to cnt */
static inline hr_f4 hr_keep4(hr_f4 v, int skip_zero, int *cnt)
{
    __m128 fin = _mm_cmpeq_ps(_mm_sub_ps(v, v), _mm_setzero_ps());
    if (skip_zero) fin = _mm_andnot_ps(_mm_cmpeq_ps(v, _mm_setzero_ps()), fin);
    int m = _mm_movemask_ps(fin);
    cnt[0] += m & 1; cnt[1] += (m >> 1) & 1; cnt[2] += (m >> 2) & 1; cnt[3] += (m >> 3) & 1;
    return _mm_or_ps(_mm_and_ps(fin, v), _mm_andnot_ps(fin, _mm_set1_ps(INFINITY)));
}
#else
typedef float hr_f4 __attribute__((vector_size(16)));
typedef int hr_i4 __attribute__((vector_size(16)));
typedef double hr_d2 __attribute__((vector_size(16)));
typedef long long hr_l2 __attribute__((vector_size(16)));
static inline hr_f4 hr_ld4(const float *p) { hr_f4 v; memcpy(&v, p, sizeof v); return v; }
static inline hr_d2 hr_ld2d(const double *p) { hr_d2 v; memcpy(&v, p, sizeof v); return v; }
static inline hr_f4 hr_min4(hr_f4 a, hr_f4 b) { hr_i4 m = a < b; return (hr_f4)(((hr_i4)a & m) | ((hr_i4)b & ~m)); }
static inline hr_f4 hr_max4(hr_f4 a, hr_f4 b) { hr_i4 m = a > b; return (hr_f4)(((hr_i4)a & m) | ((hr_i4)b & ~m)); }
static inline hr_d2 hr_masklt(hr_d2 a, hr_d2 b, hr_d2 x) { hr_l2 m = a < b; return (hr_d2)((hr_l2)x & m); }
static inline hr_d2 hr_set2d(double a, double b) { hr_d2 r = {a, b}; return r; }
static inline hr_d2 hr_abs2d(hr_d2 a) { return (hr_d2)((hr_l2)a & 0x7fffffffffffffffLL); }
static inline hr_f4 hr_abs4(hr_f4 a) { return (hr_f4)((hr_i4)a & 0x7fffffff); }
static inline hr_f4 hr_keep4(hr_f4 v, int skip_zero, int *cnt)
{
    for (int c = 0; c < 4; c++) {
        float x = v[c];
        int keep = (x - x == 0.0f) && !(skip_zero && x == 0.0f);
        cnt[c] += keep;
        v[c] = keep ? x : INFINITY;
    }
    return v;
}
#define HR_LD4(p) hr_ld4(p)
#define HR_ST4(p, v) do { hr_f4 hr_tmp_ = (v); memcpy((p), &hr_tmp_, sizeof hr_tmp_); } while (0)
#define HR_MIN4(a, b) hr_min4((a), (b))
#define HR_MAX4(a, b) hr_max4((a), (b))
#define HR_SUB4(a, b) ((a) - (b))
#define HR_ABS4(a) hr_abs4(a)
#define HR_LO2D(v) hr_set2d((double)(v)[0], (double)(v)[1])
#define HR_HI2D(v) hr_set2d((double)(v)[2], (double)(v)[3])
#define HR_LD2D(p) hr_ld2d(p)
#define HR_ST2D(p, v) do { hr_d2 hr_tmp_ = (v); memcpy((p), &hr_tmp_, sizeof hr_tmp_); } while (0)
#define HR_DUP2D(a) hr_set2d((a), (a))
#define HR_ADD2D(a, b) ((a) + (b))
#define HR_SUB2D(a, b) ((a) - (b))
#define HR_MUL2D(a, b) ((a) * (b))
#define HR_ABS2D(a) hr_abs2d(a)
#define HR_MASKLT2D(a, b, x) hr_masklt((a), (b), (x))
#endif

/* copy 8 consecutive values into a tile row: non-finite (and, with skip_zero, 0.0) -> +inf */
static inline void hr_fill8(const float *src, float *dst, int skip_zero, int *cnt)
{
    HR_ST4(dst, hr_keep4(HR_LD4(src), skip_zero, cnt));
    HR_ST4(dst + 4, hr_keep4(HR_LD4(src + 4), skip_zero, cnt + 4));
}

static inline void hr_sort_rows(float *t, const int *net, Py_ssize_t nnet)
{
    for (Py_ssize_t k = 0; k < nnet; k++) {
        float *a = t + (Py_ssize_t)net[2 * k] * HR_L;
        float *b = t + (Py_ssize_t)net[2 * k + 1] * HR_L;
        hr_f4 u0 = HR_LD4(a), u1 = HR_LD4(a + 4), v0 = HR_LD4(b), v1 = HR_LD4(b + 4);
        HR_ST4(a, HR_MIN4(u0, v0));
        HR_ST4(a + 4, HR_MIN4(u1, v1));
        HR_ST4(b, HR_MAX4(v0, u0));
        HR_ST4(b + 4, HR_MAX4(v1, u1));
    }
}

/* t0 = float32(x - xbl) widened to double, lanes (0,1) (2,3) (4,5) (6,7) */
#define HR_T0(row, xb0, xb1, d) do { \
    hr_f4 hr_a_ = HR_SUB4(HR_LD4(row), (xb0)); \
    hr_f4 hr_b_ = HR_SUB4(HR_LD4((row) + 4), (xb1)); \
    d[0] = HR_LO2D(hr_a_); d[1] = HR_HI2D(hr_a_); d[2] = HR_LO2D(hr_b_); d[3] = HR_HI2D(hr_b_); \
} while (0)

/* biwgt's location sums over rows [0, rows): s1 = sum t0*t1, s2 = sum t1 with
   t1 = (cmsq - t0^2)^2, for |t0| < cm */
static inline void hr_loc_sums(const float *t, Py_ssize_t rows, const float *xbl,
                               const double *cm, const double *cmsq, double *s1o, double *s2o)
{
    hr_d2 s1[4], s2[4], c2[4], q2[4], d[4];
    hr_f4 xb0 = HR_LD4(xbl), xb1 = HR_LD4(xbl + 4);
    for (int k = 0; k < 4; k++) {
        s1[k] = HR_DUP2D(0.0); s2[k] = HR_DUP2D(0.0);
        c2[k] = HR_LD2D(cm + 2 * k); q2[k] = HR_LD2D(cmsq + 2 * k);
    }
    for (Py_ssize_t i = 0; i < rows; i++) {
        HR_T0(t + i * HR_L, xb0, xb1, d);
        for (int k = 0; k < 4; k++) {
            hr_d2 t0 = d[k];
            hr_d2 t1 = HR_SUB2D(q2[k], HR_MUL2D(t0, t0));
            t1 = HR_MUL2D(t1, t1);
            hr_d2 at = HR_ABS2D(t0);
            s1[k] = HR_ADD2D(s1[k], HR_MASKLT2D(at, c2[k], HR_MUL2D(t0, t1)));
            s2[k] = HR_ADD2D(s2[k], HR_MASKLT2D(at, c2[k], t1));
        }
    }
    for (int k = 0; k < 4; k++) { HR_ST2D(s1o + 2 * k, s1[k]); HR_ST2D(s2o + 2 * k, s2[k]); }
}

/* biwgt's scale sums (c = 9): s1 = sum u*t1^4, s2 = sum t1*(cmsq - 5u), u = t0^2 */
static inline void hr_scale_sums(const float *t, Py_ssize_t rows, const float *xbl,
                                 const double *cm, const double *cmsq, double *s1o, double *s2o)
{
    hr_d2 s1[4], s2[4], c2[4], q2[4], d[4];
    const hr_d2 five = HR_DUP2D(5.0);
    hr_f4 xb0 = HR_LD4(xbl), xb1 = HR_LD4(xbl + 4);
    for (int k = 0; k < 4; k++) {
        s1[k] = HR_DUP2D(0.0); s2[k] = HR_DUP2D(0.0);
        c2[k] = HR_LD2D(cm + 2 * k); q2[k] = HR_LD2D(cmsq + 2 * k);
    }
    for (Py_ssize_t i = 0; i < rows; i++) {
        HR_T0(t + i * HR_L, xb0, xb1, d);
        for (int k = 0; k < 4; k++) {
            hr_d2 t0 = d[k];
            hr_d2 at = HR_ABS2D(t0);
            hr_d2 u = HR_MUL2D(t0, t0);
            hr_d2 t1 = HR_SUB2D(q2[k], u);
            hr_d2 a = HR_MUL2D(HR_MUL2D(HR_MUL2D(HR_MUL2D(u, t1), t1), t1), t1);
            hr_d2 b = HR_MUL2D(t1, HR_SUB2D(q2[k], HR_MUL2D(five, u)));
            s1[k] = HR_ADD2D(s1[k], HR_MASKLT2D(at, c2[k], a));
            s2[k] = HR_ADD2D(s2[k], HR_MASKLT2D(at, c2[k], b));
        }
    }
    for (int k = 0; k < 4; k++) { HR_ST2D(s1o + 2 * k, s1[k]); HR_ST2D(s2o + 2 * k, s2[k]); }
}

/* AVX2 versions of the hot loops (same terms, same order, 4 doubles per op; no FMA, so
   results equal the baseline path bit for bit), chosen at run time when the CPU has AVX2. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(HR_NO_AVX2)
#define HR_HAVE_AVX2 1
#include <immintrin.h>
__attribute__((target("avx2")))
static void hr_sort_rows_avx2(float *t, const int *net, Py_ssize_t nnet)
{
    for (Py_ssize_t k = 0; k < nnet; k++) {
        float *a = t + (Py_ssize_t)net[2 * k] * HR_L;
        float *b = t + (Py_ssize_t)net[2 * k + 1] * HR_L;
        __m256 u = _mm256_loadu_ps(a), v = _mm256_loadu_ps(b);
        _mm256_storeu_ps(a, _mm256_min_ps(u, v));
        _mm256_storeu_ps(b, _mm256_max_ps(v, u));
    }
}

#define HR_T0X(row, xb, d0, d1) do { \
    __m256 hr_a_ = _mm256_sub_ps(_mm256_loadu_ps(row), (xb)); \
    d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(hr_a_)); \
    d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(hr_a_, 1)); \
} while (0)
#define HR_ABSX(a) _mm256_and_pd((a), _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL)))
#define HR_MASKLTX(a, b, x) _mm256_and_pd(_mm256_cmp_pd((a), (b), _CMP_LT_OQ), (x))

__attribute__((target("avx2")))
static void hr_scale_sums_avx2(const float *t, Py_ssize_t rows, const float *xbl,
                               const double *cm, const double *cmsq, double *s1o, double *s2o)
{
    __m256 xb = _mm256_loadu_ps(xbl);
    __m256d c[2] = {_mm256_loadu_pd(cm), _mm256_loadu_pd(cm + 4)};
    __m256d q[2] = {_mm256_loadu_pd(cmsq), _mm256_loadu_pd(cmsq + 4)};
    __m256d s1[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    __m256d s2[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    const __m256d five = _mm256_set1_pd(5.0);
    __m256d d[2];
    for (Py_ssize_t i = 0; i < rows; i++) {
        HR_T0X(t + i * HR_L, xb, d[0], d[1]);
        for (int k = 0; k < 2; k++) {
            __m256d m = _mm256_cmp_pd(HR_ABSX(d[k]), c[k], _CMP_LT_OQ);
            __m256d u = _mm256_mul_pd(d[k], d[k]);
            __m256d t1 = _mm256_sub_pd(q[k], u);
            __m256d a = _mm256_mul_pd(_mm256_mul_pd(_mm256_mul_pd(_mm256_mul_pd(u, t1), t1), t1), t1);
            __m256d b = _mm256_mul_pd(t1, _mm256_sub_pd(q[k], _mm256_mul_pd(five, u)));
            s1[k] = _mm256_add_pd(s1[k], _mm256_and_pd(m, a));
            s2[k] = _mm256_add_pd(s2[k], _mm256_and_pd(m, b));
        }
    }
    _mm256_storeu_pd(s1o, s1[0]); _mm256_storeu_pd(s1o + 4, s1[1]);
    _mm256_storeu_pd(s2o, s2[0]); _mm256_storeu_pd(s2o + 4, s2[1]);
}

/* the whole location iteration of biwgt for the 8 lanes, in registers:
   delta = float(s1/s2); xbl += delta where active; active &= |delta| >= thr */
__attribute__((target("avx2")))
static void hr_locloop_avx2(const float *t, Py_ssize_t rows, float *xbl, const double *cm,
                            const double *cmsq, const float *thr, const int *active)
{
    __m256 xb = _mm256_loadu_ps(xbl), th = _mm256_loadu_ps(thr);
    __m256 act = _mm256_castsi256_ps(_mm256_set_epi32(-active[7], -active[6], -active[5], -active[4],
                                                      -active[3], -active[2], -active[1], -active[0]));
    const __m256 nosign = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256d c0 = _mm256_loadu_pd(cm), c1 = _mm256_loadu_pd(cm + 4);
    __m256d q0 = _mm256_loadu_pd(cmsq), q1 = _mm256_loadu_pd(cmsq + 4);
    int icnt = 0, any = _mm256_movemask_ps(act);
    while (any && icnt < 20) {
        __m256d a0 = _mm256_setzero_pd(), a1 = a0, b0 = a0, b1 = a0, d0, d1;
        icnt++;
        for (Py_ssize_t i = 0; i < rows; i++) {
            HR_T0X(t + i * HR_L, xb, d0, d1);
            __m256d t10 = _mm256_sub_pd(q0, _mm256_mul_pd(d0, d0));
            __m256d t11 = _mm256_sub_pd(q1, _mm256_mul_pd(d1, d1));
            t10 = _mm256_mul_pd(t10, t10);
            t11 = _mm256_mul_pd(t11, t11);
            __m256d m0 = _mm256_cmp_pd(HR_ABSX(d0), c0, _CMP_LT_OQ);
            __m256d m1 = _mm256_cmp_pd(HR_ABSX(d1), c1, _CMP_LT_OQ);
            a0 = _mm256_add_pd(a0, _mm256_and_pd(m0, _mm256_mul_pd(d0, t10)));
            a1 = _mm256_add_pd(a1, _mm256_and_pd(m1, _mm256_mul_pd(d1, t11)));
            b0 = _mm256_add_pd(b0, _mm256_and_pd(m0, t10));
            b1 = _mm256_add_pd(b1, _mm256_and_pd(m1, t11));
        }
        __m128 lo = _mm256_cvtpd_ps(_mm256_div_pd(a0, b0));
        __m128 hi = _mm256_cvtpd_ps(_mm256_div_pd(a1, b1));
        __m256 d = _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
        xb = _mm256_blendv_ps(xb, _mm256_add_ps(xb, d), act);
        act = _mm256_and_ps(act, _mm256_cmp_ps(_mm256_and_ps(d, nosign), th, _CMP_GE_OQ));
        any = _mm256_movemask_ps(act);
    }
    _mm256_storeu_ps(xbl, xb);
}

/* hr_locloop_avx2 for two tiles in one loop (independent chains, interleaved); `rows` is
   the larger row count (extra rows are +inf in the lanes that iterate) */
__attribute__((target("avx2")))
static void hr_locloop2_avx2(const float *tA, float *xblA, const double *cmA,
                             const double *cmsqA, const float *thrA, const int *actA,
                             const float *tB, float *xblB, const double *cmB,
                             const double *cmsqB, const float *thrB, const int *actB,
                             Py_ssize_t rows)
{
    const float *t[2] = {tA, tB};
    float *xbl[2] = {xblA, xblB};
    const double *cm[2] = {cmA, cmB}, *cmsq[2] = {cmsqA, cmsqB};
    const float *thr[2] = {thrA, thrB};
    const int *active[2] = {actA, actB};
    __m256 xb[2], th[2], act[2];
    __m256d c0[2], c1[2], q0[2], q1[2];
    const __m256 nosign = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    int icnt = 0, any[2];
    for (int g = 0; g < 2; g++) {
        const int *a = active[g];
        xb[g] = _mm256_loadu_ps(xbl[g]);
        th[g] = _mm256_loadu_ps(thr[g]);
        act[g] = _mm256_castsi256_ps(_mm256_set_epi32(-a[7], -a[6], -a[5], -a[4], -a[3], -a[2], -a[1], -a[0]));
        c0[g] = _mm256_loadu_pd(cm[g]); c1[g] = _mm256_loadu_pd(cm[g] + 4);
        q0[g] = _mm256_loadu_pd(cmsq[g]); q1[g] = _mm256_loadu_pd(cmsq[g] + 4);
        any[g] = _mm256_movemask_ps(act[g]);
    }
    while ((any[0] | any[1]) && icnt < 20) {
        __m256d a0[2], a1[2], b0[2], b1[2];
        icnt++;
        for (int g = 0; g < 2; g++) {
            a0[g] = _mm256_setzero_pd(); a1[g] = a0[g]; b0[g] = a0[g]; b1[g] = a0[g];
        }
        for (Py_ssize_t i = 0; i < rows; i++) {
            for (int g = 0; g < 2; g++) {
                __m256d d0, d1;
                HR_T0X(t[g] + i * HR_L, xb[g], d0, d1);
                __m256d t10 = _mm256_sub_pd(q0[g], _mm256_mul_pd(d0, d0));
                __m256d t11 = _mm256_sub_pd(q1[g], _mm256_mul_pd(d1, d1));
                t10 = _mm256_mul_pd(t10, t10);
                t11 = _mm256_mul_pd(t11, t11);
                __m256d m0 = _mm256_cmp_pd(HR_ABSX(d0), c0[g], _CMP_LT_OQ);
                __m256d m1 = _mm256_cmp_pd(HR_ABSX(d1), c1[g], _CMP_LT_OQ);
                a0[g] = _mm256_add_pd(a0[g], _mm256_and_pd(m0, _mm256_mul_pd(d0, t10)));
                a1[g] = _mm256_add_pd(a1[g], _mm256_and_pd(m1, _mm256_mul_pd(d1, t11)));
                b0[g] = _mm256_add_pd(b0[g], _mm256_and_pd(m0, t10));
                b1[g] = _mm256_add_pd(b1[g], _mm256_and_pd(m1, t11));
            }
        }
        for (int g = 0; g < 2; g++) {
            __m128 lo = _mm256_cvtpd_ps(_mm256_div_pd(a0[g], b0[g]));
            __m128 hi = _mm256_cvtpd_ps(_mm256_div_pd(a1[g], b1[g]));
            __m256 d = _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
            xb[g] = _mm256_blendv_ps(xb[g], _mm256_add_ps(xb[g], d), act[g]);
            act[g] = _mm256_and_ps(act[g], _mm256_cmp_ps(_mm256_and_ps(d, nosign), th[g], _CMP_GE_OQ));
            any[g] = _mm256_movemask_ps(act[g]);
        }
    }
    _mm256_storeu_ps(xblA, xb[0]);
    _mm256_storeu_ps(xblB, xb[1]);
}

static int hr_simd = -1;     /* -1: not yet chosen; 0: baseline; 1: AVX2 */
static int hr_use_avx2(void)
{
    if (hr_simd < 0) {
        __builtin_cpu_init();
        hr_simd = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return hr_simd;
}
static int hr_set_simd(int level)
{
    __builtin_cpu_init();
    hr_simd = (level > 0 && __builtin_cpu_supports("avx2")) ? 1 : 0;
    return hr_simd;
}
#define HR_SORT(t, net, nnet) (avx2 ? hr_sort_rows_avx2((t), (net), (nnet)) : hr_sort_rows((t), (net), (nnet)))
#define HR_LOCSUMS(...) hr_loc_sums(__VA_ARGS__)
#define HR_SCALESUMS(...) (avx2 ? hr_scale_sums_avx2(__VA_ARGS__) : hr_scale_sums(__VA_ARGS__))
#define HR_LOCLOOP_AVX2(...) hr_locloop_avx2(__VA_ARGS__)
#else
#define HR_LOCLOOP_AVX2(...) ((void)0)
static int hr_use_avx2(void) { return 0; }
static int hr_set_simd(int level) { (void)level; return 0; }
#define HR_SORT(t, net, nnet) hr_sort_rows((t), (net), (nnet))
#define HR_LOCSUMS(...) hr_loc_sums(__VA_ARGS__)
#define HR_SCALESUMS(...) hr_scale_sums(__VA_ARGS__)
#endif

/* Phase 1: sort the tile, Karl's special cases (n < 3, MAD ~ 0), median and MAD.
   Lanes that need the iteration get reg[c] = 1; the others have loc/scale written.
   Returns the largest count among the reg lanes (0: nothing to iterate). */
static Py_ssize_t hr_medmad(float *t, float *dev, Py_ssize_t n, const int *cnt,
                            const int *net, Py_ssize_t nnet, float *xmed, float *xmad,
                            int *reg, float *loc, float *scale)
{
    Py_ssize_t rows = 0;
    int c;
    const int avx2 = hr_use_avx2();
    (void)avx2;

    HR_SORT(t, net, nnet);
    for (c = 0; c < HR_L; c++) {
        int k = cnt[c];
        reg[c] = 0;
        xmed[c] = 0.0f;
        if (k < 1) { loc[c] = -666.0f; scale[c] = -2.0f; }
        else if (k == 1) { loc[c] = t[c]; scale[c] = -1.0f; }
        else if (k == 2) {
            float lo = t[c], hi = t[HR_L + c];
            float xb = (lo + hi) / 2.0f;
            loc[c] = xb; scale[c] = fabsf(lo - xb);
        } else {
            int n2 = k / 2;
            xmed[c] = (k % 2 == 0) ? 0.5f * (t[(n2 - 1) * HR_L + c] + t[n2 * HR_L + c])
                                   : t[n2 * HR_L + c];
            reg[c] = 1;
            if (k > rows) rows = k;
        }
    }
    if (rows == 0) return 0;

    /* MAD: the median of |x - median| */
    int full = 1;
    for (c = 0; c < HR_L; c++) full &= (cnt[c] == n);
    if (full) {
        /* every lane holds n values: the deviations below and above the median are two
           sorted runs, and the k-th smallest of their union is min over a of
           max(A[a-1], B[k-a-1]) -- far cheaper than sorting the deviations */
        Py_ssize_t n2 = n / 2, m = n2;
        Py_ssize_t lo_top = n2 - 1, hi_bot = (n % 2 == 0) ? n2 : n2 + 1;
        for (Py_ssize_t i = 0; i < m; i++) {      /* dev rows 0..m-1: A, m..2m-1: B */
            for (int h = 0; h < HR_L; h += 4) {
                hr_f4 md = HR_LD4(xmed + h);
                HR_ST4(dev + i * HR_L + h, HR_SUB4(md, HR_LD4(t + (lo_top - i) * HR_L + h)));
                HR_ST4(dev + (m + i) * HR_L + h, HR_SUB4(HR_LD4(t + (hi_bot + i) * HR_L + h), md));
            }
        }
        for (int h = 0; h < HR_L; h += 4) {
            hr_f4 f[2];
            for (int w = 0; w < 2; w++) {
                Py_ssize_t kk = (n % 2 == 0) ? n2 + w : n2;   /* 1-based rank */
                Py_ssize_t a0 = kk > m ? kk - m : 0, a1 = kk < m ? kk : m;
                /* a = a0 .. a1 elements from A, kk - a from B (a == 0 or b == 0: one side) */
                hr_f4 best;
                if (a0 == 0) best = HR_LD4(dev + (m + kk - 1) * HR_L + h);
                else best = HR_MAX4(HR_LD4(dev + (a0 - 1) * HR_L + h),
                                    HR_LD4(dev + (m + kk - a0 - 1) * HR_L + h));
                for (Py_ssize_t a = a0 + 1; a <= a1; a++) {
                    Py_ssize_t b = kk - a;
                    hr_f4 term = (b == 0) ? HR_LD4(dev + (a - 1) * HR_L + h)
                                          : HR_MAX4(HR_LD4(dev + (a - 1) * HR_L + h),
                                                    HR_LD4(dev + (m + b - 1) * HR_L + h));
                    best = HR_MIN4(best, term);
                }
                f[w] = best;
            }
            float f0[4], f1[4];
            HR_ST4(f0, f[0]);
            HR_ST4(f1, f[1]);
            for (int q = 0; q < 4; q++)
                xmad[h + q] = (n % 2 == 0) ? 0.5f * (f0[q] + f1[q]) : f0[q];
        }
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            HR_ST4(dev + i * HR_L, HR_ABS4(HR_SUB4(HR_LD4(t + i * HR_L), HR_LD4(xmed))));
            HR_ST4(dev + i * HR_L + 4, HR_ABS4(HR_SUB4(HR_LD4(t + i * HR_L + 4), HR_LD4(xmed + 4))));
        }
        HR_SORT(dev, net, nnet);
    }
    rows = 0;
    for (c = 0; c < HR_L; c++) {
        if (!reg[c]) { xmad[c] = 0.0f; continue; }
        int k = cnt[c], n2 = k / 2;
        if (!full)
            xmad[c] = (k % 2 == 0) ? 0.5f * (dev[(n2 - 1) * HR_L + c] + dev[n2 * HR_L + c])
                                   : dev[n2 * HR_L + c];
        float am = fabsf(xmed[c]);
        if (xmad[c] < 1.0e-6f * (am < 1.0f ? 1.0f : am)) {
            loc[c] = xmed[c]; scale[c] = xmad[c]; reg[c] = 0; xmad[c] = 0.0f;
        } else if (k > rows) rows = k;
    }
    return rows;
}

/* Phase 2 set-up: biwgt's starting point (c = 6, xbl = median, first |delta| =
   max(2e-5, |median|)) for the reg lanes; returns whether any lane takes a step */
static int hr_setup(const int *reg, const float *xmed, const float *xmad, float *xbl,
                    float *thr, double *cm, double *cmsq, int *active)
{
    int any = 0;
    for (int c = 0; c < HR_L; c++) {
        float cmad = 6.0f * xmad[c];
        float am = fabsf(xmed[c]);
        float delta = am < 2.0e-5f ? 2.0e-5f : am;
        cm[c] = cmad; cmsq[c] = cmad * cmad;
        xbl[c] = reg[c] ? xmed[c] : 0.0f;
        thr[c] = 1.0e-4f * xmad[c];
        active[c] = reg[c] && fabsf(delta) >= thr[c];
        any |= active[c];
    }
    return any;
}

/* Phase 2 end: biwgt's scale (c = 9) and the outputs of the reg lanes */
static void hr_finish(const float *t, Py_ssize_t rows, const int *cnt, const int *reg,
                      const float *xmad, const float *xbl, float *loc, float *scale, int want)
{
    double cm[HR_L], cmsq[HR_L], s1[HR_L], s2[HR_L];
    const int avx2 = hr_use_avx2();
    (void)avx2;
    if (!want) {                       /* location only (imcmb, imbox2 keep no scale) */
        for (int c = 0; c < HR_L; c++) if (reg[c]) { loc[c] = xbl[c]; scale[c] = NAN; }
        return;
    }
    for (int c = 0; c < HR_L; c++) {
        float cmad = 9.0f * xmad[c];
        cm[c] = cmad; cmsq[c] = cmad * cmad;
    }
    HR_SCALESUMS(t, rows, xbl, cm, cmsq, s1, s2);
    for (int c = 0; c < HR_L; c++) {
        if (!reg[c]) continue;
        int k = cnt[c];
        loc[c] = xbl[c];
        scale[c] = (float)(k * sqrt(s1[c] / (double)(float)(k - 1.0)) / fabs(s2[c]));
    }
}

/* Phase 2: the location iteration (c = 6) and the scale (c = 9) of the reg lanes over the
   first `rows` rows of the sorted tile. */
static void hr_iterate(const float *t, Py_ssize_t rows, const int *cnt, const int *reg,
                       const float *xmed, const float *xmad, float *loc, float *scale,
                       int want)
{
    float xbl[HR_L], thr[HR_L];
    double cm[HR_L], cmsq[HR_L], s1[HR_L], s2[HR_L];
    int active[HR_L];
    int c, icnt = 0;
    const int avx2 = hr_use_avx2();
    (void)avx2; (void)c;
    int any = hr_setup(reg, xmed, xmad, xbl, thr, cm, cmsq, active);
    if (avx2 && any) {
        HR_LOCLOOP_AVX2(t, rows, xbl, cm, cmsq, thr, active);
        any = 0;
    }
#if defined(__SSE2__)
    {
        /* the step, vectorised: delta = float(s1/s2); xbl += delta where active;
           active &= |delta| >= 1e-4 MAD */
        __m128 act0 = _mm_castsi128_ps(_mm_set_epi32(-active[3], -active[2], -active[1], -active[0]));
        __m128 act1 = _mm_castsi128_ps(_mm_set_epi32(-active[7], -active[6], -active[5], -active[4]));
        __m128 th0 = _mm_loadu_ps(thr), th1 = _mm_loadu_ps(thr + 4);
        __m128 xb0 = _mm_loadu_ps(xbl), xb1 = _mm_loadu_ps(xbl + 4);
        const __m128 nosign = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
        while (any && icnt < 20) {
            icnt++;
            HR_LOCSUMS(t, rows, xbl, cm, cmsq, s1, s2);
            __m128 d0 = _mm_movelh_ps(_mm_cvtpd_ps(_mm_div_pd(_mm_loadu_pd(s1), _mm_loadu_pd(s2))),
                                      _mm_cvtpd_ps(_mm_div_pd(_mm_loadu_pd(s1 + 2), _mm_loadu_pd(s2 + 2))));
            __m128 d1 = _mm_movelh_ps(_mm_cvtpd_ps(_mm_div_pd(_mm_loadu_pd(s1 + 4), _mm_loadu_pd(s2 + 4))),
                                      _mm_cvtpd_ps(_mm_div_pd(_mm_loadu_pd(s1 + 6), _mm_loadu_pd(s2 + 6))));
            xb0 = _mm_or_ps(_mm_and_ps(act0, _mm_add_ps(xb0, d0)), _mm_andnot_ps(act0, xb0));
            xb1 = _mm_or_ps(_mm_and_ps(act1, _mm_add_ps(xb1, d1)), _mm_andnot_ps(act1, xb1));
            act0 = _mm_and_ps(act0, _mm_cmpge_ps(_mm_and_ps(d0, nosign), th0));
            act1 = _mm_and_ps(act1, _mm_cmpge_ps(_mm_and_ps(d1, nosign), th1));
            _mm_storeu_ps(xbl, xb0);
            _mm_storeu_ps(xbl + 4, xb1);
            any = _mm_movemask_ps(_mm_or_ps(act0, act1));
        }
    }
#else
    while (any && icnt < 20) {
        icnt++;
        HR_LOCSUMS(t, rows, xbl, cm, cmsq, s1, s2);
        any = 0;
        for (c = 0; c < HR_L; c++) {
            float delta = (float)(s1[c] / s2[c]);
            int a = active[c];
            xbl[c] = a ? xbl[c] + delta : xbl[c];
            active[c] = a && fabsf(delta) >= thr[c];
            any |= active[c];
        }
    }
#endif

    hr_finish(t, rows, cnt, reg, xmad, xbl, loc, scale, want);
}

/* two tiles at once: on AVX2 their iterations are interleaved in one loop, so that one
   tile's arithmetic fills the other's wait on the division and the step */
static void hr_iterate2(const float *tA, Py_ssize_t rowsA, const int *cntA, const int *regA,
                        const float *xmedA, const float *xmadA, float *locA, float *scaleA,
                        const float *tB, Py_ssize_t rowsB, const int *cntB, const int *regB,
                        const float *xmedB, const float *xmadB, float *locB, float *scaleB,
                        int want)
{
#ifdef HR_HAVE_AVX2
    if (hr_use_avx2() && rowsA > 0 && rowsB > 0) {
        float xblA[HR_L], thrA[HR_L], xblB[HR_L], thrB[HR_L];
        double cmA[HR_L], cmsqA[HR_L], cmB[HR_L], cmsqB[HR_L];
        int actA[HR_L], actB[HR_L];
        hr_setup(regA, xmedA, xmadA, xblA, thrA, cmA, cmsqA, actA);
        hr_setup(regB, xmedB, xmadB, xblB, thrB, cmB, cmsqB, actB);
        hr_locloop2_avx2(tA, xblA, cmA, cmsqA, thrA, actA, tB, xblB, cmB, cmsqB, thrB, actB,
                         rowsA > rowsB ? rowsA : rowsB);
        hr_finish(tA, rowsA, cntA, regA, xmadA, xblA, locA, scaleA, want);
        hr_finish(tB, rowsB, cntB, regB, xmadB, xblB, locB, scaleB, want);
        return;
    }
#endif
    if (rowsA > 0) hr_iterate(tA, rowsA, cntA, regA, xmedA, xmadA, locA, scaleA, want);
    if (rowsB > 0) hr_iterate(tB, rowsB, cntB, regB, xmedB, xmadB, locB, scaleB, want);
}

/* Karl's biwgt of each lane of the (n x 8) tile t (sorted in place; dev is scratch of the
   same size).  Lane c holds cnt[c] finite values, +inf elsewhere.  Writes loc, scale. */
static void hr_lanes(float *t, float *dev, Py_ssize_t n, const int *cnt,
                     const int *net, Py_ssize_t nnet, float *loc, float *scale, int want)
{
    float xmed[HR_L], xmad[HR_L];
    int reg[HR_L];
    Py_ssize_t rows = hr_medmad(t, dev, n, cnt, net, nnet, xmed, xmad, reg, loc, scale);
    if (rows > 0) hr_iterate(t, rows, cnt, reg, xmed, xmad, loc, scale, want);
}

/* imgetctrap's test over rows [r0, r1) and columns [c0, c1) of a C-contiguous image:
   hit = (x - xb) / xs > tcut in float32 (Karl's xin2 > tcut), xb, xs the biweight of the
   neighbours at column offsets dcs[0..k-1] in the same row.  Pixels that need the
   biweight iteration are queued 8 at a time (their sorted samples copied into q), so the
   iteration runs on full tiles; with screen > 0 a pixel whose value is not above
   median + screen * MAD cannot be a hit and is not queued. */
typedef struct {
    float *q; Py_ssize_t n; int nq;
    int cnt[HR_L], reg[HR_L];
    float xmed[HR_L], xmad[HR_L], x[HR_L];
    Py_ssize_t pos[HR_L];
} hr_queue;

static void hr_flush(hr_queue *Q, float tcut, unsigned char *hits)
{
    float loc[HR_L], scale[HR_L];
    Py_ssize_t rows = 0;
    if (Q->nq == 0) return;
    for (int c = Q->nq; c < HR_L; c++) {
        for (Py_ssize_t i = 0; i < Q->n; i++) Q->q[i * HR_L + c] = INFINITY;
        Q->cnt[c] = 0; Q->reg[c] = 0; Q->xmed[c] = 0.0f; Q->xmad[c] = 0.0f;
    }
    for (int c = 0; c < Q->nq; c++) if (Q->cnt[c] > rows) rows = Q->cnt[c];
    hr_iterate(Q->q, rows, Q->cnt, Q->reg, Q->xmed, Q->xmad, loc, scale, 1);
    for (int c = 0; c < Q->nq; c++)
        hits[Q->pos[c]] = (unsigned char)(((Q->x[c] - loc[c]) / scale[c]) > tcut);
    Q->nq = 0;
}

static void hr_trap_hits(const float *img, Py_ssize_t nrow, Py_ssize_t ncol,
                         Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t c0, Py_ssize_t c1,
                         const long long *dcs, Py_ssize_t k, const int *net, Py_ssize_t nnet,
                         float tcut, float screen, float *tile, float *dev, float *qbuf,
                         unsigned char *hits)
{
    int cnt[HR_L], reg[HR_L];
    float xmed[HR_L], xmad[HR_L], loc[HR_L], scale[HR_L], xc[HR_L], buf[HR_L];
    hr_queue Q;
    Q.q = qbuf; Q.n = k; Q.nq = 0;
    (void)nrow;
    for (Py_ssize_t r = r0; r < r1; r++) {
        const float *row = img + r * ncol;
        for (Py_ssize_t j0 = c0; j0 < c1; j0 += HR_L) {
            Py_ssize_t nfull = (j0 + HR_L <= c1) ? HR_L : c1 - j0;
            for (int c = 0; c < HR_L; c++) { cnt[c] = 0; xc[c] = c < nfull ? row[j0 + c] : 0.0f; }
            for (Py_ssize_t q = 0; q < k; q++) {
                Py_ssize_t s0 = j0 + (Py_ssize_t)dcs[q];
                if (nfull == HR_L && s0 >= 0 && s0 + HR_L <= ncol) {
                    hr_fill8(row + s0, tile + q * HR_L, 0, cnt);
                } else {
                    for (int c = 0; c < HR_L; c++)
                        buf[c] = (c < nfull && s0 + c >= 0 && s0 + c < ncol) ? row[s0 + c] : INFINITY;
                    hr_fill8(buf, tile + q * HR_L, 0, cnt);
                }
            }
            for (int c = (int)nfull; c < HR_L; c++) cnt[c] = 0;
            hr_medmad(tile, dev, k, cnt, net, nnet, xmed, xmad, reg, loc, scale);
            for (int c = 0; c < (int)nfull; c++) {
                Py_ssize_t p = r * ncol + j0 + c;
                if (!reg[c]) {
                    hits[p] = (unsigned char)(((xc[c] - loc[c]) / scale[c]) > tcut);
                    continue;
                }
                if (screen > 0.0f && !(xc[c] > xmed[c] + screen * xmad[c])) {
                    hits[p] = 0;
                    continue;
                }
                int l = Q.nq++;
                for (Py_ssize_t i = 0; i < k; i++) Q.q[i * HR_L + l] = tile[i * HR_L + c];
                Q.cnt[l] = cnt[c]; Q.reg[l] = 1; Q.xmed[l] = xmed[c]; Q.xmad[l] = xmad[c];
                Q.x[l] = xc[c]; Q.pos[l] = p;
                if (Q.nq == HR_L) hr_flush(&Q, tcut, hits);
            }
        }
    }
    hr_flush(&Q, tcut, hits);
}

/* Karl's biwgt of the 8 samples of a tile (iterated in lockstep), written to
   locs[out[c]], scales[out[c]] for the first nlanes lanes */
static void hr_group_lockstep(float *tile, float *dev, Py_ssize_t n, const int *cnt,
                              const int *net, Py_ssize_t nnet, const Py_ssize_t *out,
                              int nlanes, float *locs, float *scales, int want)
{
    float loc[HR_L], scale[HR_L];
    hr_lanes(tile, dev, n, cnt, net, nnet, loc, scale, want);
    for (int c = 0; c < nlanes; c++) locs[out[c]] = loc[c];
    if (want) for (int c = 0; c < nlanes; c++) scales[out[c]] = scale[c];
}

/* two tiles (A: lanes 0..nA-1 to outA, B likewise), iterated together (hr_iterate2) */
static void hr_group_pair(float *tA, const int *cntA, const Py_ssize_t *outA, int nA,
                          float *tB, const int *cntB, const Py_ssize_t *outB, int nB,
                          float *dev, Py_ssize_t n, const int *net, Py_ssize_t nnet,
                          float *locs, float *scales, int want)
{
    float xmedA[HR_L], xmadA[HR_L], locA[HR_L], scaleA[HR_L];
    float xmedB[HR_L], xmadB[HR_L], locB[HR_L], scaleB[HR_L];
    int regA[HR_L], regB[HR_L];
    Py_ssize_t rowsA = hr_medmad(tA, dev, n, cntA, net, nnet, xmedA, xmadA, regA, locA, scaleA);
    Py_ssize_t rowsB = hr_medmad(tB, dev, n, cntB, net, nnet, xmedB, xmadB, regB, locB, scaleB);
    hr_iterate2(tA, rowsA, cntA, regA, xmedA, xmadA, locA, scaleA,
                tB, rowsB, cntB, regB, xmedB, xmadB, locB, scaleB, want);
    for (int c = 0; c < nA; c++) locs[outA[c]] = locA[c];
    for (int c = 0; c < nB; c++) locs[outB[c]] = locB[c];
    if (want) {
        for (int c = 0; c < nA; c++) scales[outA[c]] = scaleA[c];
        for (int c = 0; c < nB; c++) scales[outB[c]] = scaleB[c];
    }
}
#endif
