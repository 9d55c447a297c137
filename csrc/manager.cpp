#include "manager.hpp"

#include "sim/render.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>

#include "lifecycle.hpp"

namespace er {

namespace {


[[noreturn]] void invalid(const std::string& msg) { throw std::invalid_argument(msg); }

constexpr float kMaxRewardValue = 1.0e6f;

}  // namespace

void validate_config(const Config& c)
{
    const std::vector<int32_t> rooms = c.rooms ? *c.rooms : default_rooms(c.num_agents);
    if (c.num_worlds < 1) invalid("num_worlds must be >= 1, got " + std::to_string(c.num_worlds));
    if (c.num_worlds > (int64_t)INT32_MAX / kMaxAgents)
        invalid("num_worlds must be <= " + std::to_string(INT32_MAX / kMaxAgents) + ", got " + std::to_string(c.num_worlds));
    if (c.num_agents < 1 || c.num_agents > kMaxAgents)
        invalid("num_agents must be between 1 and " + std::to_string(kMaxAgents) + ", got " + std::to_string(c.num_agents));
    if (c.episode_len < 1) invalid("episode_len must be >= 1, got " + std::to_string(c.episode_len));
    if (c.autoreset_mode < kNextStep || c.autoreset_mode > kDisabled)
        invalid("autoreset_mode must be NEXT_STEP (0), SAME_STEP (1) or DISABLED (2), got " + std::to_string(c.autoreset_mode));
    if (c.num_threads < 1 || c.num_threads > 1024)
        invalid("num_threads must be between 1 and 1024, got " + std::to_string(c.num_threads));
    if (c.enable_batch_renderer && (c.render_width < 1 || c.render_width > kMaxRenderSize || c.render_height < 1 ||
                                    c.render_height > kMaxRenderSize))
        invalid("render_width and render_height must be between 1 and " + std::to_string(kMaxRenderSize) + ", got " +
                std::to_string(c.render_width) + " x " + std::to_string(c.render_height));
    if (c.levels.size() > 1024) invalid("levels: at most 1024 levels, got " + std::to_string(c.levels.size()));
    if (rooms.empty() || (int32_t)rooms.size() > 4)
        invalid("rooms must list 1 to 4 room types, got " + std::to_string(rooms.size()));
    for (size_t k = 0; k < rooms.size(); ++k) {
        const int32_t t = rooms[k];
        if (t < 0 || t >= kNumRoomTypes)
            invalid("rooms[" + std::to_string(k) + "]: unknown room type " + std::to_string(t) +
                    "; expected one of button, double_button, cube_blocking, cube_button");
        if (t == kRoomDoubleButton && c.num_agents < 2)
            invalid("rooms[" + std::to_string(k) + "] is 'double_button', which needs num_agents >= 2 (got " +
                    std::to_string(c.num_agents) + ")");
    }
    // Bounded so that no reward can overflow float32: the largest is about
    // progress_scale * group_bonus * (metres gained in a step) + escape_bonus.
    const RewardConfig& r = c.reward;
    const std::pair<const char*, float> fields[] = {{"progress_scale", r.progress_scale},
                                                    {"slack_penalty", r.slack_penalty},
                                                    {"group_bonus", r.group_bonus},
                                                    {"group_radius", r.group_radius},
                                                    {"escape_bonus", r.escape_bonus}};
    for (const auto& [name, v] : fields)
        if (!(v >= -kMaxRewardValue && v <= kMaxRewardValue))
            invalid(std::string("reward config values must be finite and between -1e6 and 1e6 (so that no reward "
                                "overflows float32); reward.") +
                    name + " is " + std::to_string(v));
}

namespace {

SimState make_config(const Config& c)
{
    SimState s{};
    s.num_worlds = (int32_t)c.num_worlds;
    s.num_agents = c.num_agents;
    s.obs_dim = obs_dim(c.num_agents);
    s.episode_len = c.episode_len;
    s.autoreset_mode = c.autoreset_mode;
    s.num_rooms = (int32_t)c.rooms->size();
    for (int32_t k = 0; k < s.num_rooms; ++k) s.room_types[k] = (*c.rooms)[k];
    s.reward_cfg = c.reward;
    s.render_width = c.enable_batch_renderer ? c.render_width : 0;
    s.render_height = c.enable_batch_renderer ? c.render_height : 0;
    return s;
}

// Refuse sizes the machine cannot hold, instead of paging it to death.
void check_memory(size_t bytes, int64_t num_worlds)
{
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || page <= 0) return;
    const double total = (double)pages * (double)page;
    if ((double)bytes > 0.8 * total)
        invalid("num_worlds=" + std::to_string(num_worlds) + " needs " + std::to_string(bytes >> 20) +
                " MiB of state, more than 80% of this machine's " + std::to_string((size_t)(total / 1048576.0)) +
                " MiB; use fewer worlds");
}

}  // namespace

