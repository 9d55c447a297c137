// A persistent pool of worker threads for the CPU backend. The caller runs chunk 0 itself;
// workers spin briefly between jobs (steps come back-to-back in training loops) and then
// sleep, so an idle manager costs no CPU.
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

    int32_t size() const { return (int32_t)workers_.size() + 1; }

    // Runs job(ctx, c) for every c in [0, num_chunks), num_chunks <= size(); returns when all are done.
    void run(int32_t num_chunks, Job job, void* ctx);

private:
    void work(int32_t index);

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_;
    int32_t sleepers_ = 0;            // guarded by mutex_
    bool stop_ = false;               // guarded by mutex_
    std::atomic<uint64_t> generation_{0};
    std::atomic<int32_t> pending_{0};
    std::atomic<bool> stopping_{false};
    Job job_ = nullptr;
    void* ctx_ = nullptr;
    int32_t num_chunks_ = 0;
};

}  // namespace er
