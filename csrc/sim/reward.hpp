// Reward and termination (SPEC §2.5).
#pragma once

#include "state.hpp"

namespace er {

ER_HD inline bool inside(const Box& b, Vec2 p)
{
    return p.x >= b.min_x && p.x <= b.max_x && p.y >= b.min_y && p.y <= b.max_y;
}

ER_HD inline bool in_exit(const LevelData& lv, Vec2 p)
{
    for (int32_t i = 0; i < lv.num_exits; ++i)
        if (inside(lv.exits[i], p)) return true;
    return false;
}

// Updates max_y and has_escaped of a world's agents and writes their rewards. Progress pays
// per metre of new max_y (capped at exit_y), otherwise a slack penalty; with 2+ agents positive
// progress is multiplied while every agent's max_y is within group_radius of this one's; the
// escape bonus is paid once; an agent that escaped earlier gets 0. Returns true when every
// agent has escaped.
ER_HD inline bool update_rewards(const RewardConfig& cfg, const LevelData& lv, const Vec2* agents, float* max_y,
                                 uint8_t* escaped, int32_t A, float* reward)
{
    float delta[kMaxAgents];
    for (int32_t a = 0; a < A; ++a) {
        const float next = max_f(max_y[a], min_f(agents[a].y, lv.exit_y));
        delta[a] = next - max_y[a];
        max_y[a] = next;
    }
    bool all_escaped = true;
    for (int32_t a = 0; a < A; ++a) {
        if (escaped[a]) {
            reward[a] = 0.0f;
            continue;
        }
        float r = -cfg.slack_penalty;
        if (delta[a] > 0.0f) {
            r = cfg.progress_scale * delta[a];
            bool together = A > 1;
            for (int32_t j = 0; j < A && together; ++j) together = abs_f(max_y[j] - max_y[a]) <= cfg.group_radius;
            if (together) r = r * cfg.group_bonus;
        }
        if (in_exit(lv, agents[a])) {
            r = r + cfg.escape_bonus;
            escaped[a] = 1;
        } else {
            all_escaped = false;
        }
        reward[a] = r;
    }
    return all_escaped;
}

}  // namespace er