const char* const kRoomNames[kNumRoomTypes] = {"button", "double_button", "cube_blocking", "cube_button"};

std::vector<int32_t> default_rooms(int32_t num_agents)
{
    if (num_agents >= 2) return {kRoomDoubleButton, kRoomCubeBlocking, kRoomCubeButton};
    return {kRoomButton, kRoomCubeBlocking, kRoomCubeButton};
}

Manager::Manager(const Config& cfg) : cfg_(cfg)
{
    validate_config(cfg_);
    if (!cfg_.rooms) cfg_.rooms = default_rooms(cfg_.num_agents);
    if (cfg_.exec_mode == ExecMode::CUDA) {
        if (!cuda_built())
            throw CudaUnavailable("this build of escape_room_env has no CUDA backend (it was built without nvcc, or "
                                  "with ESCAPE_ROOM_CUDA=OFF); reinstall with nvcc on PATH, or use ExecMode.CPU");
        const int32_t n = cuda_device_count();
        if (n <= 0)
            throw CudaUnavailable("ExecMode.CUDA needs an NVIDIA GPU with a working driver, and none is usable "
                                  "(escape_room_env.cuda_available() is False): " +
                                  cuda_unavailable_reason() + "; use ExecMode.CPU");
        if (cfg_.gpu_id < 0 || cfg_.gpu_id >= n)
            invalid("gpu_id must be between 0 and " + std::to_string(n - 1) + ", got " + std::to_string(cfg_.gpu_id));
    }
    // The radius R of SPEC §3's observation bounds: the walled area's diagonal over L, the
    // largest of the custom levels' (in double, rounded to float32 once, as the spaces use it).
    std::vector<LevelData> levels;
    double radius = 0.0;
    for (const LevelSource& src : cfg_.levels) {
        CompiledLevel c = compile_level(src, cfg_.num_agents);
        const LevelData& lv = c.data;
        const double r = std::hypot((double)c.max_x - (double)lv.min_x, (double)c.max_y - (double)lv.min_y) /
                         (double)lv.norm_length;
        radius = r > radius ? r : radius;
        level_warnings_.insert(level_warnings_.end(), c.warnings.begin(), c.warnings.end());
        levels.push_back(lv);
    }
    if (levels.empty()) {
        const double length = (double)cfg_.rooms->size() * 40.0 / 3.0;
        radius = std::hypot(20.0, length + 6.0) / length;
    }
    observation_radius_ = (float)radius;
    SimState sc = make_config(cfg_);
    sc.num_fixed_levels = (int32_t)levels.size();
    if (cfg_.exec_mode == ExecMode::CUDA) {
        backend_ = make_cuda_backend(sc, levels.data(), cfg_.rand_seed, cfg_.gpu_id);  // checks GPU memory
    } else {
        check_memory(state_bytes(sc), cfg_.num_worlds);
        backend_ = make_cpu_backend(sc, levels.data(), cfg_.rand_seed, cfg_.num_threads);
    }
    static const LifecycleHooks hooks{&Manager::after_fork_in_child, &Manager::at_exit};
    register_lifecycle(this, &hooks);
}

Manager::~Manager()
{
    unregister_lifecycle(this);
    try {
        close();  // finishes a recording in progress
    } catch (...) {
        // Nothing can be reported from a destructor; the file keeps its readable prefix.
    }
}

Manager::Claim::Claim(Manager& m, const char* busy_message) : lock_(m.busy_, std::try_to_lock)
{
    if (!m.unusable_after_fork_.empty()) throw Error(m.unusable_after_fork_);
    if (!lock_)
        throw Error(busy_message ? busy_message : "this SimManager is already running a call in another thread");
}

