// The one interface both backends implement (CPU threads, CUDA). Backends are the only code
// that knows about threads, streams or device memory; the manager above them never touches
// simulation memory directly, only through these calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

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
    std::function<void(void*)> release;
    // CUDA: makes `stream` (a cudaStream_t) wait until the simulation's last write is done.
    // A consumer on another stream calls it before reading (the tensors' __dlpack__ does).
    std::function<void(uintptr_t stream)> wait_for_writes;
    ~Storage()
    {
        if (base && release) release(base);
    }
};

// Bytes needed for the arrays of `cfg` (its configuration fields set, pointers not).
size_t state_bytes(const SimState& cfg);

// Points every array of `cfg` into `base` (zeroed, at least state_bytes(cfg) bytes, 64-byte aligned).
SimState bind_state(const SimState& cfg, void* base);

// What a step takes from and hands to the caller besides the tensors, in the backend's memory
// (host for CPU, the manager's GPU for CUDA):
// - actions (optional, already validated): rows of (move_amount, move_angle, rotate), one per
//   agent, int32 or int64; with `flat`, one Discrete index per agent instead (decode_flat_action).
//   They are copied (decoded) into the action tensor, so the tensor afterwards holds what the
//   step used, as if written there first; a host backend reads int32 rows straight from here,
//   so a thread writing the tensor meanwhile cannot change the step. With action_stride (host
//   backends, int32 rows only: the CUDA backend refuses it, int64 and flat are ignored), world
//   w's rows start w * action_stride int32s after the first world's: a rollout's plan
//   [B, T, A, 3] read in place, one step's slice at a time.
// - reset_flags (optional, host backends): [W] flags the step reads instead of the reset
//   tensor (the caller took them from it); the step clears those it consumes.
// - obs_copy (optional): [W * A * obs_dim] floats that receive the observations after the step.
// - obs_into, reward_copy, done_copy (optional, host backends: the CUDA backend refuses them):
//   the observations go to obs_into instead of the observation tensor, which keeps what it
//   showed until write_observations() (so not while output chains, which digest the tensor,
//   are on); the rewards and done flags (as bytes, 0 or 1) are also
//   copied to [W * A] reward_copy and done_copy. Each world's by the thread that stepped it,
//   while its lines are in that core's cache: a rollout's outputs written once, in place.
// - stream (CUDA, optional): the cudaStream_t to run on instead of the manager's own.
// - repeat: steps to run, exactly as that many calls with the same action tensor (reset flags
//   apply to the first); the CUDA backend loops on the device, in one launch.
// - observe: which of those steps write the observations (every other output is written by
//   every step). Observations are no part of the state: a step whose observations nobody reads
//   (inside step(nstep=k)) may skip them, and the last step of the call writes them from the
//   state, the same bits. EveryStep where each step's outputs are read or digested (recording,
//   trajectory log, replay); a backend writes them anyway for obs_copy, obs_into and while its
//   output chains are on.
enum class Observe : int32_t {
    EveryStep = 0,
    LastStep = 1,  // only the request's last step
    None = 2,      // no step: the caller steps on, or calls write_observations() if it stops
};

// The Discrete action (gymnasium's Discrete(160), action_mode="discrete"): one index per agent,
// the C-order ravel of (move_amount, move_angle, rotate) over their choices (4, 8, 5), as
// numpy.ravel_multi_index(row, (4, 8, 5)): index = (move_amount * 8 + move_angle) * 5 + rotate.
constexpr int32_t kNumFlatActions = kNumMoveAmounts * kNumMoveAngles * kNumRotates;
ER_HD inline void decode_flat_action(int64_t index, int32_t* row)
{
    row[0] = (int32_t)(index / (kNumMoveAngles * kNumRotates));
    row[1] = (int32_t)(index / kNumRotates % kNumMoveAngles);
    row[2] = (int32_t)(index % kNumRotates);
}

// The first out-of-range value of rows of (move_amount, move_angle, rotate), or -1.
template <class T>
int64_t first_bad_action(const T* a, int64_t rows)
{
    // Blocks of 16 rows against a 48-entry pattern of the three limits: a branch-free loop
    // the compiler vectorises (a stride-3 loop would not). Search only when something is off.
    constexpr int64_t kRowsPerBlock = 16, kBlock = 3 * kRowsPerBlock;
    static const struct Pattern {
        uint64_t limit[kBlock];
        Pattern()
        {
            for (int64_t j = 0; j < kBlock; ++j)
                limit[j] = j % 3 == 0 ? kNumMoveAmounts : (j % 3 == 1 ? kNumMoveAngles : kNumRotates);
        }
    } pattern;
    const int64_t n = 3 * rows;
    bool any_bad = false;
    int64_t i = 0;
    for (; i + kBlock <= n; i += kBlock) {
        uint64_t bad = 0;
        for (int64_t j = 0; j < kBlock; ++j) bad |= (uint64_t)((uint64_t)a[i + j] >= pattern.limit[j]);
        any_bad |= bad != 0;
    }
    for (int64_t j = 0; i + j < n; ++j) any_bad |= (uint64_t)a[i + j] >= pattern.limit[j];
    if (!any_bad) return -1;
    for (int64_t k = 0; k < n; ++k)
        if (a[k] < 0 || (uint64_t)a[k] >= pattern.limit[k % 3]) return k;
    return -1;
}

