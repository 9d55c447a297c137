// Replay recording (SPEC §5.3) and trajectory logging (SPEC §5.2), written by the manager
// from inside step(), so step(nstep) records nstep steps without returning to Python.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace er {

// CRC-32 (IEEE 802.3, reflected, as zlib.crc32), continuing from `crc`.
uint32_t crc32(const uint8_t* data, size_t len, uint32_t crc = 0);

struct ReplayHeaderInfo {
    uint32_t rules_version;
    uint32_t num_worlds;
    uint32_t num_agents;
    uint32_t episode_len;
    uint64_t rand_seed;
    uint32_t autoreset_mode;
    uint32_t flags;
    uint64_t created_unix_ns;
    uint32_t checksum_interval;
};

// Writes one replay file: header, JSON config block, then tagged records, each with its CRC.
// Buffered; flushed to the OS every 64 steps and on close, so a killed process leaves a
// readable prefix. The header's num_steps stays all ones until finish() patches it.
class Recorder {
public:
    Recorder(const std::string& path, const ReplayHeaderInfo& info, const std::string& config_json);
    ~Recorder();
    Recorder(const Recorder&) = delete;
    Recorder& operator=(const Recorder&) = delete;

    // STEP: the reset flags as the step will read them, and the actions clamped as the core clamps them.
    void step(const int32_t* reset_flags, const int32_t* actions);
    // RSET: an immediate reset of the masked worlds, with their seeds or none.
    void reset(const uint8_t* mask, const uint64_t* seeds);
    // HASH: every world's state hash after `step` recorded steps.
    void hash(uint64_t step, const uint64_t* hashes);
    // END, header patch, close. Safe to call once; the destructor calls it if needed.
    void finish();

    uint64_t num_steps() const { return steps_; }
    uint64_t last_hash_step() const { return last_hash_step_; }
    uint32_t checksum_interval() const { return info_.checksum_interval; }

private:
    void record(uint32_t tag, const std::vector<uint8_t>& payload);
    void flush();

    std::string path_;
    ReplayHeaderInfo info_;
    std::FILE* file_ = nullptr;
    std::vector<uint8_t> buffer_;
    std::vector<uint8_t> payload_;
    uint64_t steps_ = 0;
    uint64_t last_hash_step_ = UINT64_MAX;
};

// One line per step for one agent: SPEC §5.2's format, to a file or to stdout.
class TrajectoryLog {
public:
    TrajectoryLog(int32_t world, int32_t agent, const std::string& path);  // empty path: stdout
    ~TrajectoryLog();
    TrajectoryLog(const TrajectoryLog&) = delete;
    TrajectoryLog& operator=(const TrajectoryLog&) = delete;

    int32_t world() const { return world_; }
    int32_t agent() const { return agent_; }
    // One line; throws Error when the line cannot be written (disk full).
    void write(uint64_t step, float x, float y, float yaw, float progress, float reward, int32_t done,
               const int32_t* action);
    // Flushes and closes the file; throws Error when buffered lines cannot be written.
    void finish();

private:
    [[noreturn]] void fail(const char* what);

    int32_t world_, agent_;
    std::string path_;
    std::FILE* file_;
    bool owns_;
};

}  // namespace er
