// Lidar (SPEC §3): 30 rays from the agent's centre against walls, closed doors, cubes and the
// other agents; the nearest hit within 40 m.
#pragma once

#include "physics.hpp"

#if !defined(__CUDA_ARCH__) && defined(__AVX__)
#include <immintrin.h>
#endif

namespace er {

constexpr float kNoHit = 3.0e38f;

// Rays are traced a chunk of lanes at a time. On the CPU a chunk is one 16-lane vector loop; on
// the GPU, where a thread runs the lanes one after the other, 4 lanes keep a chunk's state in
// few registers (the step kernel fits 128 without spills; .ci/cuda_resources) and a 36-degree
// sector that most targets lie outside of. The 30 rays are padded to whole chunks (the 2 spare
// lanes repeat ray 29, so they reach no farther than their chunk's own rays, and are dropped).
constexpr int32_t kRayLanes = 32;
#if defined(ER_LIDAR_CHUNK)  // a test build may force the GPU's chunking on the CPU
constexpr int32_t kRayChunk = ER_LIDAR_CHUNK;
#elif defined(__CUDA_ARCH__)
constexpr int32_t kRayChunk = 4;
#else
constexpr int32_t kRayChunk = 16;
#endif
static_assert(kRayLanes >= kLidarRays && kRayLanes % kRayChunk == 0, "whole chunks");

// Ray k points at yaw + 2*pi*k/30 (counter-clockwise). The rotation of the forward vector by
// 2*pi*k/30 comes from this table, filled once with sincos_f((float)k * (2*pi/30)) so that
// each step needs only the agent's own sin/cos.
struct LidarTable {
    Vec2 rot[kRayLanes];  // (cos, sin) of 2*pi*k/30; lanes 30, 31 repeat ray 29
};

inline LidarTable make_lidar_table()
{
    LidarTable t{};
    for (int32_t k = 0; k < kRayLanes; ++k) {
        const int32_t ray = k < kLidarRays ? k : kLidarRays - 1;
        const SinCos sc = sincos_f((float)ray * (kTwoPi / (float)kLidarRays));
        t.rot[k] = {sc.cos, sc.sin};
    }
    return t;
}

// The rays of one chunk, one lane per ray. Loops over lanes are branch-free, so the CPU build
// vectorises them; every lane does the same IEEE operations as a scalar loop would.
struct RayChunk {
    float dx[kRayChunk], dy[kRayChunk];  // unit directions
    float ix[kRayChunk], iy[kRayChunk];  // 1 / direction (0 where the direction is 0)
    float best[kRayChunk];               // nearest hit so far, metres
    int32_t type[kRayChunk];             // its EntityType
};

// Lanes [first, first + kRayChunk) of an agent's rays (unit heading `forward`), nothing hit yet.
ER_HD inline void start_chunk(RayChunk& r, const LidarTable& table, Vec2 forward, int32_t first)
{
    for (int32_t k = 0; k < kRayChunk; ++k) {
        const Vec2 rot = table.rot[first + k];
        r.dx[k] = forward.x * rot.x - forward.y * rot.y;
        r.dy[k] = forward.x * rot.y + forward.y * rot.x;
        r.ix[k] = r.dx[k] != 0.0f ? 1.0f / r.dx[k] : 0.0f;
        r.iy[k] = r.dy[k] != 0.0f ? 1.0f / r.dy[k] : 0.0f;
        r.best[k] = kNoHit;
        r.type[k] = kTypeNone;
    }
}

// Lane k keeps (t, type) when t is strictly nearer than its best so far. Written as a min and
// a bit select, so the CPU build stores whole vectors: a masked store that the next target's
// loads must wait for costs more than the select.
ER_HD inline void keep_nearer(RayChunk& r, int32_t k, float t, int32_t type)
{
    const float old = r.best[k];
    const int32_t keep = -(int32_t)(t < old);  // all ones when nearer
    r.best[k] = min_f(t, old);                 // t < old ? t : old
    r.type[k] = (type & keep) | (r.type[k] & ~keep);
}

// Nearest-hit update of every ray against box b: distance to b along the ray (0 from inside),
// kept when strictly nearer than the best so far.
ER_HD inline void rays_vs_box(RayChunk& r, Vec2 o, const Box& b, int32_t type)
{
    // A ray parallel to a slab is inside it everywhere or nowhere.
    const float par_near_x = (o.x >= b.min_x) & (o.x <= b.max_x) ? -kNoHit : kNoHit;
    const float par_near_y = (o.y >= b.min_y) & (o.y <= b.max_y) ? -kNoHit : kNoHit;
    const float lo_x = b.min_x - o.x, hi_x = b.max_x - o.x, lo_y = b.min_y - o.y, hi_y = b.max_y - o.y;
    for (int32_t k = 0; k < kRayChunk; ++k) {
        const float tx1 = lo_x * r.ix[k], tx2 = hi_x * r.ix[k];
        const float ty1 = lo_y * r.iy[k], ty2 = hi_y * r.iy[k];
        const bool px = r.dx[k] == 0.0f, py = r.dy[k] == 0.0f;
        const float near_x = px ? par_near_x : min_f(tx1, tx2);
        const float far_x = px ? -par_near_x : max_f(tx1, tx2);
        const float near_y = py ? par_near_y : min_f(ty1, ty2);
        const float far_y = py ? -par_near_y : max_f(ty1, ty2);
        const float t_near = max_f(near_x, near_y), t_far = min_f(far_x, far_y);
        const bool hit = (t_far >= t_near) & (t_far >= 0.0f);
        keep_nearer(r, k, hit ? max_f(t_near, 0.0f) : kNoHit, type);
    }
}

// The same against a disc (another agent).
ER_HD inline void rays_vs_disc(RayChunk& r, Vec2 o, Vec2 centre, float radius, int32_t type)
{
    const Vec2 m = o - centre;
    const float c = dot(m, m) - radius * radius;
    const bool inside = c <= 0.0f;
    for (int32_t k = 0; k < kRayChunk; ++k) {
        const float b = m.x * r.dx[k] + m.y * r.dy[k];
        const float disc = b * b - c;
        const bool hit = inside | ((b <= 0.0f) & (disc >= 0.0f));
        const float root = sqrt_f(disc >= 0.0f ? disc : 0.0f);
        keep_nearer(r, k, inside ? 0.0f : (hit ? max_f(-b - root, 0.0f) : kNoHit), type);
    }
}

// -- culling: targets that cannot change a chunk's result are not traced ---------------------
//
// Targets are traced in the SPEC's order (statics, cubes, agents), each lane keeping a hit only
// when strictly nearer, so ties go to the first. A target is skipped when every ray's t is
// provably above the lane's best so far (it would change nothing, now or later) or above 40 m
// (it could only ever change a lane whose result stays "nothing seen"). The proofs need a lower
// bound of every ray's computed t:
// - a box: a ray that hits it crosses the slab whose face is farthest from the origin, so
//   t >= gap / |direction component| >= gap for unit directions; the factor and the offset
//   cover the rounding of the directions and of the products (relative 1e-6) many times over;
// - a disc: t >= |m| - r; the computed root falls short of it by the rounding of b^2 - c, at
//   most ~1e-3 |m| near tangency, which the factor and offset cover.
ER_HD inline float box_lower_bound(Vec2 o, const Box& b)
{
    const float gx = max_f(b.min_x - o.x, o.x - b.max_x);
    const float gy = max_f(b.min_y - o.y, o.y - b.max_y);
    return max_f(gx, gy) * 0.99f - 1.0e-4f;
}

ER_HD inline float disc_lower_bound(Vec2 o, Vec2 centre, float radius)
{
    const Vec2 m = o - centre;
    return (sqrt_f(dot(m, m)) - radius) * 0.99f - 0.05f;
}

// Whether some lane's nearest hit so far is at least `bound`: only then can a target whose
// lower bound is `bound` change the chunk. (A compare and a mask test on the CPU's vectors.)
ER_HD inline bool chunk_reaches(const RayChunk& r, float bound)
{
#if !defined(__CUDA_ARCH__) && defined(__AVX512F__)
    if constexpr (kRayChunk == 16)
        return _mm512_cmp_ps_mask(_mm512_loadu_ps(r.best), _mm512_set1_ps(bound), _CMP_GE_OQ) != 0;
#elif !defined(__CUDA_ARCH__) && defined(__AVX__)
    if constexpr (kRayChunk % 8 == 0) {
        const __m256 b = _mm256_set1_ps(bound);
        int mask = 0;
        for (int32_t k = 0; k < kRayChunk; k += 8)
            mask |= _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(r.best + k), b, _CMP_GE_OQ));
        return mask != 0;
    }
