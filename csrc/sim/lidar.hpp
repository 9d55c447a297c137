// Lidar (SPEC §3): 30 rays from the agent's centre against walls, closed doors, cubes and the
// other agents; the nearest hit within 40 m.
#pragma once

#include "physics.hpp"

namespace er {

constexpr float kNoHit = 3.0e38f;

// Ray k points at yaw + 2*pi*k/30 (counter-clockwise). The rotation of the forward vector by
// 2*pi*k/30 comes from this table, filled once with sincos_f((float)k * (2*pi/30)) so that
// each step needs only the agent's own sin/cos.
struct LidarTable {
    Vec2 rot[kLidarRays];  // (cos, sin) of 2*pi*k/30
};

inline LidarTable make_lidar_table()
{
    LidarTable t{};
    for (int32_t k = 0; k < kLidarRays; ++k) {
        const SinCos sc = sincos_f((float)k * (kTwoPi / (float)kLidarRays));
        t.rot[k] = {sc.cos, sc.sin};
    }
    return t;
}

// Distance along the unit ray (o, d) to box b (0 if o is inside), or kNoHit. inv = 1/d per axis.
ER_HD inline float ray_box(Vec2 o, Vec2 d, Vec2 inv, const Box& b)
{
    float t_near = -kNoHit, t_far = kNoHit;
    if (d.x != 0.0f) {
        const float t1 = (b.min_x - o.x) * inv.x, t2 = (b.max_x - o.x) * inv.x;
        t_near = min_f(t1, t2);
        t_far = max_f(t1, t2);
    } else if (o.x < b.min_x || o.x > b.max_x) {
        return kNoHit;
    }
    if (d.y != 0.0f) {
        const float t1 = (b.min_y - o.y) * inv.y, t2 = (b.max_y - o.y) * inv.y;
        t_near = max_f(t_near, min_f(t1, t2));
        t_far = min_f(t_far, max_f(t1, t2));
    } else if (o.y < b.min_y || o.y > b.max_y) {
        return kNoHit;
    }
    if (t_far < t_near || t_far < 0.0f) return kNoHit;
    return max_f(t_near, 0.0f);
}

// Distance along the unit ray (o, d) to a disc (0 if o is inside), or kNoHit.
ER_HD inline float ray_disc(Vec2 o, Vec2 d, Vec2 centre, float radius)
{
    const Vec2 m = o - centre;
    const float b = dot(m, d);
    const float c = dot(m, m) - radius * radius;
    if (c <= 0.0f) return 0.0f;
    if (b > 0.0f) return kNoHit;
    const float disc = b * b - c;
    if (disc < 0.0f) return kNoHit;
    return max_f(-b - sqrt_f(disc), 0.0f);
}

// Writes 30 x (min(hit, 40)/40, type/6) for agent `self` of a world; `forward` is its unit
// heading. Ties between targets at one distance go to the first in the order statics, cubes, agents.
ER_HD inline void write_lidar(float* out, const LidarTable& table, const LevelData& lv, const uint8_t* door_open,
                              const Vec2* agents, int32_t A, int32_t self, const Vec2* cubes, Vec2 forward)
{
    const Vec2 o = agents[self];
    for (int32_t k = 0; k < kLidarRays; ++k) {
        const Vec2 rot = table.rot[k];
        const Vec2 d = {forward.x * rot.x - forward.y * rot.y, forward.x * rot.y + forward.y * rot.x};
        const Vec2 inv = {d.x != 0.0f ? 1.0f / d.x : 0.0f, d.y != 0.0f ? 1.0f / d.y : 0.0f};
        float best = kNoHit;
        int32_t best_type = kTypeNone;
        for (int32_t i = 0; i < lv.num_statics; ++i) {
            if (!static_active(lv, door_open, i)) continue;
            const float t = ray_box(o, d, inv, lv.statics[i]);
            if (t < best) {
                best = t;
                best_type = lv.static_door[i] < 0 ? kTypeWall : kTypeDoor;
            }
        }
        for (int32_t c = 0; c < lv.num_cubes; ++c) {
            const float t = ray_box(o, d, inv, cube_box(cubes[c]));
            if (t < best) {
                best = t;
                best_type = kTypeCube;
            }
        }
        for (int32_t j = 0; j < A; ++j) {
            if (j == self) continue;
            const float t = ray_disc(o, d, agents[j], kAgentRadius);
            if (t < best) {
                best = t;
                best_type = kTypeAgent;
            }
        }
        if (best <= kLidarRange) {
            out[2 * k] = best / kLidarRange;
            out[2 * k + 1] = (float)best_type / (float)kEntityTypeCount;
        } else {
            out[2 * k] = 1.0f;
            out[2 * k + 1] = 0.0f;
        }
    }
}

}  // namespace er
