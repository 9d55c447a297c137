// The simulation manager: validates a configuration, owns a backend and describes the
// exported tensors. Shared by the Python binding and the headless tool.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backend.hpp"
#include "errors.hpp"
#include "level_compiler.hpp"
#include "recorder.hpp"

namespace er {

enum class ExecMode : int32_t { CPU = 0, CUDA = 1 };

struct Config {
    ExecMode exec_mode = ExecMode::CPU;
    int32_t gpu_id = 0;
    int64_t num_worlds = 1024;
    uint64_t rand_seed = 42;
    int32_t num_agents = 1;
    int32_t autoreset_mode = kSameStep;
    int32_t num_threads = 1;
    std::optional<std::vector<int32_t>> rooms;  // RoomType per room; none: the default sequence for num_agents
    std::vector<LevelSource> levels;            // custom levels, round-robin over worlds; empty: generated
    int32_t episode_len = kDefaultEpisodeLen;
    RewardConfig reward;
    bool enable_batch_renderer = false;
    int32_t render_width = 64, render_height = 64;  // pixels, when the batch renderer is on
};

enum class DType : int32_t { Int32, Float32, Bool, UInt8, Int8, UInt32, UInt64 };

size_t dtype_size(DType t);

// A zero-copy view of one exported array: element strides, as DLPack and nanobind count them.
struct TensorDesc {
    void* data;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<int64_t> strides;
};

// One field of a state record (SimManager.get_state): its name, dtype, shape and byte offset.
struct StateField {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    size_t offset;
    size_t bytes;
};
// The records' layout version: a record of another version is refused by its header.
constexpr uint32_t kStateVersion = 2;      // 2: the observations and their observation_key
constexpr size_t kStateHeaderFields = 9;   // state_version ... levels_digest
constexpr int32_t kMaxGeneratedRooms = 4;  // a generated level has 1 to 4 rooms

enum class ArrayKind : int32_t {
    Tensor = 0,  // SPEC §3's tensors: inputs and outputs
    Image = 1,   // the batch renderer's, present with enable_batch_renderer only
    State = 2,   // the internal state the rules read and write (world and level arrays)
};

// One entry of the catalogue of exported arrays: its view is made from the simulation's state.
struct ArraySpec {
    const char* name;
    ArrayKind kind;
    TensorDesc (*view)(const SimState& s);
};

// The room types' names, in RoomType order, and the default room sequence (SPEC §2.1).
extern const char* const kRoomNames[kNumRoomTypes];
std::vector<int32_t> default_rooms(int32_t num_agents);

// Throws std::invalid_argument naming the first field of `cfg` a Manager would refuse.
// Allocates nothing and compiles no level.
void validate_config(const Config& cfg);

class Manager {
public:
    // Throws std::invalid_argument for a bad configuration (before allocating anything),
    // CudaUnavailable for ExecMode::CUDA without a usable GPU, Error when a worker thread
    // cannot be started.
    explicit Manager(const Config& cfg);
    ~Manager();
    Manager(const Manager&) = delete;
    Manager& operator=(const Manager&) = delete;

    const Config& config() const { return cfg_; }
    int32_t obs_dim() const { return er::obs_dim(cfg_.num_agents); }
    bool closed() const { return backend_ == nullptr; }
    bool on_gpu() const { return cfg_.exec_mode == ExecMode::CUDA; }
    // R of SPEC §3's observation bounds (the walled area's diagonal over L; with custom levels,
    // the largest of theirs), and what compiling the custom levels warned about.
    float observation_radius() const { return observation_radius_; }
    const std::vector<std::string>& level_warnings() const { return level_warnings_; }
    // Steps since construction (readable while another thread steps).
    uint64_t step_count() const { return step_count_.load(std::memory_order_relaxed); }

    // One call at a time: a manager used from two threads at once raises Error instead of
    // corrupting its state (SPEC §8). Every call below claims the manager for its duration; a
    // thread holding a Claim may make further calls (they join it), so that several calls
    // become one operation that no other thread can interleave with.
    class Claim {
    public:
        explicit Claim(Manager& m, const char* busy_message = nullptr);
        Claim(Claim&&) = default;

