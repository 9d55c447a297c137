// The per-world state hash (SPEC §4): 64-bit FNV-1a over the bytes (little-endian) of
// seed, episode, steps_left, status, then per agent x, y, yaw, max_y, escaped, then per door
// open, then per cube x, y. Everything else of a world derives from these.
#pragma once

#include "state.hpp"

namespace er {

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;

struct Fnv1a {
    uint64_t h = kFnvOffset;

    ER_HD void bytes(uint64_t v, int32_t n)
    {
        for (int32_t i = 0; i < n; ++i) {
            h ^= (v >> (8 * i)) & 0xffULL;
            h *= kFnvPrime;
        }
    }
    ER_HD void f32(float v)
    {
        uint32_t u;
        __builtin_memcpy(&u, &v, 4);
        bytes(u, 4);
    }
};

ER_HD inline uint64_t world_hash(const SimState& s, int32_t w)
{
    const int32_t A = s.num_agents;
    const LevelData& lv = s.level[w];
    Fnv1a f;
    f.bytes(s.seed[w], 8);
    f.bytes(s.episode[w], 4);
    f.bytes((uint32_t)s.steps_left[w], 4);
    f.bytes(s.status[w], 1);
    for (int32_t a = 0; a < A; ++a) {
        const int32_t i = w * A + a;
        f.f32(s.agent_pos[i].x);
        f.f32(s.agent_pos[i].y);
        f.f32(s.agent_yaw[i]);
        f.f32(s.agent_max_y[i]);
        f.bytes(s.agent_escaped[i], 1);
    }
    for (int32_t d = 0; d < lv.num_doors; ++d) f.bytes(s.door_open[w * kMaxDoors + d], 1);
    for (int32_t c = 0; c < lv.num_cubes; ++c) {
        f.f32(s.cube_pos[w * kMaxCubes + c].x);
        f.f32(s.cube_pos[w * kMaxCubes + c].y);
    }
    return f.h;
}

}  // namespace er