void Manager::after_fork_in_child(void* self)
{
    Manager& m = *static_cast<Manager*>(self);
    if (!m.busy_.try_lock()) {
        // Another thread was inside a call when the process forked: this copy holds half of
        // that call (a step, a file being closed...), so nothing of it is touched here, not even
        // freed: its recorder and log are leaked and it refuses every use.
        (void)m.recorder_.release();
        (void)m.trajectory_.release();
        (void)m.backend_.release();
        new (&m.busy_) std::recursive_mutex();  // the thread that held it does not exist here
        m.unusable_after_fork_ =
            "this SimManager was in use by another thread when the process forked, so its copy in this child "
            "process holds a partial call; create a new SimManager in the child";
        return;
    }
    m.busy_.unlock();
    // The recording and the trajectory log belong to the parent: writing them here too would
    // interleave two processes' records in one file.
    if (m.recorder_) m.recorder_->abandon();
    if (m.trajectory_) m.trajectory_->abandon();
    m.recorder_.reset();
    m.trajectory_.reset();
    m.failed_recording_steps_ = -1;
    if (m.on_gpu() && m.backend_) {
        m.unusable_after_fork_ =
            "a CUDA SimManager cannot be used in a forked child process (CUDA does not survive fork()); create it "
            "in the child, or start processes with the 'spawn' method";
        (void)m.backend_.release();  // its destructor would call into CUDA: leaked, on purpose
    }
}

void Manager::at_exit(void* self)
{
    Manager& m = *static_cast<Manager*>(self);
    std::unique_lock<std::recursive_mutex> lock(m.busy_, std::try_to_lock);
    if (!lock || !m.unusable_after_fork_.empty()) return;  // a thread stopped inside a call keeps its prefix
    try {
        m.close_files();
    } catch (...) {
        // At exit nothing can be reported; a file that failed keeps its complete records.
    }
}

void Manager::check_open() const
{
    if (!unusable_after_fork_.empty()) throw Error(unusable_after_fork_);
    if (!backend_) throw Error("this SimManager is closed; create a new one");
}

int64_t Manager::step(int64_t nstep, uintptr_t stream, const Poll& poll)
{
    if (nstep < 1) invalid("nstep must be >= 1, got " + std::to_string(nstep));
    if (stream && !on_gpu()) invalid("stream: only a CUDA manager runs on a CUDA stream");
    const Claim claim(*this);
    check_open();
    // A CUDA manager loops on the device, kGpuStepsPerLaunch steps to a launch; the CPU
    // steps one at a time, and so does anything recording or logging (both need the host
    // between steps).
    constexpr int64_t kGpuStepsPerLaunch = 64;
    const int64_t per_call = on_gpu() && !recorder_ && !trajectory_ && !replaying_ ? kGpuStepsPerLaunch : 1;
    auto last_poll = std::chrono::steady_clock::now();
    int64_t done = 0;
    while (done < nstep) {
        StepRequest req;
        req.stream = stream;
        req.repeat = (int32_t)(nstep - done < per_call ? nstep - done : per_call);
        step_once(req);
        done += req.repeat;
        if (done < nstep && poll) {
            const auto now = std::chrono::steady_clock::now();
            if (now - last_poll >= std::chrono::milliseconds(10)) {
                last_poll = now;
                if (!stream) backend_->synchronize();  // a stop then comes after steps that are really done
                if (!poll()) break;
            }
        }
    }
    if (!stream) backend_->synchronize();
    return done;
}

void Manager::synchronize()
{
    const Claim claim(*this);
    check_open();
    backend_->synchronize();
}

int64_t Manager::step_with_actions(const void* data, bool int64, bool refuse_done, float* obs_copy)
{
    const Claim claim(*this);
    const int64_t code = check_actions(data, int64, refuse_done);
    if (code != -1) return code;
    StepRequest req;
    req.actions = data;
    req.int64 = int64;
    req.obs_copy = obs_copy;
    step_once(req);
    backend_->synchronize();
    return -1;
}

template <class F>
void Manager::write_recording(F&& write)
{
    try {
        write();
    } catch (const Error&) {
        failed_recording_steps_ = (int64_t)recorder_->steps_kept();
        recorder_.reset();  // the file is closed; the error is raised once, here
        backend_->chain_outputs(OutputChain::Recording, false);
        throw;
    }
}

