// The default procedural level (SPEC §2.1): n rooms along +y, regenerated every episode from
// the episode's random stream (SPEC §2.6).
#pragma once

#include "rng.hpp"
#include "state.hpp"

namespace er {

// y of the boundary between room k - 1 and room k (room k starts here), metres.
ER_HD inline float room_edge(int32_t k) { return 40.0f * (float)k / 3.0f; }

ER_HD inline Box make_box(float min_x, float min_y, float max_x, float max_y) { return {min_x, min_y, max_x, max_y}; }

ER_HD inline int32_t add_button(LevelData& lv, float x, float y, int32_t group)
{
    const int32_t i = lv.num_buttons++;
    lv.button_pos[i] = {x, y};
    lv.button_group[i] = (int8_t)group;
    return i;
}

ER_HD inline void add_cube(LevelData& lv, float x, float y) { lv.cube_start[lv.num_cubes++] = {x, y}; }

ER_HD inline void add_static(LevelData& lv, Box b, int32_t door)
{
    lv.statics[lv.num_statics] = b;
    lv.static_door[lv.num_statics] = (int8_t)door;
    ++lv.num_statics;
}

// Writes world w's level for its current (seed, episode). Draw order, fixed by SPEC §2.6:
// per agent x, y, yaw; then per room door_x and that room's columns left to right.
ER_HD inline void generate_level(const SimState& s, int32_t w, LevelData& lv)
{
    EpisodeRng rng(s.seed[w], s.episode[w]);
    const int32_t n = s.num_rooms;
    const int32_t A = s.num_agents;
    const float L = room_edge(n);
    const float x_lo = -kArenaHalfWidth, x_hi = kArenaHalfWidth;

    lv.num_statics = lv.num_doors = lv.num_buttons = lv.num_cubes = 0;
    lv.num_bands = n;
    lv.momentary_groups = 0;
    lv.min_x = x_lo;
    lv.min_y = 0.0f;
    lv.norm_length = L;
    lv.exit_y = L + kExitMargin;
    lv.exit_target = {0.0f, lv.exit_y};
    lv.num_exits = 1;
    lv.exits[0] = make_box(x_lo - kWallThickness, lv.exit_y, x_hi + kWallThickness, L + kExitDepth + kWallThickness);

    // Agents: evenly spread across room 0, jittered so discs never touch each other or a wall.
    const float jitter = min_f(3.75f, 10.0f / (float)A - 1.05f);
    for (int32_t a = 0; a < A; ++a) {
        const float base = x_lo + 20.0f * ((float)a + 0.5f) / (float)A;
        const float x = base + rng.uniform(-jitter, jitter);
        const float y = rng.uniform(1.1f, 2.0f);
        lv.spawn[a] = {x, y};
        lv.spawn_yaw[a] = rng.uniform(-kPi / 8.0f, kPi / 8.0f);
    }

    // Outer walls: left, right, back, front (the front wall closes the exit zone).
    const float far_y = L + kExitDepth + kWallThickness;
    add_static(lv, make_box(x_lo - kWallThickness, -kWallThickness, x_lo, far_y), -1);
    add_static(lv, make_box(x_hi, -kWallThickness, x_hi + kWallThickness, far_y), -1);
    add_static(lv, make_box(x_lo - kWallThickness, -kWallThickness, x_hi + kWallThickness, 0.0f), -1);
    add_static(lv, make_box(x_lo - kWallThickness, L + kExitDepth, x_hi + kWallThickness, far_y), -1);

    for (int32_t k = 0; k < n; ++k) {
        const float y0 = room_edge(k);
        const float y1 = room_edge(k + 1) - kWallThickness;  // near face of the end wall
        const float door_x = rng.uniform(-5.0f, 5.0f);
        const float gap_lo = door_x - kDoorWidth / 2.0f, gap_hi = door_x + kDoorWidth / 2.0f;

        const int32_t door = lv.num_doors++;
        lv.door_centre[door] = {door_x, y1 + kWallThickness / 2.0f};
        lv.door_group[door] = (int8_t)k;
        lv.band_y[k] = y0;
        lv.band_door[k] = (int8_t)door;
        add_static(lv, make_box(x_lo, y1, gap_lo, y1 + kWallThickness), -1);
        add_static(lv, make_box(gap_hi, y1, x_hi, y1 + kWallThickness), -1);
        add_static(lv, make_box(gap_lo, y1, gap_hi, y1 + kWallThickness), door);

        // In room 0 no button may reach under a spawning agent.
        const float button_y_lo = y0 + 3.7f;
        switch (s.room_types[k]) {
        case kRoomButton: {
            const float bx = rng.uniform(-8.7f, 8.7f);
            const float by = rng.uniform(button_y_lo, y1 - 2.65f);
            add_button(lv, bx, by, k);
            break;
        }
        case kRoomDoubleButton: {
            const float lx = rng.uniform(-8.7f, -1.3f);
            const float ly = rng.uniform(button_y_lo, y1 - 2.65f);
            const float rx = rng.uniform(1.3f, 8.7f);
            const float ry = rng.uniform(button_y_lo, y1 - 2.65f);
            add_button(lv, lx, ly, k);
            add_button(lv, rx, ry, k);
            break;
        }
        case kRoomCubeBlocking: {
            const bool left = rng.unit() < 0.5f;
            const float mag = rng.uniform(6.3f, 8.7f);
            const float by = rng.uniform(k == 0 ? y0 + 3.7f : y0 + 1.3f, y1 - 6.0f);
            add_button(lv, left ? -mag : mag, by, k);
            // Three cubes across the door; the 1.5 m gap left to the wall is narrower than an agent.
            const float cy = y1 - 3.0f;
            add_cube(lv, door_x - 3.2f, cy);
            add_cube(lv, door_x, cy);
            add_cube(lv, door_x + 3.2f, cy);
            break;
        }
        default: {  // kRoomCubeButton: a momentary door held open by pushing the cube onto the button
            const float bx = rng.uniform(-5.0f, 5.0f);
            const float by = rng.uniform(button_y_lo, y1 - 3.0f);
            const float cy = rng.uniform(y0 + 4.6f, y1 - 3.6f);
            add_button(lv, bx, by, k);
            add_cube(lv, bx >= 0.0f ? bx - 5.0f : bx + 5.0f, cy);
            lv.momentary_groups |= (uint8_t)(1u << k);
            break;
        }
        }
    }
    lv.band_y[n] = L;
}

}  // namespace er
