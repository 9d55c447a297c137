#include "thread_pool.hpp"

#include <chrono>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
static inline void cpu_relax() { _mm_pause(); }
#else
static inline void cpu_relax() { std::this_thread::yield(); }
#endif

namespace er {

namespace {
// How long an idle worker spins before sleeping: longer than the Python work between two
// steps of a training loop, far shorter than anything a user would notice as idle load.
constexpr auto kSpinTime = std::chrono::microseconds(200);
}  // namespace

ThreadPool::ThreadPool(int32_t num_threads)
{
    for (int32_t i = 1; i < num_threads; ++i) workers_.emplace_back([this, i] { work(i); });
}

ThreadPool::~ThreadPool()
{
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
        stopping_.store(true, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::run(int32_t num_chunks, Job job, void* ctx)
{
    if (num_chunks <= 1 || workers_.empty()) {
        for (int32_t c = 0; c < num_chunks; ++c) job(ctx, c);
        return;
    }
    job_ = job;
    ctx_ = ctx;
    num_chunks_ = num_chunks;
    // Every worker acknowledges every generation, so none can mix up two jobs.
    pending_.store((int32_t)workers_.size(), std::memory_order_relaxed);
    bool anyone_asleep;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        generation_.fetch_add(1, std::memory_order_release);
        anyone_asleep = sleepers_ > 0;
    }
    if (anyone_asleep) wake_.notify_all();
    job(ctx, 0);
    uint32_t spins = 0;
    while (pending_.load(std::memory_order_acquire) != 0) {
        if (++spins < 4096) cpu_relax();
        else std::this_thread::yield();
    }
}

void ThreadPool::work(int32_t index)
{
    uint64_t seen = 0;
    for (;;) {
        auto spin_start = std::chrono::steady_clock::now();
        uint32_t spins = 0;
        uint64_t gen;
        while ((gen = generation_.load(std::memory_order_acquire)) == seen) {
            if (stopping_.load(std::memory_order_acquire)) return;
            cpu_relax();
            if ((++spins & 255) == 0 && std::chrono::steady_clock::now() - spin_start > kSpinTime) {
                std::unique_lock<std::mutex> lock(mutex_);
                ++sleepers_;
                wake_.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_acquire) != seen; });
                --sleepers_;
                if (stop_) return;
                spin_start = std::chrono::steady_clock::now();
            }
        }
        seen = gen;
        if (index < num_chunks_) job_(ctx_, index);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

}  // namespace er