// The inputs of a step that is recorded or logged, taken once into host copies: the recorder
// writes them and the step reads them, so what is recorded is what was simulated even while
// another thread writes the tensors.
void Manager::take_inputs(StepRequest& req)
{
    const SimState& s = backend_->state();
    const size_t W = (size_t)s.num_worlds, n = W * (size_t)s.num_agents * kActionDims;
    input_reset_.resize(W);
    input_actions_.resize(n);
    if (!backend_->host_memory()) {  // CUDA: the step reads the device tensors, which these copy
        if (req.actions) backend_->set_actions(req.actions, req.int64);
        req.actions = nullptr;
        backend_->to_host(input_reset_.data(), s.reset_in, W * sizeof(int32_t));
        backend_->to_host(input_actions_.data(), s.action_in, n * sizeof(int32_t));
        return;
    }
    if (req.actions && req.int64) {
        const int64_t* a = static_cast<const int64_t*>(req.actions);
        for (size_t i = 0; i < n; ++i) input_actions_[i] = (int32_t)a[i];
    } else {
        std::memcpy(input_actions_.data(), req.actions ? req.actions : s.action_in, n * sizeof(int32_t));
    }
    // A flag is consumed by exchanging it for 0, so one written meanwhile is either taken now
    // or left for the next step, never lost or taken twice.
    for (size_t w = 0; w < W; ++w)
        input_reset_[w] = __atomic_load_n(&s.reset_in[w], __ATOMIC_RELAXED) != 0
                              ? __atomic_exchange_n(&s.reset_in[w], 0, __ATOMIC_ACQ_REL)
                              : 0;
    req.actions = input_actions_.data();
    req.int64 = false;
    req.reset_flags = input_reset_.data();
}

void Manager::checkpoint(uint64_t step)
{
    hashes_.resize((size_t)cfg_.num_worlds);
    digests_.resize((size_t)cfg_.num_worlds);
    backend_->state_hashes(hashes_.data());
    backend_->output_digests(OutputChain::Recording, digests_.data());
    recorder_->hash(step, hashes_.data(), digests_.data());
}

void Manager::step_once(StepRequest req)
{
    check_open();
    if (!recorder_ && !trajectory_) {
        backend_->step(req);
        step_count_.fetch_add((uint64_t)req.repeat, std::memory_order_relaxed);
        return;
    }
    // Writes that can fail come first: a failure then leaves the step not taken.
    if (recorder_) write_recording([&] { recorder_->prepare(); });
    if (trajectory_) {
        try {
            trajectory_->before_step();
        } catch (...) {
            trajectory_.reset();
            throw;
        }
    }
    take_inputs(req);
    if (recorder_) recorder_->step(input_reset_.data(), input_actions_.data());
    int32_t action[3] = {0, 0, 0};
    const size_t A = (size_t)cfg_.num_agents;
    const size_t traced = trajectory_ ? (size_t)trajectory_->world() * A + (size_t)trajectory_->agent() : 0;
    if (trajectory_) {  // the action as the step uses it: clamped
        const int32_t* a = input_actions_.data() + traced * kActionDims;
        action[0] = clamp_i(a[0], 0, kNumMoveAmounts - 1);
        action[1] = clamp_i(a[1], 0, kNumMoveAngles - 1);
        action[2] = clamp_i(a[2], 0, kNumRotates - 1);
    }
    backend_->step(req);  // req.repeat is 1 while recording or logging
    step_count_.fetch_add(1, std::memory_order_relaxed);
    if (recorder_ && recorder_->num_steps() % recorder_->checksum_interval() == 0) checkpoint(recorder_->num_steps());
    if (trajectory_) {
        const SimState& s = backend_->state();
        Vec2 pos;
        float yaw, progress, reward;
        int32_t done;
        backend_->to_host(&pos, s.agent_pos + traced, sizeof(pos));
        backend_->to_host(&yaw, s.agent_yaw + traced, sizeof(yaw));
        backend_->to_host(&progress, s.progress_out + traced, sizeof(progress));
        backend_->to_host(&reward, s.reward_out + traced, sizeof(reward));
        backend_->to_host(&done, s.done_out + traced, sizeof(done));
        try {
            trajectory_->write(step_count(), pos.x, pos.y, yaw, progress, reward, done, action);
        } catch (...) {  // stdout refused the line: the step happened; the log stops here and says so
            trajectory_.reset();
            throw;
        }
    }
}

void Manager::disable_trajectory_logging()
{
    const Claim claim(*this);
    std::unique_ptr<TrajectoryLog> log = std::move(trajectory_);
    if (log) log->finish();
}

