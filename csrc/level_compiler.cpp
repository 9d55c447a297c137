#include "level_compiler.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "sim/level_gen.hpp"

namespace er {

namespace {

// A maximal run of one character class in a row, then grown over identical runs below it.
struct Run {
    int32_t row, first, last;  // columns [first, last]
    int32_t bottom;            // last row of the merged box
    bool merged;               // consumed by a box above it
};

std::string quote(char ch)
{
    const unsigned char u = (unsigned char)ch;
    if (u >= 0x20 && u < 0x7f) return std::string("'") + ch + "'";
    char buf[16];
    std::snprintf(buf, sizeof(buf), "byte 0x%02x", u);
    return buf;
}

bool is_door(char ch) { return ch >= '1' && ch <= '8'; }
bool is_button(char ch) { return ch >= 'a' && ch <= 'h'; }
bool is_known(char ch)
{
    return ch == '#' || ch == '.' || ch == ' ' || ch == 'S' || ch == 'C' || ch == 'E' || is_door(ch) || is_button(ch);
}

class Compiler {
public:
    Compiler(const LevelSource& src, int32_t num_agents) : src_(src), agents_(num_agents)
    {
        prefix_ = src.name.empty() ? std::string("level: ") : "level '" + src.name + "': ";
    }

    CompiledLevel run()
    {
        parse_rows();
        check_cell_size();
        LevelData& lv = out_.data;
        lv = LevelData{};
        out_.rows = rows_;
        out_.cols = cols_;
        out_.max_x = (float)cols_ * c_;
        out_.max_y = (float)rows_ * c_;
        lv.min_x = 0.0f;
        lv.min_y = 0.0f;
        lv.norm_length = out_.max_x > out_.max_y ? out_.max_x : out_.max_y;

        add_outer_walls();
        for (const Run& r : merge_runs([](char ch) { return ch == '#'; })) {
            if (lv.num_statics >= kMaxWalls)
                fail_at(r.row, r.first,
                        "the walls merge into more than " + std::to_string(kMaxWalls - 4) + " boxes (at most " +
                            std::to_string(kMaxWalls) + " walls, 4 of them the outer walls); simplify the walls");
            add_static(lv, box_of(r), -1);
        }
        out_.num_walls = lv.num_statics;
        add_doors();
        add_buttons();
        add_cubes();
        add_spawns();
        add_exits();
        check_momentary();
        warn_unreachable_exit();
        return out_;
    }

private:
    [[noreturn]] void fail(const std::string& what) const { throw std::invalid_argument(prefix_ + what); }
    [[noreturn]] void fail_at(int32_t row, int32_t col, const std::string& what) const
    {
        fail("row " + std::to_string(row) + ", column " + std::to_string(col) + ": " + what);
    }

    char at(int32_t row, int32_t col) const { return grid_[(size_t)row][(size_t)col]; }

    void parse_rows()
    {
        const std::string& text = src_.ascii;
        if (text.size() > (size_t)kMaxLevelRows * (kMaxLevelCols + 2))
            fail("the text has " + std::to_string(text.size()) + " characters, more than a " +
                 std::to_string(kMaxLevelRows) + " x " + std::to_string(kMaxLevelCols) + " level can have");
        size_t start = 0;
        while (start <= text.size()) {
            size_t end = text.find('\n', start);
            if (end == std::string::npos) end = text.size();
            std::string line = text.substr(start, end - start);
            if (!line.empty() && line.back() == '\r') line.pop_back();
            grid_.push_back(line);
            start = end + 1;
        }
        // Blank lines before the first row and after the last are layout, not rows.
        while (!grid_.empty() && grid_.back().empty()) grid_.pop_back();
        size_t first = 0;
        while (first < grid_.size() && grid_[first].empty()) ++first;
        grid_.erase(grid_.begin(), grid_.begin() + (std::ptrdiff_t)first);
        if (grid_.empty()) fail("the level has no rows");
        rows_ = (int32_t)grid_.size();
        cols_ = (int32_t)grid_[0].size();
        if (rows_ > kMaxLevelRows) fail_at(kMaxLevelRows, 0, "more than " + std::to_string(kMaxLevelRows) + " rows");
        if (cols_ > kMaxLevelCols) fail_at(0, kMaxLevelCols, "more than " + std::to_string(kMaxLevelCols) + " columns");
        for (int32_t r = 0; r < rows_; ++r) {
            const int32_t n = (int32_t)grid_[(size_t)r].size();
            if (n != cols_)
                fail_at(r, n < cols_ ? n : cols_,
                        "ragged rows: this row has " + std::to_string(n) + " characters, row 0 has " +
                            std::to_string(cols_) + " (pad with '.')");
            for (int32_t col = 0; col < cols_; ++col)
                if (!is_known(at(r, col)))
                    fail_at(r, col,
                            "unknown character " + quote(at(r, col)) +
                                " (expected # . space S C E, a door 1-8 or a button a-h)");
        }
    }

