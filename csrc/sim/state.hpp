// The simulation state: plain arrays, one slot per world (or per world x agent), owned by
// the manager's storage and seen by the rules through the pointers of SimState.
#pragma once

#include "consts.hpp"
#include "math.hpp"

namespace er {

struct Box {
    float min_x, min_y, max_x, max_y;  // metres
};

// One world's geometry for its current episode. The procedural generator writes it at every
// reset; a compiled ASCII level (later) will be copied in the same form, so the rules,
// observations, hashing and replay never know where a level came from.
struct LevelData {
    int32_t num_statics;  // walls and doors, in contact-resolution order
    int32_t num_doors;
    int32_t num_buttons;
    int32_t num_cubes;
    int32_t num_bands;  // rooms; band num_bands is the exit zone
    int32_t num_exits;
    Box statics[kMaxStatics];
    int8_t static_door[kMaxStatics];   // door index of a static, -1 for a wall
    Vec2 door_centre[kMaxDoors];       // metres
    int8_t door_group[kMaxDoors];      // [0, 8)
    uint8_t momentary_groups;          // bit g set: group g is momentary (open only while pressed)
    Vec2 button_pos[kMaxButtons];      // metres, centre of the square
    int8_t button_group[kMaxButtons];  // [0, 8)
    Vec2 cube_start[kMaxCubes];        // metres, cube centres at episode start
    float band_y[kMaxRooms + 1];       // band k spans [band_y[k], band_y[k + 1]); exit zone above band_y[n]
    int8_t band_door[kMaxRooms];       // door shown in band k's observation
    Vec2 spawn[kMaxAgents];            // metres
    float spawn_yaw[kMaxAgents];       // radians
    Box exits[kMaxExits];              // an agent has escaped when its centre is inside one
    Vec2 exit_target;                  // door-slot target in the exit zone, metres
    float exit_y;                      // progress cap, metres
    float min_x, min_y;                // metres, origin of normalised positions
    float norm_length;                 // L, metres
};

// Everything a rule function needs, as raw pointers (host memory on the CPU backend, device
// memory on the CUDA backend). Indexing: world w, agent a: wa = w * num_agents + a.
struct SimState {
    // Configuration, the same for every world.
    int32_t num_worlds;
    int32_t num_agents;
    int32_t obs_dim;
    int32_t episode_len;            // steps
    int32_t autoreset_mode;         // AutoresetMode
    int32_t num_rooms;              // generated level: room count, 1..4
    int32_t room_types[kMaxRooms];  // RoomType per room
    int32_t num_fixed_levels;
    int32_t render_width,
        render_height;  // batch renderer's image size; 0: off    // custom levels (SPEC §2.7): world w plays level w mod n; 0: generated
    RewardConfig reward_cfg;

    // Per world.
    uint64_t* seed;           // s_w
    uint32_t* episode;        // e_w
    int32_t* steps_left;      // 0 .. episode_len
    uint8_t* status;          // WorldStatus
    int32_t* last_reason;     // TerminationReason of the last finished episode (frozen worlds show it)
    uint8_t* door_open;       // [W * kMaxDoors], 0 / 1
    Vec2* cube_pos;           // [W * kMaxCubes], metres
    LevelData* level;         // [W], the level of each world's current episode
    LevelData* fixed_levels;  // [num_fixed_levels], compiled custom levels
    int32_t* level_index;     // [W], the custom level each world plays, in [0, num_fixed_levels) (w mod n
                              // at construction; a restored state brings its own)

    // Per agent.
    Vec2* agent_pos;         // [W * A], metres
    float* agent_yaw;        // [W * A], radians in (-pi, pi]
    float* agent_max_y;      // [W * A], metres, progress this episode
    uint8_t* agent_escaped;  // [W * A], 0 / 1

    // Inputs (exported, read by the core).
    int32_t* reset_in;   // [W]
    int32_t* action_in;  // [W * A * 3]

    // Outputs (exported, written by the core, never read back).
    float* reward_out;        // [W * A]
    int32_t* done_out;        // [W * A]
    int32_t* reason_out;      // [W * A]
    uint8_t* terminated_out;  // [W * A], bool
    uint8_t* truncated_out;   // [W * A], bool
    int32_t* steps_out;       // [W * A]
    float* progress_out;      // [W * A], metres
    int32_t* elapsed_out;     // [W * A], steps of the shown episode: episode_len - steps left
    int32_t* doors_out;       // [W * A], doors open in the world
    float* obs_out;           // [W * A * obs_dim]
    // The finished episode of a SAME_STEP done step (the other outputs show the new one).
    float* final_obs_out;        // [W * A * obs_dim]
    float* final_progress_out;   // [W * A], metres
    int32_t* final_elapsed_out;  // [W * A]
    int32_t* final_doors_out;    // [W * A]
    // The batch renderer's images (SPEC §6), allocated only when it is on.
    uint8_t* rgb_out;  // [W * A * H * Wpx * 3]
    float* depth_out;  // [W * A * H * Wpx], metres along the view ray
};

}  // namespace er
