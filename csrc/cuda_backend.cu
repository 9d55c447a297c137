// The CUDA backend: one thread per world runs the same rule functions as the CPU backend
// (csrc/sim/, host+device), so both write the same bits. A step is a CUDA graph (the step
// kernel, then the batch renderer's kernel when it is on) built once and launched per step on
// the manager's stream or the caller's. No managed memory, no global state: any number of
// managers may live in one process and be destroyed and re-created.
#include <cuda_runtime.h>

#include <climits>
#include <stdexcept>
#include <string>

#include "backend.hpp"
#include "errors.hpp"
#include "lifecycle.hpp"
#include "sim/render.hpp"
#include "sim/step.hpp"

namespace er {

namespace {

constexpr int32_t kWorldsPerBlock = 128;
constexpr int32_t kColumnsPerBlock = 64;  // render: one block per frame, one thread per column

void check(cudaError_t err, const char* what)
{
    if (err == cudaSuccess) return;
    cudaGetLastError();  // clear a non-sticky error so that later calls start clean
    throw Error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(err));
}

// Makes `device` current for the scope (a caller's framework may have chosen another).
class DeviceScope {
public:
    explicit DeviceScope(int32_t device)
    {
        check(cudaGetDevice(&previous_), "cudaGetDevice");
        if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
    }
    ~DeviceScope() { cudaSetDevice(previous_); }
    DeviceScope(const DeviceScope&) = delete;
    DeviceScope& operator=(const DeviceScope&) = delete;

private:
    int previous_ = 0;
};

// Runs fn with `device` current, for destructors: never throws.
template <class F>
void on_device_quietly(int32_t device, F&& fn) noexcept
{
    int previous = 0;
    if (cudaGetDevice(&previous) != cudaSuccess || cudaSetDevice(device) != cudaSuccess) {
        cudaGetLastError();
        return;
    }
    fn();
    cudaSetDevice(previous);
}

unsigned blocks_for(int64_t n, int32_t per_block) { return (unsigned)((n + per_block - 1) / per_block); }

// -- kernels: each calls the rule functions the CPU backend calls, for one world --------------

__global__ void begin_kernel(SimState s, LidarTable table, const uint64_t* seeds, const uint32_t* episodes,
                             uint64_t rand_seed)
{
    const int32_t w = (int32_t)(blockIdx.x * blockDim.x + threadIdx.x);
    if (w >= s.num_worlds) return;
    if (seeds) {
        s.seed[w] = seeds[w];
        s.episode[w] = episodes[w];
    } else {
        s.seed[w] = rand_seed + (uint64_t)w;
        s.level_index[w] = s.num_fixed_levels > 0 ? w % s.num_fixed_levels : -1;
    }
    begin_episode(s, table, w);
}

__global__ void restore_kernel(SimState s, LidarTable table, const uint8_t* mask)
{
    const int32_t w = (int32_t)(blockIdx.x * blockDim.x + threadIdx.x);
    if (w < s.num_worlds && mask[w])
        restore_world(s, table, w, mask[w] & kRestoreLevel, mask[w] & kRestoreObservations);
}

// `repeat` steps of one world: nstep loops on the device, the world's state staying in cache;
// `observe` (an Observe) says which of them write the observations. At most 128 registers a
// thread (4 blocks of 128 per SM): .ci/cuda_resources checks it, with no spills.
__global__ void __launch_bounds__(kWorldsPerBlock, 4)
    step_kernel(SimState s, LidarTable table, int32_t repeat, int32_t observe)
{
    const int32_t w = (int32_t)(blockIdx.x * blockDim.x + threadIdx.x);
    if (w >= s.num_worlds) return;
    const bool every = observe == (int32_t)Observe::EveryStep, last = observe == (int32_t)Observe::LastStep;
    for (int32_t i = 0; i < repeat; ++i) step_world(s, table, w, every || (last && i == repeat - 1));
}

__global__ void observe_kernel(SimState s, LidarTable table)
{
    const int32_t w = (int32_t)(blockIdx.x * blockDim.x + threadIdx.x);
    if (w < s.num_worlds) write_observations(s.obs_out, s, table, w);
}

__global__ void reset_kernel(SimState s, LidarTable table, const uint8_t* mask, const uint64_t* seeds)
{
    const int32_t w = (int32_t)(blockIdx.x * blockDim.x + threadIdx.x);
    if (w >= s.num_worlds || !mask[w]) return;
    reset_world(s, table, w, seeds != nullptr, seeds ? seeds[w] : 0);
}

// One block per frame (world w, agent a): the first thread gathers what the camera sees into
// shared memory, then each thread renders columns.
__global__ void render_kernel(SimState s)
{
    __shared__ Frame frame;
    const int64_t i = blockIdx.x;  // w * A + a
    const int32_t w = (int32_t)(i / s.num_agents), a = (int32_t)(i % s.num_agents);
    if (threadIdx.x == 0) begin_frame(frame, s, w, a);
    __syncthreads();
    const size_t pixels = (size_t)s.render_height * (size_t)s.render_width;
    uint8_t* rgb = s.rgb_out + 3 * pixels * (size_t)i;
    float* depth = s.depth_out + pixels * (size_t)i;
    for (int32_t col = (int32_t)threadIdx.x; col < s.render_width; col += (int32_t)blockDim.x)
        render_column(frame, col, s.render_width, s.render_height, rgb, depth);
}

__global__ void hash_kernel(SimState s, uint64_t* out)
{
    const int32_t w = (int32_t)(blockIdx.x * blockDim.x + threadIdx.x);
    if (w < s.num_worlds) out[w] = world_hash(s, w);
}

__global__ void digest_kernel(SimState s, uint64_t* out)
{
    const int32_t w = (int32_t)(blockIdx.x * blockDim.x + threadIdx.x);
    if (w < s.num_worlds) out[w] = output_digest(s, w);
}

// Extends the output chains of the worlds in mask (all without one).
__global__ void chain_kernel(SimState s, uint64_t* chains, const uint8_t* mask)
{
    const int32_t w = (int32_t)(blockIdx.x * blockDim.x + threadIdx.x);
    if (w < s.num_worlds && (!mask || mask[w])) chains[w] = extend_output_chain(chains[w], s, w);
}

__global__ void widen_actions_kernel(int32_t* dst, const int64_t* src, int64_t n)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = (int32_t)src[i];
}

