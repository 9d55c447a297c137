// Scalar maths shared by the CPU and CUDA backends.
//
// Determinism contract (SPEC §4): every backend must produce bit-identical floats, so we
// never call libm / libdevice transcendentals. sin, cos and atan2 below use a fixed range
// reduction and fixed polynomial coefficients (Cephes' single-precision minimax sets),
// evaluated in float32 in exactly the written order (the build forbids FMA contraction).
// The Python reference implementation and the README's determinism section list the same
// constants. sqrtf and IEEE division are correctly rounded on both sides.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define ER_HD __host__ __device__
#else
#define ER_HD
#endif

// A small branch-free lane loop that GCC vectorises when it compiles the function on its own
// but not always once inlined into a large caller: kept out of line on the host (a call costs
// less than the scalar loop); inlined on the device, where lanes are scalar anyway.
#if defined(__CUDA_ARCH__) || !defined(__GNUC__)
#define ER_LANES
#else
#define ER_LANES __attribute__((noinline))
#endif

// Out of line on the device: code a step kernel would otherwise inline several times (the
// observation) or seldom runs (resets, the SAME_STEP tail). A GPU thread pays registers and
// instruction cache for inlined code whether it runs it or not. Inlined on the host.
#if defined(__CUDA_ARCH__)
#define ER_OUTLINE __noinline__
#else
#define ER_OUTLINE
#endif

#if !defined(__CUDA_ARCH__) && defined(__AVX2__)
#include <immintrin.h>
#endif

namespace er {

constexpr float kPi = 3.14159265358979323846f;
constexpr float kTwoPi = 6.28318530717958647692f;
constexpr float kHalfPi = 1.57079632679489661923f;
constexpr float kQuarterPi = 0.78539816339744830962f;
constexpr float kTwoOverPi = 0.63661977236758134308f;

// Cody–Waite split of pi/2 (each part exact in few bits, so k * part is exact for |k| < 2^8).
constexpr float kPio2Hi = 1.5703125f;
constexpr float kPio2Mid = 4.837512969970703125e-4f;
constexpr float kPio2Lo = 7.54978995489188216e-8f;

// Minimax polynomials on [-pi/4, pi/4] (Cephes sinf/cosf).
constexpr float kSin1 = -1.6666654611e-1f;
constexpr float kSin2 = 8.3321608736e-3f;
constexpr float kSin3 = -1.9515295891e-4f;
constexpr float kCos1 = 4.166664568298827e-2f;
constexpr float kCos2 = -1.388731625493765e-3f;
constexpr float kCos3 = 2.443315711809948e-5f;

// atan on [0, tan(pi/8)] after the reduction z -> (z - 1) / (z + 1) for z > tan(pi/8) (Cephes atanf).
constexpr float kTanPiOver8 = 0.4142135623730950f;
constexpr float kAtan1 = 8.05374449538e-2f;
constexpr float kAtan2 = -1.38776856032e-1f;
constexpr float kAtan3 = 1.99777106478e-1f;
constexpr float kAtan4 = -3.33329491539e-1f;

struct Vec2 {
    float x, y;
};

ER_HD inline Vec2 operator+(Vec2 a, Vec2 b) { return {a.x + b.x, a.y + b.y}; }
ER_HD inline Vec2 operator-(Vec2 a, Vec2 b) { return {a.x - b.x, a.y - b.y}; }
ER_HD inline Vec2 operator*(Vec2 a, float s) { return {a.x * s, a.y * s}; }
ER_HD inline float dot(Vec2 a, Vec2 b) { return a.x * b.x + a.y * b.y; }

ER_HD inline float min_f(float a, float b) { return a < b ? a : b; }
ER_HD inline float max_f(float a, float b) { return a > b ? a : b; }
ER_HD inline float clamp_f(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }
ER_HD inline int32_t clamp_i(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }
ER_HD inline float abs_f(float v) { return v < 0.0f ? -v : v; }

ER_HD inline float sqrt_f(float v)
{
#if defined(__CUDA_ARCH__)
    return __fsqrt_rn(v);
#else
    return __builtin_sqrtf(v);
#endif
}

// Bit k set for each lane k (< n, a multiple of 8 up to 32) whose flag is non-zero: what a lane
// loop's results are turned into for a loop over the set bits. (Compilers reduce a mask built
// lane by lane in a long chain of shuffles; one vector test does it on the CPU.)
template <int32_t n>
ER_HD inline uint32_t lane_bits(const int32_t* flags)
{
    static_assert(n % 8 == 0 && n <= 32, "whole 8-lane vectors");
#if !defined(__CUDA_ARCH__) && defined(__AVX2__)
    uint32_t bits = 0;
    for (int32_t k = 0; k < n; k += 8) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(flags + k));
        const __m256i set = _mm256_xor_si256(_mm256_cmpeq_epi32(v, _mm256_setzero_si256()), _mm256_set1_epi32(-1));
        bits |= (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(set)) << k;
    }
    return bits;