    void check_cell_size()
    {
        c_ = src_.cell_size;
        if (!(c_ >= 2.0f && c_ <= 1000.0f))
            fail("cell_size must be between 2 (an agent's diameter) and 1000 metres, got " + std::to_string(c_));
    }

    // Cell (r, col) covers x in [col c, (col + 1) c], y in [(H - 1 - r) c, (H - r) c].
    float x0(int32_t col) const { return (float)col * c_; }
    float x1(int32_t col) const { return (float)(col + 1) * c_; }
    float y0(int32_t row) const { return (float)(rows_ - 1 - row) * c_; }
    float y1(int32_t row) const { return (float)(rows_ - row) * c_; }
    Vec2 centre(int32_t row, int32_t col) const { return {(x0(col) + x1(col)) * 0.5f, (y0(row) + y1(row)) * 0.5f}; }
    Box box_of(const Run& r) const { return make_box(x0(r.first), y0(r.bottom), x1(r.last), y1(r.row)); }

    // Outside the grid is wall: one cell thick on every side.
    void add_outer_walls()
    {
        LevelData& lv = out_.data;
        const float w = out_.max_x, h = out_.max_y;
        add_static(lv, make_box(-c_, -c_, 0.0f, h + c_), -1);
        add_static(lv, make_box(w, -c_, w + c_, h + c_), -1);
        add_static(lv, make_box(-c_, -c_, w + c_, 0.0f), -1);
        add_static(lv, make_box(-c_, h, w + c_, h + c_), -1);
    }

    // Maximal runs of cells matching `pred` in each row, then identical runs in consecutive
    // rows merged into one box (greedy, top to bottom). Returns the boxes' runs in row-major order.
    template <class Pred>
    std::vector<Run> merge_runs(Pred pred) const
    {
        std::vector<std::vector<Run>> by_row((size_t)rows_);
        for (int32_t r = 0; r < rows_; ++r) {
            for (int32_t col = 0; col < cols_;) {
                if (!pred(at(r, col))) {
                    ++col;
                    continue;
                }
                int32_t last = col;
                while (last + 1 < cols_ && pred(at(r, last + 1))) ++last;
                by_row[(size_t)r].push_back({r, col, last, r, false});
                col = last + 1;
            }
        }
        std::vector<Run> boxes;
        for (int32_t r = 0; r < rows_; ++r) {
            for (Run& run : by_row[(size_t)r]) {
                if (run.merged) continue;
                for (int32_t below = r + 1; below < rows_; ++below) {
                    Run* same = nullptr;
                    for (Run& other : by_row[(size_t)below])
                        if (!other.merged && other.first == run.first && other.last == run.last) same = &other;
                    if (!same) break;
                    same->merged = true;
                    run.bottom = below;
                }
                boxes.push_back(run);
            }
        }
        return boxes;
    }

    // A door is a horizontal run of one digit within a row; rooms are the regions between door
    // rows, in order of y, each showing the first door of the row that closes it.
    void add_doors()
    {
        LevelData& lv = out_.data;
        std::vector<int32_t> door_rows;  // top to bottom
        for (int32_t r = 0; r < rows_; ++r) {
            bool row_has_door = false;
            for (int32_t col = 0; col < cols_;) {
                const char ch = at(r, col);
                if (!is_door(ch)) {
                    ++col;
                    continue;
                }
                int32_t last = col;
                while (last + 1 < cols_ && at(r, last + 1) == ch) ++last;
                if (lv.num_doors >= kMaxDoors)
                    fail_at(
                        r, col,
                        "more than " + std::to_string(kMaxDoors) + " doors (a door is a run of one digit in a row)");
                const int32_t d = lv.num_doors++;
                const Box b = make_box(x0(col), y0(r), x1(last), y1(r));
                lv.door_centre[d] = {(b.min_x + b.max_x) * 0.5f, (b.min_y + b.max_y) * 0.5f};
                lv.door_group[d] = (int8_t)(ch - '1');
                door_cell_[d] = {r, col};
                add_static(lv, b, d);
                if (!row_has_door) door_rows.push_back(r);
                row_has_door = true;
                col = last + 1;
            }
        }
        if ((int32_t)door_rows.size() > kMaxRooms)
            fail_at(door_rows[(size_t)kMaxRooms], 0,
                    "doors in more than " + std::to_string(kMaxRooms) +
                        " rows (rooms are the regions between door rows; at most " + std::to_string(kMaxRooms) + ")");
        const int32_t n = (int32_t)door_rows.size();
        lv.num_bands = n;
        lv.band_y[0] = 0.0f;
        for (int32_t k = 0; k < n; ++k) {
            const int32_t row = door_rows[(size_t)(n - 1 - k)];  // k-th door row from the bottom
            lv.band_y[k + 1] = y1(row);
            int32_t first = -1;
            for (int32_t d = 0; d < lv.num_doors && first < 0; ++d)
                if (door_cell_[d].row == row) first = d;
            lv.band_door[k] = (int8_t)first;
        }
    }