// Discrete indices (decode_flat_action) into rows of the action tensor.
template <class T>
__global__ void decode_actions_kernel(int32_t* dst, const T* src, int64_t rows)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < rows) decode_flat_action((int64_t)src[i], dst + i * kActionDims);
}

// result[0]: the first flat index of an out-of-range action value (of n values: rows of 3, or
// with `flat` one Discrete index per row); result[1]: the first world frozen in DISABLED mode
// (when asked). Both start at ULLONG_MAX: none.
template <class T>
__global__ void check_actions_kernel(const T* a, int64_t n, bool flat, const uint8_t* status, int32_t num_worlds,
                                     bool check_frozen, unsigned long long* result)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const int64_t limit =
            flat ? kNumFlatActions : (i % 3 == 0 ? kNumMoveAmounts : (i % 3 == 1 ? kNumMoveAngles : kNumRotates));
        if (a[i] < 0 || (int64_t)a[i] >= limit) atomicMin(&result[0], (unsigned long long)i);
    }
    if (check_frozen && i < num_worlds && status[i] == kStatusFrozen) atomicMin(&result[1], (unsigned long long)i);
}

// Device memory the backend needs besides the state: host arrays uploaded for resets and
// replays, hashes on their way down, and the result of an action check.
struct Scratch {
    uint8_t* mask;
    uint64_t* seeds;
    uint32_t* episodes;
    uint64_t* hashes;
    uint64_t* chains[kNumOutputChains];  // output chains, while on
    unsigned long long* check;           // [2]
};

// The event the last queued work recorded; shared with the storage, so that a tensor's
// __dlpack__ can make its consumer's stream wait for it even after the manager is gone.
struct WriteEvent {
    cudaEvent_t event = nullptr;
    int32_t device = 0;
    ~WriteEvent()
    {
        if (event) on_device_quietly(device, [this] { cudaEventDestroy(event); });
    }
};

