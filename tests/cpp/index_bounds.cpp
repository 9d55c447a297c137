// Steps a world numbered past 2^27 (where int32 products such as w * kMaxCubes overflow) and
// checks it against the same episode in world 3: the rules must address every per-world array
// with 64-bit offsets. The state is a sparse reservation (MAP_NORESERVE): only the two worlds'
// pages are ever touched. Built and run by tests/test_index_bounds.py.
#include <sys/mman.h>

#include <cstdio>
#include <cstring>

#include "backend.hpp"
#include "sim/step.hpp"

int main()
{
    using namespace er;
    SimState cfg{};
    cfg.num_worlds = (1 << 27) + 8;
    cfg.num_agents = kMaxAgents;
    cfg.obs_dim = obs_dim(kMaxAgents);
    cfg.episode_len = 200;
    cfg.autoreset_mode = kSameStep;
    cfg.num_rooms = 3;
    cfg.room_types[0] = kRoomDoubleButton;
    cfg.room_types[1] = kRoomCubeBlocking;
    cfg.room_types[2] = kRoomCubeButton;
    const size_t bytes = state_bytes(cfg);
    void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        std::printf("SKIP: cannot reserve %zu GiB of address space\n", bytes >> 30);
        return 0;
    }
    const SimState s = bind_state(cfg, base);
    const LidarTable table = make_lidar_table();
    const int32_t big = cfg.num_worlds - 3, small = 3;
    for (int32_t w : {small, big}) {
        s.seed[w] = 12345;
        begin_episode(s, table, w);
    }
    const int32_t A = cfg.num_agents, D = cfg.obs_dim;
    for (int32_t step = 0; step < 300; ++step) {
        for (int32_t w : {small, big}) {
            for (int32_t k = 0; k < A * kActionDims; ++k)
                s.action_in[(size_t)w * A * kActionDims + k] = (step * 7 + k * 3) % (k % 3 == 0 ? 4 : (k % 3 == 1 ? 8 : 5));
            step_world(s, table, w, step % 3 == 0);
        }
        if (step % 3 != 0) continue;
        const bool same = world_hash(s, small) == world_hash(s, big) &&
                          std::memcmp(s.obs_out + (size_t)small * A * D, s.obs_out + (size_t)big * A * D, sizeof(float) * A * D) == 0 &&
                          std::memcmp(s.final_obs_out + (size_t)small * A * D, s.final_obs_out + (size_t)big * A * D, sizeof(float) * A * D) == 0 &&
                          std::memcmp(s.reward_out + (size_t)small * A, s.reward_out + (size_t)big * A, sizeof(float) * A) == 0;
        if (!same) {
            std::printf("FAIL: world %d differs from world %d at step %d\n", big, small, step);
            return 1;
        }
    }
    std::printf("OK: world %d (state %zu GiB) steps as world %d does\n", big, bytes >> 30, small);
    return 0;
}
