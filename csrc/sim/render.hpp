// The batch renderer (SPEC §6): each agent's first-person RGB image and depth map by column ray
// casting against the 2-D scene with object heights. Host+device, like the rules, so the CPU and
// CUDA backends write the same bits.
#pragma once

#include <cstddef>

#include "doors.hpp"
#include "lidar.hpp"
#include "reward.hpp"

namespace er {

constexpr float kEyeHeight = 1.5f;   // metres
constexpr float kWallHeight = 2.5f;  // walls and doors
constexpr float kCubeHeight = 3.0f;
constexpr float kAgentHeight = 2.0f;
constexpr float kRenderRange = 40.0f;  // depth is clamped here
constexpr int32_t kMaxRenderSize = 1024;

// Colours (RGB) before shading.
struct Rgb {
    float r, g, b;
};
constexpr Rgb kSkyColour = {140.0f, 190.0f, 235.0f};
constexpr Rgb kFloorColour = {176.0f, 172.0f, 160.0f};
constexpr Rgb kExitColour = {150.0f, 214.0f, 140.0f};
constexpr Rgb kButtonColour = {214.0f, 184.0f, 40.0f};
constexpr Rgb kPressedColour = {255.0f, 236.0f, 96.0f};
constexpr Rgb kWallColour = {150.0f, 150.0f, 158.0f};
constexpr Rgb kDoorColour = {196.0f, 52.0f, 52.0f};
constexpr Rgb kCubeColour = {140.0f, 92.0f, 52.0f};
constexpr Rgb kAgentColour = {52.0f, 100.0f, 220.0f};
constexpr float kSideShade = 0.85f;     // faces facing +-x, so that corners read
constexpr float kDistanceShade = 0.6f;  // colour lost at the range limit

// Upright bodies fall into three heights; of each, only the nearest hit of a column can show.
enum RenderClass : int32_t { kClassAgent = 0, kClassWall = 1, kClassCube = 2, kNumRenderClasses = 3 };
ER_HD inline float class_height(int32_t cls)
{
    constexpr float kHeight[kNumRenderClasses] = {kAgentHeight, kWallHeight, kCubeHeight};
    return kHeight[cls];
}

// What one column's ray meets: the nearest hit of each class, and the floor marks it crosses.
struct ColumnHits {
    float s[kNumRenderClasses];  // ray parameter of the hit (distance / |D|), kNoHit if none
    Rgb colour[kNumRenderClasses];
    float face[kNumRenderClasses];  // 1, or kSideShade for a face of constant x
    int32_t num_marks;
    float mark_in[kMaxExits + kMaxButtons], mark_out[kMaxExits + kMaxButtons];  // ray parameters
    Rgb mark_colour[kMaxExits + kMaxButtons];
};

// Entry and exit parameters of the ray o + s d through box b (s_in > s_out: missed); x_face is
// set when the ray enters through a face of constant x. inv = (1 / d.x, 1 / d.y).
ER_HD inline void ray_box(Vec2 o, Vec2 d, Vec2 inv, const Box& b, float& s_in, float& s_out, bool& x_face)
{
    float near_x, far_x, near_y, far_y;
    if (d.x == 0.0f) {
        const bool in = o.x >= b.min_x && o.x <= b.max_x;
        near_x = in ? -kNoHit : kNoHit;
        far_x = in ? kNoHit : -kNoHit;
    } else {
        const float t1 = (b.min_x - o.x) * inv.x, t2 = (b.max_x - o.x) * inv.x;
        near_x = min_f(t1, t2);
        far_x = max_f(t1, t2);
    }
    if (d.y == 0.0f) {
        const bool in = o.y >= b.min_y && o.y <= b.max_y;
        near_y = in ? -kNoHit : kNoHit;
        far_y = in ? kNoHit : -kNoHit;
    } else {
        const float t1 = (b.min_y - o.y) * inv.y, t2 = (b.max_y - o.y) * inv.y;
        near_y = min_f(t1, t2);
        far_y = max_f(t1, t2);
    }
    s_in = max_f(near_x, near_y);
    s_out = min_f(far_x, far_y);
    x_face = near_x > near_y;
}

ER_HD inline void keep_nearest(ColumnHits& h, int32_t cls, float s, Rgb colour, float face)
{
    if (s < h.s[cls]) {
        h.s[cls] = s;
        h.colour[cls] = colour;
        h.face[cls] = face;
    }
}

// What one frame can see: the boxes that reach into the camera's 90 degree wedge, so that each
// column tests only those (a box wholly outside cannot be met by any pixel's ray).
struct ViewSet {
    Vec2 o;
    int32_t num_boxes, num_marks, num_agents;
    Box boxes[kMaxStatics + kMaxCubes];
    Rgb box_colour[kMaxStatics + kMaxCubes];
    int8_t box_class[kMaxStatics + kMaxCubes];
    Box marks[kMaxExits + kMaxButtons];  // exit cells first, then buttons (drawn over them)
    Rgb mark_colour[kMaxExits + kMaxButtons];
    Vec2 agents[kMaxAgents];
};

// Whether box b reaches into the wedge {ahead >= |side|} of the camera at o.
ER_HD inline bool in_view(const Box& b, Vec2 o, Vec2 forward, Vec2 right)
{
    const Vec2 corners[4] = {{b.min_x, b.min_y}, {b.max_x, b.min_y}, {b.min_x, b.max_y}, {b.max_x, b.max_y}};
    bool right_of = true, left_of = true;
    for (int32_t k = 0; k < 4; ++k) {
        const Vec2 v = corners[k] - o;
        const float side = dot(v, right), ahead = dot(v, forward);
        right_of = right_of && side - ahead > 0.0f;
        left_of = left_of && side + ahead < 0.0f;
    }
    return !(right_of || left_of);
}

ER_HD inline void gather_view(ViewSet& view, const LevelData& lv, const uint8_t* door_open, const Vec2* agents,
                              int32_t A, int32_t self, const Vec2* cubes, uint32_t pressed, Vec2 forward, Vec2 right)
{
    const Vec2 o = agents[self];
    view.o = o;
    view.num_boxes = view.num_marks = view.num_agents = 0;
    for (int32_t i = 0; i < lv.num_statics; ++i) {
        if (!static_active(lv, door_open, i) || !in_view(lv.statics[i], o, forward, right)) continue;
        view.boxes[view.num_boxes] = lv.statics[i];
        view.box_colour[view.num_boxes] = lv.static_door[i] < 0 ? kWallColour : kDoorColour;
        view.box_class[view.num_boxes++] = kClassWall;
    }
    for (int32_t k = 0; k < lv.num_cubes; ++k) {
        const Box b = cube_box(cubes[k]);
        if (!in_view(b, o, forward, right)) continue;
        view.boxes[view.num_boxes] = b;
        view.box_colour[view.num_boxes] = kCubeColour;
        view.box_class[view.num_boxes++] = kClassCube;
    }
    for (int32_t e = 0; e < lv.num_exits; ++e) {
        if (!in_view(lv.exits[e], o, forward, right)) continue;
        view.marks[view.num_marks] = lv.exits[e];
        view.mark_colour[view.num_marks++] = kExitColour;
    }
    for (int32_t k = 0; k < lv.num_buttons; ++k) {
        const Vec2 p = lv.button_pos[k];
        const Box b = {p.x - kButtonHalf, p.y - kButtonHalf, p.x + kButtonHalf, p.y + kButtonHalf};
        if (!in_view(b, o, forward, right)) continue;
        view.marks[view.num_marks] = b;
        view.mark_colour[view.num_marks++] = (pressed >> k) & 1u ? kPressedColour : kButtonColour;
    }
    for (int32_t j = 0; j < A; ++j)
        if (j != self) view.agents[view.num_agents++] = agents[j];
}

// The ray o + s d of one column (dd = |d|^2) against what the frame can see.
ER_HD inline void cast_column(ColumnHits& h, const ViewSet& view, Vec2 d, float dd)
{
    for (int32_t c = 0; c < kNumRenderClasses; ++c) h.s[c] = kNoHit;
    h.num_marks = 0;
    const Vec2 o = view.o;
    const Vec2 inv = {d.x != 0.0f ? 1.0f / d.x : 0.0f, d.y != 0.0f ? 1.0f / d.y : 0.0f};
    float s_in, s_out;
    bool x_face;
    for (int32_t i = 0; i < view.num_boxes; ++i) {
        ray_box(o, d, inv, view.boxes[i], s_in, s_out, x_face);
        if (s_in <= s_out && s_out >= 0.0f)
            keep_nearest(h, view.box_class[i], max_f(s_in, 0.0f), view.box_colour[i], x_face ? kSideShade : 1.0f);
    }
    for (int32_t j = 0; j < view.num_agents; ++j) {
        // |o + s d - c|^2 = R^2: dd s^2 + 2 b s + c = 0.
        const Vec2 m = o - view.agents[j];
        const float b = dot(m, d), c = dot(m, m) - kAgentRadius * kAgentRadius;
        const float disc = b * b - dd * c;
        if (c <= 0.0f) {
            keep_nearest(h, kClassAgent, 0.0f, kAgentColour, 1.0f);
        } else if (b < 0.0f && disc >= 0.0f) {
            keep_nearest(h, kClassAgent, (-b - sqrt_f(disc)) / dd, kAgentColour, 1.0f);
        }
    }
    for (int32_t k = 0; k < view.num_marks; ++k) {
        ray_box(o, d, inv, view.marks[k], s_in, s_out, x_face);
        if (s_in <= s_out && s_out >= 0.0f) {
            h.mark_in[h.num_marks] = s_in;
            h.mark_out[h.num_marks] = s_out;
            h.mark_colour[h.num_marks++] = view.mark_colour[k];
        }
    }
}

ER_HD inline uint8_t shade_channel(float c, float shade) { return (uint8_t)(c * shade + 0.5f); }

// One frame's camera: the agent's heading and what it can see. The CUDA backend builds it once
// per frame in shared memory and renders the columns in parallel; the CPU loops over them.
struct Frame {
    Vec2 forward, right;
    ViewSet view;
};

ER_HD inline void begin_frame(Frame& f, const SimState& s, int32_t w, int32_t a)
{
    const int32_t A = s.num_agents;
    const LevelData& lv = s.level[w];
    const Vec2* agents = s.agent_pos + (size_t)w * A;
    const Vec2* cubes = s.cube_pos + (size_t)w * kMaxCubes;
    // Bit k: button k is pressed now (something stands on it), and shows brighter.
    uint32_t pressed = 0;
    for (int32_t k = 0; k < lv.num_buttons; ++k)
        if (button_pressed(lv.button_pos[k], agents, A, cubes, lv.num_cubes)) pressed |= 1u << k;
    const SinCos sc = sincos_f(s.agent_yaw[(size_t)w * A + a]);
    f.forward = {-sc.sin, sc.cos};
    f.right = {sc.cos, sc.sin};
    gather_view(f.view, lv, s.door_open + (size_t)w * kMaxDoors, agents, A, a, cubes, pressed, f.forward, f.right);
}

// Column `col` of a W x H frame into rgb [H][W][3] and depth [H][W].
ER_HD inline void render_column(const Frame& f, int32_t col, int32_t W, int32_t H, uint8_t* rgb, float* depth)
{
    const float inv_w = 1.0f / (float)W;
    // 90 degree horizontal field of view through pixel centres: u in (-1, 1).
    const float u = (2.0f * ((float)col + 0.5f) - (float)W) * inv_w;
    const Vec2 d = f.forward + f.right * u;
    const float dd = 1.0f + u * u;
    ColumnHits h;
    cast_column(h, f.view, d, dd);
    float nearest = kNoHit;
    int32_t nearest_class = 0;
    for (int32_t c = 0; c < kNumRenderClasses; ++c) {
        if (h.s[c] < nearest) {
            nearest = h.s[c];
            nearest_class = c;
        }
    }
    for (int32_t row = 0; row < H; ++row) {
        // Square pixels: v = tan of the pixel's elevation, in (-H/W, H/W).
        const float v = ((float)H - 2.0f * ((float)row + 0.5f)) * inv_w;
        const float ray_len = sqrt_f(dd + v * v);
        float hit_s = kNoHit;
        Rgb colour = kSkyColour;
        float face = 1.0f;
        bool floor = false;
        if (v < 0.0f) {
            // Looking down: the nearest body, unless the floor comes first.
            const float floor_s = kEyeHeight / -v;
            if (nearest <= floor_s) {
                hit_s = nearest;
                colour = h.colour[nearest_class];
                face = h.face[nearest_class];
            } else {
                hit_s = floor_s;
                floor = true;
            }
        } else {
            // Looking up: the nearest body still tall enough where the ray reaches it.
            for (int32_t c = 0; c < kNumRenderClasses; ++c) {
                if (h.s[c] < hit_s && kEyeHeight + h.s[c] * v <= class_height(c)) {
                    hit_s = h.s[c];
                    colour = h.colour[c];
                    face = h.face[c];
                }
            }
        }
        const size_t pixel = (size_t)row * (size_t)W + (size_t)col;
        uint8_t* out = rgb + 3 * pixel;
        if (hit_s == kNoHit) {
            depth[pixel] = kRenderRange;
            out[0] = (uint8_t)colour.r;
            out[1] = (uint8_t)colour.g;
            out[2] = (uint8_t)colour.b;
            continue;
        }
        if (floor) {
            colour = kFloorColour;
            for (int32_t m = 0; m < h.num_marks; ++m)
                if (hit_s >= h.mark_in[m] && hit_s <= h.mark_out[m]) colour = h.mark_colour[m];
        }
        const float dist = min_f(hit_s * ray_len, kRenderRange);
        const float shade = (1.0f - kDistanceShade * (dist / kRenderRange)) * face;
        depth[pixel] = dist;
        out[0] = shade_channel(colour.r, shade);
        out[1] = shade_channel(colour.g, shade);
        out[2] = shade_channel(colour.b, shade);
    }
}

// Renders agent `a` of world w into rgb [H][W][3] and depth [H][W].
ER_HD inline void render_agent(const SimState& s, int32_t w, int32_t a, uint8_t* rgb, float* depth)
{
    Frame f;
    begin_frame(f, s, w, a);
    for (int32_t col = 0; col < s.render_width; ++col)
        render_column(f, col, s.render_width, s.render_height, rgb, depth);
}

// Every agent of world w.
ER_HD inline void render_world(const SimState& s, int32_t w)
{
    const size_t frame = (size_t)s.render_height * (size_t)s.render_width;
    for (int32_t a = 0; a < s.num_agents; ++a) {
        const size_t i = (size_t)w * (size_t)s.num_agents + (size_t)a;
        render_agent(s, w, a, s.rgb_out + 3 * frame * i, s.depth_out + frame * i);
    }
}

}  // namespace er
