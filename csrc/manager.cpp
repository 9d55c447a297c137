#include "manager.hpp"

#include "sim/render.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <exception>
#include <new>
#include <stdexcept>

#include "lifecycle.hpp"
#include "sim/doors.hpp"
#include "sim/hash.hpp"

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
        invalid("num_worlds must be <= " + std::to_string(INT32_MAX / kMaxAgents) + ", got " +
                std::to_string(c.num_worlds));
    if (c.num_agents < 1 || c.num_agents > kMaxAgents)
        invalid("num_agents must be between 1 and " + std::to_string(kMaxAgents) + ", got " +
                std::to_string(c.num_agents));
    if (c.episode_len < 1) invalid("episode_len must be >= 1, got " + std::to_string(c.episode_len));
    if (c.autoreset_mode < kNextStep || c.autoreset_mode > kDisabled)
        invalid("autoreset_mode must be NEXT_STEP (0), SAME_STEP (1) or DISABLED (2), got " +
                std::to_string(c.autoreset_mode));
    if (c.num_threads < 1 || c.num_threads > 1024)
        invalid("num_threads must be between 1 and 1024, got " + std::to_string(c.num_threads));
    if (c.enable_batch_renderer && (c.render_width < 1 || c.render_width > kMaxRenderSize || c.render_height < 1 ||
                                    c.render_height > kMaxRenderSize))
        invalid("render_width and render_height must be between 1 and " + std::to_string(kMaxRenderSize) + ", got " +
                std::to_string(c.render_width) + " x " + std::to_string(c.render_height));
    if (c.levels.size() > 1024) invalid("levels: at most 1024 levels, got " + std::to_string(c.levels.size()));
    if (rooms.empty() || (int32_t)rooms.size() > kMaxGeneratedRooms)
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
            throw CudaUnavailable(
                "this build of escape_room_env has no CUDA backend (it was built without nvcc, or "
                "with ESCAPE_ROOM_CUDA=OFF); reinstall with nvcc on PATH, or use ExecMode.CPU");
        const int32_t n = cuda_device_count();
        if (n <= 0)
            throw CudaUnavailable(
                "ExecMode.CUDA needs an NVIDIA GPU with a working driver, and none is usable "
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
        const double r =
            std::hypot((double)c.max_x - (double)lv.min_x, (double)c.max_y - (double)lv.min_y) / (double)lv.norm_length;
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
    // Observations are written only where they are read: by the call's last step (and every
    // step while a recording, a log or a replay digests each step's outputs).
    const bool lazy = !recorder_ && !trajectory_ && !replaying_;
    auto last_poll = std::chrono::steady_clock::now();
    int64_t done = 0;
    while (done < nstep) {
        StepRequest req;
        req.stream = stream;
        req.repeat = (int32_t)(nstep - done < per_call ? nstep - done : per_call);
        if (lazy) req.observe = done + req.repeat < nstep ? Observe::None : Observe::LastStep;
        step_once(req);
        done += req.repeat;
        if (done < nstep && poll) {
            const auto now = std::chrono::steady_clock::now();
            if (now - last_poll >= std::chrono::milliseconds(10)) {
                last_poll = now;
                if (!stream) backend_->synchronize();  // a stop then comes after steps that are really done
                if (!poll()) {
                    if (lazy) backend_->write_observations();  // every tensor consistent at the stop
                    break;
                }
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

int64_t Manager::step_with_actions(const void* data, bool int64, bool flat, bool refuse_done, float* obs_copy)
{
    const Claim claim(*this);
    const int64_t code = check_actions(data, int64, flat, refuse_done);
    if (code != -1) return code;
    StepRequest req;
    req.actions = data;
    req.int64 = int64;
    req.flat = flat;
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
        if (req.actions) backend_->set_actions(req.actions, req.int64, req.flat);
        req.actions = nullptr;
        backend_->to_host(input_reset_.data(), s.reset_in, W * sizeof(int32_t));
        backend_->to_host(input_actions_.data(), s.action_in, n * sizeof(int32_t));
        return;
    }
    if (req.actions && req.flat) {  // Discrete indices: the rows they name
        const int64_t* wide = static_cast<const int64_t*>(req.actions);
        const int32_t* narrow = static_cast<const int32_t*>(req.actions);
        for (size_t i = 0; i < n / kActionDims; ++i)
            decode_flat_action(req.int64 ? wide[i] : narrow[i], &input_actions_[i * kActionDims]);
    } else if (req.actions && req.int64) {
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
    req.flat = false;
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

std::string Manager::start_recording(const std::string& path, const std::string& config_json, int64_t checksum_interval,
                                     uint64_t created_unix_ns, const uint64_t* seed)
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
        if (seed)
            start_seeds[w] = *seed + (uint64_t)w, start_episodes[w] = 0;
        else if (!fresh)
            start_episodes[w] = episodes[w] + 1;
    }
    std::string json = config_json.substr(0, config_json.size() - 1);
    json += config_json.size() > 2 ? ", \"world_seeds\": [" : "\"world_seeds\": [";
    for (size_t w = 0; w < W; ++w) json += (w ? ", " : "") + std::to_string(start_seeds[w]);
    json += "], \"world_episodes\": [";
    for (size_t w = 0; w < W; ++w) json += (w ? ", " : "") + std::to_string(start_episodes[w]);
    json += "], \"start\": \"" + start + "\"}";
    // The file's seed: the one the worlds were reseeded with, else the manager's own.
    const ReplayHeaderInfo info{(uint32_t)kRulesVersion,
                                (uint32_t)s.num_worlds,
                                (uint32_t)s.num_agents,
                                (uint32_t)s.episode_len,
                                seed ? *seed : cfg_.rand_seed,
                                (uint32_t)s.autoreset_mode,
                                0u,
                                created_unix_ns,
                                (uint32_t)checksum_interval};
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
        invalid("world_idx must be between 0 and " + std::to_string(cfg_.num_worlds - 1) + ", got " +
                std::to_string(world));
    if (agent < 0 || agent >= cfg_.num_agents)
        invalid("agent_idx must be between 0 and " + std::to_string(cfg_.num_agents - 1) + ", got " +
                std::to_string(agent));
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

void Manager::set_replay_state(const uint8_t* records, const uint64_t* chains)
{
    const Claim claim(*this);
    check_open();
    if (!replaying_) throw Error("set_replay_state() needs a replay in progress");
    std::vector<int32_t> all((size_t)cfg_.num_worlds);
    for (size_t w = 0; w < all.size(); ++w) all[w] = (int32_t)w;
    replaying_ = false;  // set_state refuses during a replay; this jump is the replay's own
    try {
        set_state(all.data(), all.size(), records);
    } catch (...) {
        replaying_ = true;
        throw;
    }
    replaying_ = true;
    backend_->set_output_chains(OutputChain::Replay, chains);
}

void Manager::chain_outputs_for_replay(bool on)
{
    const Claim claim(*this);
    check_open();
    replaying_ = on;
    backend_->chain_outputs(OutputChain::Replay, on);
}

int64_t Manager::check_actions(const void* data, bool int64, bool flat, bool refuse_done)
{
    const Claim claim(*this);
    check_open();
    return backend_->check_actions(data, int64, flat, refuse_done);
}

int64_t Manager::set_actions(const void* data, bool int64, bool flat, bool refuse_done)
{
    const Claim claim(*this);
    const int64_t code = check_actions(data, int64, flat, refuse_done);
    if (code == -1) backend_->set_actions(data, int64, flat);
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

void Manager::write_array(const std::string& name, const void* src, size_t bytes)
{
    const Claim claim(*this);
    backend_->from_host(array(name).data, src, bytes);  // array() checks that it is open
    for (const ArraySpec& spec : arrays())
        if (name == spec.name && spec.kind == ArrayKind::State) {
            backend_->write_observations();
            backend_->synchronize();
        }
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
    case DType::Int32:
    case DType::Float32:
    case DType::UInt32: return 4;
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
        {"terminated", K::Tensor,
         [](const SimState& s) { return dense(s.terminated_out, D::Bool, {worlds(s), agents(s)}); }},
        {"truncated", K::Tensor,
         [](const SimState& s) { return dense(s.truncated_out, D::Bool, {worlds(s), agents(s)}); }},
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
        {"final_observation", K::Tensor,
         [](const SimState& s) { return obs_view(s, s.final_obs_out, 0, {s.obs_dim}); }},
        {"elapsed_steps", K::Tensor, [](const SimState& s) { return per_agent(s, s.elapsed_out, D::Int32); }},
        {"doors_opened", K::Tensor, [](const SimState& s) { return per_agent(s, s.doors_out, D::Int32); }},
        {"final_progress", K::Tensor, [](const SimState& s) { return per_agent(s, s.final_progress_out, D::Float32); }},
        {"final_elapsed_steps", K::Tensor,
         [](const SimState& s) { return per_agent(s, s.final_elapsed_out, D::Int32); }},
        {"final_doors_opened", K::Tensor, [](const SimState& s) { return per_agent(s, s.final_doors_out, D::Int32); }},
        {"rgb", K::Image, [](const SimState& s) { return image(s, s.rgb_out, D::UInt8, 3); }},
        {"depth", K::Image, [](const SimState& s) { return image(s, s.depth_out, D::Float32, 1); }},
        {"seed", K::State, [](const SimState& s) { return dense(s.seed, D::UInt64, {worlds(s)}); }},
        {"episode", K::State, [](const SimState& s) { return dense(s.episode, D::UInt32, {worlds(s)}); }},
        {"steps_left", K::State, [](const SimState& s) { return dense(s.steps_left, D::Int32, {worlds(s)}); }},
        {"status", K::State, [](const SimState& s) { return dense(s.status, D::UInt8, {worlds(s)}); }},
        {"last_reason", K::State, [](const SimState& s) { return dense(s.last_reason, D::Int32, {worlds(s)}); }},
        {"level_index", K::State, [](const SimState& s) { return dense(s.level_index, D::Int32, {worlds(s)}); }},
        {"agent_pos", K::State,
         [](const SimState& s) { return dense(s.agent_pos, D::Float32, {worlds(s), agents(s), 2}); }},
        {"agent_yaw", K::State,
         [](const SimState& s) { return dense(s.agent_yaw, D::Float32, {worlds(s), agents(s)}); }},
        {"agent_max_y", K::State,
         [](const SimState& s) { return dense(s.agent_max_y, D::Float32, {worlds(s), agents(s)}); }},
        {"agent_escaped", K::State,
         [](const SimState& s) { return dense(s.agent_escaped, D::UInt8, {worlds(s), agents(s)}); }},
        {"cube_pos", K::State,
         [](const SimState& s) { return dense(s.cube_pos, D::Float32, {worlds(s), kMaxCubes, 2}); }},
        {"door_open", K::State, [](const SimState& s) { return dense(s.door_open, D::UInt8, {worlds(s), kMaxDoors}); }},
        {"level_counts", K::State,
         [](const SimState& s) { return level_field(s, &s.level->num_statics, D::Int32, {6}); }},
        {"level_statics", K::State,
         [](const SimState& s) { return level_field(s, s.level->statics, D::Float32, {kMaxStatics, 4}); }},
        {"level_static_door", K::State,
         [](const SimState& s) { return level_field(s, s.level->static_door, D::Int8, {kMaxStatics}); }},
        {"level_door_centre", K::State,
         [](const SimState& s) { return level_field(s, s.level->door_centre, D::Float32, {kMaxDoors, 2}); }},
        {"level_door_group", K::State,
         [](const SimState& s) { return level_field(s, s.level->door_group, D::Int8, {kMaxDoors}); }},
        {"level_momentary_groups", K::State,
         [](const SimState& s) { return level_field(s, &s.level->momentary_groups, D::UInt8, {}); }},
        {"level_button_pos", K::State,
         [](const SimState& s) { return level_field(s, s.level->button_pos, D::Float32, {kMaxButtons, 2}); }},
        {"level_button_group", K::State,
         [](const SimState& s) { return level_field(s, s.level->button_group, D::Int8, {kMaxButtons}); }},
        {"level_cube_start", K::State,
         [](const SimState& s) { return level_field(s, s.level->cube_start, D::Float32, {kMaxCubes, 2}); }},
        {"level_band_y", K::State,
         [](const SimState& s) { return level_field(s, s.level->band_y, D::Float32, {kMaxRooms + 1}); }},
        {"level_band_door", K::State,
         [](const SimState& s) { return level_field(s, s.level->band_door, D::Int8, {kMaxRooms}); }},
        {"level_exit_y", K::State, [](const SimState& s) { return level_field(s, &s.level->exit_y, D::Float32, {}); }},
        {"level_exit_target", K::State,
         [](const SimState& s) { return level_field(s, &s.level->exit_target, D::Float32, {2}); }},
        {"level_norm_length", K::State,
         [](const SimState& s) { return level_field(s, &s.level->norm_length, D::Float32, {}); }},
        {"level_exits", K::State,
         [](const SimState& s) { return level_field(s, s.level->exits, D::Float32, {kMaxExits, 4}); }},
        {"level_spawn", K::State,
         [](const SimState& s) { return level_field(s, s.level->spawn, D::Float32, {kMaxAgents, 2}); }},
        {"level_origin", K::State, [](const SimState& s) { return level_field(s, &s.level->min_x, D::Float32, {2}); }},
    };
    return table;
}

// -- state records (SimManager.get_state / set_state) -------------------------------------------

namespace {

// What a state record holds besides the configuration, in order: catalogue arrays, each world's
// slice of them. Everything that decides the future (the random streams are keyed by seed and
// episode, so they are in here), what the outputs showed that the state does not determine (the
// last rewards and termination reason, the SAME_STEP final_* values), and the observations the
// state shows, kept so that set_state need not trace them again (see observation_key). Then the
// record's last field, observation_key.
const char* const kStateArrays[] = {"seed",
                                    "episode",
                                    "steps_left",
                                    "status",
                                    "last_reason",
                                    "level_index",
                                    "door_open",
                                    "cube_pos",
                                    "agent_pos",
                                    "agent_yaw",
                                    "agent_max_y",
                                    "agent_escaped",
                                    "reward",
                                    "termination_reason",
                                    "final_observation",
                                    "final_progress",
                                    "final_elapsed_steps",
                                    "final_doors_opened",
                                    "observation"};
constexpr size_t kStateArrayCount = sizeof(kStateArrays) / sizeof(kStateArrays[0]);
constexpr const char* kFirstKeyedArray = "seed";          // the fields an observation is computed from:
constexpr const char* kLastKeyedArray = "agent_escaped";  // seed ... agent_escaped, one byte range

// A 64-bit digest of a record's fields in the 8-byte words [p, p + 8 * mask.size()), each word
// ANDed with its mask (the padding between fields masked out: numpy's copies of records need
// not keep it; mask.size() a multiple of 8): eight interleaved lanes, each taking its
// little-endian words in xxHash64's round, lane = rotl(lane + word * P2, 31) * P1 (the rotation
// carries a word's top bits into the next multiply, so changes in two words of a lane do not
// cancel), then the lanes merged as xxHash64 merges them: rotated sums and an avalanche. Not
// cryptographic: it tells whether a record's state fields are still the ones its observations
// were taken from.
uint64_t observation_key(const uint8_t* p, const std::vector<uint64_t>& mask)
{
    constexpr uint64_t kP1 = 0x9e3779b185ebca87ULL, kP2 = 0xc2b2ae3d27d4eb4fULL;
    constexpr int kLanes = 8;
    const size_t n = 8 * mask.size();
    uint64_t lane[kLanes];
    for (int j = 0; j < kLanes; ++j) lane[j] = kP1 * (uint64_t)(j + 1);
    for (size_t i = 0; i < n; i += 8 * kLanes)
        for (int j = 0; j < kLanes; ++j) {
            uint64_t w;
            std::memcpy(&w, p + i + 8 * j, 8);
            const uint64_t x = lane[j] + (w & mask[i / 8 + j]) * kP2;
            lane[j] = ((x << 31) | (x >> 33)) * kP1;
        }
    uint64_t h = (uint64_t)n;  // the lanes summed, each rotated its own way, then one avalanche
    for (int j = 0; j < kLanes; ++j) h += (lane[j] << (7 * j + 1)) | (lane[j] >> (63 - 7 * j));
    h = (h ^ (h >> 33)) * kP2;
    h = (h ^ (h >> 29)) * kP1;
    return h ^ (h >> 32);
}

// A world's slice of an array: the bytes of element [w] of a C-contiguous [W, ...] view.
size_t world_bytes(const TensorDesc& d)
{
    size_t n = dtype_size(d.dtype);
    for (size_t i = 1; i < d.shape.size(); ++i) n *= (size_t)d.shape[i];
    return n;
}

uint64_t levels_digest(const std::vector<LevelSource>& levels)
{
    Fnv1a f;
    for (const LevelSource& lv : levels) {
        for (char c : lv.ascii) f.bytes((uint8_t)c, 1);
        f.bytes(0, 1);
        for (int32_t g : lv.momentary) f.bytes((uint32_t)g, 4);
        f.f32(lv.cell_size);
    }
    return levels.empty() ? 0 : f.h;
}

}  // namespace

// The record: a header naming the configuration it belongs to, then the state arrays' slices,
// each field at its natural alignment.
std::vector<StateField> Manager::state_layout() const
{
    std::vector<StateField> fields;
    size_t offset = 0;
    auto add = [&](const std::string& name, DType dtype, std::vector<int64_t> shape) {
        size_t bytes = dtype_size(dtype);
        for (int64_t n : shape) bytes *= (size_t)n;
        offset = (offset + dtype_size(dtype) - 1) / dtype_size(dtype) * dtype_size(dtype);
        fields.push_back({name, dtype, std::move(shape), offset, bytes});
        offset += bytes;
    };
    add("state_version", DType::UInt32, {});
    add("rules_version", DType::UInt32, {});
    add("num_agents", DType::Int32, {});
    add("episode_len", DType::Int32, {});
    add("autoreset_mode", DType::Int32, {});
    add("render_size", DType::Int32, {2});
    add("rooms", DType::Int32, {kMaxGeneratedRooms});
    add("reward_config", DType::Float32, {5});
    add("levels_digest", DType::UInt64, {});
    for (const char* name : kStateArrays) {
        const TensorDesc d = array(name);
        add(name, d.dtype, std::vector<int64_t>(d.shape.begin() + 1, d.shape.end()));
    }
    add("observation_key", DType::UInt64, {});
    return fields;
}

size_t Manager::state_record_bytes() const
{
    const std::vector<StateField> fields = state_layout();
    size_t end = fields.back().offset + fields.back().bytes;
    return (end + 7) / 8 * 8;
}

// The configuration header of this manager's records.
std::vector<uint8_t> Manager::state_header() const
{
    const std::vector<StateField> fields = state_layout();
    const StateField& last = fields[kStateHeaderFields - 1];
    std::vector<uint8_t> header(last.offset + last.bytes, 0);
    auto put = [&](size_t field, const void* value) {
        std::memcpy(header.data() + fields[field].offset, value, fields[field].bytes);
    };
    const uint32_t version = kStateVersion, rules = kRulesVersion;
    const int32_t agents = cfg_.num_agents, len = cfg_.episode_len, mode = cfg_.autoreset_mode;
    const int32_t size[2] = {cfg_.enable_batch_renderer ? cfg_.render_height : 0,
                             cfg_.enable_batch_renderer ? cfg_.render_width : 0};
    int32_t rooms[kMaxGeneratedRooms] = {-1, -1, -1, -1};
    if (cfg_.levels.empty())
        for (size_t k = 0; k < cfg_.rooms->size(); ++k) rooms[k] = (*cfg_.rooms)[k];
    const RewardConfig& r = cfg_.reward;
    const float reward[5] = {r.progress_scale, r.slack_penalty, r.group_bonus, r.group_radius, r.escape_bonus};
    const uint64_t levels = levels_digest(cfg_.levels);
    const void* values[kStateHeaderFields] = {&version, &rules, &agents, &len, &mode, size, rooms, reward, &levels};
    for (size_t f = 0; f < kStateHeaderFields; ++f) put(f, values[f]);
    return header;
}

void Manager::pressed_buttons(uint16_t* out)
{
    const Claim claim(*this);
    check_open();
    static_assert(kMaxButtons <= 16, "a uint16_t mask per world");
    const SimState& s = backend_->state();
    const size_t W = (size_t)cfg_.num_worlds, A = (size_t)cfg_.num_agents;
    std::vector<Vec2> agents, cubes;
    std::vector<LevelData> levels;
    const Vec2* agent_pos = s.agent_pos;
    const Vec2* cube_pos = s.cube_pos;
    const LevelData* level = s.level;
    if (!backend_->host_memory()) {
        agents.resize(W * A), cubes.resize(W * kMaxCubes), levels.resize(W);
        backend_->to_host(agents.data(), s.agent_pos, agents.size() * sizeof(Vec2));
        backend_->to_host(cubes.data(), s.cube_pos, cubes.size() * sizeof(Vec2));
        backend_->to_host(levels.data(), s.level, levels.size() * sizeof(LevelData));
        agent_pos = agents.data(), cube_pos = cubes.data(), level = levels.data();
    }
    for (size_t w = 0; w < W; ++w) {
        const LevelData& lv = level[w];
        uint16_t mask = 0;
        for (int32_t k = 0; k < lv.num_buttons; ++k)
            if (button_pressed(lv.button_pos[k], agent_pos + w * A, (int32_t)A, cube_pos + w * kMaxCubes, lv.num_cubes))
                mask |= (uint16_t)(1u << k);
        out[w] = mask;
    }
}

void Manager::check_worlds(const int32_t* worlds, size_t n) const
{
    for (size_t i = 0; i < n; ++i)
        if (worlds[i] < 0 || worlds[i] >= cfg_.num_worlds)
            invalid("worlds[" + std::to_string(i) + "] is " + std::to_string(worlds[i]) +
                    ", not a world of this manager (0 to " + std::to_string(cfg_.num_worlds - 1) + ")");
}

// Where each state field of a record lives in memory: its array's base (host memory, or a host
// copy of a device array) and the bytes of one world's slice.
struct Manager::StateArrays {
    std::vector<StateField> fields;
    std::vector<uint8_t*> base;
    std::vector<size_t> slice;
    std::vector<std::vector<uint8_t>> staging;  // device backends: host copies of the arrays
    // What observation_key digests: the fields seed ... agent_escaped, in the 8-byte words from
    // key_begin, a mask per word with the fields' bytes set; and where the key lies.
    size_t key_begin = 0, key_at = 0;
    std::vector<uint64_t> key_mask;
    std::vector<size_t> padding;  // the 8-byte words of a record that hold bytes between fields
};

// What a record's field may hold: floats finite, counters and flags within [lo, hi]; seed,
// episode, level_index and observation_key are not checked here (any seed, episode and key;
// set_state checks the level).
struct ValueRule {
    const StateField* field;
    size_t offset, count;  // where the field's values lie in a record, and how many
    int32_t lo, hi;        // the range of an integer field (a float field must be finite)
};

static std::vector<ValueRule> value_rules(const std::vector<StateField>& fields, int32_t episode_len)
{
    std::vector<ValueRule> rules;
    for (size_t f = kStateHeaderFields; f < fields.size(); ++f) {
        const std::string& n = fields[f].name;
        int32_t lo = 0, hi = 0;
        if (n == "seed" || n == "episode" || n == "level_index" || n == "observation_key") continue;
        if (n == "steps_left" || n == "final_elapsed_steps")
            hi = episode_len;
        else if (n == "status")
            hi = kStatusFrozen;
        else if (n == "last_reason" || n == "termination_reason")
            lo = kRunning, hi = kEscaped;
        else if (n == "door_open" || n == "agent_escaped")
            hi = 1;
        else if (n == "final_doors_opened")
            hi = kMaxDoors;
        rules.push_back({&fields[f], fields[f].offset, fields[f].bytes / dtype_size(fields[f].dtype), lo, hi});
    }
    return rules;
}

// The rules as set_state's check on the worker threads applies them: every float of a record
// tested in one pass over its 4-byte words (float_bits: the exponent mask at a float's word, 0
// elsewhere), then the integer rules one by one; bad_state_value names the value a rule refuses.
struct RecordCheck {
    std::vector<uint32_t> float_bits;
    std::vector<ValueRule> integer_rules;
};

static RecordCheck record_check(const std::vector<ValueRule>& rules, size_t record_bytes)
{
    RecordCheck c;
    c.float_bits.assign(record_bytes / 4, 0);
    for (const ValueRule& r : rules) {
        if (r.field->dtype != DType::Float32) {
            c.integer_rules.push_back(r);
            continue;
        }
        for (size_t k = 0; k < r.count; ++k) c.float_bits[r.offset / 4 + k] = 0x7f800000u;
    }
    return c;
}

// Whether a value may stand in a state record: a float finite, an integer within its rule's range.
template <class T>
static inline bool allowed(T v, const ValueRule& r)
{
    if constexpr (std::is_same_v<T, float>) {
        uint32_t bits;  // finite: not all exponent bits set (the test vectorises, std::isfinite does not)
        std::memcpy(&bits, &v, 4);
        return (bits & 0x7f800000u) != 0x7f800000u;
    } else
        return (int32_t)v >= r.lo && (int32_t)v <= r.hi;
}

template <class T>
static inline T value_at(const uint8_t* p, size_t k)
{
    T v;
    std::memcpy(&v, p + sizeof(T) * k, sizeof(T));
    return v;
}

// The index of the first value of rule `r` in `rec` that is not allowed, or r.count: a
// branch-free pass (it vectorises), then a search only in a record that holds a bad value.
template <class T>
static size_t first_bad_value(const ValueRule& r, const uint8_t* rec)
{
    const uint8_t* p = rec + r.offset;
    uint32_t any = 0;
    for (size_t k = 0; k < r.count; ++k) any |= (uint32_t)!allowed(value_at<T>(p, k), r);
    if (!any) return r.count;
    size_t k = 0;
    while (allowed(value_at<T>(p, k), r)) ++k;
    return k;
}

static size_t first_bad_value(const ValueRule& r, const uint8_t* rec)
{
    switch (r.field->dtype) {
    case DType::Float32: return first_bad_value<float>(r, rec);
    case DType::Int32: return first_bad_value<int32_t>(r, rec);
    case DType::Int8: return first_bad_value<int8_t>(r, rec);
    case DType::UInt8:
    case DType::Bool: return first_bad_value<uint8_t>(r, rec);
    default: return r.count;  // not range-checked
    }
}

// Whether every value of `rec` is one its rule allows: no float with every exponent bit set
// (inf or nan; a branch-free pass that vectorises), every integer in its range.
static bool state_values_ok(const RecordCheck& c, const uint8_t* rec)
{
    uint32_t bad = 0;
    for (size_t k = 0; k < c.float_bits.size(); ++k) {
        uint32_t word;
        std::memcpy(&word, rec + 4 * k, 4);
        bad |= (uint32_t)((word & c.float_bits[k]) == 0x7f800000u);
    }
    bool ok = bad == 0;
    for (const ValueRule& r : c.integer_rules) ok &= first_bad_value(r, rec) == r.count;
    return ok;
}

static std::string expected(const ValueRule& r)
{
    return " (expected " + std::to_string(r.lo) + ".." + std::to_string(r.hi) + ")";
}

// The first value of `rec` a rule refuses, described ("" when every value is one a world can hold).
static std::string bad_state_value(const std::vector<ValueRule>& rules, const uint8_t* rec)
{
    for (const ValueRule& r : rules) {
        const size_t k = first_bad_value(r, rec);
        if (k == r.count) continue;
        const uint8_t* p = rec + r.offset;
        const std::string& name = r.field->name;
        switch (r.field->dtype) {
        case DType::Float32: return name + " holds " + std::to_string(value_at<float>(p, k)) + " (it must be finite)";
        case DType::Int32: return name + " holds " + std::to_string(value_at<int32_t>(p, k)) + expected(r);
        case DType::Int8: return name + " holds " + std::to_string(value_at<int8_t>(p, k)) + expected(r);
        default: return name + " holds " + std::to_string(value_at<uint8_t>(p, k)) + expected(r);
        }
    }
    return "";
}

// A state field's bytes, most of them 1, 4 or 8: copied and compared inline, not by a libc call
// per field (get_state and set_state do one per field and world).
static inline void copy_field(uint8_t* dst, const uint8_t* src, size_t n)
{
    switch (n) {
    case 1: *dst = *src; break;
    case 4: std::memcpy(dst, src, 4); break;
    case 8: std::memcpy(dst, src, 8); break;
    default: std::memcpy(dst, src, n);
    }
}

static inline bool same_field(const uint8_t* a, const uint8_t* b, size_t n)
{
    switch (n) {
    case 4: return std::memcmp(a, b, 4) == 0;
    case 8: return std::memcmp(a, b, 8) == 0;
    default: return std::memcmp(a, b, n) == 0;
    }
}

Manager::StateArrays Manager::state_arrays(bool download)
{
    StateArrays a;
    a.fields = state_layout();
    for (size_t f = kStateHeaderFields; f < kStateHeaderFields + kStateArrayCount; ++f) {
        const TensorDesc d = array(a.fields[f].name);
        const size_t slice = world_bytes(d);
        uint8_t* base = static_cast<uint8_t*>(d.data);
        if (!backend_->host_memory()) {
            a.staging.emplace_back(slice * (size_t)cfg_.num_worlds);
            if (download) backend_->to_host(a.staging.back().data(), d.data, a.staging.back().size());
            base = a.staging.back().data();
        }
        a.base.push_back(base);
        a.slice.push_back(slice);
    }
    size_t end = 0;                           // of the fields so far
    const auto pad_to = [&](size_t offset) {  // the words holding bytes in [end, offset)
        if (end >= offset) return;            // adjacent fields: no bytes between them
        for (size_t word = end / 8 * 8; word < offset; word += 8)
            if (a.padding.empty() || a.padding.back() != word) a.padding.push_back(word);
    };
    std::vector<uint8_t> keyed;  // per byte from key_begin: 0xff where a keyed field lies
    bool in_keyed = false;
    for (const StateField& f : a.fields) {
        pad_to(f.offset);
        end = f.offset + f.bytes;
        if (f.name == "observation_key") a.key_at = f.offset;
        if (f.name == kFirstKeyedArray) in_keyed = true, a.key_begin = f.offset;
        if (in_keyed) {
            keyed.resize(f.offset + f.bytes - a.key_begin, 0);
            std::fill(keyed.begin() + (ptrdiff_t)(f.offset - a.key_begin), keyed.end(), (uint8_t)0xff);
        }
        if (f.name == kLastKeyedArray) in_keyed = false;
    }
    // Whole blocks of 8 words (observation_key's lanes), zero past the fields: they lie in the
    // record all the same (the observations follow).
    keyed.resize((keyed.size() + 63) / 64 * 64, 0);
    if (a.key_begin + keyed.size() > state_record_bytes()) throw Error("state layout: the observation key overruns");
    a.key_mask.resize(keyed.size() / 8);
    std::memcpy(a.key_mask.data(), keyed.data(), keyed.size());
    pad_to(state_record_bytes());
    return a;
}

void Manager::get_state(const int32_t* worlds, size_t n, uint8_t* out)
{
    const Claim claim(*this);
    check_open();
    check_worlds(worlds, n);
    const StateArrays arrays = state_arrays(true);
    const std::vector<uint8_t> header = state_header();
    struct Job {
        const StateArrays* a;
        const std::vector<uint8_t>* header;
        const int32_t* worlds;
        uint8_t* out;
        size_t record;
    } job{&arrays, &header, worlds, out, state_record_bytes()};
    backend_->parallel_for((int64_t)n,
                           [](void* ctx, int64_t begin, int64_t end) {
                               const Job& j = *static_cast<Job*>(ctx);
                               // Eight records filled, then their keys digested: a record's key read
                               // right after its fields were written would wait for those stores.
                               constexpr int64_t kBatch = 8;
                               for (int64_t first = begin; first < end; first += kBatch) {
                                   const int64_t last = first + kBatch < end ? first + kBatch : end;
                                   for (int64_t i = first; i < last; ++i) {
                                       uint8_t* rec = j.out + (size_t)i * j.record;
                                       constexpr uint64_t kZero = 0;     // padding first, then the fields over it
                                       for (size_t word : j.a->padding)  // equal states, equal bytes
                                           std::memcpy(rec + word, &kZero, 8);
                                       std::memcpy(rec, j.header->data(), j.header->size());
                                       for (size_t f = 0; f < j.a->base.size(); ++f)
                                           copy_field(rec + j.a->fields[kStateHeaderFields + f].offset,
                                                      j.a->base[f] + (size_t)j.worlds[i] * j.a->slice[f],
                                                      j.a->slice[f]);
                                   }
                                   for (int64_t i = first; i < last; ++i) {
                                       uint8_t* rec = j.out + (size_t)i * j.record;
                                       const uint64_t key = observation_key(rec + j.a->key_begin, j.a->key_mask);
                                       std::memcpy(rec + j.a->key_at, &key, 8);
                                   }
                               }
                           },
                           &job);
}

void Manager::set_state(const int32_t* worlds, size_t n, const uint8_t* in)
{
    const Claim claim(*this);
    check_open();
    if (recorder_)
        throw Error("set_state() cannot run while recording: a recording cannot hold a jump; stop_recording() first");
    if (replaying_)
        throw Error("set_state() cannot run while replaying a file: the replay's checkpoints would no longer hold");
    check_worlds(worlds, n);
    const size_t W = (size_t)cfg_.num_worlds, record = state_record_bytes();
    std::vector<uint8_t> mask(W, 0);
    for (size_t i = 0; i < n; ++i) {
        if (mask[(size_t)worlds[i]]) invalid("worlds lists world " + std::to_string(worlds[i]) + " twice");
        mask[(size_t)worlds[i]] = 1;
    }
    StateArrays arrays = state_arrays(!backend_->host_memory());
    const std::vector<StateField>& fields = arrays.fields;
    const std::vector<uint8_t> header = state_header();
    const std::vector<ValueRule> rules = value_rules(fields, cfg_.episode_len);
    const RecordCheck fast = record_check(rules, record);
    // Every record is of this configuration and plays a level of this manager, with values a
    // world can hold: checked on the worker threads, then the first bad record named here.
    const size_t level_field = kStateHeaderFields + 5, seed_field = kStateHeaderFields,
                 episode_field = kStateHeaderFields + 1;
    const auto problem = [&](const uint8_t* rec) -> std::string {
        if (std::memcmp(rec, header.data(), header.size()) != 0)
            for (size_t f = 0; f < kStateHeaderFields; ++f)
                if (std::memcmp(rec + fields[f].offset, header.data() + fields[f].offset, fields[f].bytes) != 0)
                    return std::string("belongs to another configuration: its ") + fields[f].name +
                           " differs from this manager's (a state moves only between managers of the same rules, "
                           "agents, episode length, reset mode, renderer size, rooms, reward and levels)";
        int32_t level;
        std::memcpy(&level, rec + fields[level_field].offset, 4);
        if (cfg_.levels.empty() ? level != -1 : (level < 0 || level >= (int32_t)cfg_.levels.size()))
            return ": level_index " + std::to_string(level) + " is not a level of this manager";
        if (state_values_ok(fast, rec)) return "";
        return ": " + bad_state_value(rules, rec) + ": not a state a world can be in";
    };
    struct Check {
        const decltype(problem)* describe;
        const uint8_t* in;
        size_t record;
        uint8_t* bad;
    };
    std::vector<uint8_t> bad(n, 0);
    Check check{&problem, in, record, bad.data()};
    backend_->parallel_for((int64_t)n,
                           [](void* ctx, int64_t begin, int64_t end) {
                               const Check& c = *static_cast<const Check*>(ctx);
                               for (int64_t i = begin; i < end; ++i)
                                   c.bad[i] = !(*c.describe)(c.in + (size_t)i * c.record).empty();
                           },
                           &check);
    for (size_t i = 0; i < n; ++i)
        if (bad[i]) {
            const std::string why = problem(in + i * record);
            invalid("states[" + std::to_string(i) + "]" + (why[0] == ':' ? "" : " ") + why);
        }
    struct Job {
        StateArrays* a;
        const int32_t* worlds;
        const uint8_t* in;
        size_t record;
        uint8_t* mask;
        size_t seed_field, episode_field, level_field;
    } job{&arrays, worlds, in, record, mask.data(), seed_field, episode_field, level_field};
    backend_->parallel_for(
        (int64_t)n,
        [](void* ctx, int64_t begin, int64_t end) {
            Job& j = *static_cast<Job*>(ctx);
            const std::vector<StateField>& fields = j.a->fields;
            for (int64_t i = begin; i < end; ++i) {
                const size_t w = (size_t)j.worlds[i];
                const uint8_t* rec = j.in + (size_t)i * j.record;
                // The level is a function of (seed, episode) or of level_index: a world that already
                // plays the record's keeps its level (a planner restoring the same episode again).
                bool same_level = true;
                for (size_t f : {j.seed_field, j.episode_field, j.level_field}) {
                    const size_t k = f - kStateHeaderFields;
                    same_level = same_level &&
                                 same_field(j.a->base[k] + w * j.a->slice[k], rec + fields[f].offset, j.a->slice[k]);
                }
                // The record's observations are shown as they are when its state fields are
                // still those they were taken from; an edited record's are traced afresh.
                uint64_t key;
                std::memcpy(&key, rec + j.a->key_at, 8);
                const bool observed = key == observation_key(rec + j.a->key_begin, j.a->key_mask);
                j.mask[w] = kRestoreWorld | (same_level ? 0 : kRestoreLevel) | (observed ? 0 : kRestoreObservations);
                for (size_t k = 0; k < j.a->base.size(); ++k)
                    copy_field(j.a->base[k] + w * j.a->slice[k], rec + fields[kStateHeaderFields + k].offset,
                               j.a->slice[k]);
            }
        },
        &job);
    if (!backend_->host_memory())
        for (size_t k = 0; k < arrays.base.size(); ++k)
            backend_->from_host(array(fields[kStateHeaderFields + k].name).data, arrays.staging[k].data(),
                                arrays.staging[k].size());
    backend_->restore_worlds(mask.data());
}

// Whether every value of a rollout's actions [B, T, A, 3] is in range: first_bad_action over
// each thread's worlds (their rows are contiguous), on the backend's threads.
bool Manager::actions_in_range(const int32_t* actions, size_t T)
{
    const size_t B = (size_t)cfg_.num_worlds, rows = T * (size_t)cfg_.num_agents;
    std::vector<uint8_t> bad(B, 0);
    struct Plan {
        const int32_t* in;
        size_t rows;  // a world's
        uint8_t* bad;
    } plan{actions, rows, bad.data()};
    backend_->parallel_for((int64_t)B,
                           [](void* ctx, int64_t begin, int64_t end) {
                               const Plan& p = *static_cast<const Plan*>(ctx);
                               p.bad[begin] = first_bad_action(p.in + (size_t)begin * p.rows * kActionDims,
                                                               (int64_t)((size_t)(end - begin) * p.rows)) >= 0;
                           },
                           &plan);
    for (uint8_t b : bad)
        if (b) return false;
    return true;
}

int64_t Manager::rollout(const RolloutIO& io, const Poll& poll)
{
    const Claim claim(*this);
    check_open();
    if (!backend_->host_memory()) throw Error("rollout runs on a CPU manager");
    if (recorder_ || trajectory_ || replaying_)
        throw Error("rollout() cannot run while recording, logging or replaying");
    const size_t B = (size_t)cfg_.num_worlds, A = (size_t)cfg_.num_agents, D = (size_t)obs_dim();
    const size_t T = (size_t)io.steps, record = state_record_bytes();
    if (!actions_in_range(io.actions, T)) return -1;
    std::vector<int32_t> all(B);
    for (size_t b = 0; b < B; ++b) all[b] = (int32_t)b;
    set_state(all.data(), B, io.states);
    auto last_poll = std::chrono::steady_clock::now();
    size_t t = 0;
    for (; t < T; ++t) {
        // The observation tensor shows the steps whose state is taken (its records keep the
        // observations); the other steps write theirs straight into the result, or none.
        const bool shown = io.every_state || t + 1 == T;
        float* obs = io.observation ? io.observation + t * B * A * D : nullptr;
        StepRequest req;
        req.actions = io.actions + t * A * kActionDims;  // world b's rows: b * T * A * 3 further on
        req.action_stride = T * A * kActionDims;
        req.obs_copy = shown ? obs : nullptr;
        req.obs_into = shown ? nullptr : obs;
        req.observe = shown ? Observe::EveryStep : Observe::None;
        req.reward_copy = io.reward + t * B * A;
        req.done_copy = io.done + t * B * A;
        step_once(req);
        if (io.every_state) get_state(all.data(), B, io.states_out + t * B * record);
        const auto now = std::chrono::steady_clock::now();
        if (poll && t + 1 < T && now - last_poll >= std::chrono::milliseconds(10)) {
            last_poll = now;
            if (!poll()) {
                ++t;
                if (!shown) backend_->write_observations();  // the state taken below keeps them
                break;
            }
        }
    }
    if (!io.every_state) get_state(all.data(), B, io.states_out);
    return (int64_t)t;
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
