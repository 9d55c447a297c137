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
    if (right < best) {
        best = right;
        push = {right + r, 0.0f};
    }
    if (down < best) {
        best = down;
        push = {0.0f, -(down + r)};
    }
    if (up < best) {
        push = {0.0f, up + r};
    }
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
constexpr float kAgentReach = 1.5f;  // metres around an agent at the start of the step (it moves <= 1)
constexpr float kCubeReach = 1.0f;   // metres around a cube (which moves only when pushed)
// Cubes gather theirs on the CPU, where a vector test of 8 statics costs less than the first
// pass's 8 scalar ones; on the GPU the lists would only cost a thread local memory.
#if defined(__CUDA_ARCH__)
constexpr bool kCubeNearLists = false;
#else
constexpr bool kCubeNearLists = true;
#endif

// Statics as bits: bit i % 64 of word i / 64 stands for static i.
struct NearStatics {
    Box region;
    uint64_t bits[(kMaxStatics + 63) / 64];
};

// The lowest set bit of a non-zero mask.
ER_HD inline int32_t lowest_bit(uint64_t mask)
{
#if defined(__CUDA_ARCH__)
    return __ffsll((long long)mask) - 1;
#else
    return __builtin_ctzll(mask);
#endif
}

// Bit j set when static first + j (j < 8) may touch a body of half-size h whose centre stays in
// `region`: far_apart(b, c, h) holds for every centre c in the region otherwise (subtraction
// rounds monotonically). A branch-free loop over 8 boxes: one vector on the CPU.
ER_HD ER_LANES inline uint32_t near_block(const LevelData& lv, int32_t first, const Box& region, float h)
{
    const float lo_x = region.min_x - h, hi_x = region.max_x + h;
    const float lo_y = region.min_y - h, hi_y = region.max_y + h;
    int32_t near[8];
    for (int32_t j = 0; j < 8; ++j) {
        const Box& b = lv.statics[first + j];
        const bool far = (b.max_x + kRejectMargin <= lo_x) | (b.min_x - kRejectMargin >= hi_x) |
                         (b.max_y + kRejectMargin <= lo_y) | (b.min_y - kRejectMargin >= hi_y);
        near[j] = far ? 0 : -1;
    }
    return lane_bits<8>(near);
}

ER_HD inline void gather_near(const LevelData& lv, Vec2 c, float h, float reach, NearStatics& near)
{
    static_assert(kMaxStatics % 8 == 0, "whole blocks of 8 statics");
    near.region = {c.x - reach, c.y - reach, c.x + reach, c.y + reach};
    for (uint64_t& w : near.bits) w = 0;
    for (int32_t first = 0; first < lv.num_statics; first += 8) {
        uint64_t mask = near_block(lv, first, near.region, h);
        if (lv.num_statics - first < 8) mask &= (1ull << (lv.num_statics - first)) - 1ull;  // past the level's statics
        near.bits[first / 64] |= mask << (first % 64);
    }
}

ER_HD inline bool in_region(const NearStatics* near, Vec2 c)
{
    return near && c.x >= near->region.min_x && c.x <= near->region.max_x && c.y >= near->region.min_y &&
           c.y <= near->region.max_y;
}

// The statics a body at c must be tested against, in order: those gathered while c is in the
// region, else every static of the level.
ER_HD inline void statics_to_test(const LevelData& lv, const NearStatics* near, Vec2 c, uint64_t* bits)
{
    if (in_region(near, c)) {
        for (int32_t w = 0; w < (kMaxStatics + 63) / 64; ++w) bits[w] = near->bits[w];
        return;
    }
    for (int32_t w = 0; w < (kMaxStatics + 63) / 64; ++w) {
        const int32_t n = lv.num_statics - 64 * w;
        bits[w] = n >= 64 ? ~0ull : (n <= 0 ? 0ull : (1ull << n) - 1ull);
    }
}

// A correction is applied when it is not zero; `pushed` (optional) records that one was.
ER_HD inline bool nonzero(Vec2 p) { return !(p.x == 0.0f && p.y == 0.0f); }

ER_HD inline Vec2 disc_vs_statics(const LevelData& lv, const uint8_t* door_open, Vec2 c, const NearStatics* near,
                                  bool* pushed = nullptr)
{
    uint64_t bits[(kMaxStatics + 63) / 64];
    statics_to_test(lv, near, c, bits);
    for (int32_t w = 0; w < (kMaxStatics + 63) / 64; ++w) {
        for (uint64_t m = bits[w]; m != 0; m &= m - 1ull) {
            const int32_t i = 64 * w + lowest_bit(m);
            const Box& b = lv.statics[i];
            if (far_apart(b, c, kAgentRadius) || !static_active(lv, door_open, i)) continue;
            const Vec2 p = disc_box_push(c, kAgentRadius, b);
            if (pushed && nonzero(p)) *pushed = true;
            c = c + p;
        }
    }
    return c;
}