class CudaBackend final : public Backend {
public:
    CudaBackend(const SimState& cfg, const LevelData* fixed_levels, uint64_t rand_seed, int32_t gpu_id)
        : device_(gpu_id)
    {
        try {
            init(cfg, fixed_levels, rand_seed);
        } catch (...) {
            release();  // a destructor does not run after a throwing constructor
            throw;
        }
    }

    ~CudaBackend() override { release(); }

    const SimState& state() const override { return state_; }
    std::shared_ptr<Storage> storage() const override { return storage_; }
    bool host_memory() const override { return false; }

    void step(const StepRequest& req) override
    {
        DeviceScope scope(device_);
        if (req.action_stride || req.obs_into || req.reward_copy || req.done_copy)
            throw Error("action_stride, obs_into, reward_copy and done_copy are for host backends (a rollout's)");
        const cudaStream_t stream = enter(req.stream);
        if (req.actions) copy_actions(req.actions, req.int64, req.flat, stream);
        // Chains digest every step's outputs, and obs_copy copies them: those steps observe.
        const Observe observe = req.obs_copy || chained_[0] || chained_[1] ? Observe::EveryStep : req.observe;
        if (req.repeat != repeat_ || observe != observe_) set_launch(req.repeat, observe);
        check(cudaGraphLaunch(graph_, stream), "cudaGraphLaunch");
        launch_chains(stream, nullptr);  // the manager steps one at a time while chains are on
        if (req.obs_copy)
            check(cudaMemcpyAsync(req.obs_copy, state_.obs_out,
                                  sizeof(float) * (size_t)state_.num_worlds * state_.num_agents * state_.obs_dim,
                                  cudaMemcpyDeviceToDevice, stream),
                  "cudaMemcpyAsync (observations)");
        finish(stream);
    }

    void write_observations() override
    {
        DeviceScope scope(device_);
        const cudaStream_t stream = enter(0);
        observe_kernel<<<blocks_for(state_.num_worlds, kWorldsPerBlock), kWorldsPerBlock, 0, stream>>>(state_, table_);
        check(cudaGetLastError(), "observe_kernel launch");
        finish(stream);
    }

    void synchronize() override
    {
        DeviceScope scope(device_);
        check(cudaEventSynchronize(written_->event), "a queued step");
    }

    void reset_worlds(const uint8_t* mask, const uint64_t* seeds) override
    {
        DeviceScope scope(device_);
        const cudaStream_t stream = enter(0);
        const int32_t W = state_.num_worlds;
        upload(scratch_.mask, mask, (size_t)W);
        if (seeds) upload(scratch_.seeds, seeds, (size_t)W * 8);
        reset_kernel<<<blocks_for(W, kWorldsPerBlock), kWorldsPerBlock, 0, stream>>>(state_, table_, scratch_.mask,
                                                                                     seeds ? scratch_.seeds : nullptr);
        check(cudaGetLastError(), "reset_kernel launch");
        launch_chains(stream, scratch_.mask);
        launch_render(stream);
        finish(stream);
        synchronize();
    }

    void start_episodes(const uint64_t* seeds, const uint32_t* episodes) override
    {
        DeviceScope scope(device_);
        const cudaStream_t stream = enter(0);
        const int32_t W = state_.num_worlds;
        upload(scratch_.seeds, seeds, (size_t)W * 8);
        upload(scratch_.episodes, episodes, (size_t)W * 4);
        begin_kernel<<<blocks_for(W, kWorldsPerBlock), kWorldsPerBlock, 0, stream>>>(state_, table_, scratch_.seeds,
                                                                                     scratch_.episodes, 0);
        check(cudaGetLastError(), "begin_kernel launch");  // a starting point: no chain is extended
        launch_render(stream);
        finish(stream);
        synchronize();
    }

    void restore_worlds(const uint8_t* mask) override
    {
        DeviceScope scope(device_);
        const cudaStream_t stream = enter(0);
        const int32_t W = state_.num_worlds;
        upload(scratch_.mask, mask, (size_t)W);
        restore_kernel<<<blocks_for(W, kWorldsPerBlock), kWorldsPerBlock, 0, stream>>>(state_, table_, scratch_.mask);
        check(cudaGetLastError(), "restore_kernel launch");
        launch_render(stream);
        finish(stream);
        synchronize();
    }

