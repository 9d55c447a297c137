#include "recorder.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "errors.hpp"
#include "sim/consts.hpp"

namespace er {

namespace {

// Header layout of format version 2 (SPEC §5.3, with the config block's CRC at 76).
constexpr size_t kHeaderBytes = 96;
constexpr size_t kNumStepsOffset = 56;
constexpr size_t kConfigCrcOffset = 76;
constexpr size_t kHeaderCrcOffset = 80;  // the header CRC covers bytes [0, 80)
constexpr uint32_t kFormatVersion = 2;
constexpr uint64_t kFlushEverySteps = 64;
constexpr size_t kFlushBytes = size_t(4) << 20;
constexpr size_t kLogFlushBytes = size_t(64) << 10;

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

uint32_t get_u32(const uint8_t* in)
{
    return (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 24;
}

std::string error_text(int err) { return std::strerror(err); }

// Cuts a file back to `size` bytes. A failure is not reported: the reader then drops the
// incomplete record at the end itself.
void truncate_quietly(int fd, uint64_t size)
{
    if (::ftruncate(fd, (off_t)size) != 0) errno = 0;
}

// Writes all n bytes; false (errno set) when the system takes fewer, with `written` the bytes
// that made it.
bool write_all(int fd, const void* data, size_t n, size_t& written)
{
    written = 0;
    const char* p = static_cast<const char*>(data);
    while (written < n) {
        const ssize_t k = ::write(fd, p + written, n - written);
        if (k < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (k == 0) {
            errno = ENOSPC;
            return false;
        }
        written += (size_t)k;
    }
    return true;
}

// Opens `path` for writing. Never blocks (O_NONBLOCK: a FIFO without a reader would), takes
// what is a regular file (or, with devices_ok, a character device such as /dev/null or a
// terminal), locks it exclusively (another recording or log writing it, or a replay reading
// it, makes this fail, before anything is truncated), then empties it.
int open_output(const std::string& path, const std::string& what, bool devices_ok)
{
    const char* kinds = devices_ok ? "a regular file or a character device" : "a regular file";
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !(devices_ok && S_ISCHR(st.st_mode)) &&
        !S_ISDIR(st.st_mode))  // open() names a directory itself
        throw Error(what + " " + path + ": not " + kinds + " (named pipes, sockets and block devices are refused)");
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0666);
    if (fd < 0) throw Error(what + " " + path + ": cannot open for writing: " + error_text(errno));
    auto refuse = [&](const std::string& reason) {
        ::close(fd);
        throw Error(what + " " + path + ": " + reason);
    };
    if (::fstat(fd, &st) != 0) refuse("cannot stat: " + error_text(errno));
    const bool regular = S_ISREG(st.st_mode);
    if (!regular && !(devices_ok && S_ISCHR(st.st_mode)))
        refuse(std::string("not ") + kinds + " (named pipes, sockets and block devices are refused)");
    if (regular) {
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0)
            refuse(errno == EWOULDBLOCK
                       ? "the file is in use: another recording or trajectory log is writing it, or a replay is "
                         "reading it; choose another path"
                       : "cannot lock: " + error_text(errno));
        if (::ftruncate(fd, 0) != 0) refuse("cannot truncate: " + error_text(errno));
    }
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);  // writes may block as usual
    return fd;
}

}  // namespace