#endif
    bool any = false;
    for (int32_t k = 0; k < kRayChunk; ++k) any |= r.best[k] >= bound;
    return any;
}

// The bounds hold when every 1/d is finite. A ray's direction component is the difference (or
// sum) of two products of a heading component and a table entry (each 0 or at least 8.7e-8 in
// magnitude); with every heading component 0 or at least 1e-20, each product is 0 or at least
// 2^-90, so the component is 0 or at least 2^-113 and its inverse finite. (Yaws never come
// within 1e-20 of a multiple of pi/2 without being one; checked all the same.)
ER_HD inline bool bounds_hold(Vec2 forward)
{
    return (forward.x == 0.0f || abs_f(forward.x) >= 1.0e-20f) && (forward.y == 0.0f || abs_f(forward.y) >= 1.0e-20f);
}

// Whether box b lies wholly outside the angular sector swept by the chunk's rays, from lane 0's
// direction counter-clockwise to its last real ray's, by a margin (1e-3 of its distance, a
// thousand times any rounding of the directions or of the slab test): no ray of the chunk can
// then hit it. Worth its cost where lanes run one by one (the GPU), not on 16-lane vectors.
constexpr bool kSectorCulling = kRayChunk <= 8;

ER_HD inline bool outside_sector(const RayChunk& r, int32_t first, Vec2 o, const Box& b)
{
    const int32_t last = (first + kRayChunk <= kLidarRays ? kRayChunk : kLidarRays - first) - 1;
    const float lx = b.min_x - o.x, hx = b.max_x - o.x, ly = b.min_y - o.y, hy = b.max_y - o.y;
    const float margin = 1.0e-3f * (max_f(abs_f(lx), abs_f(hx)) + max_f(abs_f(ly), abs_f(hy))) + 1.0e-4f;
    // The most counter-clockwise corner's cross product with lane 0 (negative: the box is
    // clockwise of the sector's first ray), then the most clockwise corner's with the last ray.
    const float ax = r.dx[0], ay = r.dy[0], bx = r.dx[last], by = r.dy[last];
    const float ccw = ax * (ax >= 0.0f ? hy : ly) - ay * (ay >= 0.0f ? lx : hx);
    const float cw = (by >= 0.0f ? hx : lx) * by - (bx >= 0.0f ? ly : hy) * bx;
    return ccw < -margin || cw < -margin;
}

