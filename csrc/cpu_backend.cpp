// The CPU backend: worlds split into contiguous ranges over a persistent thread pool. Each
// world's result depends only on its own state, so any thread count gives the same bits.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sys/mman.h>
#include <vector>

#include "backend.hpp"
#include "errors.hpp"
#include "sim/render.hpp"
#include "sim/step.hpp"
#include "thread_pool.hpp"

namespace er {

namespace {

// Small batches run on the caller alone: waking a thread costs more than stepping a few worlds.
constexpr int32_t kMinWorldsPerChunk = 16;
// Blocks a thread's range is taken in (see parallel_worlds), at least kMinWorldsPerChunk worlds each.
constexpr int32_t kBlocksPerThread = 16;

// A world's level is ~2 KB of which a step reads a dozen scattered cache lines; fetching the
// lines of a world a few ahead hides most of the memory latency.
constexpr int32_t kPrefetchAhead = 2;

constexpr size_t kHugePage = size_t(2) << 20;

// The first out-of-range Discrete index (decode_flat_action), or -1.
template <class T>
int64_t first_bad_flat_action(const T* a, int64_t rows)
{
    bool any_bad = false;  // a branch-free pass the compiler vectorises; search only when needed
    for (int64_t i = 0; i < rows; ++i) any_bad |= (uint64_t)a[i] >= (uint64_t)kNumFlatActions;
    if (!any_bad) return -1;
    for (int64_t i = 0; i < rows; ++i)
        if ((uint64_t)a[i] >= (uint64_t)kNumFlatActions) return i;
    return -1;
}

inline void prefetch_level(const LevelData* lv)
{
    const char* p = reinterpret_cast<const char*>(lv);
    for (size_t off = 0; off < 5 * 64; off += 64) __builtin_prefetch(p + off);
    __builtin_prefetch(p + offsetof(LevelData, static_door));
    __builtin_prefetch(p + offsetof(LevelData, door_centre));
    __builtin_prefetch(p + offsetof(LevelData, button_pos));
    __builtin_prefetch(p + offsetof(LevelData, band_y));
    __builtin_prefetch(p + offsetof(LevelData, exits));
}

class CpuBackend final : public Backend {
public:
    CpuBackend(const SimState& cfg, const LevelData* fixed_levels, uint64_t rand_seed, int32_t num_threads)
        : pool_(num_threads)
    {
        const size_t bytes = state_bytes(cfg);
        // Large states on transparent huge pages where the system offers them on request: a
        // step touches a dozen lines of each world's ~2 KB level, and with 4 KB pages thousands
        // of worlds miss the TLB more often than the caches.
        const size_t align = bytes >= kHugePage ? kHugePage : 64;
        void* base = std::aligned_alloc(align, (bytes + align - 1) / align * align);
        if (!base) throw std::bad_alloc();
#if defined(MADV_HUGEPAGE)
        if (align == kHugePage) madvise(base, (bytes + align - 1) / align * align, MADV_HUGEPAGE);  // advice only
#endif
        std::memset(base, 0, bytes);
        storage_ = std::make_shared<Storage>();
        storage_->base = base;
        storage_->bytes = bytes;
        storage_->release = [](void* p) { std::free(p); };
        state_ = bind_state(cfg, base);
        table_ = make_lidar_table();
        for (int32_t i = 0; i < state_.num_fixed_levels; ++i) state_.fixed_levels[i] = fixed_levels[i];
        for (int32_t w = 0; w < state_.num_worlds; ++w) {
            state_.seed[w] = rand_seed + (uint64_t)w;
            state_.level_index[w] = state_.num_fixed_levels > 0 ? w % state_.num_fixed_levels : -1;
        }
        parallel_worlds([](CpuBackend& b, int32_t w) {
            begin_episode(b.state_, b.table_, w);
            b.render(w);
        });
    }

    const SimState& state() const override { return state_; }
    std::shared_ptr<Storage> storage() const override { return storage_; }
    bool host_memory() const override { return true; }
    void synchronize() override {}  // every call finishes before it returns