struct StepRequest {
    const void* actions = nullptr;
    size_t action_stride = 0;  // 0: the worlds' rows follow each other
    bool int64 = false;
    bool flat = false;  // actions are Discrete indices (one per agent), not rows of 3
    int32_t* reset_flags = nullptr;
    float* obs_copy = nullptr;
    float* obs_into = nullptr;
    float* reward_copy = nullptr;
    uint8_t* done_copy = nullptr;
    uintptr_t stream = 0;
    int32_t repeat = 1;
    Observe observe = Observe::EveryStep;
};

// restore_worlds' mask bits: the world is restored; its level is loaded afresh; its
// observations are written afresh.
constexpr uint8_t kRestoreWorld = 1, kRestoreLevel = 2, kRestoreObservations = 4;

enum class OutputChain : int32_t { Recording = 0, Replay = 1 };
constexpr int32_t kNumOutputChains = 2;

class Backend {
public:
    virtual ~Backend() = default;
    // The simulation's arrays (device pointers for CUDA).
    virtual const SimState& state() const = 0;
    virtual std::shared_ptr<Storage> storage() const = 0;
    // True when state() points into host memory the manager may read and write directly.
    virtual bool host_memory() const = 0;
    // One step of every world, with what `req` gives and asks for. CUDA: queued, not waited for.
    virtual void step(const StepRequest& req) = 0;
    // Writes every world's observations from its state (after steps that skipped them).
    virtual void write_observations() = 0;
    // Waits until every queued step is done (and reports a failure of one).
    virtual void synchronize() = 0;
    // Starts a new episode in every world with mask[w] != 0, at once; seeds (optional) give
    // the masked worlds a new stream. Host arrays of num_worlds entries.
    virtual void reset_worlds(const uint8_t* mask, const uint64_t* seeds) = 0;
    // Starts every world's episode e_w of stream s_w (host arrays), as a replay's first record
    // needs: a starting point, which extends no output chain.
    virtual void start_episodes(const uint64_t* seeds, const uint32_t* episodes) = 0;
    // Shows every world with mask[w] != 0 as its state now describes it (restore_world), after
    // a state was written into it: its outputs and images, its level when the mask has
    // kRestoreLevel (else the world already plays it), its observations when it has
    // kRestoreObservations (else they were written with the state). Extends no output chain.
    virtual void restore_worlds(const uint8_t* mask) = 0;
    // Runs fn(ctx, begin, end) over [0, n) in ranges on the backend's host threads (inline
    // where it has none): for host-side work over worlds, such as state records.
    virtual void parallel_for(int64_t n, void (*fn)(void* ctx, int64_t begin, int64_t end), void* ctx) = 0;
    // Every world's state hash into out (host, num_worlds entries).
    virtual void state_hashes(uint64_t* out) = 0;
    // Output chains (sim/hash.hpp): one set for a recording, one for a replay (a manager may
    // re-record what it replays). While a set is on, every step and every reset extends the
    // touched worlds' chains; turning it on starts every chain from the world's current outputs.
    virtual void chain_outputs(OutputChain chain, bool on) = 0;
    // Every world's chain into out (host, num_worlds entries); for a chain that is off, the
    // digest of its current outputs.
    virtual void output_digests(OutputChain chain, uint64_t* out) = 0;
    // Sets every world's chain (host, num_worlds entries) of a chain that is on: a replay seeking
    // back to a checkpoint takes up the chain it had there.
    virtual void set_output_chains(OutputChain chain, const uint64_t* values) = 0;
    // Validates num_worlds * num_agents action rows (backend memory; with `flat`, Discrete
    // indices): -1 when every value is in range, else the flat index of the first bad one;
    // with refuse_done, -2 - w for the first world w frozen in DISABLED mode.
    virtual int64_t check_actions(const void* actions, bool int64, bool flat, bool refuse_done) = 0;
    // Copies validated action rows (backend memory; `flat`: decodes Discrete indices) into the
    // action tensor.
    virtual void set_actions(const void* actions, bool int64, bool flat) = 0;
    // Byte copies between simulation memory and the host, ordered after every queued step.
    virtual void to_host(void* dst, const void* src, size_t bytes) = 0;
    virtual void from_host(void* dst, const void* src, size_t bytes) = 0;
};

// `cfg` holds the configuration fields of SimState and `fixed_levels` its num_fixed_levels
// custom levels; every world starts episode 0 of stream rand_seed + w.
std::unique_ptr<Backend> make_cpu_backend(const SimState& cfg, const LevelData* fixed_levels, uint64_t rand_seed,
                                          int32_t num_threads);

// The same on CUDA device gpu_id. Throws CudaUnavailable when this build has no CUDA backend.
std::unique_ptr<Backend> make_cuda_backend(const SimState& cfg, const LevelData* fixed_levels, uint64_t rand_seed,
                                           int32_t gpu_id);

// Whether this build has the CUDA backend, and the CUDA devices it can use (0 without the
// backend, a GPU or a driver).
bool cuda_built();
int32_t cuda_device_count();
// Why no GPU is usable ("" when one is): the CUDA runtime's own error, e.g. a driver older
// than the runtime, or that this build has no CUDA backend.
std::string cuda_unavailable_reason();

}  // namespace er