void Manager::reset_worlds(const uint8_t* mask, const uint64_t* seeds)
{
    const Claim claim(*this);
    check_open();
    bool any = false;
    for (int64_t w = 0; w < cfg_.num_worlds && !any; ++w) any = mask[w] != 0;
    if (!any) return;  // nothing to reset, nothing to record
    if (recorder_) write_recording([&] { recorder_->reset(mask, seeds); });
    backend_->reset_worlds(mask, seeds);
}

void Manager::start_episodes(const uint64_t* seeds, const uint32_t* episodes)
{
    const Claim claim(*this);
    check_open();
    if (recorder_) throw Error("start_episodes() cannot run while recording");
    backend_->start_episodes(seeds, episodes);
}

std::string Manager::start_recording(const std::string& path, const std::string& config_json,
                                     int64_t checksum_interval, uint64_t created_unix_ns, const uint64_t* seed)
{
    const Claim claim(*this);
    check_open();
    if (recorder_) throw Error("already recording; call stop_recording() first");
    if (checksum_interval < 1 || checksum_interval > (int64_t)UINT32_MAX)
        invalid("checksum_interval must be between 1 and 4294967295, got " + std::to_string(checksum_interval));
    if (config_json.size() < 2 || config_json.front() != '{' || config_json.back() != '}')
        invalid("config_json must be a JSON object");
    auto recorder = std::make_unique<Recorder>(path);  // before anything changes: the path may fail
    const size_t W = (size_t)cfg_.num_worlds;
    const SimState& s = backend_->state();
    std::vector<uint64_t> seeds(W);
    std::vector<uint32_t> episodes(W);
    std::vector<int32_t> steps_left(W);
    std::vector<uint8_t> status(W);
    backend_->to_host(seeds.data(), s.seed, W * sizeof(uint64_t));
    backend_->to_host(episodes.data(), s.episode, W * sizeof(uint32_t));
    backend_->to_host(steps_left.data(), s.steps_left, W * sizeof(int32_t));
    backend_->to_host(status.data(), s.status, W);
    bool fresh = true;
    for (size_t w = 0; w < W && fresh; ++w) fresh = steps_left[w] == cfg_.episode_len && status[w] == kStatusRunning;
    const std::string start = seed ? "seed" : (fresh ? "fresh" : "reset");
    // Where each world's stream will start (SPEC §2.6: a seeded reset starts episode 0 of the
    // seed's stream, an unseeded one the next episode), so that the header is written before
    // anything changes: a file that cannot be written leaves the worlds as they were.
    std::vector<uint64_t> start_seeds = seeds;
    std::vector<uint32_t> start_episodes = episodes;
    for (size_t w = 0; w < W; ++w) {
        if (seed) start_seeds[w] = *seed + (uint64_t)w, start_episodes[w] = 0;
        else if (!fresh) start_episodes[w] = episodes[w] + 1;
    }
    std::string json = config_json.substr(0, config_json.size() - 1);
    json += config_json.size() > 2 ? ", \"world_seeds\": [" : "\"world_seeds\": [";
    for (size_t w = 0; w < W; ++w) json += (w ? ", " : "") + std::to_string(start_seeds[w]);
    json += "], \"world_episodes\": [";
    for (size_t w = 0; w < W; ++w) json += (w ? ", " : "") + std::to_string(start_episodes[w]);
    json += "], \"start\": \"" + start + "\"}";
    const ReplayHeaderInfo info{(uint32_t)kRulesVersion, (uint32_t)s.num_worlds, (uint32_t)s.num_agents,
                                (uint32_t)s.episode_len, cfg_.rand_seed,         (uint32_t)s.autoreset_mode,
                                0u,                      created_unix_ns,        (uint32_t)checksum_interval};
    recorder->begin(info, json);
    // Every world starts there, exactly as a replay's first state will (a fresh world shows its
    // episode's start again: the same state, with reward 0 and done 0 instead of the last step's).
    backend_->start_episodes(start_seeds.data(), start_episodes.data());
    backend_->chain_outputs(OutputChain::Recording, true);
    recorder_ = std::move(recorder);
    failed_recording_steps_ = -1;
    checkpoint(0);
    return start;
}

uint64_t Manager::stop_recording()
{
    const Claim claim(*this);
    if (!recorder_) {
        if (failed_recording_steps_ >= 0) {  // a write error ended it, and was raised then
            const uint64_t kept = (uint64_t)failed_recording_steps_;
            failed_recording_steps_ = -1;
            return kept;
        }
        throw Error("not recording; call start_recording() first");
    }
    const uint64_t steps = recorder_->num_steps();
    if (backend_ && recorder_->last_hash_step() != steps) checkpoint(steps);
    if (backend_) backend_->chain_outputs(OutputChain::Recording, false);
    std::unique_ptr<Recorder> recorder = std::move(recorder_);
    recorder->finish();
    return steps;
}