    void parallel_for(int64_t n, void (*fn)(void* ctx, int64_t begin, int64_t end), void* ctx) override
    {
        fn(ctx, 0, n);
    }

    void chain_outputs(OutputChain chain, bool on) override
    {
        const int32_t c = (int32_t)chain;
        chained_[c] = on;
        if (!on) return;
        DeviceScope scope(device_);
        const cudaStream_t stream = enter(0);
        const int32_t W = state_.num_worlds;
        digest_kernel<<<blocks_for(W, kWorldsPerBlock), kWorldsPerBlock, 0, stream>>>(state_, scratch_.chains[c]);
        check(cudaGetLastError(), "digest_kernel launch");
        finish(stream);
        synchronize();
    }

    void state_hashes(uint64_t* out) override
    {
        DeviceScope scope(device_);
        const cudaStream_t stream = enter(0);
        const int32_t W = state_.num_worlds;
        hash_kernel<<<blocks_for(W, kWorldsPerBlock), kWorldsPerBlock, 0, stream>>>(state_, scratch_.hashes);
        check(cudaGetLastError(), "hash_kernel launch");
        check(cudaMemcpyAsync(out, scratch_.hashes, (size_t)W * 8, cudaMemcpyDeviceToHost, stream),
              "cudaMemcpyAsync (hashes)");
        finish(stream);
        synchronize();
    }

    void set_output_chains(OutputChain chain, const uint64_t* values) override
    {
        if (!chained_[(int32_t)chain]) return;
        DeviceScope scope(device_);
        const cudaStream_t stream = enter(0);
        upload(scratch_.chains[(int32_t)chain], values, (size_t)state_.num_worlds * 8);
        finish(stream);
        synchronize();
    }

    void output_digests(OutputChain chain, uint64_t* out) override
    {
        DeviceScope scope(device_);
        const cudaStream_t stream = enter(0);
        const int32_t W = state_.num_worlds, c = (int32_t)chain;
        if (!chained_[c]) {
            digest_kernel<<<blocks_for(W, kWorldsPerBlock), kWorldsPerBlock, 0, stream>>>(state_, scratch_.hashes);
            check(cudaGetLastError(), "digest_kernel launch");
        }
        check(cudaMemcpyAsync(out, chained_[c] ? scratch_.chains[c] : scratch_.hashes, (size_t)W * 8,
                              cudaMemcpyDeviceToHost, stream),
              "cudaMemcpyAsync (digests)");
        finish(stream);
        synchronize();
    }

