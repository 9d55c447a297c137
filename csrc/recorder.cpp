#include "recorder.hpp"

#include <cerrno>
#include <cstring>

#include "errors.hpp"
#include "sim/consts.hpp"

namespace er {

namespace {

constexpr size_t kHeaderBytes = 96;
constexpr size_t kHeaderCrcOffset = 76;
constexpr size_t kNumStepsOffset = 56;
constexpr uint32_t kFormatVersion = 1;
constexpr uint64_t kFlushEverySteps = 64;
constexpr size_t kFlushBytes = size_t(4) << 20;

constexpr uint32_t tag_of(const char (&s)[5])
{
    return (uint32_t)(uint8_t)s[0] | (uint32_t)(uint8_t)s[1] << 8 | (uint32_t)(uint8_t)s[2] << 16 |
           (uint32_t)(uint8_t)s[3] << 24;
}
constexpr uint32_t kTagStep = tag_of("STEP");
constexpr uint32_t kTagReset = tag_of("RSET");
constexpr uint32_t kTagHash = tag_of("HASH");
constexpr uint32_t kTagEnd = tag_of("END ");

struct CrcTable {
    uint32_t entries[256];
    CrcTable()
    {
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            entries[i] = c;
        }
    }
};

template <class T>
void put(std::vector<uint8_t>& out, T value)  // little-endian
{
    for (size_t i = 0; i < sizeof(T); ++i) out.push_back((uint8_t)((uint64_t)value >> (8 * i)));
}

template <class T>
void put_at(uint8_t* out, T value)
{
    for (size_t i = 0; i < sizeof(T); ++i) out[i] = (uint8_t)((uint64_t)value >> (8 * i));
}

[[noreturn]] void io_error(const std::string& path, const char* what)
{
    throw Error("replay file " + path + ": " + what + ": " + std::strerror(errno));
}

}  // namespace

