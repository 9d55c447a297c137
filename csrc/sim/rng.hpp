// Counter-based, keyed randomness (SPEC §2.6): a draw depends only on (world seed, episode
// index, draw index), never on threads, backend or stepping order.
#pragma once

#include "math.hpp"

namespace er {

// The SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mixer.
ER_HD inline uint64_t splitmix64_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// draw(s, e, i) = sm(sm(sm(s) ^ e) ^ i)
ER_HD inline uint64_t rng_draw(uint64_t seed, uint32_t episode, uint32_t index)
{
    return splitmix64_mix(splitmix64_mix(splitmix64_mix(seed) ^ (uint64_t)episode) ^ (uint64_t)index);
}

// The stream of one episode: draws 0, 1, 2, ... in the order SPEC §2.6 fixes.
struct EpisodeRng {
    uint64_t key;    // sm(sm(s) ^ e)
    uint32_t index;  // next draw

    ER_HD EpisodeRng(uint64_t seed, uint32_t episode)
        : key(splitmix64_mix(splitmix64_mix(seed) ^ (uint64_t)episode)), index(0)
    {}

    // f = (draw >> 40) * 2^-24, a float32 in [0, 1) with 24 random bits.
    ER_HD float unit() { return (float)(splitmix64_mix(key ^ (uint64_t)index++) >> 40) * (1.0f / 16777216.0f); }

    // U[a, b] = a + (b - a) * f, in float32.
    ER_HD float uniform(float a, float b)
    {
        const float span = b - a;
        return a + span * unit();
    }
};

}  // namespace er