void Manager::enable_trajectory_logging(int32_t world, int32_t agent, const std::string& path)
{
    const Claim claim(*this);
    check_open();
    if (world < 0 || world >= cfg_.num_worlds)
        invalid("world_idx must be between 0 and " + std::to_string(cfg_.num_worlds - 1) + ", got " + std::to_string(world));
    if (agent < 0 || agent >= cfg_.num_agents)
        invalid("agent_idx must be between 0 and " + std::to_string(cfg_.num_agents - 1) + ", got " + std::to_string(agent));
    trajectory_ = std::make_unique<TrajectoryLog>(world, agent, path);
}

void Manager::state_hashes(uint64_t* out)
{
    const Claim claim(*this);
    check_open();
    backend_->state_hashes(out);
}

void Manager::output_digests(OutputChain chain, uint64_t* out)
{
    const Claim claim(*this);
    check_open();
    backend_->output_digests(chain, out);
}

void Manager::chain_outputs_for_replay(bool on)
{
    const Claim claim(*this);
    check_open();
    replaying_ = on;
    backend_->chain_outputs(OutputChain::Replay, on);
}

int64_t Manager::check_actions(const void* data, bool int64, bool refuse_done)
{
    const Claim claim(*this);
    check_open();
    return backend_->check_actions(data, int64, refuse_done);
}

int64_t Manager::set_actions(const void* data, bool int64, bool refuse_done)
{
    const Claim claim(*this);
    const int64_t code = check_actions(data, int64, refuse_done);
    if (code == -1) backend_->set_actions(data, int64);
    return code;
}

void Manager::to_host(void* dst, const void* src, size_t bytes)
{
    const Claim claim(*this);
    check_open();
    backend_->to_host(dst, src, bytes);
}

void Manager::from_host(void* dst, const void* src, size_t bytes)
{
    const Claim claim(*this);
    check_open();
    backend_->from_host(dst, src, bytes);
}

std::shared_ptr<Storage> Manager::storage() const
{
    check_open();
    return backend_->storage();
}

// Finishes the recording and the trajectory log, then reports the first that failed.
void Manager::close_files()
{
    std::exception_ptr error;
    try {
        if (recorder_) stop_recording();
    } catch (...) {
        error = std::current_exception();
    }
    try {
        disable_trajectory_logging();
    } catch (...) {
        if (!error) error = std::current_exception();
    }
    recorder_.reset();
    trajectory_.reset();
    if (error) std::rethrow_exception(error);
}

void Manager::close()
{
    if (!unusable_after_fork_.empty()) return;  // a fork child's unusable copy: nothing is safe to free
    const Claim claim(*this, "cannot close a SimManager while another thread is stepping it");
    // Free the simulation whatever happens; then report the first file that failed.
    std::exception_ptr error;
    try {
        close_files();
    } catch (...) {
        error = std::current_exception();
    }
    backend_.reset();
    if (error) std::rethrow_exception(error);
}

namespace {

int64_t worlds(const SimState& s) { return s.num_worlds; }
int64_t agents(const SimState& s) { return s.num_agents; }

// A C-order array of `shape` at `data`.
TensorDesc dense(void* data, DType dtype, std::vector<int64_t> shape)
{
    std::vector<int64_t> strides(shape.size());
    int64_t stride = 1;
    for (size_t i = shape.size(); i-- > 0;) {
        strides[i] = stride;
        stride *= shape[i];
    }
    return {data, dtype, std::move(shape), std::move(strides)};
}

// [W, A, 1]: one value per agent, with the trailing axis of the seed's tensors.
TensorDesc per_agent(const SimState& s, void* data, DType dtype)
{
    return dense(data, dtype, {worlds(s), agents(s), 1});
}

// observation[..., offset : offset + prod(tail)] (or another [W, A, D] array) shaped [W, A, *tail].
TensorDesc obs_view(const SimState& s, float* base, int64_t offset, std::vector<int64_t> tail)
{
    TensorDesc t = dense(base + offset, DType::Float32, tail);
    t.shape.insert(t.shape.begin(), {worlds(s), agents(s)});
    t.strides.insert(t.strides.begin(), {agents(s) * s.obs_dim, (int64_t)s.obs_dim});
    return t;
}

// A field of every world's LevelData, shaped [W, *tail]: the stride between worlds is the
// struct's size in elements of the field's type.
TensorDesc level_field(const SimState& s, void* field, DType dtype, std::vector<int64_t> tail)
{
    TensorDesc t = dense(field, dtype, std::move(tail));
    t.shape.insert(t.shape.begin(), worlds(s));
    t.strides.insert(t.strides.begin(), (int64_t)(sizeof(LevelData) / dtype_size(dtype)));
    return t;
}
static_assert(sizeof(LevelData) % 4 == 0, "LevelData strides are counted in 4-byte elements");

TensorDesc image(const SimState& s, void* data, DType dtype, int64_t channels)
{
    return dense(data, dtype, {worlds(s), agents(s), s.render_height, s.render_width, channels});
}

}  // namespace

