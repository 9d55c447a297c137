// Lidar (SPEC §3): 30 rays from the agent's centre against walls, closed doors, cubes and the
// other agents; the nearest hit within 40 m.
#pragma once

#include "physics.hpp"

namespace er {

constexpr float kNoHit = 3.0e38f;

// Lanes of a ray bundle: the 30 rays padded to a multiple of 16, so that the CPU build's
// 16-wide vector loops have no scalar remainder (the 2 spare lanes repeat ray 0 and are dropped).
constexpr int32_t kRayLanes = 32;
static_assert(kRayLanes >= kLidarRays && kRayLanes % 16 == 0, "whole 16-lane vectors");

// Ray k points at yaw + 2*pi*k/30 (counter-clockwise). The rotation of the forward vector by
// 2*pi*k/30 comes from this table, filled once with sincos_f((float)k * (2*pi/30)) so that
// each step needs only the agent's own sin/cos.
struct LidarTable {
    Vec2 rot[kRayLanes];  // (cos, sin) of 2*pi*k/30; lanes 30, 31 repeat ray 0
};

inline LidarTable make_lidar_table()
{
    LidarTable t{};
    for (int32_t k = 0; k < kRayLanes; ++k) {
        const int32_t ray = k < kLidarRays ? k : 0;
        const SinCos sc = sincos_f((float)ray * (kTwoPi / (float)kLidarRays));
        t.rot[k] = {sc.cos, sc.sin};
    }
    return t;
}

// The rays of one agent, one lane per ray. Loops over lanes are branch-free, so the CPU
// build vectorises them; every lane does the same IEEE operations as a scalar loop would.
struct RayBundle {
    float dx[kRayLanes], dy[kRayLanes];    // unit directions
    float ix[kRayLanes], iy[kRayLanes];    // 1 / direction (0 where the direction is 0)
    float best[kRayLanes];                 // nearest hit so far, metres
    int32_t type[kRayLanes];               // its EntityType
};

// Nearest-hit update of every ray against box b: distance to b along the ray (0 from inside),
// kept when strictly nearer than the best so far.
ER_HD inline void rays_vs_box(RayBundle& r, Vec2 o, const Box& b, int32_t type)
{
    // A ray parallel to a slab is inside it everywhere or nowhere.
    const float par_near_x = (o.x >= b.min_x) & (o.x <= b.max_x) ? -kNoHit : kNoHit;
    const float par_near_y = (o.y >= b.min_y) & (o.y <= b.max_y) ? -kNoHit : kNoHit;
    const float lo_x = b.min_x - o.x, hi_x = b.max_x - o.x, lo_y = b.min_y - o.y, hi_y = b.max_y - o.y;
    for (int32_t k = 0; k < kRayLanes; ++k) {
        const float tx1 = lo_x * r.ix[k], tx2 = hi_x * r.ix[k];
        const float ty1 = lo_y * r.iy[k], ty2 = hi_y * r.iy[k];
        const bool px = r.dx[k] == 0.0f, py = r.dy[k] == 0.0f;
        const float near_x = px ? par_near_x : min_f(tx1, tx2);
        const float far_x = px ? -par_near_x : max_f(tx1, tx2);
        const float near_y = py ? par_near_y : min_f(ty1, ty2);
        const float far_y = py ? -par_near_y : max_f(ty1, ty2);
        const float t_near = max_f(near_x, near_y), t_far = min_f(far_x, far_y);
        const bool hit = (t_far >= t_near) & (t_far >= 0.0f);
        const float t = hit ? max_f(t_near, 0.0f) : kNoHit;
        const bool nearer = t < r.best[k];
        r.best[k] = nearer ? t : r.best[k];
        r.type[k] = nearer ? type : r.type[k];
    }
}

// The same against a disc (another agent).
ER_HD inline void rays_vs_disc(RayBundle& r, Vec2 o, Vec2 centre, float radius, int32_t type)
{
    const Vec2 m = o - centre;
    const float c = dot(m, m) - radius * radius;
    const bool inside = c <= 0.0f;
    for (int32_t k = 0; k < kRayLanes; ++k) {
        const float b = m.x * r.dx[k] + m.y * r.dy[k];
        const float disc = b * b - c;
        const bool hit = inside | ((b <= 0.0f) & (disc >= 0.0f));
        const float root = sqrt_f(disc >= 0.0f ? disc : 0.0f);
        const float t = inside ? 0.0f : (hit ? max_f(-b - root, 0.0f) : kNoHit);
        const bool nearer = t < r.best[k];
        r.best[k] = nearer ? t : r.best[k];
        r.type[k] = nearer ? type : r.type[k];
    }
}

// Writes 30 x (min(hit, 40)/40, type/6) for agent `self` of a world; `forward` is its unit
// heading. Ties between targets at one distance go to the first in the order statics, cubes, agents.
ER_HD inline void write_lidar(float* out, const LidarTable& table, const LevelData& lv, const uint8_t* door_open,
                              const Vec2* agents, int32_t A, int32_t self, const Vec2* cubes, Vec2 forward)
{
    const Vec2 o = agents[self];
    RayBundle r;
    for (int32_t k = 0; k < kRayLanes; ++k) {
        const Vec2 rot = table.rot[k];
        r.dx[k] = forward.x * rot.x - forward.y * rot.y;
        r.dy[k] = forward.x * rot.y + forward.y * rot.x;
        r.ix[k] = r.dx[k] != 0.0f ? 1.0f / r.dx[k] : 0.0f;
        r.iy[k] = r.dy[k] != 0.0f ? 1.0f / r.dy[k] : 0.0f;
        r.best[k] = kNoHit;
        r.type[k] = kTypeNone;
    }
    for (int32_t i = 0; i < lv.num_statics; ++i) {
        if (!static_active(lv, door_open, i)) continue;
        rays_vs_box(r, o, lv.statics[i], lv.static_door[i] < 0 ? kTypeWall : kTypeDoor);
    }
    for (int32_t c = 0; c < lv.num_cubes; ++c) rays_vs_box(r, o, cube_box(cubes[c]), kTypeCube);
    for (int32_t j = 0; j < A; ++j)
        if (j != self) rays_vs_disc(r, o, agents[j], kAgentRadius, kTypeAgent);
    for (int32_t k = 0; k < kLidarRays; ++k) {
        const bool seen = r.best[k] <= kLidarRange;
        out[2 * k] = seen ? r.best[k] / kLidarRange : 1.0f;
        out[2 * k + 1] = seen ? (float)r.type[k] / (float)kEntityTypeCount : 0.0f;
    }
}

}  // namespace er
