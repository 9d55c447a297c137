// The per-world state hash (SPEC §4): 64-bit FNV-1a over the bytes (little-endian) of
// seed, episode, steps_left, status, then per agent x, y, yaw, max_y, escaped, then per door
// open, then per cube x, y. Everything else of a world derives from these, given the
// configuration; the output digest covers what a replay also claims to reproduce: every
// exported output, which the configuration (rewards, level geometry) shapes too.
#pragma once

#include <cstddef>

#include "rng.hpp"
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
        const size_t i = (size_t)w * A + a;
        f.f32(s.agent_pos[i].x);
        f.f32(s.agent_pos[i].y);
        f.f32(s.agent_yaw[i]);
        f.f32(s.agent_max_y[i]);
        f.bytes(s.agent_escaped[i], 1);
    }
    for (int32_t d = 0; d < lv.num_doors; ++d) f.bytes(s.door_open[(size_t)w * kMaxDoors + d], 1);
    for (int32_t c = 0; c < lv.num_cubes; ++c) {
        f.f32(s.cube_pos[(size_t)w * kMaxCubes + c].x);
        f.f32(s.cube_pos[(size_t)w * kMaxCubes + c].y);
    }
    return f.h;
}

// A digest of 32-bit words for the outputs: four independent FNV-style multiply-xor lanes
// (word i goes to lane i mod 4, so the multiplies overlap), mixed at the end.
struct WordDigest {
    uint64_t lane[4] = {kFnvOffset, kFnvOffset ^ 1ULL, kFnvOffset ^ 2ULL, kFnvOffset ^ 3ULL};
    uint32_t count = 0;

    ER_HD void word(uint32_t v)
    {
        uint64_t& h = lane[count++ & 3u];
        h = (h ^ v) * kFnvPrime;
    }
    ER_HD void f32(float v)
    {
        uint32_t u;
        __builtin_memcpy(&u, &v, 4);
        word(u);
    }
    ER_HD uint64_t finish() const
    {
        return splitmix64_mix(splitmix64_mix(splitmix64_mix(lane[0] ^ count) ^ lane[1]) ^ lane[2]) ^ lane[3];
    }
};

// World w's exported outputs, agent by agent: reward, done, termination reason, terminated,
// truncated, steps remaining, progress, elapsed steps, doors opened and the observation, which
// every step rewrites; on a SAME_STEP done step also the final observation, progress, elapsed
// steps and doors it wrote (other steps leave them as they were). The images are not covered:
// a replay may turn the batch renderer on or off.
ER_HD inline uint64_t output_digest(const SimState& s, int32_t w)
{
    WordDigest d;
    for (int32_t a = 0; a < s.num_agents; ++a) {
        const size_t i = (size_t)w * s.num_agents + a;
        d.f32(s.reward_out[i]);
        d.word((uint32_t)s.done_out[i]);
        d.word((uint32_t)s.reason_out[i]);
        d.word((uint32_t)s.terminated_out[i] | (uint32_t)s.truncated_out[i] << 8);
        d.word((uint32_t)s.steps_out[i]);
        d.f32(s.progress_out[i]);
        d.word((uint32_t)s.elapsed_out[i]);
        d.word((uint32_t)s.doors_out[i]);
        const float* obs = s.obs_out + i * s.obs_dim;
        for (int32_t k = 0; k < s.obs_dim; ++k) d.f32(obs[k]);
        if (s.autoreset_mode == kSameStep && s.done_out[i]) {
            const float* final_obs = s.final_obs_out + i * s.obs_dim;
            for (int32_t k = 0; k < s.obs_dim; ++k) d.f32(final_obs[k]);
            d.f32(s.final_progress_out[i]);
            d.word((uint32_t)s.final_elapsed_out[i]);
            d.word((uint32_t)s.final_doors_out[i]);
        }
    }
    return d.finish();
}

// The output chain that recordings and replays keep per world: started from the outputs at
// the recording's first record, then extended after every step and every reset of the world,
// so a checkpoint covers every output since the start, not only its own step's.
ER_HD inline uint64_t extend_output_chain(uint64_t chain, const SimState& s, int32_t w)
{
    return splitmix64_mix(chain ^ output_digest(s, w));
}

}  // namespace er
