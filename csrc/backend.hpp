// The one interface both backends implement (CPU threads now, CUDA later). Backends are the
// only code that knows about threads, streams or device memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "sim/lidar.hpp"
#include "sim/state.hpp"

namespace er {

// One allocation holding every array of SimState; shared by the backend and every exported
// tensor, so a tensor kept after its manager is gone stays readable.
struct Storage {
    void* base = nullptr;
    size_t bytes = 0;
    int32_t device_type = 1;  // DLPack: 1 CPU, 2 CUDA
    int32_t device_id = 0;
    void (*release)(void*) = nullptr;
    ~Storage()
    {
        if (base && release) release(base);
    }
};

// Bytes needed for the arrays of `cfg` (its configuration fields set, pointers not).
size_t state_bytes(const SimState& cfg);

// Points every array of `cfg` into `base` (zeroed, at least state_bytes(cfg) bytes, 64-byte aligned).
SimState bind_state(const SimState& cfg, void* base);

// What a step takes from and hands to the caller besides the tensors (host memory):
// - actions (optional, already validated): rows of (move_amount, move_angle, rotate), one per
//   agent, int32 or int64. Each world's rows are copied into the action tensor as that world is
//   stepped, so the tensor afterwards holds what the step used, as if written there first.
// - obs_copy (optional): [W * A * obs_dim] floats that receive each world's observations right
//   after its step, from the thread that just wrote them (a copy=True env's fresh array).
struct StepRequest {
    const void* actions = nullptr;
    bool int64 = false;
    float* obs_copy = nullptr;
};

class Backend {
public:
    virtual ~Backend() = default;
    // The simulation's arrays (device pointers for CUDA).
    virtual const SimState& state() const = 0;
    virtual std::shared_ptr<Storage> storage() const = 0;
    // One step of every world, with what `req` gives and asks for.
    virtual void step(const StepRequest& req) = 0;
    // Starts a new episode in every world with mask[w] != 0, at once; seeds (optional) give
    // the masked worlds a new stream. Host arrays of num_worlds entries.
    virtual void reset_worlds(const uint8_t* mask, const uint64_t* seeds) = 0;
    // Starts every world's episode e_w of stream s_w (host arrays), as a replay's first record needs.
    virtual void start_episodes(const uint64_t* seeds, const uint32_t* episodes) = 0;
    // Every world's state hash into out (host, num_worlds entries).
    virtual void state_hashes(uint64_t* out) = 0;
};

// `cfg` holds the configuration fields of SimState and `fixed_levels` its num_fixed_levels
// custom levels; every world starts episode 0 of stream rand_seed + w.
std::unique_ptr<Backend> make_cpu_backend(const SimState& cfg, const LevelData* fixed_levels, uint64_t rand_seed,
                                          int32_t num_threads);

}  // namespace er
