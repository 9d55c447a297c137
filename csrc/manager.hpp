// The simulation manager: validates a configuration, owns a backend and describes the
// exported tensors. Shared by the Python binding and the headless tool.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
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
    std::vector<int32_t> rooms;  // RoomType per room; empty: the default sequence for num_agents
    std::vector<LevelSource> levels;  // custom levels, round-robin over worlds; empty: generated
    int32_t episode_len = kDefaultEpisodeLen;
    RewardConfig reward;
    bool enable_batch_renderer = false;
    int32_t render_width = 64, render_height = 64;  // pixels, when the batch renderer is on
};

enum class DType : int32_t { Int32, Float32, Bool, UInt8, Int8, UInt32, UInt64 };

// A zero-copy view of one exported array: element strides, as DLPack and nanobind count them.
struct TensorDesc {
    void* data;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<int64_t> strides;
};

// The default room sequence (SPEC §2.1).
std::vector<int32_t> default_rooms(int32_t num_agents);

class Manager {
public:
    // Throws std::invalid_argument for a bad configuration (before allocating anything),
    // CudaUnavailable for ExecMode::CUDA without a usable GPU.
    explicit Manager(const Config& cfg);
    ~Manager();

    const Config& config() const { return cfg_; }
    int32_t obs_dim() const { return er::obs_dim(cfg_.num_agents); }
    bool closed() const { return backend_ == nullptr; }

    // `repeat` steps of every world with the same actions (reset flags apply to the first).
    // CUDA: queued on `stream` (a cudaStream_t; 0: the manager's own), not waited for;
    // synchronize() waits. CPU: done on return.
    void step(uintptr_t stream = 0, int32_t repeat = 1);
    void synchronize();
    bool on_gpu() const { return cfg_.exec_mode == ExecMode::CUDA; }
    uint64_t step_count() const { return step_count_; }  // steps since construction

    // Recording (SPEC §5.3): the header fields come from the configuration; the caller gives
    // the JSON config block, the checksum interval and the creation time.
    void start_recording(const std::string& path, const std::string& config_json, uint32_t checksum_interval,
                         uint64_t created_unix_ns);
    // Writes the final HASH and END records and closes the file; returns the steps recorded.
    uint64_t stop_recording();
    bool is_recording() const { return recorder_ != nullptr; }
    void enable_trajectory_logging(int32_t world, int32_t agent, const std::string& path);
    // Flushes and closes the log; throws Error when its last lines cannot be written.
    void disable_trajectory_logging();
    bool is_trajectory_logging() const { return trajectory_ != nullptr; }
    // Every world starts episode episodes[w] of stream seeds[w] (a replay's starting point).
    void start_episodes(const uint64_t* seeds, const uint32_t* episodes);

    // Validates num_worlds * num_agents rows of (move_amount, move_angle, rotate), int32 or
    // int64, in the manager's memory (host or its GPU), then copies them into the action tensor. Returns -1, or the flat index of the
    // first out-of-range value (nothing written). With refuse_done, also returns
    // -2 - w for the first world w frozen in DISABLED mode (nothing written).
    int64_t set_actions(const void* data, bool int64, bool refuse_done);
    // set_actions and step() in one call, without the intermediate copy: the step copies each
    // world's rows as it reaches the world. Returns -1 when it stepped, else set_actions's
    // error code (nothing written, nothing stepped).
    // With obs_copy, each world's observations are also copied there ([W * A * obs_dim]).
    int64_t step_with_actions(const void* data, bool int64, bool refuse_done, float* obs_copy = nullptr);
    // set_actions's validation alone: its return code, nothing written.
    int64_t check_actions(const void* data, bool int64, bool refuse_done) const;
    void reset_worlds(const uint8_t* mask, const uint64_t* seeds);
    void state_hashes(uint64_t* out);

    // Byte copies between an exported array (a tensor or state view's data) and the host.
    void to_host(void* dst, const void* src, size_t bytes);
    void from_host(void* dst, const void* src, size_t bytes);

    // The names of every exported tensor, and each one's description.
    static const std::vector<std::string>& tensor_names();
    TensorDesc tensor(const std::string& name) const;
    std::shared_ptr<Storage> storage() const;

    // Internal state as writable views, for tests and debugging (SimManager._state): the
    // simulation reads them, so writes change the next step.
    static const std::vector<std::string>& state_names();
    TensorDesc state_view(const std::string& name) const;

    // Frees the simulation (tensors already exported keep their memory); further use throws Error.
    void close();

    // Serialises calls: a manager stepped from two threads at once raises instead of corrupting.
    std::mutex& busy() { return busy_; }

private:
    void check_open() const;
    void step_from(StepRequest req);
    // A host copy of `count` values at `src` in simulation memory (src itself on the CPU backend).
    template <class T>
    const T* host_view(const T* src, size_t count, std::vector<T>& scratch);

    Config cfg_;
    std::unique_ptr<Backend> backend_;
    std::unique_ptr<Recorder> recorder_;
    std::unique_ptr<TrajectoryLog> trajectory_;
    std::vector<uint64_t> hashes_;  // scratch for HASH records
    std::vector<int32_t> host_reset_, host_actions_;  // host copies of the inputs for a CUDA recording
    uint64_t step_count_ = 0;
    std::mutex busy_;
};

}  // namespace er