// `near` (optional): per agent, the statics gathered at the start of the step.
// Returns whether any correction was applied (none: the agents are where they were).
ER_HD inline bool agents_vs_statics(const LevelData& lv, const uint8_t* door_open, Vec2* agents, int32_t A,
                                    const NearStatics* near = nullptr)
{
    bool pushed = false;
    for (int32_t a = 0; a < A; ++a)
        agents[a] = disc_vs_statics(lv, door_open, agents[a], near ? near + a : nullptr, &pushed);
    return pushed;
}

// Which cubes may still need work. A cube whose last pass against the statics moved nothing,
// and which nothing has moved since, would get a zero correction again: it is skipped (exact).
struct CubeDirt {
    uint32_t vs_statics;  // bit k: cube k must be tested against the statics
    bool vs_cubes;        // some cube moved since the last cube-cube pass that moved nothing
    uint32_t moved;       // bit k: cube k has moved this step
};

ER_HD inline CubeDirt all_cubes_dirty() { return {0xffffffffu, true, 0u}; }

// `near` (optional): per cube, the statics gathered at the start of the step.
ER_HD inline bool cubes_vs_statics(const LevelData& lv, const uint8_t* door_open, Vec2* cubes, CubeDirt& dirt,
                                   const NearStatics* near = nullptr)
{
    bool pushed = false;
    for (int32_t k = 0; k < lv.num_cubes; ++k) {
        if (((dirt.vs_statics >> k) & 1u) == 0) continue;
        const Vec2 start = cubes[k];
        uint64_t bits[(kMaxStatics + 63) / 64];
        statics_to_test(lv, near ? near + k : nullptr, start, bits);
        Vec2 c = start;
        for (int32_t w = 0; w < (kMaxStatics + 63) / 64; ++w) {
            for (uint64_t m = bits[w]; m != 0; m &= m - 1ull) {
                const int32_t i = 64 * w + lowest_bit(m);
                const Box& b = lv.statics[i];
                if (far_apart(b, c, kCubeHalf) || !static_active(lv, door_open, i)) continue;
                const Vec2 p = box_box_push(cube_box(c), b);
                pushed |= nonzero(p);
                c = c + p;
            }
        }
        cubes[k] = c;
        if (c.x == start.x && c.y == start.y) {
            dirt.vs_statics &= ~(1u << k);
        } else {
            dirt.vs_cubes = true;
            dirt.moved |= 1u << k;
        }
    }
    return pushed;
}

// Bit k set for each cube k of the level within `reach` of p on both axes (a branch-free
// vector loop over all cubes).
ER_HD ER_LANES inline uint32_t cubes_within(const LevelData& lv, const Vec2* cubes, Vec2 p, float reach)
{
    static_assert(kMaxCubes <= 32, "a 32-bit mask");
    int32_t near[kMaxCubes];
    for (int32_t k = 0; k < kMaxCubes; ++k) {
        const bool far = (abs_f(p.x - cubes[k].x) >= reach) | (abs_f(p.y - cubes[k].y) >= reach);
        near[k] = far ? 0 : -1;
    }
    const uint32_t mask = lane_bits<kMaxCubes>(near);
    return lv.num_cubes >= 32 ? mask : mask & ((1u << lv.num_cubes) - 1u);
}

// The broad phase of agent-cube pairs. A cube that has not moved this step is beyond reach of
// an agent that stays in its region (start +- kAgentReach) unless it was within reach of the
// region at the start: gathered once per step, so each pass tests those and the cubes that
// moved, and every cube while the agent is outside its region (exact either way).
constexpr float kAgentCubeReach = kAgentRadius + kCubeHalf + kRejectMargin;
constexpr float kCandidateReach = kAgentCubeReach + kAgentReach + 1.0e-2f;  // + rounding, many times over

