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

// Correction that moves box a out of box b, away from b's centre (coincident centres: +x / +y),
// along the axis needing the shorter move (ties: x). The move separates the boxes even when
// one spans the other (a cube straddling a 1 m door). {0, 0} without overlap.
ER_HD inline Vec2 box_box_push(const Box& a, const Box& b)
{
    const float ox = min_f(a.max_x, b.max_x) - max_f(a.min_x, b.min_x);
    const float oy = min_f(a.max_y, b.max_y) - max_f(a.min_y, b.min_y);
    if (ox <= 0.0f || oy <= 0.0f) return {0.0f, 0.0f};
    const bool neg_x = (a.min_x + a.max_x) < (b.min_x + b.max_x);
    const bool neg_y = (a.min_y + a.max_y) < (b.min_y + b.max_y);
    const float mx = neg_x ? a.max_x - b.min_x : b.max_x - a.min_x;
    const float my = neg_y ? a.max_y - b.min_y : b.max_y - a.min_y;
    if (mx <= my) return {neg_x ? -mx : mx, 0.0f};
    return {0.0f, neg_y ? -my : my};
}

ER_HD inline Box cube_box(Vec2 c) { return {c.x - kCubeHalf, c.y - kCubeHalf, c.x + kCubeHalf, c.y + kCubeHalf}; }

// A static blocks bodies when it is a wall or a closed door.
ER_HD inline bool static_active(const LevelData& lv, const uint8_t* door_open, int32_t i)
{
    const int32_t door = lv.static_door[i];
    return door < 0 || door_open[door] == 0;
}

// Broad-phase rejects skip pairs that cannot touch. Their margin is far larger than any
// rounding, so skipping only ever skips a zero correction: results are the same bits as
// testing every pair.
constexpr float kRejectMargin = 1.0e-3f;

ER_HD inline bool far_apart(const Box& b, Vec2 c, float h)
{
    return b.max_x + kRejectMargin <= c.x - h || b.min_x - kRejectMargin >= c.x + h ||
           b.max_y + kRejectMargin <= c.y - h || b.min_y - kRejectMargin >= c.y + h;
}

// The statics that may touch a body of half-size h while its centre stays inside `region`:
// gathered once per step so each of the step's passes tests a handful of boxes, not all.
// A centre that leaves the region falls back to testing every static (exact either way).
constexpr float kNearReach = 3.0f;  // metres around the body at the start of the step

struct NearStatics {
    Box region;
    int32_t count;
    int8_t index[kMaxStatics];
};

ER_HD inline void gather_near(const LevelData& lv, Vec2 c, float h, NearStatics& near)
{
    near.region = {c.x - kNearReach, c.y - kNearReach, c.x + kNearReach, c.y + kNearReach};
    near.count = 0;
    const Box& r = near.region;
    for (int32_t i = 0; i < lv.num_statics; ++i) {
        const Box& b = lv.statics[i];
        // far_apart(b, c, h) holds for every centre c in the region (subtraction rounds monotonically).
        const bool far = b.max_x + kRejectMargin <= r.min_x - h || b.min_x - kRejectMargin >= r.max_x + h ||
                         b.max_y + kRejectMargin <= r.min_y - h || b.min_y - kRejectMargin >= r.max_y + h;
        if (!far) near.index[near.count++] = (int8_t)i;
    }
}

ER_HD inline Vec2 disc_vs_statics(const LevelData& lv, const uint8_t* door_open, Vec2 c, const NearStatics* near)
{
    const bool use_near = near && c.x >= near->region.min_x && c.x <= near->region.max_x &&
                          c.y >= near->region.min_y && c.y <= near->region.max_y;
    const int32_t n = use_near ? near->count : lv.num_statics;
    for (int32_t k = 0; k < n; ++k) {
        const int32_t i = use_near ? near->index[k] : k;
        const Box& b = lv.statics[i];
        if (far_apart(b, c, kAgentRadius) || !static_active(lv, door_open, i)) continue;
        c = c + disc_box_push(c, kAgentRadius, b);
    }
    return c;
}

// `near` (optional): per agent, the statics gathered at the start of the step.
ER_HD inline void agents_vs_statics(const LevelData& lv, const uint8_t* door_open, Vec2* agents, int32_t A,
                                   const NearStatics* near = nullptr)
{
    for (int32_t a = 0; a < A; ++a) agents[a] = disc_vs_statics(lv, door_open, agents[a], near ? near + a : nullptr);
}