    private:
        std::unique_lock<std::recursive_mutex> lock_;
    };
    Claim claim() { return Claim(*this); }

    // Polled between steps, at most every 10 ms: returns false to stop after a whole step.
    using Poll = std::function<bool()>;
    // nstep steps of every world with the same actions (reset flags apply to the first).
    // CUDA: queued on `stream` (a cudaStream_t; 0: the manager's own) and not waited for; with
    // stream 0 the call waits. CPU: done on return. Returns the steps taken (fewer than
    // nstep when `poll` stopped it).
    int64_t step(int64_t nstep = 1, uintptr_t stream = 0, const Poll& poll = nullptr);
    void synchronize();

    // Recording (SPEC §5.3), in one call no other thread can interleave with: with a seed
    // every world is reseeded first (world w: *seed + w); without one, worlds all at the start
    // of an episode are recorded from there, otherwise every world is reset first. The header
    // fields come from the configuration; config_json (a JSON object) is the config block,
    // to which the worlds' starting seeds, episodes and how the recording started are added.
    // Returns that start: "seed", "fresh" or "reset". A path that cannot be opened changes
    // nothing.
    std::string start_recording(const std::string& path, const std::string& config_json, int64_t checksum_interval,
                                uint64_t created_unix_ns, const uint64_t* seed);
    // Writes the final HASH and END records and closes the file; returns the steps recorded.
    // After a write error ended the recording (raised once, by the call that hit it), returns
    // the steps the file kept instead.
    uint64_t stop_recording();
    bool is_recording() const { return recorder_ != nullptr; }
    void enable_trajectory_logging(int32_t world, int32_t agent, const std::string& path);
    // Flushes and closes the log; throws Error when its last lines cannot be written.
    void disable_trajectory_logging();
    bool is_trajectory_logging() const { return trajectory_ != nullptr; }
    // Every world starts episode episodes[w] of stream seeds[w] (a replay's starting point).
    void start_episodes(const uint64_t* seeds, const uint32_t* episodes);

    // Validates num_worlds * num_agents rows of (move_amount, move_angle, rotate), int32 or
    // int64, in the manager's memory (host or its GPU), then copies them into the action
    // tensor. With `flat`, one Discrete index per agent instead, decoded into its row
    // (decode_flat_action in backend.hpp). Returns -1, or the flat index of the first
    // out-of-range value (nothing written). With refuse_done, also returns -2 - w for the first
    // world w frozen in DISABLED mode.
    int64_t set_actions(const void* data, bool int64, bool flat, bool refuse_done);
    // set_actions and one step in one call, without the intermediate copy: the step copies each
    // world's rows as it reaches the world. Returns -1 when it stepped, else set_actions's
    // error code (nothing written, nothing stepped). With obs_copy, each world's observations
    // are also copied there ([W * A * obs_dim]). Waits for the step on CUDA.
    int64_t step_with_actions(const void* data, bool int64, bool flat, bool refuse_done, float* obs_copy = nullptr);
    // set_actions's validation alone: its return code, nothing written.
    int64_t check_actions(const void* data, bool int64, bool flat, bool refuse_done);
    void reset_worlds(const uint8_t* mask, const uint64_t* seeds);
    void state_hashes(uint64_t* out);
    // Each world's output chain (sim/hash.hpp) while the recording or the replay keeps them,
    // else the digest of its current outputs.
    void output_digests(OutputChain chain, uint64_t* out);
    // A replay keeps output chains from its first record on, as its recording did; seeking, it
    // jumps to a checkpoint's state (set_state_for_replay) and takes up the chains it had there.
    void chain_outputs_for_replay(bool on);
    void set_replay_state(const uint8_t* records, const uint64_t* chains);