    void step(const StepRequest& req) override
    {
        // A world's actions are copied just before it reads them, and its observations just
        // after it wrote them, by the thread that steps it: each line is fetched once, instead
        // of being written (or read) by the caller and fetched again across cores.
        req_ = req;
        inputs_ = state_;  // the arrays the rules read, with the inputs the request supplies
        if (req.reset_flags) inputs_.reset_in = req.reset_flags;
        if (req.actions && !req.int64 && !req.flat && !req.action_stride)
            inputs_.action_in = static_cast<int32_t*>(const_cast<void*>(req.actions));
        if (req.obs_into) {
            if (chained_[0] || chained_[1]) throw Error("obs_into while output chains are on: they digest the tensor");
            inputs_.obs_out = req.obs_into;
        }
        const bool every =
            req.observe == Observe::EveryStep || req.obs_copy || req.obs_into || chained_[0] || chained_[1];
        for (int32_t i = 0; i < req.repeat; ++i) {
            observe_ = every || (req.observe == Observe::LastStep && i == req.repeat - 1);
            parallel_worlds([](CpuBackend& b, int32_t w) {
                if (w + kPrefetchAhead < b.state_.num_worlds) {
                    prefetch_level(b.state_.level + w + kPrefetchAhead);
                    if (b.req_.action_stride)  // a row each world: one line a step, missed once in five
                        __builtin_prefetch(static_cast<const int32_t*>(b.req_.actions) +
                                           (size_t)(w + kPrefetchAhead) * b.req_.action_stride);
                    if (b.req_.obs_into) b.prefetch_observations(w + kPrefetchAhead);
                }
                if (b.req_.actions) b.copy_actions(w);
                step_world(b.inputs_, b.table_, w, b.observe_);
                b.render(w);
                if (b.req_.obs_copy) b.copy_observations(w);
                if (b.req_.reward_copy || b.req_.done_copy) b.copy_rewards_and_dones(w);
                b.extend_chains(w);
            });
            req_.actions = nullptr;  // copied by the first step
        }
    }

    void write_observations() override
    {
        parallel_worlds(
            [](CpuBackend& b, int32_t w) { er::write_observations(b.state_.obs_out, b.state_, b.table_, w); });
    }

    void reset_worlds(const uint8_t* mask, const uint64_t* seeds) override
    {
        mask_ = mask;
        seeds_ = seeds;
        parallel_worlds([](CpuBackend& b, int32_t w) {
            if (!b.mask_[w]) return;
            reset_world(b.state_, b.table_, w, b.seeds_ != nullptr, b.seeds_ ? b.seeds_[w] : 0);
            b.render(w);
            b.extend_chains(w);
        });
    }

    void start_episodes(const uint64_t* seeds, const uint32_t* episodes) override
    {
        for (int32_t w = 0; w < state_.num_worlds; ++w) {
            state_.seed[w] = seeds[w];
            state_.episode[w] = episodes[w];
        }
        parallel_worlds([](CpuBackend& b, int32_t w) {  // a starting point: no chain is extended
            begin_episode(b.state_, b.table_, w);
            b.render(w);
        });
    }

    void restore_worlds(const uint8_t* mask) override
    {
        mask_ = mask;
        parallel_worlds([](CpuBackend& b, int32_t w) {
            if (!b.mask_[w]) return;
            restore_world(b.state_, b.table_, w, b.mask_[w] & kRestoreLevel, b.mask_[w] & kRestoreObservations);
            b.render(w);
        });
    }

    void parallel_for(int64_t n, void (*fn)(void* ctx, int64_t begin, int64_t end), void* ctx) override
    {
        struct Range {
            void (*fn)(void*, int64_t, int64_t);
            void* ctx;
            int64_t n;
            int32_t chunks;
        } range{fn, ctx, n, (int32_t)std::max<int64_t>(1, std::min<int64_t>(pool_.size(), n / kMinWorldsPerChunk))};
        pool_.run(
            range.chunks,
            [](void* p, int32_t c) {
                const Range& r = *static_cast<Range*>(p);
                r.fn(r.ctx, r.n * c / r.chunks, r.n * (c + 1) / r.chunks);
            },
            &range);
    }

