// Custom levels (SPEC §2.7): an ASCII grid compiled into the same LevelData the procedural
// generator writes, so the rules, observations, replays and rendering treat both alike.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sim/state.hpp"

namespace er {

// A level as the user writes it (the dict form of SPEC §2.7).
struct LevelSource {
    std::string name;
    std::string ascii;               // rows separated by '\n', row 0 at the largest y
    std::vector<int32_t> momentary;  // door groups 1..8 that are open only while pressed
    float cell_size = 2.0f;          // metres per character
};

struct CompiledLevel {
    LevelData data;
    int32_t rows = 0, cols = 0;
    int32_t num_walls = 0;   // statics [0, num_walls) are walls (4 outer walls first), then doors
    int32_t num_spawns = 0;  // 'S' cells; data.spawn holds the first min(num_spawns, kMaxAgents)
    float max_x = 0.0f, max_y = 0.0f;
    std::vector<std::string> warnings;  // e.g. an exit no spawn can reach
};

// Limits on the text itself, so that no input makes the compiler allocate without bound.
constexpr int32_t kMaxLevelRows = 256;
constexpr int32_t kMaxLevelCols = 256;

// Compiles `src` for worlds of `num_agents` agents. Throws std::invalid_argument naming the
// row and column (0-based, row 0 is the first line) of the first mistake.
CompiledLevel compile_level(const LevelSource& src, int32_t num_agents);

}  // namespace er