    void add_buttons()
    {
        LevelData& lv = out_.data;
        uint32_t door_groups = 0, button_groups = 0;
        for (int32_t d = 0; d < lv.num_doors; ++d) door_groups |= 1u << lv.door_group[d];
        for (int32_t r = 0; r < rows_; ++r) {
            for (int32_t col = 0; col < cols_; ++col) {
                const char ch = at(r, col);
                if (!is_button(ch)) continue;
                const int32_t group = ch - 'a';
                if (!(door_groups & (1u << group)))
                    fail_at(r, col,
                            "button " + quote(ch) + " opens door group " + std::to_string(group + 1) +
                                ", but the level has no door '" + std::to_string(group + 1) + "'");
                if (lv.num_buttons >= kMaxButtons)
                    fail_at(r, col, "more than " + std::to_string(kMaxButtons) + " buttons");
                const Vec2 p = centre(r, col);
                add_button(lv, p.x, p.y, group);
                button_groups |= 1u << group;
            }
        }
        for (int32_t d = 0; d < lv.num_doors; ++d) {
            const int32_t group = lv.door_group[d];
            if (!(button_groups & (1u << group)))
                fail_at(door_cell_[d].row, door_cell_[d].col,
                        "door group " + std::to_string(group + 1) + " has no button (add a '" +
                            std::string(1, (char)('a' + group)) + "')");
        }
    }

    // A cube (3 m square) is wider than its cell: its 8 neighbours must be free of walls,
    // spawns, doors and other cubes, and it may not touch the grid's edge.
    void add_cubes()
    {
        LevelData& lv = out_.data;
        for (int32_t r = 0; r < rows_; ++r) {
            for (int32_t col = 0; col < cols_; ++col) {
                if (at(r, col) != 'C') continue;
                for (int32_t dr = -1; dr <= 1; ++dr) {
                    for (int32_t dc = -1; dc <= 1; ++dc) {
                        if (dr == 0 && dc == 0) continue;
                        const int32_t nr = r + dr, nc = col + dc;
                        const std::string rule =
                            "a cube 'C' needs its 8 neighbours free of walls, spawns, doors and cubes";
                        if (nr < 0 || nr >= rows_ || nc < 0 || nc >= cols_)
                            fail_at(r, col, rule + "; it touches the edge of the grid (outside is wall)");
                        const char n = at(nr, nc);
                        if (n == '#' || n == 'S' || n == 'C' || is_door(n))
                            fail_at(r, col,
                                    rule + "; row " + std::to_string(nr) + ", column " + std::to_string(nc) + " is " +
                                        quote(n));
                    }
                }
                if (lv.num_cubes >= kMaxCubes) fail_at(r, col, "more than " + std::to_string(kMaxCubes) + " cubes");
                const Vec2 p = centre(r, col);
                add_cube(lv, p.x, p.y);
            }
        }
    }

    // Agent i spawns at the centre of the i-th 'S' in row-major order, facing +y.
    void add_spawns()
    {
        LevelData& lv = out_.data;
        for (int32_t r = 0; r < rows_; ++r) {
            for (int32_t col = 0; col < cols_; ++col) {
                if (at(r, col) != 'S') continue;
                if (out_.num_spawns < kMaxAgents) {
                    lv.spawn[out_.num_spawns] = centre(r, col);
                    lv.spawn_yaw[out_.num_spawns] = 0.0f;
                    spawn_cell_[out_.num_spawns] = {r, col};
                }
                ++out_.num_spawns;
            }
        }
        if (out_.num_spawns < agents_)
            fail("needs one 'S' per agent: " + std::to_string(agents_) + " agent(s), " +
                 std::to_string(out_.num_spawns) + " 'S' cell(s)");
    }

