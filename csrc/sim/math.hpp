// Scalar maths shared by the CPU and CUDA backends.
//
// Determinism contract (SPEC §4): every backend must produce bit-identical floats, so we
// never call libm / libdevice transcendentals. sin, cos and atan2 below use a fixed range
// reduction and fixed polynomial coefficients (Cephes' single-precision minimax sets),
// evaluated in float32 in exactly the written order (the build forbids FMA contraction).
// The Python reference implementation and the README's determinism section list the same
// constants. sqrtf and IEEE division are correctly rounded on both sides.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define ER_HD __host__ __device__
#else
#define ER_HD
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
    switch (k & 3) {
    case 0: return {s, c};
    case 1: return {c, -s};
    case 2: return {-s, -c};
    default: return {-c, s};
    }
}

// atan2(y, x) in [-pi, pi]; atan2(0, 0) = 0.
ER_HD inline float atan2_f(float y, float x)
{
    const float ax = abs_f(x), ay = abs_f(y);
    if (ax == 0.0f && ay == 0.0f) return 0.0f;
    const bool swap = ay > ax;
    float z = swap ? ax / ay : ay / ax;  // in [0, 1]
    float base = 0.0f;
    if (z > kTanPiOver8) {
        z = (z - 1.0f) / (z + 1.0f);
        base = kQuarterPi;
    }
    const float z2 = z * z;
    float a = base + (z + z * z2 * (((kAtan1 * z2 + kAtan2) * z2 + kAtan3) * z2 + kAtan4));
    if (swap) a = kHalfPi - a;
    if (x < 0.0f) a = kPi - a;
    return y < 0.0f ? -a : a;
}

// Wraps an angle into (-pi, pi] (our yaw changes by at most pi/8 a step, so one turn suffices).
ER_HD inline float wrap_angle(float a)
{
    if (a > kPi) a -= kTwoPi;
    if (a <= -kPi) a += kTwoPi;
    return a;
}

}  // namespace er
