#include "thread_pool.hpp"

#include <chrono>
#include <exception>
#include <new>
#include <string>

#include "errors.hpp"
#include "lifecycle.hpp"

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

ThreadPool::ThreadPool(int32_t num_threads) : num_threads_(num_threads < 1 ? 1 : num_threads)
{
    if (!start_workers()) {
        const size_t started = workers_.size();
        stop_workers();
        throw Error("cannot start worker thread " + std::to_string(started + 1) + " of the " +
                    std::to_string(num_threads_ - 1) + " that num_threads=" + std::to_string(num_threads_) +
                    " needs (the system refused it: thread, memory or process limits); pass a smaller num_threads");
    }
    static const LifecycleHooks hooks{&ThreadPool::after_fork_in_child, nullptr};
    register_lifecycle(this, &hooks);
}

ThreadPool::~ThreadPool()
{
    unregister_lifecycle(this);
    stop_workers();
}

bool ThreadPool::start_workers()
{
    try {
        // No job runs while workers start: each waits for the generation after this one.
        const uint64_t seen = generation_.load(std::memory_order_relaxed);
        while ((int32_t)workers_.size() < num_threads_ - 1) {
            const int32_t index = (int32_t)workers_.size() + 1;
            workers_.emplace_back([this, index, seen] { work(index, seen); });
        }
    } catch (const std::exception&) {  // std::system_error (EAGAIN) or std::bad_alloc
        return false;
    }
    return true;
}

void ThreadPool::stop_workers()
{
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
        stopping_.store(true, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
}

void ThreadPool::after_fork_in_child(void* self)
{
    ThreadPool& p = *static_cast<ThreadPool*>(self);
    // The workers were not copied into this process: their std::thread objects can be neither
    // joined nor destroyed (a joinable std::thread's destructor terminates), so they are
    // leaked, on purpose. A worker may have held the mutex at the fork: make both anew.
    new std::vector<std::thread>(std::move(p.workers_));
    p.workers_.clear();
    new (&p.mutex_) std::mutex();
    new (&p.wake_) std::condition_variable();
    p.sleepers_ = 0;
    p.stop_ = false;
    p.stopping_.store(false, std::memory_order_relaxed);
    p.generation_.store(0, std::memory_order_relaxed);
    p.pending_.store(0, std::memory_order_relaxed);
    p.respawn_ = true;
}

void ThreadPool::run(int32_t num_chunks, Job job, void* ctx)
{
    if (respawn_) {  // first job in a fork child: start the workers again, as many as the system allows
        respawn_ = false;
        start_workers();
    }
    const int32_t workers = (int32_t)workers_.size();
    if (num_chunks <= 1 || workers == 0) {
        for (int32_t c = 0; c < num_chunks; ++c) job(ctx, c);
        return;
    }
    job_ = job;
    ctx_ = ctx;
    num_chunks_ = num_chunks;
    // Every worker acknowledges every generation, so none can mix up two jobs.
    pending_.store(workers, std::memory_order_relaxed);
    bool anyone_asleep;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        generation_.fetch_add(1, std::memory_order_release);
        anyone_asleep = sleepers_ > 0;
    }
    if (anyone_asleep) wake_.notify_all();
    job(ctx, 0);
    for (int32_t c = workers + 1; c < num_chunks; ++c) job(ctx, c);  // chunks without a worker
    uint32_t spins = 0;
    while (pending_.load(std::memory_order_acquire) != 0) {
        if (++spins < 4096)
            cpu_relax();
        else
            std::this_thread::yield();
    }
}

void ThreadPool::work(int32_t index, uint64_t seen)
{
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
