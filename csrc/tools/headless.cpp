// Headless C++ benchmark: steps num_worlds worlds with random actions, no Python involved.
//
//   headless [--worlds N] [--steps S] [--threads T] [--agents A] [--seed X] [--repeats R] [--mode M] [--gpu G]
//
// Prints one JSON line per repeat, a summary line with the median world-steps/s, and a
// digest of every world's state hash at the end: two builds (or thread counts) that simulate
// the same bits print the same digest. --mode: 0 NEXT_STEP, 1 SAME_STEP (default), 2 DISABLED.
// --gpu G runs on CUDA device G: its digest must equal the CPU's.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "manager.hpp"
#include "sim/rng.hpp"

namespace {

long arg(int argc, char** argv, const char* name, long fallback)
{
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], name) == 0) return std::strtol(argv[i + 1], nullptr, 10);
    return fallback;
}

}  // namespace

int main(int argc, char** argv)
{
    er::Config cfg;
    cfg.num_worlds = arg(argc, argv, "--worlds", 4096);
    cfg.num_threads = (int32_t)arg(argc, argv, "--threads", (long)std::max(1u, std::thread::hardware_concurrency()));
    cfg.num_agents = (int32_t)arg(argc, argv, "--agents", 1);
    cfg.rand_seed = (uint64_t)arg(argc, argv, "--seed", 42);
    const long steps = arg(argc, argv, "--steps", 1000);
    const long repeats = arg(argc, argv, "--repeats", 5);
    cfg.autoreset_mode = (int32_t)arg(argc, argv, "--mode", er::kSameStep);
    const long gpu = arg(argc, argv, "--gpu", -1);
    if (gpu >= 0) {
        cfg.exec_mode = er::ExecMode::CUDA;
        cfg.gpu_id = (int32_t)gpu;
    }
    try {
        er::Manager mgr(cfg);
        er::TensorDesc action = mgr.array("action");
        int32_t* act = static_cast<int32_t*>(action.data);
        const size_t n = (size_t)cfg.num_worlds * cfg.num_agents;
        // Actions change every step, as a policy's would; drawing them is not timed.
        std::vector<int32_t> pool(n * 3 * 64);
        for (size_t i = 0; i < pool.size(); i += 3) {
            const uint64_t r = er::rng_draw(cfg.rand_seed, 0, (uint32_t)i);
            pool[i] = (int32_t)(r % 4);
            pool[i + 1] = (int32_t)((r >> 8) % 8);
            pool[i + 2] = (int32_t)((r >> 16) % 5);
        }
        for (long s = 0; s < 50; ++s) mgr.step();  // warm-up
        std::vector<double> rates;
        for (long r = 0; r < repeats; ++r) {
            double secs = 0.0;
            for (long s = 0; s < steps; ++s) {
                mgr.from_host(act, pool.data() + (size_t)(s % 64) * n * 3, n * 3 * sizeof(int32_t));
                const auto t0 = std::chrono::steady_clock::now();
                mgr.step();
                mgr.synchronize();
                secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            }
            const double rate = (double)steps * (double)cfg.num_worlds / secs;
            rates.push_back(rate);
            std::printf(
                "{\"bench\": \"headless\", \"num_worlds\": %ld, \"num_agents\": %d, \"threads\": %d, "
                "\"steps\": %ld, \"seconds\": %.6f, \"world_steps_per_s\": %.1f}\n",
                (long)cfg.num_worlds, cfg.num_agents, cfg.num_threads, steps, secs, rate);
        }
        std::sort(rates.begin(), rates.end());
        std::printf("median world-steps/s: %.1f (%s)\n", rates[rates.size() / 2],
                    gpu >= 0 ? ("cuda:" + std::to_string(gpu)).c_str() : "cpu");
        std::vector<uint64_t> hashes((size_t)cfg.num_worlds);
        mgr.state_hashes(hashes.data());
        uint64_t digest = 0xcbf29ce484222325ULL;
        for (uint64_t h : hashes) digest = (digest ^ h) * 0x100000001b3ULL;
        // ... and of the observations the last step wrote.
        const er::TensorDesc obs = mgr.array("observation");
        std::vector<unsigned char> bytes((size_t)cfg.num_worlds * cfg.num_agents * mgr.obs_dim() * sizeof(float));
        mgr.to_host(bytes.data(), obs.data, bytes.size());
        for (unsigned char b : bytes) digest = (digest ^ b) * 0x100000001b3ULL;
        std::printf("state digest: %016llx\n", (unsigned long long)digest);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "headless: %s\n", e.what());
        return 2;
    }
    return 0;
}