    // Byte copies between an exported array (a tensor or state view's data) and the host.
    void to_host(void* dst, const void* src, size_t bytes);
    void from_host(void* dst, const void* src, size_t bytes);
    // Overwrites the whole exported array `name` (contiguous, `bytes` long) from the host. After
    // a write into a state array the observations are written again from the state (as
    // set_state shows a state at once): they, and the records get_state takes, agree with it.
    void write_array(const std::string& name, const void* src, size_t bytes);

    // Every exported array (the catalogue) and one of them by name: the tensors of SPEC §3,
    // the renderer's images (with enable_batch_renderer only) and the internal state, as
    // writable views for debugging (the simulation reads them: writes change the next step).
    static const std::vector<ArraySpec>& arrays();
    TensorDesc array(const std::string& name) const;
    std::shared_ptr<Storage> storage() const;

    // State records (SimManager.get_state / set_state): one fixed-size record per world, a
    // header naming the configuration, then everything that decides the world's future and what
    // its outputs showed, observations included (under observation_key, a digest of the state
    // fields they come from). set_state writes records into worlds and shows them at once
    // (levels, outputs, images; the observations as kept, or traced afresh when the key no longer
    // matches); a record of another configuration throws std::invalid_argument naming the field,
    // as does a world index out of range.
    std::vector<StateField> state_layout() const;
    // Each world's pressed buttons as a bit mask (bit k: button k), by the rule of SPEC §2.4.
    void pressed_buttons(uint16_t* out);
    size_t state_record_bytes() const;
    void get_state(const int32_t* worlds, size_t n, uint8_t* out);
    void set_state(const int32_t* worlds, size_t n, const uint8_t* in);

    // A rollout (escape_room_env.rollout, after MuJoCo's): every world starts from a state
    // record and steps `steps` times with its own actions; the outputs of every step go to the
    // caller's arrays, step-major so that each step's slice is contiguous (the caller transposes
    // views). On a host backend, num_worlds = B; states [B, record]; actions int32
    // [B, steps, A, 3] as the caller holds them (checked first: a value out of range returns -1,
    // nothing stepped); observation (optional) float
    // [steps, B, A, D]; reward float [steps, B, A]; done bool [steps, B, A]; states_out
    // [B, record] after the last step, or [steps, B, record] after every step. `poll` as in
    // step(); returns the steps done (or -1).
    struct RolloutIO {
        const uint8_t* states;
        const int32_t* actions;
        int64_t steps;
        float* observation;
        float* reward;
        uint8_t* done;
        uint8_t* states_out;
        bool every_state;
    };
    int64_t rollout(const RolloutIO& io, const Poll& poll = nullptr);

    // Frees the simulation (tensors already exported keep their memory); further use throws
    // Error. Finishes a recording in progress.
    void close();

private:
    void check_open() const;
    std::vector<uint8_t> state_header() const;
    struct StateArrays;
    StateArrays state_arrays(bool download);
    bool actions_in_range(const int32_t* actions, size_t steps);
    void check_worlds(const int32_t* worlds, size_t n) const;
    void close_files();
    void step_once(StepRequest req);
    void take_inputs(StepRequest& req);
    void checkpoint(uint64_t step);
    // Runs a recorder write; a failure ends the recording (the file keeps its complete records).
    template <class F>
    void write_recording(F&& write);
    static void after_fork_in_child(void* self);
    static void at_exit(void* self);

    Config cfg_;
    std::unique_ptr<Backend> backend_;
    std::unique_ptr<Recorder> recorder_;
    std::unique_ptr<TrajectoryLog> trajectory_;
    int64_t failed_recording_steps_ = -1;  // steps kept by a recording a write error ended; -1: none
    float observation_radius_ = 0.0f;
    std::vector<std::string> level_warnings_;
    std::vector<uint64_t> hashes_, digests_;            // scratch for HASH records
    std::vector<int32_t> input_reset_, input_actions_;  // a recorded or logged step's inputs, on the host
    std::atomic<uint64_t> step_count_{0};
    bool replaying_ = false;  // output chains kept for a replay
    std::recursive_mutex busy_;
    // Set in the child of a fork(): why this manager cannot be used there ("" when it can).
    std::string unusable_after_fork_;
};

}  // namespace er
