// One world's step and reset, composed from the rules. Both backends call exactly these.
#pragma once

#include <cstddef>

#include "doors.hpp"
#include "hash.hpp"
#include "level_gen.hpp"
#include "observe.hpp"
#include "reward.hpp"

namespace er {

// move_amount k moves k/3 m per step; move_angle k points k*pi/4 clockwise from forward.
// Tables local to functions, so host and device code read the same constants (CUDA cannot
// index a namespace-scope constexpr array from device code).
constexpr float kSqrtHalf = 0.70710678118654752440f;
ER_HD inline float move_distance(int32_t amount)
{
    constexpr float kDistance[kNumMoveAmounts] = {0.0f, 1.0f / 3.0f, 2.0f / 3.0f, 1.0f};
    return kDistance[amount];
}
ER_HD inline Vec2 move_direction(int32_t angle)  // (cos, sin) of the angle
{
    constexpr float kCos[kNumMoveAngles] = {1.0f, kSqrtHalf, 0.0f, -kSqrtHalf, -1.0f, -kSqrtHalf, 0.0f, kSqrtHalf};
    constexpr float kSin[kNumMoveAngles] = {0.0f, kSqrtHalf, 1.0f, kSqrtHalf, 0.0f, -kSqrtHalf, -1.0f, -kSqrtHalf};
    return {kCos[angle], kSin[angle]};
}

// The observations of world w's agents, from its state.
ER_HD inline void write_observations(float* obs, const SimState& s, const LidarTable& table, int32_t w)
{
    const int32_t A = s.num_agents;
    const size_t base = (size_t)w * A;
    for (int32_t a = 0; a < A; ++a)
        write_observation(obs + (size_t)(base + a) * s.obs_dim, s, table, s.level[w],
                          s.door_open + (size_t)w * kMaxDoors, s.agent_pos + base, s.agent_yaw + base,
                          s.agent_max_y + base, s.agent_escaped + base, s.cube_pos + (size_t)w * kMaxCubes,
                          s.steps_left[w], a);
}

ER_HD inline int32_t doors_opened(const SimState& s, int32_t w)
{
    int32_t doors = 0;
    for (int32_t d = 0; d < s.level[w].num_doors; ++d) doors += s.door_open[(size_t)w * kMaxDoors + d];
    return doors;
}

// Writes every exported output of world w from its state, once: rewards as given, done and
// reason describing the episode that just ended (reason -1: running), and the observations
// when `observe` (a step whose observations nobody reads skips them: see StepRequest).
ER_HD inline void write_outputs(const SimState& s, const LidarTable& table, int32_t w, const float* rewards,
                                int32_t reason, bool observe = true)
{
    const int32_t A = s.num_agents;
    const size_t base = (size_t)w * A;
    const int32_t done = reason != kRunning;
    const int32_t doors = doors_opened(s, w);
    for (int32_t a = 0; a < A; ++a) {
        const size_t i = base + a;
        s.reward_out[i] = rewards[a];
        s.done_out[i] = done;
        s.reason_out[i] = reason;
        s.terminated_out[i] = reason == kEscaped;
        s.truncated_out[i] = reason == kTimeLimit;
        s.steps_out[i] = s.steps_left[w];
        s.progress_out[i] = s.agent_max_y[i];
        s.elapsed_out[i] = s.episode_len - s.steps_left[w];
        s.doors_out[i] = doors;
    }
    if (observe) write_observations(s.obs_out, s, table, w);
}

// Starts world w's episode for its current (seed, episode): the level, the bodies, the counters.
ER_HD inline void start_episode(const SimState& s, int32_t w)
{
    const int32_t A = s.num_agents;
    LevelData& lv = s.level[w];
    if (s.num_fixed_levels > 0)
        lv = s.fixed_levels[s.level_index[w]];
    else
        generate_level(s, w, lv);
    for (int32_t c = 0; c < kMaxCubes; ++c)
        s.cube_pos[(size_t)w * kMaxCubes + c] = c < lv.num_cubes ? lv.cube_start[c] : Vec2{0.0f, 0.0f};
    for (int32_t d = 0; d < kMaxDoors; ++d) s.door_open[(size_t)w * kMaxDoors + d] = 0;
    for (int32_t a = 0; a < A; ++a) {
        const size_t i = (size_t)w * A + a;
        s.agent_pos[i] = lv.spawn[a];
        s.agent_yaw[i] = lv.spawn_yaw[a];
        s.agent_max_y[i] = lv.spawn[a].y;
        s.agent_escaped[i] = 0;
    }
    s.steps_left[w] = s.episode_len;
    s.status[w] = kStatusRunning;
    s.last_reason[w] = kRunning;
}

// Starts world w's episode and shows it: reward 0, done 0.
ER_HD inline void begin_episode(const SimState& s, const LidarTable& table, int32_t w, bool observe = true)
{
    start_episode(s, w);
    const float zeros[kMaxAgents] = {0.0f, 0.0f, 0.0f, 0.0f};
    write_outputs(s, table, w, zeros, kRunning, observe);
}

// A reset requested by the user: with a seed the world's stream restarts (s_w = seed,
// e_w = 0), without one it moves to the next episode of the same stream.
ER_HD inline void reset_world(const SimState& s, const LidarTable& table, int32_t w, bool seeded, uint64_t seed,
                              bool observe = true)
{
    if (seeded) {
        s.seed[w] = seed;
        s.episode[w] = 0;
    } else {
        s.episode[w] += 1;
    }
    begin_episode(s, table, w, observe);
}

// Shows world w as a restored state describes it (SimManager.set_state, as MuJoCo's mj_forward):
// its level again (generated from its seed and episode, or its custom level; `reload_level`
// false when the world already plays that level), then every output from the state, with the
// rewards and termination reason it showed; the observations only when `observe` (false: the
// state came with the observations it shows).
ER_HD inline void restore_world(const SimState& s, const LidarTable& table, int32_t w, bool reload_level, bool observe)
{
    const int32_t A = s.num_agents;
    LevelData& lv = s.level[w];
    if (!reload_level) {
    } else if (s.num_fixed_levels > 0) {
        lv = s.fixed_levels[s.level_index[w]];
    } else {
        generate_level(s, w, lv);
    }
    float rewards[kMaxAgents] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int32_t a = 0; a < A; ++a) rewards[a] = s.reward_out[(size_t)w * A + a];
    write_outputs(s, table, w, rewards, s.reason_out[(size_t)w * A], observe);
}

