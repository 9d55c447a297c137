// Where each array of SimState lives inside one allocation.
#include "backend.hpp"

#include <type_traits>

namespace er {

namespace {

constexpr size_t kAlign = 64;  // a cache line, and CUDA's coalescing granularity

// Visits every array of SimState with its element count, in a fixed order.
template <class F>
void for_each_array(SimState& s, F&& f)
{
    const size_t W = (size_t)s.num_worlds, WA = W * (size_t)s.num_agents;
    f(s.seed, W);
    f(s.episode, W);
    f(s.steps_left, W);
    f(s.status, W);
    f(s.last_reason, W);
    f(s.door_open, W * kMaxDoors);
    f(s.cube_pos, W * kMaxCubes);
    f(s.level, W);
    f(s.fixed_levels, (size_t)s.num_fixed_levels);
    f(s.level_index, W);
    f(s.agent_pos, WA);
    f(s.agent_yaw, WA);
    f(s.agent_max_y, WA);
    f(s.agent_escaped, WA);
    f(s.reset_in, W);
    f(s.action_in, WA * kActionDims);
    f(s.reward_out, WA);
    f(s.done_out, WA);
    f(s.reason_out, WA);
    f(s.terminated_out, WA);
    f(s.truncated_out, WA);
    f(s.steps_out, WA);
    f(s.progress_out, WA);
    f(s.elapsed_out, WA);
    f(s.doors_out, WA);
    f(s.obs_out, WA * (size_t)s.obs_dim);
    f(s.final_obs_out, WA * (size_t)s.obs_dim);
    f(s.final_progress_out, WA);
    f(s.final_elapsed_out, WA);
    f(s.final_doors_out, WA);
    const size_t pixels = WA * (size_t)s.render_width * (size_t)s.render_height;
    f(s.rgb_out, 3 * pixels);
    f(s.depth_out, pixels);
}

size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

}  // namespace

size_t state_bytes(const SimState& cfg)
{
    SimState s = cfg;
    size_t total = 0;
    for_each_array(s, [&](auto*& ptr, size_t count) { total += round_up(count * sizeof(*ptr)); });
    return total;
}

SimState bind_state(const SimState& cfg, void* base)
{
    SimState s = cfg;
    size_t offset = 0;
    for_each_array(s, [&](auto*& ptr, size_t count) {
        using T = std::remove_reference_t<decltype(*ptr)>;
        ptr = reinterpret_cast<T*>(static_cast<char*>(base) + offset);
        offset += round_up(count * sizeof(T));
    });
    return s;
}

}  // namespace er