    void chain_outputs(OutputChain chain, bool on) override
    {
        std::vector<uint64_t>& c = chains_[(int32_t)chain];
        chained_[(int32_t)chain] = on;
        c.resize(on ? (size_t)state_.num_worlds : 0);
        for (int32_t w = 0; w < (int32_t)c.size(); ++w) c[w] = output_digest(state_, w);
    }

    void state_hashes(uint64_t* out) override
    {
        for (int32_t w = 0; w < state_.num_worlds; ++w) out[w] = world_hash(state_, w);
    }

    void set_output_chains(OutputChain chain, const uint64_t* values) override
    {
        std::vector<uint64_t>& c = chains_[(int32_t)chain];
        std::copy(values, values + c.size(), c.begin());
    }

    void output_digests(OutputChain chain, uint64_t* out) override
    {
        const int32_t c = (int32_t)chain;
        for (int32_t w = 0; w < state_.num_worlds; ++w) out[w] = chained_[c] ? chains_[c][w] : output_digest(state_, w);
    }

    int64_t check_actions(const void* actions, bool int64, bool flat, bool refuse_done) override
    {
        const int64_t rows = (int64_t)state_.num_worlds * state_.num_agents;
        const int64_t bad = flat ? (int64 ? first_bad_flat_action(static_cast<const int64_t*>(actions), rows)
                                          : first_bad_flat_action(static_cast<const int32_t*>(actions), rows))
                                 : (int64 ? first_bad_action(static_cast<const int64_t*>(actions), rows)
                                          : first_bad_action(static_cast<const int32_t*>(actions), rows));
        if (bad >= 0) return bad;
        if (refuse_done && state_.autoreset_mode == kDisabled) {
            for (int32_t w = 0; w < state_.num_worlds; ++w)
                if (state_.status[w] == kStatusFrozen) return -2 - (int64_t)w;
        }
        return -1;
    }

    void set_actions(const void* actions, bool int64, bool flat) override
    {
        copy_action_rows(actions, int64, flat, 0, (size_t)state_.num_worlds * state_.num_agents);
    }

