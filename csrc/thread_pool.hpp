// A persistent pool of worker threads for the CPU backend. The caller runs chunk 0 itself;
// workers spin briefly between jobs (steps come back-to-back in training loops) and then
// sleep, so an idle manager costs no CPU.
//
// Failures and forks: a worker the system refuses to start (thread, memory or pid limits)
// makes the constructor throw Error naming num_threads, after stopping the workers already
// started. In the child of a fork() the workers do not exist: the pool forgets them and
// starts new ones at its next job (running the job on the caller alone if it cannot).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace er {

class ThreadPool {
public:
    using Job = void (*)(void* ctx, int32_t chunk);

    explicit ThreadPool(int32_t num_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    // Threads a job runs on, the caller included.
    int32_t size() const { return num_threads_; }

    // Runs job(ctx, c) for every c in [0, num_chunks); returns when all are done.
    void run(int32_t num_chunks, Job job, void* ctx);

private:
    // Starts workers until there are num_threads_ - 1; false when the system refused one.
    bool start_workers();
    void stop_workers();
    void work(int32_t index, uint64_t seen);
    static void after_fork_in_child(void* self);

    const int32_t num_threads_;
    std::vector<std::thread> workers_;
    bool respawn_ = false;  // set in a fork child: workers_ must be started anew
    std::mutex mutex_;
    std::condition_variable wake_;
    int32_t sleepers_ = 0;  // guarded by mutex_
    bool stop_ = false;     // guarded by mutex_
    std::atomic<uint64_t> generation_{0};
    std::atomic<int32_t> pending_{0};
    std::atomic<bool> stopping_{false};
    Job job_ = nullptr;
    void* ctx_ = nullptr;
    int32_t num_chunks_ = 0;
};

}  // namespace er