    int64_t check_actions(const void* actions, bool int64, bool flat, bool refuse_done) override
    {
        DeviceScope scope(device_);
        const cudaStream_t stream = enter(0);
        const int64_t n = (int64_t)state_.num_worlds * state_.num_agents * (flat ? 1 : kActionDims);
        const bool frozen = refuse_done && state_.autoreset_mode == kDisabled;
        const int64_t threads = n > state_.num_worlds ? n : state_.num_worlds;
        check(cudaMemsetAsync(scratch_.check, 0xff, 16, stream), "cudaMemsetAsync");
        const unsigned blocks = blocks_for(threads, 256);
        if (int64)
            check_actions_kernel<<<blocks, 256, 0, stream>>>(static_cast<const int64_t*>(actions), n, flat,
                                                             state_.status, state_.num_worlds, frozen, scratch_.check);
        else
            check_actions_kernel<<<blocks, 256, 0, stream>>>(static_cast<const int32_t*>(actions), n, flat,
                                                             state_.status, state_.num_worlds, frozen, scratch_.check);
        check(cudaGetLastError(), "check_actions_kernel launch");
        unsigned long long result[2];
        check(cudaMemcpyAsync(result, scratch_.check, 16, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync (check)");
        finish(stream);
        synchronize();
        if (result[0] != ULLONG_MAX) return (int64_t)result[0];
        if (result[1] != ULLONG_MAX) return -2 - (int64_t)result[1];
        return -1;
    }

    void set_actions(const void* actions, bool int64, bool flat) override
    {
        DeviceScope scope(device_);
        const cudaStream_t stream = enter(0);
        copy_actions(actions, int64, flat, stream);
        finish(stream);
        synchronize();  // the caller may free or overwrite `actions` on return
    }

    void to_host(void* dst, const void* src, size_t bytes) override
    {
        DeviceScope scope(device_);
        const cudaStream_t stream = enter(0);
        check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync (to host)");
        finish(stream);
        synchronize();
    }

    void from_host(void* dst, const void* src, size_t bytes) override
    {
        DeviceScope scope(device_);
        const cudaStream_t stream = enter(0);
        upload(dst, src, bytes);
        finish(stream);
        synchronize();
    }

private:
    // Allocates the state and scratch, starts every world, builds the step graph.
    void init(const SimState& cfg, const LevelData* fixed_levels, uint64_t rand_seed)
    {
        DeviceScope scope(device_);
        const size_t bytes = state_bytes(cfg);
        const int32_t W = cfg.num_worlds;
        const size_t scratch_bytes = (size_t)W * (1 + 8 + 4 + 8 + 8 * kNumOutputChains) + 64 * 7;
        size_t free_bytes = 0, total_bytes = 0;
        check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
        if ((double)(bytes + scratch_bytes) > 0.9 * (double)free_bytes)
            throw std::invalid_argument("num_worlds=" + std::to_string(W) + " needs " +
                                        std::to_string((bytes + scratch_bytes) >> 20) + " MiB of GPU memory, but GPU " +
                                        std::to_string(device_) + " has " + std::to_string(free_bytes >> 20) +
                                        " MiB free; use fewer worlds");
        check(cudaStreamCreate(&stream_), "cudaStreamCreate");  // ordered with the legacy default stream
        written_ = std::make_shared<WriteEvent>();
        written_->device = device_;
        check(cudaEventCreateWithFlags(&written_->event, cudaEventDisableTiming), "cudaEventCreate");

        void* base = nullptr;
        check(cudaMalloc(&base, bytes), "cudaMalloc (simulation state)");
        storage_ = std::make_shared<Storage>();
        storage_->base = base;
        storage_->bytes = bytes;
        storage_->device_type = 2;
        storage_->device_id = device_;
        const int32_t device = device_;
        const uint64_t generation = fork_generation();
        storage_->release = [device, generation](void* p) {
            // CUDA does not survive fork(): a child frees nothing of the parent's device memory.
            if (fork_generation() == generation) on_device_quietly(device, [p] { cudaFree(p); });
        };
        std::shared_ptr<WriteEvent> written = written_;
        storage_->wait_for_writes = [written](uintptr_t consumer) {
            DeviceScope scope(written->device);
            check(cudaStreamWaitEvent(reinterpret_cast<cudaStream_t>(consumer), written->event, 0),
                  "cudaStreamWaitEvent");
        };
        check(cudaMemsetAsync(base, 0, bytes, stream_), "cudaMemsetAsync");
        state_ = bind_state(cfg, base);
        table_ = make_lidar_table();

        char* scratch = nullptr;
        check(cudaMalloc(reinterpret_cast<void**>(&scratch), scratch_bytes), "cudaMalloc (scratch)");
        scratch_base_ = scratch;
        auto carve = [&](size_t n) {
            char* p = scratch;
            scratch += (n + 63) / 64 * 64;
            return p;
        };
        scratch_.mask = reinterpret_cast<uint8_t*>(carve((size_t)W));
        scratch_.seeds = reinterpret_cast<uint64_t*>(carve((size_t)W * 8));
        scratch_.episodes = reinterpret_cast<uint32_t*>(carve((size_t)W * 4));
        scratch_.hashes = reinterpret_cast<uint64_t*>(carve((size_t)W * 8));
        for (uint64_t*& chains : scratch_.chains) chains = reinterpret_cast<uint64_t*>(carve((size_t)W * 8));
        scratch_.check = reinterpret_cast<unsigned long long*>(carve(16));

        if (state_.num_fixed_levels > 0)
            check(cudaMemcpyAsync(state_.fixed_levels, fixed_levels, sizeof(LevelData) * state_.num_fixed_levels,
                                  cudaMemcpyHostToDevice, stream_),
                  "cudaMemcpyAsync (levels)");
        begin_kernel<<<blocks_for(W, kWorldsPerBlock), kWorldsPerBlock, 0, stream_>>>(state_, table_, nullptr, nullptr,
                                                                                      rand_seed);
        check(cudaGetLastError(), "begin_kernel launch");
        launch_render(stream_);
        build_graph();
        finish(stream_);
        synchronize();
    }

    // Frees what init() made, after the queued work. The state itself is freed with the last
    // tensor that shares storage_.
    void release() noexcept
    {
        on_device_quietly(device_, [this] {
            if (written_ && written_->event) cudaEventSynchronize(written_->event);
            if (stream_) cudaStreamSynchronize(stream_);
            if (graph_) cudaGraphExecDestroy(graph_);
            if (graph_template_) cudaGraphDestroy(graph_template_);
            if (scratch_base_) cudaFree(scratch_base_);
            if (stream_) cudaStreamDestroy(stream_);
        });
        graph_ = nullptr;
        graph_template_ = nullptr;
        scratch_base_ = nullptr;
        stream_ = nullptr;
    }

    // The stream a call runs on (the caller's, or the manager's own), made to wait for the
    // work queued before on another stream.
    cudaStream_t enter(uintptr_t requested)
    {
        const cudaStream_t stream = requested ? reinterpret_cast<cudaStream_t>(requested) : stream_;
        if (stream != last_stream_) check(cudaStreamWaitEvent(stream, written_->event, 0), "cudaStreamWaitEvent");
        return stream;
    }

    // Marks the end of a call's work on `stream`: later work and __dlpack__ consumers wait for it.
    void finish(cudaStream_t stream)
    {
        check(cudaEventRecord(written_->event, stream), "cudaEventRecord");
        last_stream_ = stream;
    }

    // A host-to-device copy on the manager's stream; returns when the host array may be reused.
    void upload(void* dst, const void* src, size_t bytes)
    {
        check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync (to device)");
        check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    }

    // The step kernel's loop count and observed steps: an update of the instantiated graph,
    // which later launches use (launches already queued keep theirs).
    void set_launch(int32_t repeat, Observe observe)
    {
        int32_t mode = (int32_t)observe;
        void* args[] = {&state_, &table_, &repeat, &mode};
        cudaKernelNodeParams params = step_params(args);
        check(cudaGraphExecKernelNodeSetParams(graph_, step_node_, &params), "cudaGraphExecKernelNodeSetParams");
        repeat_ = repeat;
        observe_ = observe;
    }

    cudaKernelNodeParams step_params(void** args) const
    {
        cudaKernelNodeParams p{};
        p.func = reinterpret_cast<void*>(&step_kernel);
        p.gridDim = dim3(blocks_for(state_.num_worlds, kWorldsPerBlock));
        p.blockDim = dim3(kWorldsPerBlock);
        p.kernelParams = args;
        return p;
    }

    void copy_actions(const void* actions, bool int64, bool flat, cudaStream_t stream)
    {
        const int64_t rows = (int64_t)state_.num_worlds * state_.num_agents, n = rows * kActionDims;
        if (flat) {
            if (int64)
                decode_actions_kernel<<<blocks_for(rows, 256), 256, 0, stream>>>(
                    state_.action_in, static_cast<const int64_t*>(actions), rows);
            else
                decode_actions_kernel<<<blocks_for(rows, 256), 256, 0, stream>>>(
                    state_.action_in, static_cast<const int32_t*>(actions), rows);
            check(cudaGetLastError(), "decode_actions_kernel launch");
        } else if (int64) {
            widen_actions_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(state_.action_in,
                                                                         static_cast<const int64_t*>(actions), n);
            check(cudaGetLastError(), "widen_actions_kernel launch");
        } else if (actions != state_.action_in) {
            check(cudaMemcpyAsync(state_.action_in, actions, (size_t)n * sizeof(int32_t), cudaMemcpyDeviceToDevice,
                                  stream),
                  "cudaMemcpyAsync (actions)");
        }
    }

    // Extends the output chains that are on, for the worlds in mask (all without one).
    void launch_chains(cudaStream_t stream, const uint8_t* mask)
    {
        const int32_t W = state_.num_worlds;
        for (int32_t c = 0; c < kNumOutputChains; ++c) {
            if (!chained_[c]) continue;
            chain_kernel<<<blocks_for(W, kWorldsPerBlock), kWorldsPerBlock, 0, stream>>>(state_, scratch_.chains[c],
                                                                                         mask);
            check(cudaGetLastError(), "chain_kernel launch");
        }
    }

    void launch_render(cudaStream_t stream)
    {
        if (state_.render_width == 0) return;
        const int64_t frames = (int64_t)state_.num_worlds * state_.num_agents;
        render_kernel<<<(unsigned)frames, kColumnsPerBlock, 0, stream>>>(state_);
        check(cudaGetLastError(), "render_kernel launch");
    }

    // The step as a graph: the step kernel, then the renderer's kernel when it is on. Built
    // from explicit kernel nodes (no stream capture), instantiated once, launched every step.
    void build_graph()
    {
        check(cudaGraphCreate(&graph_template_, 0), "cudaGraphCreate");
        int32_t repeat = repeat_, mode = (int32_t)observe_;
        void* step_args[] = {&state_, &table_, &repeat, &mode};
        const cudaKernelNodeParams step = step_params(step_args);
        check(cudaGraphAddKernelNode(&step_node_, graph_template_, nullptr, 0, &step), "cudaGraphAddKernelNode (step)");
        if (state_.render_width > 0) {
            void* render_args[] = {&state_};
            cudaKernelNodeParams render{};
            render.func = reinterpret_cast<void*>(&render_kernel);
            render.gridDim = dim3((unsigned)((int64_t)state_.num_worlds * state_.num_agents));
            render.blockDim = dim3(kColumnsPerBlock);
            render.kernelParams = render_args;
            cudaGraphNode_t render_node = nullptr;
            check(cudaGraphAddKernelNode(&render_node, graph_template_, &step_node_, 1, &render),
                  "cudaGraphAddKernelNode (render)");
        }
        check(cudaGraphInstantiate(&graph_, graph_template_, 0), "cudaGraphInstantiate");
    }

    int32_t device_;
    cudaStream_t stream_ = nullptr;
    cudaStream_t last_stream_ = nullptr;
    std::shared_ptr<WriteEvent> written_;
    std::shared_ptr<Storage> storage_;
    SimState state_{};
    LidarTable table_{};
    char* scratch_base_ = nullptr;
    Scratch scratch_{};
    cudaGraph_t graph_template_ = nullptr;  // kept: its step node names the node to update
    cudaGraphNode_t step_node_ = nullptr;
    cudaGraphExec_t graph_ = nullptr;
    int32_t repeat_ = 1;
    Observe observe_ = Observe::EveryStep;
    bool chained_[kNumOutputChains] = {false, false};
};

}  // namespace

bool cuda_built() { return true; }

int32_t cuda_device_count()
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();  // clear the error so later calls start clean
        return 0;
    }
    return count;
}

std::string cuda_unavailable_reason()
{
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        cudaGetLastError();
        int driver = 0, runtime = 0;
        cudaDriverGetVersion(&driver);
        cudaRuntimeGetVersion(&runtime);
        const std::string what = std::string("cudaGetDeviceCount failed with ") + cudaGetErrorName(err) + " (" +
                                 cudaGetErrorString(err) + "); ";
        if (driver == 0)
            return what + "no NVIDIA driver is installed (this build's CUDA runtime is " + std::to_string(runtime) +
                   ")";
        return what + "driver supports CUDA " + std::to_string(driver) + ", this build's runtime is " +
               std::to_string(runtime);
    }
    if (count == 0) return "the CUDA runtime found no GPU";
    return "";
}

std::unique_ptr<Backend> make_cuda_backend(const SimState& cfg, const LevelData* fixed_levels, uint64_t rand_seed,
                                           int32_t gpu_id)
{
    return std::make_unique<CudaBackend>(cfg, fixed_levels, rand_seed, gpu_id);
}

}  // namespace er