// The finished episode of a SAME_STEP done step: its observation, progress, elapsed steps and
// doors go to the final_* outputs, then the world starts its next episode, which the other
// outputs show with the finished episode's reward and flags.
ER_HD ER_OUTLINE inline void finish_same_step(const SimState& s, const LidarTable& table, int32_t w,
                                              const float* rewards, int32_t reason, bool observe)
{
    const int32_t A = s.num_agents;
    const size_t base = (size_t)w * A;
    write_observations(s.final_obs_out, s, table, w);
    const int32_t doors = doors_opened(s, w);
    for (int32_t a = 0; a < A; ++a) {
        s.final_progress_out[base + a] = s.agent_max_y[base + a];
        s.final_elapsed_out[base + a] = s.episode_len - s.steps_left[w];
        s.final_doors_out[base + a] = doors;
    }
    s.episode[w] += 1;
    start_episode(s, w);
    write_outputs(s, table, w, rewards, reason, observe);
}

// A world that does not simulate this step: a pending reset (NEXT_STEP or the reset flag)
// starts its next episode; a DISABLED world frozen after its episode shows reward 0, done 1.
ER_HD ER_OUTLINE inline void skip_step(const SimState& s, const LidarTable& table, int32_t w, bool observe)
{
    if (s.reset_in[w] != 0 || s.status[w] == kStatusPendingReset) {
        s.reset_in[w] = 0;  // the core consumes the flag, as in the seed
        reset_world(s, table, w, false, 0, observe);
        return;
    }
    const float zeros[kMaxAgents] = {0.0f, 0.0f, 0.0f, 0.0f};
    write_outputs(s, table, w, zeros, s.last_reason[w], observe);
}

// Simulates one step of world w (SPEC §2.2–§2.5), or applies a pending reset instead. With
// `observe` false the observations are left as they were (nobody reads them before the
// world's next observed step rewrites them); every other output is written.
ER_HD inline void step_world(const SimState& s, const LidarTable& table, int32_t w, bool observe = true)
{
    const int32_t A = s.num_agents;
    if (s.reset_in[w] != 0 || s.status[w] == kStatusPendingReset || s.status[w] == kStatusFrozen) {
        skip_step(s, table, w, observe);
        return;
    }
    float rewards[kMaxAgents] = {0.0f, 0.0f, 0.0f, 0.0f};
    LevelData& lv = s.level[w];
    const size_t base = (size_t)w * A;
    Vec2* agents = s.agent_pos + base;
    Vec2* cubes = s.cube_pos + (size_t)w * kMaxCubes;
    uint8_t* door_open = s.door_open + (size_t)w * kMaxDoors;

    // Rotate first, then move along the new heading (the core clamps out-of-range actions).
    Vec2 disp[kMaxAgents];
    for (int32_t a = 0; a < A; ++a) {
        const int32_t* act = s.action_in + (base + a) * kActionDims;
        const int32_t amount = clamp_i(act[0], 0, kNumMoveAmounts - 1);
        const int32_t angle = clamp_i(act[1], 0, kNumMoveAngles - 1);
        const int32_t rotate = clamp_i(act[2], 0, kNumRotates - 1);
        const float yaw = wrap_angle(s.agent_yaw[base + a] + (float)(2 - rotate) * (kPi / 16.0f));
        s.agent_yaw[base + a] = yaw;
        const SinCos sc = sincos_f(yaw);
        const Vec2 forward = {-sc.sin, sc.cos}, right = {sc.cos, sc.sin};
        const Vec2 cs = move_direction(angle);
        const Vec2 dir = forward * cs.x + right * cs.y;
        disp[a] = dir * move_distance(amount);
    }

    integrate_step(lv, door_open, agents, A, cubes, disp);

    // Doors change at the end of the step; one pass against the new statics leaves no body inside a door.
    if (update_doors(lv, door_open, pressed_groups(lv, agents, A, cubes))) {
        CubeDirt dirt = all_cubes_dirty();
        cubes_vs_statics(lv, door_open, cubes, dirt);
        agents_vs_statics(lv, door_open, agents, A);
    }

    const bool all_escaped =
        update_rewards(s.reward_cfg, lv, agents, s.agent_max_y + base, s.agent_escaped + base, A, rewards);
    s.steps_left[w] -= 1;
    const int32_t reason = all_escaped ? kEscaped : (s.steps_left[w] <= 0 ? kTimeLimit : kRunning);

    if (reason != kRunning) {
        if (s.autoreset_mode == kSameStep) {
            finish_same_step(s, table, w, rewards, reason, observe);
            return;
        }
        s.status[w] = s.autoreset_mode == kNextStep ? kStatusPendingReset : kStatusFrozen;
        s.last_reason[w] = reason;
    }
    write_outputs(s, table, w, rewards, reason, observe);
}

}  // namespace er