size_t dtype_size(DType t)
{
    switch (t) {
    case DType::Int32: case DType::Float32: case DType::UInt32: return 4;
    case DType::UInt64: return 8;
    default: return 1;
    }
}

// The catalogue: every array a manager exports, in the order of SPEC §3, then the internal state.
const std::vector<ArraySpec>& Manager::arrays()
{
    using K = ArrayKind;
    using D = DType;
    static const std::vector<ArraySpec> table = {
        {"reset", K::Tensor, [](const SimState& s) { return dense(s.reset_in, D::Int32, {worlds(s)}); }},
        {"action", K::Tensor,
         [](const SimState& s) { return dense(s.action_in, D::Int32, {worlds(s), agents(s), kActionDims}); }},
        {"reward", K::Tensor, [](const SimState& s) { return per_agent(s, s.reward_out, D::Float32); }},
        {"done", K::Tensor, [](const SimState& s) { return per_agent(s, s.done_out, D::Int32); }},
        {"termination_reason", K::Tensor, [](const SimState& s) { return per_agent(s, s.reason_out, D::Int32); }},
        {"terminated", K::Tensor, [](const SimState& s) { return dense(s.terminated_out, D::Bool, {worlds(s), agents(s)}); }},
        {"truncated", K::Tensor, [](const SimState& s) { return dense(s.truncated_out, D::Bool, {worlds(s), agents(s)}); }},
        {"steps_remaining", K::Tensor, [](const SimState& s) { return per_agent(s, s.steps_out, D::Int32); }},
        {"progress", K::Tensor, [](const SimState& s) { return per_agent(s, s.progress_out, D::Float32); }},
        {"observation", K::Tensor, [](const SimState& s) { return obs_view(s, s.obs_out, 0, {s.obs_dim}); }},
        {"self_observation", K::Tensor, [](const SimState& s) { return obs_view(s, s.obs_out, kObsSelf, {5}); }},
        {"door_observation", K::Tensor, [](const SimState& s) { return obs_view(s, s.obs_out, kObsDoor, {3}); }},
        {"room_entity_observations", K::Tensor,
         [](const SimState& s) { return obs_view(s, s.obs_out, kObsEntities, {kEntitySlots, 3}); }},
        {"lidar", K::Tensor, [](const SimState& s) { return obs_view(s, s.obs_out, kObsLidar, {kLidarRays, 2}); }},
        {"partner_observations", K::Tensor,
         [](const SimState& s) { return obs_view(s, s.obs_out, kObsPartners, {agents(s) - 1, kObsPartnerDim}); }},
        {"final_observation", K::Tensor, [](const SimState& s) { return obs_view(s, s.final_obs_out, 0, {s.obs_dim}); }},
        {"elapsed_steps", K::Tensor, [](const SimState& s) { return per_agent(s, s.elapsed_out, D::Int32); }},
        {"doors_opened", K::Tensor, [](const SimState& s) { return per_agent(s, s.doors_out, D::Int32); }},
        {"final_progress", K::Tensor, [](const SimState& s) { return per_agent(s, s.final_progress_out, D::Float32); }},
        {"final_elapsed_steps", K::Tensor, [](const SimState& s) { return per_agent(s, s.final_elapsed_out, D::Int32); }},
        {"final_doors_opened", K::Tensor, [](const SimState& s) { return per_agent(s, s.final_doors_out, D::Int32); }},
        {"rgb", K::Image, [](const SimState& s) { return image(s, s.rgb_out, D::UInt8, 3); }},
        {"depth", K::Image, [](const SimState& s) { return image(s, s.depth_out, D::Float32, 1); }},
        {"seed", K::State, [](const SimState& s) { return dense(s.seed, D::UInt64, {worlds(s)}); }},
        {"episode", K::State, [](const SimState& s) { return dense(s.episode, D::UInt32, {worlds(s)}); }},
        {"steps_left", K::State, [](const SimState& s) { return dense(s.steps_left, D::Int32, {worlds(s)}); }},
        {"status", K::State, [](const SimState& s) { return dense(s.status, D::UInt8, {worlds(s)}); }},
        {"agent_pos", K::State, [](const SimState& s) { return dense(s.agent_pos, D::Float32, {worlds(s), agents(s), 2}); }},
        {"agent_yaw", K::State, [](const SimState& s) { return dense(s.agent_yaw, D::Float32, {worlds(s), agents(s)}); }},
        {"agent_max_y", K::State, [](const SimState& s) { return dense(s.agent_max_y, D::Float32, {worlds(s), agents(s)}); }},
        {"agent_escaped", K::State, [](const SimState& s) { return dense(s.agent_escaped, D::UInt8, {worlds(s), agents(s)}); }},
        {"cube_pos", K::State, [](const SimState& s) { return dense(s.cube_pos, D::Float32, {worlds(s), kMaxCubes, 2}); }},
        {"door_open", K::State, [](const SimState& s) { return dense(s.door_open, D::UInt8, {worlds(s), kMaxDoors}); }},
        {"level_counts", K::State, [](const SimState& s) { return level_field(s, &s.level->num_statics, D::Int32, {6}); }},
        {"level_statics", K::State, [](const SimState& s) { return level_field(s, s.level->statics, D::Float32, {kMaxStatics, 4}); }},
        {"level_static_door", K::State, [](const SimState& s) { return level_field(s, s.level->static_door, D::Int8, {kMaxStatics}); }},
        {"level_door_centre", K::State, [](const SimState& s) { return level_field(s, s.level->door_centre, D::Float32, {kMaxDoors, 2}); }},
        {"level_door_group", K::State, [](const SimState& s) { return level_field(s, s.level->door_group, D::Int8, {kMaxDoors}); }},
        {"level_momentary_groups", K::State, [](const SimState& s) { return level_field(s, &s.level->momentary_groups, D::UInt8, {}); }},
        {"level_button_pos", K::State, [](const SimState& s) { return level_field(s, s.level->button_pos, D::Float32, {kMaxButtons, 2}); }},
        {"level_button_group", K::State, [](const SimState& s) { return level_field(s, s.level->button_group, D::Int8, {kMaxButtons}); }},
        {"level_cube_start", K::State, [](const SimState& s) { return level_field(s, s.level->cube_start, D::Float32, {kMaxCubes, 2}); }},
        {"level_band_y", K::State, [](const SimState& s) { return level_field(s, s.level->band_y, D::Float32, {kMaxRooms + 1}); }},
        {"level_band_door", K::State, [](const SimState& s) { return level_field(s, s.level->band_door, D::Int8, {kMaxRooms}); }},
        {"level_exit_y", K::State, [](const SimState& s) { return level_field(s, &s.level->exit_y, D::Float32, {}); }},
        {"level_exit_target", K::State, [](const SimState& s) { return level_field(s, &s.level->exit_target, D::Float32, {2}); }},
        {"level_norm_length", K::State, [](const SimState& s) { return level_field(s, &s.level->norm_length, D::Float32, {}); }},
        {"level_exits", K::State, [](const SimState& s) { return level_field(s, s.level->exits, D::Float32, {kMaxExits, 4}); }},
        {"level_spawn", K::State, [](const SimState& s) { return level_field(s, s.level->spawn, D::Float32, {kMaxAgents, 2}); }},
        {"level_origin", K::State, [](const SimState& s) { return level_field(s, &s.level->min_x, D::Float32, {2}); }},
    };
    return table;
}

TensorDesc Manager::array(const std::string& name) const
{
    check_open();
    for (const ArraySpec& spec : arrays()) {
        if (name != spec.name) continue;
        if (spec.kind == ArrayKind::Image && !cfg_.enable_batch_renderer)
            throw Error(name + "_tensor() needs the batch renderer: pass enable_batch_renderer=True");
        return spec.view(backend_->state());
    }
    invalid("unknown array '" + name + "'");
}

}  // namespace er
