// Position-based physics (SPEC §2.3): discs (agents) and axis-aligned squares (cubes) that are
// displaced, then pushed apart in a fixed order. No velocity state, as in Madrona's escape
// room, which zeroes velocities every step.
#pragma once

#include "state.hpp"

namespace er {

// Correction that moves a disc (centre c, radius r) out of box b; {0, 0} without contact.
// Outside the box: along (c - p), p the closest point of the box. Centre inside (or on the
// surface): out through the nearest face, ties in the order -x, +x, -y, +y.
ER_HD inline Vec2 disc_box_push(Vec2 c, float r, const Box& b)
{
    const float px = clamp_f(c.x, b.min_x, b.max_x);
    const float py = clamp_f(c.y, b.min_y, b.max_y);
    const float dx = c.x - px, dy = c.y - py;
    const float d2 = dx * dx + dy * dy;
    if (d2 >= r * r) return {0.0f, 0.0f};
    if (d2 > 0.0f) {
        const float d = sqrt_f(d2);
        const float s = (r - d) / d;
        return {dx * s, dy * s};
    }
    const float left = c.x - b.min_x, right = b.max_x - c.x;
    const float down = c.y - b.min_y, up = b.max_y - c.y;
    float best = left;
    Vec2 push = {-(left + r), 0.0f};
    if (right < best) { best = right; push = {right + r, 0.0f}; }
    if (down < best) { best = down; push = {0.0f, -(down + r)}; }
    if (up < best) { push = {0.0f, up + r}; }
    return push;
}

// Correction that moves box a out of box b along the axis of least penetration (ties: x),
// away from b's centre (coincident centres: +x / +y). {0, 0} without overlap.
ER_HD inline Vec2 box_box_push(const Box& a, const Box& b)
{
    const float ox = min_f(a.max_x, b.max_x) - max_f(a.min_x, b.min_x);
    const float oy = min_f(a.max_y, b.max_y) - max_f(a.min_y, b.min_y);
    if (ox <= 0.0f || oy <= 0.0f) return {0.0f, 0.0f};
    if (ox <= oy) {
        const bool neg = (a.min_x + a.max_x) < (b.min_x + b.max_x);
        return {neg ? -ox : ox, 0.0f};
    }
    const bool neg = (a.min_y + a.max_y) < (b.min_y + b.max_y);
    return {0.0f, neg ? -oy : oy};
}

ER_HD inline Box cube_box(Vec2 c) { return {c.x - kCubeHalf, c.y - kCubeHalf, c.x + kCubeHalf, c.y + kCubeHalf}; }

// A static blocks bodies when it is a wall or a closed door.
ER_HD inline bool static_active(const LevelData& lv, const uint8_t* door_open, int32_t i)
{
    const int32_t door = lv.static_door[i];
    return door < 0 || door_open[door] == 0;
}

// Cheap exact reject: a static whose y-range misses [y - h, y + h] cannot touch the body.
ER_HD inline bool y_overlaps(const Box& b, float y, float h) { return b.max_y > y - h && b.min_y < y + h; }

ER_HD inline void agents_vs_statics(const LevelData& lv, const uint8_t* door_open, Vec2* agents, int32_t A)
{
    for (int32_t a = 0; a < A; ++a) {
        Vec2 c = agents[a];
        for (int32_t i = 0; i < lv.num_statics; ++i) {
            const Box& b = lv.statics[i];
            if (!y_overlaps(b, c.y, kAgentRadius) || !static_active(lv, door_open, i)) continue;
            c = c + disc_box_push(c, kAgentRadius, b);
        }
        agents[a] = c;
    }
}

ER_HD inline void cubes_vs_statics(const LevelData& lv, const uint8_t* door_open, Vec2* cubes)
{
    for (int32_t k = 0; k < lv.num_cubes; ++k) {
        Vec2 c = cubes[k];
        for (int32_t i = 0; i < lv.num_statics; ++i) {
            const Box& b = lv.statics[i];
            if (!y_overlaps(b, c.y, kCubeHalf) || !static_active(lv, door_open, i)) continue;
            c = c + box_box_push(cube_box(c), b);
        }
        cubes[k] = c;
    }
}

// Agent-cube pairs, agent-major: the agent takes 2/3 of the correction, the cube 1/3.
ER_HD inline void agents_vs_cubes(const LevelData& lv, Vec2* agents, int32_t A, Vec2* cubes)
{
    constexpr float agent_share = kInvMassAgent / (kInvMassAgent + kInvMassCube);
    constexpr float cube_share = kInvMassCube / (kInvMassAgent + kInvMassCube);
    for (int32_t a = 0; a < A; ++a) {
        for (int32_t k = 0; k < lv.num_cubes; ++k) {
            const Vec2 p = disc_box_push(agents[a], kAgentRadius, cube_box(cubes[k]));
            if (p.x == 0.0f && p.y == 0.0f) continue;
            agents[a] = agents[a] + p * agent_share;
            cubes[k] = cubes[k] - p * cube_share;
        }
    }
}

// Agent-agent pairs (i < j), split evenly; coincident centres push j along +x.
ER_HD inline void agents_vs_agents(Vec2* agents, int32_t A)
{
    constexpr float min_dist = 2.0f * kAgentRadius;
    for (int32_t i = 0; i < A; ++i) {
        for (int32_t j = i + 1; j < A; ++j) {
            const Vec2 d = agents[j] - agents[i];
            const float d2 = dot(d, d);
            if (d2 >= min_dist * min_dist) continue;
            Vec2 half;
            if (d2 > 0.0f) {
                const float dist = sqrt_f(d2);
                half = d * (0.5f * (min_dist - dist) / dist);
            } else {
                half = {0.5f * min_dist, 0.0f};
            }
            agents[i] = agents[i] - half;
            agents[j] = agents[j] + half;
        }
    }
}

// Cube-cube pairs (i < j), split evenly.
ER_HD inline void cubes_vs_cubes(const LevelData& lv, Vec2* cubes)
{
    for (int32_t i = 0; i < lv.num_cubes; ++i) {
        for (int32_t j = i + 1; j < lv.num_cubes; ++j) {
            const Vec2 p = box_box_push(cube_box(cubes[j]), cube_box(cubes[i]));
            if (p.x == 0.0f && p.y == 0.0f) continue;
            const Vec2 half = p * 0.5f;
            cubes[j] = cubes[j] + half;
            cubes[i] = cubes[i] - half;
        }
    }
}

// One step of motion: `disp[a]` is agent a's whole-step displacement (already rotated).
ER_HD inline void integrate_step(const LevelData& lv, const uint8_t* door_open, Vec2* agents, int32_t A, Vec2* cubes,
                                 const Vec2* disp)
{
    for (int32_t sub = 0; sub < kSubsteps; ++sub) {
        for (int32_t a = 0; a < A; ++a) agents[a] = agents[a] + disp[a] * (1.0f / (float)kSubsteps);
        for (int32_t it = 0; it < kSolverIterations; ++it) {
            agents_vs_cubes(lv, agents, A, cubes);
            agents_vs_agents(agents, A);
            cubes_vs_cubes(lv, cubes);
            cubes_vs_statics(lv, door_open, cubes);
            agents_vs_statics(lv, door_open, agents, A);
        }
        // No agent ends a substep inside a wall or a closed door.
        agents_vs_statics(lv, door_open, agents, A);
    }
}

}  // namespace er
