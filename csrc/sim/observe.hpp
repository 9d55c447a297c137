// The flat per-agent observation (SPEC §3), D = 87 + 3 (A - 1) floats:
// [0:5] self, [5] steps left, [6:9] door, [9:27] room entities, [27:87] lidar, [87:] partners.
#pragma once

#include "lidar.hpp"

namespace er {

// The band (room k, or the exit zone k = n) whose y-range holds y, clamped to [0, n].
ER_HD inline int32_t band_of(const LevelData& lv, float y)
{
    int32_t b = 0;
    while (b < lv.num_bands && y >= lv.band_y[b + 1]) ++b;
    return b;
}

// An agent's frame: position, unit forward f = (-sin yaw, cos yaw), right r = (cos yaw, sin yaw).
struct AgentFrame {
    Vec2 pos, forward, right;
    float inv_length;  // 1 / L
};

// Polar coordinates of p seen from the agent: (distance / L, bearing / pi), bearing 0 ahead, + right.
ER_HD inline void write_polar(float* out, const AgentFrame& f, Vec2 p)
{
    const Vec2 v = p - f.pos;
    out[0] = sqrt_f(dot(v, v)) * f.inv_length;
    out[1] = atan2_f(dot(v, f.right), dot(v, f.forward)) / kPi;
}

// Up to 6 buttons and cubes whose centres lie in `band`, nearest first (ties: buttons, then index).
ER_HD inline void write_room_entities(float* out, const AgentFrame& f, const LevelData& lv, const Vec2* cubes,
                                      int32_t band)
{
    float dist[kEntitySlots];
    Vec2 pos[kEntitySlots];
    int32_t type[kEntitySlots];
    int32_t count = 0;
    const int32_t total = band < lv.num_bands ? lv.num_buttons + lv.num_cubes : 0;
    for (int32_t e = 0; e < total; ++e) {
        const bool is_button = e < lv.num_buttons;
        const Vec2 p = is_button ? lv.button_pos[e] : cubes[e - lv.num_buttons];
        if (band_of(lv, p.y) != band) continue;
        const Vec2 v = p - f.pos;
        const float d = sqrt_f(dot(v, v));
        // Candidates arrive buttons first and by index, so a strict comparison keeps the tie order.
        int32_t slot = count < kEntitySlots ? count : kEntitySlots;
        while (slot > 0 && d < dist[slot - 1]) --slot;
        if (slot >= kEntitySlots) continue;
        const int32_t last = count < kEntitySlots ? count : kEntitySlots - 1;
        for (int32_t i = last; i > slot; --i) {
            dist[i] = dist[i - 1];
            pos[i] = pos[i - 1];
            type[i] = type[i - 1];
        }
        dist[slot] = d;
        pos[slot] = p;
        type[slot] = is_button ? kTypeButton : kTypeCube;
        if (count < kEntitySlots) ++count;
    }
    for (int32_t i = 0; i < kEntitySlots; ++i) {
        float* o = out + 3 * i;
        if (i < count) {
            write_polar(o, f, pos[i]);
            o[2] = (float)type[i] / (float)kEntityTypeCount;
        } else {
            o[0] = o[1] = o[2] = 0.0f;
        }
    }
}

// Writes agent `a`'s observation of world state (agents, cubes, doors as given).
ER_HD ER_OUTLINE inline void write_observation(float* out, const SimState& s, const LidarTable& table,
                                               const LevelData& lv, const uint8_t* door_open, const Vec2* agents,
                                               const float* yaw, const float* max_y, const uint8_t* escaped,
                                               const Vec2* cubes, int32_t steps_left, int32_t a)
{
    const int32_t A = s.num_agents;
    const SinCos sc = sincos_f(yaw[a]);
    AgentFrame f;
    f.pos = agents[a];
    f.forward = {-sc.sin, sc.cos};
    f.right = {sc.cos, sc.sin};
    f.inv_length = 1.0f / lv.norm_length;

    out[kObsSelf + 0] = (f.pos.x - lv.min_x) * f.inv_length;
    out[kObsSelf + 1] = (f.pos.y - lv.min_y) * f.inv_length;
    out[kObsSelf + 2] = 0.0f;
    out[kObsSelf + 3] = (max_y[a] - lv.min_y) * f.inv_length;
    out[kObsSelf + 4] = yaw[a] / kPi;
    out[kObsSteps] = (float)steps_left / (float)s.episode_len;

    const int32_t band = band_of(lv, f.pos.y);
    if (band < lv.num_bands && lv.band_door[band] >= 0) {
        const int32_t door = lv.band_door[band];
        write_polar(out + kObsDoor, f, lv.door_centre[door]);
        out[kObsDoor + 2] = (float)door_open[door];
    } else if (band < lv.num_bands) {
        out[kObsDoor + 0] = out[kObsDoor + 1] = out[kObsDoor + 2] = 0.0f;
    } else {
        write_polar(out + kObsDoor, f, lv.exit_target);
        out[kObsDoor + 2] = 1.0f;
    }

    write_room_entities(out + kObsEntities, f, lv, cubes, band);
    write_lidar(out + kObsLidar, table, lv, door_open, agents, A, a, cubes, f.forward);

    float* partner = out + kObsPartners;
    for (int32_t j = 0; j < A; ++j) {
        if (j == a) continue;
        write_polar(partner, f, agents[j]);
        partner[2] = (float)escaped[j];
        partner += kObsPartnerDim;
    }
}

}  // namespace er