    // An agent escapes when its centre is in an 'E' cell; progress is capped at the lowest
    // E-cell centre, and the exit zone's door slot points at the E cells' centroid.
    void add_exits()
    {
        LevelData& lv = out_.data;
        float sum_x = 0.0f, sum_y = 0.0f, lowest = 0.0f;
        int32_t count = 0;
        for (int32_t r = 0; r < rows_; ++r) {
            for (int32_t col = 0; col < cols_; ++col) {
                if (at(r, col) != 'E') continue;
                const Vec2 p = centre(r, col);
                sum_x += p.x;
                sum_y += p.y;
                lowest = count == 0 || p.y < lowest ? p.y : lowest;
                ++count;
            }
        }
        if (count == 0) fail("has no exit cell 'E'");
        for (const Run& r : merge_runs([](char ch) { return ch == 'E'; })) {
            if (lv.num_exits >= kMaxExits)
                fail_at(r.row, r.first, "the exit cells merge into more than " + std::to_string(kMaxExits) + " boxes");
            lv.exits[lv.num_exits++] = box_of(r);
        }
        lv.exit_y = lowest;
        lv.exit_target = {sum_x / (float)count, sum_y / (float)count};
    }

    void check_momentary()
    {
        LevelData& lv = out_.data;
        uint32_t door_groups = 0;
        for (int32_t d = 0; d < lv.num_doors; ++d) door_groups |= 1u << lv.door_group[d];
        lv.momentary_groups = 0;
        for (int32_t g : src_.momentary) {
            if (g < 1 || g > 8) fail("momentary lists door group " + std::to_string(g) + "; groups are 1 to 8");
            if (!(door_groups & (1u << (g - 1))))
                fail("momentary lists door group " + std::to_string(g) + ", but the level has no door '" +
                     std::to_string(g) + "'");
            lv.momentary_groups |= (uint8_t)(1u << (g - 1));
        }
    }

    // Allowed, but almost surely a mistake: walls cut every path from a spawn to the exit
    // (doors and cubes count as passable).
    void warn_unreachable_exit()
    {
        const int32_t used = agents_ < out_.num_spawns ? agents_ : out_.num_spawns;
        for (int32_t a = 0; a < used && a < kMaxAgents; ++a) {
            std::vector<uint8_t> seen((size_t)rows_ * (size_t)cols_, 0);
            std::vector<int32_t> queue = {spawn_cell_[a].row * cols_ + spawn_cell_[a].col};
            seen[(size_t)queue[0]] = 1;
            bool found = false;
            for (size_t head = 0; head < queue.size() && !found; ++head) {
                const int32_t r = queue[head] / cols_, col = queue[head] % cols_;
                found = at(r, col) == 'E';
                const int32_t dr[4] = {-1, 1, 0, 0}, dc[4] = {0, 0, -1, 1};
                for (int32_t k = 0; k < 4; ++k) {
                    const int32_t nr = r + dr[k], nc = col + dc[k];
                    if (nr < 0 || nr >= rows_ || nc < 0 || nc >= cols_ || at(nr, nc) == '#') continue;
                    const size_t i = (size_t)nr * (size_t)cols_ + (size_t)nc;
                    if (!seen[i]) {
                        seen[i] = 1;
                        queue.push_back((int32_t)i);
                    }
                }
            }
            if (!found)
                out_.warnings.push_back(prefix_ + "row " + std::to_string(spawn_cell_[a].row) + ", column " +
                                        std::to_string(spawn_cell_[a].col) +
                                        ": no exit cell 'E' is reachable from agent " + std::to_string(a) +
                                        "'s spawn (walls block every path)");
        }
    }

    struct CellPos {
        int32_t row = 0, col = 0;
    };

    const LevelSource& src_;
    int32_t agents_;
    std::string prefix_;
    std::vector<std::string> grid_;
    int32_t rows_ = 0, cols_ = 0;
    float c_ = 2.0f;
    CellPos door_cell_[kMaxDoors];
    CellPos spawn_cell_[kMaxAgents];
    CompiledLevel out_;
};

}  // namespace

CompiledLevel compile_level(const LevelSource& src, int32_t num_agents)
{
    if (num_agents < 1 || num_agents > kMaxAgents)
        throw std::invalid_argument("num_agents must be between 1 and " + std::to_string(kMaxAgents) + ", got " +
                                    std::to_string(num_agents));
    return Compiler(src, num_agents).run();
}

}  // namespace er
