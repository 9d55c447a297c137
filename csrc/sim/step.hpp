// One world's step and reset, composed from the rules. Both backends call exactly these.
#pragma once

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

// Writes every exported output of world w from its state: rewards as given, done and reason
// describing the episode that just ended (reason -1: running).
ER_HD inline void write_outputs(const SimState& s, const LidarTable& table, int32_t w, const float* rewards,
                                int32_t reason)
{
    const int32_t A = s.num_agents;
    const LevelData& lv = s.level[w];
    const int32_t base = w * A;
    const int32_t done = reason != kRunning;
    int32_t doors = 0;
    for (int32_t d = 0; d < lv.num_doors; ++d) doors += s.door_open[w * kMaxDoors + d];
    for (int32_t a = 0; a < A; ++a) {
        const int32_t i = base + a;
        s.reward_out[i] = rewards[a];
        s.done_out[i] = done;
        s.reason_out[i] = reason;
        s.terminated_out[i] = reason == kEscaped;
        s.truncated_out[i] = reason == kTimeLimit;
        s.steps_out[i] = s.steps_left[w];
        s.progress_out[i] = s.agent_max_y[i];
        s.elapsed_out[i] = s.episode_len - s.steps_left[w];
        s.doors_out[i] = doors;
        write_observation(s.obs_out + (size_t)i * s.obs_dim, s, table, lv, s.door_open + w * kMaxDoors,
                          s.agent_pos + base, s.agent_yaw + base, s.agent_max_y + base, s.agent_escaped + base,
                          s.cube_pos + w * kMaxCubes, s.steps_left[w], a);
    }
}

// Starts world w's episode for its current (seed, episode) and shows it: reward 0, done 0.
ER_HD inline void begin_episode(const SimState& s, const LidarTable& table, int32_t w)
{
    const int32_t A = s.num_agents;
    LevelData& lv = s.level[w];
    if (s.num_fixed_levels > 0)
        lv = s.fixed_levels[w % s.num_fixed_levels];
    else
        generate_level(s, w, lv);
    for (int32_t c = 0; c < kMaxCubes; ++c) s.cube_pos[w * kMaxCubes + c] = c < lv.num_cubes ? lv.cube_start[c] : Vec2{0.0f, 0.0f};
    for (int32_t d = 0; d < kMaxDoors; ++d) s.door_open[w * kMaxDoors + d] = 0;
    for (int32_t a = 0; a < A; ++a) {
        const int32_t i = w * A + a;
        s.agent_pos[i] = lv.spawn[a];
        s.agent_yaw[i] = lv.spawn_yaw[a];
        s.agent_max_y[i] = lv.spawn[a].y;
        s.agent_escaped[i] = 0;
    }
    s.steps_left[w] = s.episode_len;
    s.status[w] = kStatusRunning;
    s.last_reason[w] = kRunning;
    const float zeros[kMaxAgents] = {0.0f, 0.0f, 0.0f, 0.0f};
    write_outputs(s, table, w, zeros, kRunning);
}

// A reset requested by the user: with a seed the world's stream restarts (s_w = seed,
// e_w = 0), without one it moves to the next episode of the same stream.
ER_HD inline void reset_world(const SimState& s, const LidarTable& table, int32_t w, bool seeded, uint64_t seed)
{
    if (seeded) {
        s.seed[w] = seed;
        s.episode[w] = 0;
    } else {
        s.episode[w] += 1;
    }
    begin_episode(s, table, w);
}

// Simulates one step of world w (SPEC §2.2–§2.5), or applies a pending reset instead.
ER_HD inline void step_world(const SimState& s, const LidarTable& table, int32_t w)
{
    const int32_t A = s.num_agents;
    if (s.reset_in[w] != 0 || s.status[w] == kStatusPendingReset) {
        s.reset_in[w] = 0;  // the core consumes the flag, as in the seed
        reset_world(s, table, w, false, 0);
        return;
    }
    float rewards[kMaxAgents] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (s.status[w] == kStatusFrozen) {  // DISABLED: no motion, reward 0, done stays 1
        write_outputs(s, table, w, rewards, s.last_reason[w]);
        return;
    }

    LevelData& lv = s.level[w];
    const int32_t base = w * A;
    Vec2* agents = s.agent_pos + base;
    Vec2* cubes = s.cube_pos + w * kMaxCubes;
    uint8_t* door_open = s.door_open + w * kMaxDoors;

    // Rotate first, then move along the new heading (the core clamps out-of-range actions).
    Vec2 disp[kMaxAgents];
    for (int32_t a = 0; a < A; ++a) {
        const int32_t* act = s.action_in + (size_t)(base + a) * kActionDims;
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

    if (reason == kRunning) {
        write_outputs(s, table, w, rewards, kRunning);
        return;
    }
    switch (s.autoreset_mode) {
    case kSameStep: {
        // The terminal observation goes to final_observation; the new episode's observation,
        // steps and progress are shown with the finished episode's reward and flags.
        write_outputs(s, table, w, rewards, reason);
        const size_t row = (size_t)base * s.obs_dim, n = (size_t)A * s.obs_dim;
        for (size_t k = 0; k < n; ++k) s.final_obs_out[row + k] = s.obs_out[row + k];
        for (int32_t a = 0; a < A; ++a) {
            s.final_progress_out[base + a] = s.progress_out[base + a];
            s.final_elapsed_out[base + a] = s.elapsed_out[base + a];
            s.final_doors_out[base + a] = s.doors_out[base + a];
        }
        reset_world(s, table, w, false, 0);
        for (int32_t a = 0; a < A; ++a) {
            const int32_t i = base + a;
            s.reward_out[i] = rewards[a];
            s.done_out[i] = 1;
            s.reason_out[i] = reason;
            s.terminated_out[i] = reason == kEscaped;
            s.truncated_out[i] = reason == kTimeLimit;
        }
        return;
    }
    case kNextStep: s.status[w] = kStatusPendingReset; break;
    default: s.status[w] = kStatusFrozen; break;
    }
    s.last_reason[w] = reason;
    write_outputs(s, table, w, rewards, reason);
}

}  // namespace er
