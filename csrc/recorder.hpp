// Replay recording (SPEC §5.3) and trajectory logging (SPEC §5.2), written by the manager
// from inside step(), so step(nstep) records nstep steps without returning to Python.
//
// Both write through a descriptor opened without blocking (a FIFO without a reader would
// freeze the process), and hold an exclusive lock on the file, so two recordings, or a
// recording and a replay being read, never share a file. Writes happen before a step, never
// after one: when one fails (a full disk), the call raises before simulating anything, the
// file is cut back to its last complete record (a readable prefix) and writing stops.
#pragma once

#include <cstdint>
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
// Buffered: flushed before the step that follows 64 buffered steps (or 4 MiB), and on finish,
// so a killed process leaves a readable prefix. The header's num_steps stays all ones until
// finish() patches it.
class Recorder {
public:
    // Opens and locks `path` (nothing written yet); throws Error naming the path.
    explicit Recorder(const std::string& path);
    ~Recorder();
    // Writes the header and the JSON config block; throws Error when that fails.
    void begin(const ReplayHeaderInfo& info, const std::string& config_json);
    Recorder(const Recorder&) = delete;
    Recorder& operator=(const Recorder&) = delete;

    // Before a step: writes the buffered records when they are due. Throws Error when that
    // fails (the recording is over then: the file keeps its complete records).
    void prepare();
    // STEP, before the step it describes, after prepare(): the reset flags it will read and
    // its actions (clamped here, as the core clamps them). Buffered only.
    void step(const int32_t* reset_flags, const int32_t* actions);
    // RSET, before the reset it describes: the masked worlds and their seeds (or none).
    // Throws Error like prepare().
    void reset(const uint8_t* mask, const uint64_t* seeds);
    // HASH after `step` recorded steps: every world's state hash and output digest. Buffered
    // only: it never writes, so it cannot fail after a step was taken.
    void hash(uint64_t step, const uint64_t* state_hashes, const uint64_t* output_digests);
    // END, header patch, close. Throws Error when the file cannot be finished (it then keeps
    // its complete records). Does nothing after finish(), a failure or abandon().
    void finish();
    // In a fork child: the file belongs to the parent. Closes this copy, writing nothing.
    void abandon();

    uint64_t num_steps() const { return steps_; }
    // After a write error: the STEP records the file kept.
    uint64_t steps_kept() const { return steps_kept_; }
    uint64_t last_hash_step() const { return last_hash_step_; }
    uint32_t checksum_interval() const { return info_.checksum_interval; }

private:
    void record(uint32_t tag, const std::vector<uint8_t>& payload);
    void flush();
    [[noreturn]] void fail(size_t written, int err, const char* what);

    std::string path_;
    ReplayHeaderInfo info_;
    int fd_ = -1;
    uint8_t header_[96];
    uint64_t file_bytes_ = 0;      // bytes on disk, all of them complete records (or the header)
    std::vector<uint8_t> buffer_;  // whole records not yet written
    std::vector<uint8_t> payload_;
    uint64_t steps_ = 0;           // STEP records, buffered ones included
    uint64_t buffered_steps_ = 0;  // STEP records in buffer_
    uint64_t last_hash_step_ = UINT64_MAX;
    uint64_t steps_kept_ = 0;
    bool begun_ = false;
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
    // Before a step: writes buffered lines when enough have gathered. Throws Error when they
    // cannot be written (the log is closed then).
    void before_step();
    // After a step: the step's line (to stdout at once, to a file through the buffer).
    void write(uint64_t step, float x, float y, float yaw, float progress, float reward, int32_t done,
               const int32_t* action);
    // Writes what is buffered and closes the file; throws Error when that fails.
    void finish();
    // In a fork child: the file belongs to the parent. Closes this copy, writing nothing.
    void abandon();

private:
    void flush();
    [[noreturn]] void fail(int err, const char* what);

    int32_t world_, agent_;
    std::string path_;
    int fd_ = -1;
    bool owns_ = false;  // false for stdout
    std::string buffer_;
};

}  // namespace er