// The targets an agent's rays may hit, in the SPEC's order (statics, cubes, other agents):
// numbers 0..71 statics, then cubes, then agents, each with its lower bound. With culling,
// inactive statics and targets beyond 40 m are left out.
constexpr int32_t kTargetCube0 = kMaxStatics;
constexpr int32_t kTargetAgent0 = kMaxStatics + kMaxCubes;
constexpr int32_t kMaxTargets = kMaxStatics + kMaxCubes + kMaxAgents;

struct LidarTargets {
    int32_t count;
    float bound[kMaxTargets];  // metres
    uint8_t number[kMaxTargets];
};

ER_HD inline void gather_targets(LidarTargets& t, const LevelData& lv, const uint8_t* door_open, const Vec2* agents,
                                 int32_t A, int32_t self, const Vec2* cubes, float range)
{
    int32_t n = 0;
    for (int32_t i = 0; i < lv.num_statics; ++i) {
        const float bound = box_lower_bound(agents[self], lv.statics[i]);
        if (bound > range || !static_active(lv, door_open, i)) continue;
        t.bound[n] = bound;
        t.number[n++] = (uint8_t)i;
    }
    for (int32_t c = 0; c < lv.num_cubes; ++c) {
        const float bound = box_lower_bound(agents[self], cube_box(cubes[c]));
        if (bound > range) continue;
        t.bound[n] = bound;
        t.number[n++] = (uint8_t)(kTargetCube0 + c);
    }
    for (int32_t j = 0; j < A; ++j) {
        const float bound = disc_lower_bound(agents[self], agents[j], kAgentRadius);
        if (j == self || bound > range) continue;
        t.bound[n] = bound;
        t.number[n++] = (uint8_t)(kTargetAgent0 + j);
    }
    t.count = n;
}

// Writes 30 x (min(hit, 40)/40, type/6) for agent `self` of a world; `forward` is its unit
// heading.
ER_HD inline void write_lidar(float* out, const LidarTable& table, const LevelData& lv, const uint8_t* door_open,
                              const Vec2* agents, int32_t A, int32_t self, const Vec2* cubes, Vec2 forward)
{
    const Vec2 o = agents[self];
    const bool cull = bounds_hold(forward);
    LidarTargets targets;
    gather_targets(targets, lv, door_open, agents, A, self, cubes, cull ? kLidarRange : 3.4e38f);
    for (int32_t first = 0; first < kRayLanes; first += kRayChunk) {
        RayChunk r;
        start_chunk(r, table, forward, first);
        for (int32_t n = 0; n < targets.count; ++n) {
            if (cull && !chunk_reaches(r, targets.bound[n])) continue;
            const int32_t id = targets.number[n];
            if (id >= kTargetAgent0) {
                rays_vs_disc(r, o, agents[id - kTargetAgent0], kAgentRadius, kTypeAgent);
                continue;
            }
            const bool is_static = id < kTargetCube0;
            const Box b = is_static ? lv.statics[id] : cube_box(cubes[id - kTargetCube0]);
            if (kSectorCulling && cull && outside_sector(r, first, o, b)) continue;
            rays_vs_box(r, o, b, is_static ? (lv.static_door[id] < 0 ? kTypeWall : kTypeDoor) : kTypeCube);
        }
        float* dst = out + 2 * first;
        if (first + kRayChunk <= kLidarRays) {  // a whole chunk: a fixed-length (vector) loop
            for (int32_t k = 0; k < kRayChunk; ++k) {
                const bool seen = r.best[k] <= kLidarRange;
                dst[2 * k] = seen ? r.best[k] / kLidarRange : 1.0f;
                dst[2 * k + 1] = seen ? (float)r.type[k] / (float)kEntityTypeCount : 0.0f;
            }
        } else {
            for (int32_t k = 0; k < kLidarRays - first; ++k) {
                const bool seen = r.best[k] <= kLidarRange;
                dst[2 * k] = seen ? r.best[k] / kLidarRange : 1.0f;
                dst[2 * k + 1] = seen ? (float)r.type[k] / (float)kEntityTypeCount : 0.0f;
            }
        }
    }
}

}  // namespace er