uint32_t crc32(const uint8_t* data, size_t len, uint32_t crc)
{
    static const CrcTable table;
    crc = ~crc;
    for (size_t i = 0; i < len; ++i) crc = table.entries[(crc ^ data[i]) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

// -- Recorder ----------------------------------------------------------------------------------

Recorder::Recorder(const std::string& path) : path_(path), info_{} { fd_ = open_output(path, "replay file", false); }

void Recorder::begin(const ReplayHeaderInfo& info, const std::string& config_json)
{
    info_ = info;
    uint8_t* h = header_;
    std::memset(h, 0, kHeaderBytes);
    std::memcpy(h, "ERREPLAY", 8);
    put_at<uint32_t>(h + 8, kFormatVersion);
    put_at<uint32_t>(h + 12, (uint32_t)kHeaderBytes);
    put_at<uint32_t>(h + 16, info.rules_version);
    put_at<uint32_t>(h + 20, info.num_worlds);
    put_at<uint32_t>(h + 24, info.num_agents);
    put_at<uint32_t>(h + 28, info.episode_len);
    put_at<uint64_t>(h + 32, info.rand_seed);
    put_at<uint32_t>(h + 40, info.autoreset_mode);
    put_at<uint32_t>(h + 44, info.flags);
    put_at<uint64_t>(h + 48, (uint64_t)config_json.size());
    put_at<uint64_t>(h + kNumStepsOffset, UINT64_MAX);
    put_at<uint64_t>(h + 64, info.created_unix_ns);
    put_at<uint32_t>(h + 72, info.checksum_interval);
    put_at<uint32_t>(h + kConfigCrcOffset,
                     crc32(reinterpret_cast<const uint8_t*>(config_json.data()), config_json.size()));
    put_at<uint32_t>(h + kHeaderCrcOffset, crc32(h, kHeaderCrcOffset));

    std::vector<uint8_t> start(h, h + kHeaderBytes);
    start.insert(start.end(), config_json.begin(), config_json.end());
    size_t written = 0;
    if (!write_all(fd_, start.data(), start.size(), written)) {
        const int err = errno;
        truncate_quietly(fd_, 0);  // nothing of use was written
        ::close(fd_);
        fd_ = -1;
        throw Error("replay file " + path_ + ": write failed: " + error_text(err) + "; not recording");
    }
    file_bytes_ = start.size();
    begun_ = true;
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
}

void Recorder::prepare()
{
    if (fd_ < 0) throw Error("replay file " + path_ + ": closed");
    if (buffered_steps_ >= kFlushEverySteps || buffer_.size() >= kFlushBytes) flush();
}

void Recorder::flush()
{
    size_t written = 0;
    if (!write_all(fd_, buffer_.data(), buffer_.size(), written)) fail(written, errno, "write failed");
    file_bytes_ += buffer_.size();
    buffer_.clear();
    buffered_steps_ = 0;
}

void Recorder::fail(size_t written, int err, const char* what)
{
    // Keep the complete records among the bytes that reached the file, and only those.
    size_t keep = 0;
    uint64_t kept_steps = 0;
    while (keep + 8 <= written) {
        const size_t end = keep + 12 + get_u32(buffer_.data() + keep + 4);
        if (end > written) break;
        kept_steps += get_u32(buffer_.data() + keep) == kTagStep;
        keep = end;
    }
    truncate_quietly(fd_, file_bytes_ + keep);
    ::close(fd_);
    fd_ = -1;
    steps_kept_ = steps_ - buffered_steps_ + kept_steps;
    buffer_.clear();
    throw Error("replay file " + path_ + ": " + what + ": " + error_text(err) +
                "; the recording stopped: the file keeps its first " + std::to_string(steps_kept_) +
                " steps, readable as a prefix");
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
    ++buffered_steps_;
}

void Recorder::reset(const uint8_t* mask, const uint64_t* seeds)
{
    prepare();
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

void Recorder::hash(uint64_t step, const uint64_t* state_hashes, const uint64_t* output_digests)
{
    payload_.clear();
    put<uint64_t>(payload_, step);
    for (size_t w = 0; w < info_.num_worlds; ++w) put<uint64_t>(payload_, state_hashes[w]);
    for (size_t w = 0; w < info_.num_worlds; ++w) put<uint64_t>(payload_, output_digests[w]);
    record(kTagHash, payload_);
    last_hash_step_ = step;
}

void Recorder::finish()
{
    if (fd_ < 0) return;
    if (!begun_) {  // opened, never written: nothing to finish
        ::close(fd_);
        fd_ = -1;
        return;
    }
    payload_.clear();
    put<uint64_t>(payload_, steps_);
    record(kTagEnd, payload_);
    flush();  // on failure the file keeps its complete records and is closed
    put_at<uint64_t>(header_ + kNumStepsOffset, steps_);
    put_at<uint32_t>(header_ + kHeaderCrcOffset, crc32(header_, kHeaderCrcOffset));
    const bool patched = ::pwrite(fd_, header_, kHeaderBytes, 0) == (ssize_t)kHeaderBytes;
    const int err = errno;
    const bool closed = ::close(fd_) == 0;
    fd_ = -1;
    if (!patched || !closed)
        throw Error("replay file " + path_ + ": cannot finish the header: " + error_text(patched ? errno : err) +
                    "; the file keeps all " + std::to_string(steps_) + " steps but reads as unfinished");
}

void Recorder::abandon()
{
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buffer_.clear();
}

// -- TrajectoryLog -----------------------------------------------------------------------------

TrajectoryLog::TrajectoryLog(int32_t world, int32_t agent, const std::string& path)
    : world_(world), agent_(agent), path_(path.empty() ? std::string("<stdout>") : path)
{
    if (path.empty()) {
        fd_ = STDOUT_FILENO;
    } else {
        fd_ = open_output(path, "trajectory log", true);
        owns_ = true;
    }
}

TrajectoryLog::~TrajectoryLog()
{
    try {
        finish();
    } catch (...) {
        // A destructor must not throw; finish() already closed the file.
    }
}

void TrajectoryLog::fail(int err, const char* what)
{
    if (owns_ && fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buffer_.clear();
    throw Error("trajectory log " + path_ + ": " + what + ": " + error_text(err));
}

void TrajectoryLog::flush()
{
    size_t written = 0;
    if (!buffer_.empty() && !write_all(fd_, buffer_.data(), buffer_.size(), written)) fail(errno, "write failed");
    buffer_.clear();
}

void TrajectoryLog::before_step()
{
    if (fd_ < 0) throw Error("trajectory log " + path_ + ": closed after an earlier error");
    if (buffer_.size() >= kLogFlushBytes) flush();
}

void TrajectoryLog::write(uint64_t step, float x, float y, float yaw, float progress, float reward, int32_t done,
                          const int32_t* action)
{
    if (fd_ < 0) throw Error("trajectory log " + path_ + ": closed after an earlier error");
    const double yaw_deg = (double)yaw * (180.0 / 3.14159265358979323846);
    char line[256];
    const int n = std::snprintf(line, sizeof(line),
                                "step=%llu world=%d agent=%d x=%.3f y=%.3f yaw_deg=%.2f progress=%.3f reward=%.4f "
                                "done=%d action=%d,%d,%d\n",
                                (unsigned long long)step, world_, agent_, (double)x, (double)y, yaw_deg,
                                (double)progress, (double)reward, done, action[0], action[1], action[2]);
    buffer_.append(line, n > 0 ? ((size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) : 0);
    if (!owns_) flush();  // stdout: each line as its step ends, in order with the program's own output
}

void TrajectoryLog::finish()
{
    if (fd_ < 0) return;
    flush();
    if (owns_) {
        const bool closed = ::close(fd_) == 0;
        const int err = errno;
        fd_ = -1;
        if (!closed) fail(err, "close failed");
    }
    fd_ = -1;
}

void TrajectoryLog::abandon()
{
    if (owns_ && fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buffer_.clear();
}

}  // namespace er