    void to_host(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
    void from_host(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }

private:
    // Extends the output chains that are on by world w's outputs.
    void extend_chains(int32_t w)
    {
        for (int32_t c = 0; c < kNumOutputChains; ++c)
            if (chained_[c]) chains_[c][w] = extend_output_chain(chains_[c][w], state_, w);
    }

    // The batch renderer's images of world w, when it is on.
    void render(int32_t w)
    {
        if (state_.render_width > 0) render_world(state_, w);
    }

    // Rows [first, first + rows) of int32 or int64 actions (rows of 3, or with `flat` Discrete
    // indices, decoded) into the action tensor.
    void copy_action_rows(const void* actions, bool int64, bool flat, size_t first, size_t rows)
    {
        int32_t* dst = state_.action_in + first * kActionDims;
        if (flat) {
            if (int64) {
                const int64_t* src = static_cast<const int64_t*>(actions) + first;
                for (size_t i = 0; i < rows; ++i) decode_flat_action(src[i], dst + i * kActionDims);
            } else {
                const int32_t* src = static_cast<const int32_t*>(actions) + first;
                for (size_t i = 0; i < rows; ++i) decode_flat_action(src[i], dst + i * kActionDims);
            }
        } else if (int64) {
            const int64_t* src = static_cast<const int64_t*>(actions) + first * kActionDims;
            for (size_t i = 0; i < rows * kActionDims; ++i) dst[i] = (int32_t)src[i];
        } else {
            std::memcpy(dst, static_cast<const int32_t*>(actions) + first * kActionDims,
                        rows * kActionDims * sizeof(int32_t));
        }
    }

    void copy_actions(int32_t w)
    {
        const size_t n = (size_t)state_.num_agents;
        if (req_.action_stride) {  // int32 rows, world w's action_stride int32s after world 0's
            const int32_t* src = static_cast<const int32_t*>(req_.actions) + (size_t)w * req_.action_stride;
            int32_t* dst = state_.action_in + (size_t)w * n * kActionDims;
            for (size_t k = 0; k < n * kActionDims; ++k) dst[k] = src[k];
            return;
        }
        copy_action_rows(req_.actions, req_.int64, req_.flat, (size_t)w * n, n);
    }

    void copy_observations(int32_t w)
    {
        const size_t n = (size_t)state_.num_agents * (size_t)state_.obs_dim, first = (size_t)w * n;
        std::memcpy(req_.obs_copy + first, state_.obs_out + first, n * sizeof(float));
    }

    // World w's lines of obs_into, for writing.
    void prefetch_observations(int32_t w) const
    {
        const size_t n = (size_t)state_.num_agents * (size_t)state_.obs_dim;
        const char* first = reinterpret_cast<const char*>(req_.obs_into + (size_t)w * n);
        for (size_t b = 0; b < n * sizeof(float); b += 64) __builtin_prefetch(first + b, 1);
    }

    // World w's rewards and done flags (as bytes) to the request's copies.
    void copy_rewards_and_dones(int32_t w)
    {
        const size_t n = (size_t)state_.num_agents, first = (size_t)w * n;
        if (req_.reward_copy) std::memcpy(req_.reward_copy + first, state_.reward_out + first, n * sizeof(float));
        if (req_.done_copy)
            for (size_t i = first; i < first + n; ++i) req_.done_copy[i] = state_.done_out[i] != 0;
    }

    using WorldFn = void (*)(CpuBackend&, int32_t);

    // Each thread owns a contiguous range of worlds (the same every call, so its worlds stay in
    // its caches) and takes it a block at a time; a thread done with its own range takes the
    // blocks others have not started, so one that another process slows down delays the step
    // by a block, not by half of it. Each world's result is its own: any order, the same bits.
    struct alignas(64) Range {
        std::atomic<int32_t> next{0};  // next block to take
        int32_t end = 0;               // one past the range's last block
    };

    struct Job {
        CpuBackend* self;
        WorldFn fn;
        int32_t block;  // worlds a block
        int32_t num_chunks;
    };

    void parallel_worlds(WorldFn fn)
    {
        const int32_t W = state_.num_worlds;
        int32_t chunks = W / kMinWorldsPerChunk;
        if (chunks > pool_.size()) chunks = pool_.size();
        if (chunks <= 1) {
            for (int32_t w = 0; w < W; ++w) fn(*this, w);
            return;
        }
        int32_t block = W / (chunks * kBlocksPerThread);
        if (block < kMinWorldsPerChunk) block = kMinWorldsPerChunk;
        const int32_t blocks = (W + block - 1) / block;
        for (int32_t c = 0; c < chunks; ++c) {
            ranges_[c].next.store((int32_t)((int64_t)blocks * c / chunks), std::memory_order_relaxed);
            ranges_[c].end = (int32_t)((int64_t)blocks * (c + 1) / chunks);
        }
        Job job{this, fn, block, chunks};
        pool_.run(
            chunks,
            [](void* ctx, int32_t c) {
                const Job& j = *static_cast<Job*>(ctx);
                CpuBackend& b = *j.self;
                const int32_t W = b.state_.num_worlds;
                for (int32_t k = 0; k < j.num_chunks; ++k) {  // its own range first, then the others'
                    Range& r = b.ranges_[(c + k) % j.num_chunks];
                    for (int32_t i; (i = r.next.fetch_add(1, std::memory_order_relaxed)) < r.end;) {
                        const int32_t end = (i + 1) * j.block < W ? (i + 1) * j.block : W;
                        for (int32_t w = i * j.block; w < end; ++w) j.fn(b, w);
                    }
                }
            },
            &job);
    }

    ThreadPool pool_;
    std::unique_ptr<Range[]> ranges_{new Range[(size_t)pool_.size()]};
    std::shared_ptr<Storage> storage_;
    SimState state_{};
    SimState inputs_{};  // state_, reading its inputs where the current step request says
    LidarTable table_{};
    StepRequest req_{};
    bool observe_ = true;  // the current step writes the observations
    const uint8_t* mask_ = nullptr;
    const uint64_t* seeds_ = nullptr;
    bool chained_[kNumOutputChains] = {false, false};
    std::vector<uint64_t> chains_[kNumOutputChains];  // output chains, while on
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const SimState& cfg, const LevelData* fixed_levels, uint64_t rand_seed,
                                          int32_t num_threads)
{
    return std::make_unique<CpuBackend>(cfg, fixed_levels, rand_seed, num_threads);
}

}  // namespace er