// Which cubes may still need work. A cube whose last pass against the statics moved nothing,
// and which nothing has moved since, would get a zero correction again: it is skipped (exact).
struct CubeDirt {
    uint32_t vs_statics;  // bit k: cube k must be tested against the statics
    bool vs_cubes;        // some cube moved since the last cube-cube pass that moved nothing
};

ER_HD inline CubeDirt all_cubes_dirty() { return {0xffffffffu, true}; }

ER_HD inline void cubes_vs_statics(const LevelData& lv, const uint8_t* door_open, Vec2* cubes, CubeDirt& dirt)
{
    for (int32_t k = 0; k < lv.num_cubes; ++k) {
        if (((dirt.vs_statics >> k) & 1u) == 0) continue;
        const Vec2 start = cubes[k];
        Vec2 c = start;
        for (int32_t i = 0; i < lv.num_statics; ++i) {
            const Box& b = lv.statics[i];
            if (far_apart(b, c, kCubeHalf) || !static_active(lv, door_open, i)) continue;
            c = c + box_box_push(cube_box(c), b);
        }
        cubes[k] = c;
        if (c.x == start.x && c.y == start.y) dirt.vs_statics &= ~(1u << k);
        else dirt.vs_cubes = true;
    }
}

// Agent-cube pairs, agent-major: the agent takes 2/3 of the correction, the cube 1/3.
ER_HD inline void agents_vs_cubes(const LevelData& lv, Vec2* agents, int32_t A, Vec2* cubes, CubeDirt& dirt)
{
    constexpr float agent_share = kInvMassAgent / (kInvMassAgent + kInvMassCube);
    constexpr float cube_share = kInvMassCube / (kInvMassAgent + kInvMassCube);
    constexpr float reach = kAgentRadius + kCubeHalf + kRejectMargin;
    for (int32_t a = 0; a < A; ++a) {
        for (int32_t k = 0; k < lv.num_cubes; ++k) {
            if (abs_f(agents[a].x - cubes[k].x) >= reach || abs_f(agents[a].y - cubes[k].y) >= reach) continue;
            const Vec2 p = disc_box_push(agents[a], kAgentRadius, cube_box(cubes[k]));
            if (p.x == 0.0f && p.y == 0.0f) continue;
            agents[a] = agents[a] + p * agent_share;
            cubes[k] = cubes[k] - p * cube_share;
            dirt.vs_statics |= 1u << k;
            dirt.vs_cubes = true;
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
ER_HD inline void cubes_vs_cubes(const LevelData& lv, Vec2* cubes, CubeDirt& dirt)
{
    if (!dirt.vs_cubes) return;
    bool moved = false;
    for (int32_t i = 0; i < lv.num_cubes; ++i) {
        for (int32_t j = i + 1; j < lv.num_cubes; ++j) {
            const Vec2 p = box_box_push(cube_box(cubes[j]), cube_box(cubes[i]));
            if (p.x == 0.0f && p.y == 0.0f) continue;
            const Vec2 half = p * 0.5f;
            cubes[j] = cubes[j] + half;
            cubes[i] = cubes[i] - half;
            dirt.vs_statics |= (1u << i) | (1u << j);
            moved = true;
        }
    }
    dirt.vs_cubes = moved;
}

// One step of motion: `disp[a]` is agent a's whole-step displacement (already rotated).
ER_HD inline void integrate_step(const LevelData& lv, const uint8_t* door_open, Vec2* agents, int32_t A, Vec2* cubes,
                                 const Vec2* disp)
{
    CubeDirt dirt = all_cubes_dirty();
    NearStatics near[kMaxAgents];
    for (int32_t a = 0; a < A; ++a) gather_near(lv, agents[a], kAgentRadius, near[a]);
    for (int32_t sub = 0; sub < kSubsteps; ++sub) {
        for (int32_t a = 0; a < A; ++a) agents[a] = agents[a] + disp[a] * (1.0f / (float)kSubsteps);
        for (int32_t it = 0; it < kSolverIterations; ++it) {
            agents_vs_cubes(lv, agents, A, cubes, dirt);
            agents_vs_agents(agents, A);
            cubes_vs_cubes(lv, cubes, dirt);
            cubes_vs_statics(lv, door_open, cubes, dirt);
            agents_vs_statics(lv, door_open, agents, A, near);
        }
        // No agent ends a substep inside a wall or a closed door.
        agents_vs_statics(lv, door_open, agents, A, near);
    }
}

}  // namespace er
