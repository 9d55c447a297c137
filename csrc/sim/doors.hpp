// Buttons and doors (SPEC §2.4), evaluated after physics every step.
#pragma once

#include "physics.hpp"

namespace er {

// A button (square of half-extent 0.65) is pressed while any agent disc or cube overlaps it.
ER_HD inline bool button_pressed(Vec2 button, const Vec2* agents, int32_t A, const Vec2* cubes, int32_t num_cubes)
{
    const Box b = {button.x - kButtonHalf, button.y - kButtonHalf, button.x + kButtonHalf, button.y + kButtonHalf};
    for (int32_t a = 0; a < A; ++a) {
        const float dx = agents[a].x - clamp_f(agents[a].x, b.min_x, b.max_x);
        const float dy = agents[a].y - clamp_f(agents[a].y, b.min_y, b.max_y);
        if (dx * dx + dy * dy < kAgentRadius * kAgentRadius) return true;
    }
    constexpr float reach = kCubeHalf + kButtonHalf;
    for (int32_t k = 0; k < num_cubes; ++k) {
        if (abs_f(cubes[k].x - button.x) < reach && abs_f(cubes[k].y - button.y) < reach) return true;
    }
    return false;
}

// Bit g set when every button of group g is pressed (a group with no button never opens).
ER_HD inline uint32_t pressed_groups(const LevelData& lv, const Vec2* agents, int32_t A, const Vec2* cubes)
{
    uint32_t has_button = 0, released = 0;
    for (int32_t i = 0; i < lv.num_buttons; ++i) {
        const uint32_t bit = 1u << lv.button_group[i];
        has_button |= bit;
        if ((released & bit) == 0 && !button_pressed(lv.button_pos[i], agents, A, cubes, lv.num_cubes)) released |= bit;
    }
    return has_button & ~released;
}

// Opens doors whose group is pressed; latching doors stay open, momentary doors follow their
// buttons. Returns true when any door changed state.
ER_HD inline bool update_doors(const LevelData& lv, uint8_t* door_open, uint32_t pressed)
{
    bool changed = false;
    for (int32_t d = 0; d < lv.num_doors; ++d) {
        const uint32_t bit = 1u << lv.door_group[d];
        const bool momentary = (lv.momentary_groups & bit) != 0;
        const uint8_t open = (pressed & bit) ? 1 : (momentary ? 0 : door_open[d]);
        changed |= open != door_open[d];
        door_open[d] = open;
    }
    return changed;
}

}  // namespace er