// Agent-cube pairs, agent-major: the agent takes 2/3 of the correction, the cube 1/3.
// `near` and `candidates` (optional, together): per agent, its region and the cubes gathered.
ER_HD inline bool agents_vs_cubes(const LevelData& lv, Vec2* agents, int32_t A, Vec2* cubes, CubeDirt& dirt,
                                  const NearStatics* near = nullptr, const uint32_t* candidates = nullptr)
{
    constexpr float agent_share = kInvMassAgent / (kInvMassAgent + kInvMassCube);
    constexpr float cube_share = kInvMassCube / (kInvMassAgent + kInvMassCube);
    if (lv.num_cubes == 0) return false;
    bool pushed = false;
    const uint32_t all = lv.num_cubes >= 32 ? ~0u : (1u << lv.num_cubes) - 1u;
    for (int32_t a = 0; a < A; ++a) {
        // The cubes to test, among `left`, from where the agent is now.
        auto to_test = [&](uint32_t left) {
            const bool gathered = candidates && in_region(near + a, agents[a]);
            return left & (gathered ? candidates[a] | dirt.moved : all);
        };
        uint32_t todo = to_test(all);
        while (todo != 0) {
            const int32_t k = lowest_bit(todo);
            todo &= todo - 1u;
            if (abs_f(agents[a].x - cubes[k].x) >= kAgentCubeReach ||
                abs_f(agents[a].y - cubes[k].y) >= kAgentCubeReach)
                continue;
            const Vec2 p = disc_box_push(agents[a], kAgentRadius, cube_box(cubes[k]));
            if (!nonzero(p)) continue;
            pushed = true;
            agents[a] = agents[a] + p * agent_share;
            cubes[k] = cubes[k] - p * cube_share;
            dirt.vs_statics |= 1u << k;
            dirt.vs_cubes = true;
            dirt.moved |= 1u << k;
            todo = to_test(todo);  // the agent moved
        }
    }
    return pushed;
}

// Agent-agent pairs (i < j), split evenly; coincident centres push j along +x.
ER_HD inline bool agents_vs_agents(Vec2* agents, int32_t A)
{
    constexpr float min_dist = 2.0f * kAgentRadius;
    bool pushed = false;
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
            pushed = true;
        }
    }
    return pushed;
}

// Cube-cube pairs (i < j), split evenly.
ER_HD inline bool cubes_vs_cubes(const LevelData& lv, Vec2* cubes, CubeDirt& dirt)
{
    if (!dirt.vs_cubes) return false;
    bool moved = false;
    for (int32_t i = 0; i < lv.num_cubes; ++i) {
        for (int32_t j = i + 1; j < lv.num_cubes; ++j) {
            const Vec2 p = box_box_push(cube_box(cubes[j]), cube_box(cubes[i]));
            if (!nonzero(p)) continue;
            const Vec2 half = p * 0.5f;
            cubes[j] = cubes[j] + half;
            cubes[i] = cubes[i] - half;
            dirt.vs_statics |= (1u << i) | (1u << j);
            dirt.moved |= (1u << i) | (1u << j);
            moved = true;
        }
    }
    dirt.vs_cubes = moved;
    return moved;
}

// One step of motion: `disp[a]` is agent a's whole-step displacement (already rotated).
ER_HD inline void integrate_step(const LevelData& lv, const uint8_t* door_open, Vec2* agents, int32_t A, Vec2* cubes,
                                 const Vec2* disp)
{
    CubeDirt dirt = all_cubes_dirty();
    NearStatics near[kMaxAgents], near_cubes[kCubeNearLists ? kMaxCubes : 1];
    uint32_t candidates[kMaxAgents];
    for (int32_t a = 0; a < A; ++a) {
        gather_near(lv, agents[a], kAgentRadius, kAgentReach, near[a]);
        candidates[a] = lv.num_cubes > 0 ? cubes_within(lv, cubes, agents[a], kCandidateReach) : 0u;
    }
    if (kCubeNearLists)
        for (int32_t k = 0; k < lv.num_cubes; ++k) gather_near(lv, cubes[k], kCubeHalf, kCubeReach, near_cubes[k]);
    for (int32_t sub = 0; sub < kSubsteps; ++sub) {
        for (int32_t a = 0; a < A; ++a) agents[a] = agents[a] + disp[a] * (1.0f / (float)kSubsteps);
        // A pass that applies no correction leaves every body where it was, so the same pass
        // again would apply none either: an iteration without a correction ends the substep's
        // iterations, and the last agent-static pass, when it applied none, stands for the final one.
        bool statics_pushed = true;
        for (int32_t it = 0; it < kSolverIterations; ++it) {
            bool pushed = agents_vs_cubes(lv, agents, A, cubes, dirt, near, candidates);
            pushed |= agents_vs_agents(agents, A);
            pushed |= cubes_vs_cubes(lv, cubes, dirt);
            pushed |= cubes_vs_statics(lv, door_open, cubes, dirt, kCubeNearLists ? near_cubes : nullptr);
            statics_pushed = agents_vs_statics(lv, door_open, agents, A, near);
            if (!pushed && !statics_pushed) break;
        }
        // No agent ends a substep inside a wall or a closed door.
        if (statics_pushed) agents_vs_statics(lv, door_open, agents, A, near);
    }
}

}  // namespace er