#else
    uint32_t bits = 0;
    for (int32_t k = 0; k < n; ++k) bits |= (uint32_t)(flags[k] != 0) << k;
    return bits;
#endif
}

// Round half away from zero, without libm.
ER_HD inline int32_t round_to_int(float v) { return v >= 0.0f ? (int32_t)(v + 0.5f) : -(int32_t)(0.5f - v); }

struct SinCos {
    float sin, cos;
};

// sin and cos of x for |x| <= 2^8 * pi/2 (our angles stay within a few pi).
ER_HD inline SinCos sincos_f(float x)
{
    const int32_t k = round_to_int(x * kTwoOverPi);
    const float kf = (float)k;
    float r = x - kf * kPio2Hi;
    r = r - kf * kPio2Mid;
    r = r - kf * kPio2Lo;
    const float r2 = r * r;
    const float s = r + r * r2 * (kSin1 + r2 * (kSin2 + r2 * kSin3));
    const float c = 1.0f - 0.5f * r2 + r2 * r2 * (kCos1 + r2 * (kCos2 + r2 * kCos3));
    // The quadrant k mod 4 picks (s, c), (c, -s), (-s, -c) or (-c, s): selects, not branches (the
    // quadrant of a yaw is anyone's guess, and a mispredicted branch costs more than the selects).
    const bool odd = (k & 1) != 0, neg_sin = (k & 2) != 0, neg_cos = ((k + 1) & 2) != 0;
    const float sv = odd ? c : s, cv = odd ? s : c;
    return {neg_sin ? -sv : sv, neg_cos ? -cv : cv};
}

// atan2(y, x) in [-pi, pi]; atan2(0, 0) = 0.
ER_HD inline float atan2_f(float y, float x)
{
    // Both reductions are computed and one selected, as are the octant corrections: the same
    // operations on the path taken, without branches on the direction's octant.
    const float ax = abs_f(x), ay = abs_f(y);
    const bool swap = ay > ax;
    const float z0 = (swap ? ax : ay) / (swap ? ay : ax);  // in [0, 1] (NaN for (0, 0), not used)
    const bool reduce = z0 > kTanPiOver8;
    const float z = reduce ? (z0 - 1.0f) / (z0 + 1.0f) : z0;
    const float base = reduce ? kQuarterPi : 0.0f;
    const float z2 = z * z;
    float a = base + (z + z * z2 * (((kAtan1 * z2 + kAtan2) * z2 + kAtan3) * z2 + kAtan4));
    a = swap ? kHalfPi - a : a;
    a = x < 0.0f ? kPi - a : a;
    a = y < 0.0f ? -a : a;
    return ax == 0.0f && ay == 0.0f ? 0.0f : a;
}

// Wraps an angle into (-pi, pi] (our yaw changes by at most pi/8 a step, so one turn suffices).
ER_HD inline float wrap_angle(float a)
{
    if (a > kPi) a -= kTwoPi;
    if (a <= -kPi) a += kTwoPi;
    return a;
}

}  // namespace er