uint32_t crc32(const uint8_t* data, size_t len, uint32_t crc)
{
    static const CrcTable table;
    crc = ~crc;
    for (size_t i = 0; i < len; ++i) crc = table.entries[(crc ^ data[i]) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

Recorder::Recorder(const std::string& path, const ReplayHeaderInfo& info, const std::string& config_json)
    : path_(path), info_(info)
{
    file_ = std::fopen(path.c_str(), "w+b");  // read back on finish() to patch the header
    if (!file_) io_error(path, "cannot open for writing");
    uint8_t header[kHeaderBytes] = {};
    std::memcpy(header, "ERREPLAY", 8);
    put_at<uint32_t>(header + 8, kFormatVersion);
    put_at<uint32_t>(header + 12, (uint32_t)kHeaderBytes);
    put_at<uint32_t>(header + 16, info.rules_version);
    put_at<uint32_t>(header + 20, info.num_worlds);
    put_at<uint32_t>(header + 24, info.num_agents);
    put_at<uint32_t>(header + 28, info.episode_len);
    put_at<uint64_t>(header + 32, info.rand_seed);
    put_at<uint32_t>(header + 40, info.autoreset_mode);
    put_at<uint32_t>(header + 44, info.flags);
    put_at<uint64_t>(header + 48, (uint64_t)config_json.size());
    put_at<uint64_t>(header + kNumStepsOffset, UINT64_MAX);
    put_at<uint64_t>(header + 64, info.created_unix_ns);
    put_at<uint32_t>(header + 72, info.checksum_interval);
    put_at<uint32_t>(header + kHeaderCrcOffset, crc32(header, kHeaderCrcOffset));
    buffer_.assign(header, header + kHeaderBytes);
    buffer_.insert(buffer_.end(), config_json.begin(), config_json.end());
    try {
        flush();
    } catch (...) {  // no destructor runs for a constructor that throws: close the file here
        std::fclose(file_);
        file_ = nullptr;
        throw;
    }
}

Recorder::~Recorder()
{
    try {
        finish();
    } catch (...) {
        // A destructor must not throw; finish() already closed the file.
    }
}

void Recorder::record(uint32_t tag, const std::vector<uint8_t>& payload)
{
    const size_t start = buffer_.size();
    put<uint32_t>(buffer_, tag);
    put<uint32_t>(buffer_, (uint32_t)payload.size());
    buffer_.insert(buffer_.end(), payload.begin(), payload.end());
    put<uint32_t>(buffer_, crc32(buffer_.data() + start, buffer_.size() - start));
    if (buffer_.size() >= kFlushBytes) flush();
}

void Recorder::flush()
{
    if (!file_) return;
    if (!buffer_.empty() && std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size())
        io_error(path_, "write failed");
    buffer_.clear();
    if (std::fflush(file_) != 0) io_error(path_, "flush failed");
}

void Recorder::step(const int32_t* reset_flags, const int32_t* actions)
{
    const size_t W = info_.num_worlds, n = W * info_.num_agents;
    payload_.assign((W + 7) / 8, 0);
    for (size_t w = 0; w < W; ++w)
        if (reset_flags[w] != 0) payload_[w / 8] |= (uint8_t)(1u << (w % 8));
    const int32_t limits[3] = {kNumMoveAmounts - 1, kNumMoveAngles - 1, kNumRotates - 1};
    for (size_t i = 0; i < n * 3; ++i) {
        int32_t v = actions[i];
        v = v < 0 ? 0 : (v > limits[i % 3] ? limits[i % 3] : v);
        payload_.push_back((uint8_t)(int8_t)v);
    }
    record(kTagStep, payload_);
    ++steps_;
    if (steps_ % kFlushEverySteps == 0) flush();
}

void Recorder::reset(const uint8_t* mask, const uint64_t* seeds)
{
    const size_t W = info_.num_worlds;
    payload_.assign((W + 7) / 8, 0);
    for (size_t w = 0; w < W; ++w)
        if (mask[w]) payload_[w / 8] |= (uint8_t)(1u << (w % 8));
    payload_.push_back(seeds ? 1 : 0);
    if (seeds)
        for (size_t w = 0; w < W; ++w)
            if (mask[w]) put<uint64_t>(payload_, seeds[w]);
    record(kTagReset, payload_);
}

void Recorder::hash(uint64_t step, const uint64_t* hashes)
{
    payload_.clear();
    put<uint64_t>(payload_, step);
    for (size_t w = 0; w < info_.num_worlds; ++w) put<uint64_t>(payload_, hashes[w]);
    record(kTagHash, payload_);
    last_hash_step_ = step;
}

void Recorder::finish()
{
    if (!file_) return;
    try {
        payload_.clear();
        put<uint64_t>(payload_, steps_);
        record(kTagEnd, payload_);
        flush();
    } catch (...) {  // a failed write (disk full) still closes the file: nothing leaks
        std::fclose(file_);
        file_ = nullptr;
        throw;
    }
    // Patch num_steps and the header CRC.
    uint8_t header[kHeaderBytes];
    bool ok = std::fseek(file_, 0, SEEK_SET) == 0 && std::fread(header, 1, kHeaderBytes, file_) == kHeaderBytes;
    if (ok) {
        put_at<uint64_t>(header + kNumStepsOffset, steps_);
        put_at<uint32_t>(header + kHeaderCrcOffset, crc32(header, kHeaderCrcOffset));
        ok = std::fseek(file_, 0, SEEK_SET) == 0 && std::fwrite(header, 1, kHeaderBytes, file_) == kHeaderBytes;
    }
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    if (!ok || !closed) io_error(path_, "cannot finish the header");
}

TrajectoryLog::TrajectoryLog(int32_t world, int32_t agent, const std::string& path)
    : world_(world), agent_(agent), path_(path.empty() ? std::string("<stdout>") : path), file_(stdout), owns_(false)
{
    if (!path.empty()) {
        file_ = std::fopen(path.c_str(), "w");
        if (!file_) throw Error("trajectory log " + path + ": cannot open for writing: " + std::strerror(errno));
        owns_ = true;
    }
}

TrajectoryLog::~TrajectoryLog()
{
    if (!file_) return;
    if (owns_) std::fclose(file_);
    else std::fflush(file_);
}

void TrajectoryLog::fail(const char* what)
{
    const int err = errno;
    if (owns_ && file_) std::fclose(file_);
    file_ = nullptr;
    throw Error("trajectory log " + path_ + ": " + what + ": " + std::strerror(err));
}

void TrajectoryLog::finish()
{
    if (!file_) return;
    if (std::fflush(file_) != 0) fail("write failed");
    if (owns_) {
        const bool closed = std::fclose(file_) == 0;
        file_ = nullptr;
        if (!closed) fail("close failed");
    }
    file_ = nullptr;
}

void TrajectoryLog::write(uint64_t step, float x, float y, float yaw, float progress, float reward, int32_t done,
                          const int32_t* action)
{
    if (!file_) throw Error("trajectory log " + path_ + ": closed after an earlier error");
    const double yaw_deg = (double)yaw * (180.0 / 3.14159265358979323846);
    if (std::fprintf(file_,
                 "step=%llu world=%d agent=%d x=%.3f y=%.3f yaw_deg=%.2f progress=%.3f reward=%.4f done=%d "
                 "action=%d,%d,%d\n",
                 (unsigned long long)step, world_, agent_, (double)x, (double)y, yaw_deg, (double)progress,
                 (double)reward, done, action[0], action[1], action[2]) < 0 ||
        std::ferror(file_))
        fail("write failed");
    if (!owns_ && std::fflush(file_) != 0) fail("write failed");
}

}  // namespace er
