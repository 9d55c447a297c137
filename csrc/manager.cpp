#include "manager.hpp"

#include "sim/render.hpp"

#include <unistd.h>

#include <cstring>
#include <exception>
#include <stdexcept>

namespace er {

namespace {

const char* const kRoomNames[kNumRoomTypes] = {"button", "double_button", "cube_blocking", "cube_button"};

[[noreturn]] void invalid(const std::string& msg) { throw std::invalid_argument(msg); }

void validate(const Config& c)
{
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
    if (c.rooms.empty() || (int32_t)c.rooms.size() > 4)
        invalid("rooms must list 1 to 4 room types, got " + std::to_string(c.rooms.size()));
    for (size_t k = 0; k < c.rooms.size(); ++k) {
        const int32_t t = c.rooms[k];
        if (t < 0 || t >= kNumRoomTypes)
            invalid("rooms[" + std::to_string(k) + "]: unknown room type " + std::to_string(t) +
                    "; expected one of button, double_button, cube_blocking, cube_button");
        if (t == kRoomDoubleButton && c.num_agents < 2)
            invalid("rooms[" + std::to_string(k) + "] is 'double_button', which needs num_agents >= 2 (got " +
                    std::to_string(c.num_agents) + ")");
    }
    const RewardConfig& r = c.reward;
    for (float v : {r.progress_scale, r.slack_penalty, r.group_bonus, r.group_radius, r.escape_bonus})
        if (!(v == v) || v > 3.0e38f || v < -3.0e38f) invalid("reward config values must be finite");
}

SimState make_config(const Config& c)
{
    SimState s{};
    s.num_worlds = (int32_t)c.num_worlds;
    s.num_agents = c.num_agents;
    s.obs_dim = obs_dim(c.num_agents);
    s.episode_len = c.episode_len;
    s.autoreset_mode = c.autoreset_mode;
    s.num_rooms = (int32_t)c.rooms.size();
    for (int32_t k = 0; k < s.num_rooms; ++k) s.room_types[k] = c.rooms[k];
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

std::vector<int32_t> default_rooms(int32_t num_agents)
{
    if (num_agents >= 2) return {kRoomDoubleButton, kRoomCubeBlocking, kRoomCubeButton};
    return {kRoomButton, kRoomCubeBlocking, kRoomCubeButton};
}

Manager::Manager(const Config& cfg) : cfg_(cfg)
{
    if (cfg_.rooms.empty()) cfg_.rooms = default_rooms(cfg_.num_agents);
    validate(cfg_);
    if (cfg_.exec_mode == ExecMode::CUDA) {
        if (!cuda_built())
            throw CudaUnavailable("this build of escape_room_env has no CUDA backend (it was built without nvcc, or "
                                  "with ESCAPE_ROOM_CUDA=OFF); reinstall with nvcc on PATH, or use ExecMode.CPU");
        const int32_t n = cuda_device_count();
        if (n <= 0)
            throw CudaUnavailable("ExecMode.CUDA needs an NVIDIA GPU with a working driver, and none was found "
                                  "(escape_room_env.cuda_available() is False); use ExecMode.CPU");
        if (cfg_.gpu_id < 0 || cfg_.gpu_id >= n)
            invalid("gpu_id must be between 0 and " + std::to_string(n - 1) + ", got " + std::to_string(cfg_.gpu_id));
    }
    std::vector<LevelData> levels;
    for (const LevelSource& src : cfg_.levels) levels.push_back(compile_level(src, cfg_.num_agents).data);
    SimState sc = make_config(cfg_);
    sc.num_fixed_levels = (int32_t)levels.size();
    if (cfg_.exec_mode == ExecMode::CUDA) {
        backend_ = make_cuda_backend(sc, levels.data(), cfg_.rand_seed, cfg_.gpu_id);  // checks GPU memory
    } else {
        check_memory(state_bytes(sc), cfg_.num_worlds);
        backend_ = make_cpu_backend(sc, levels.data(), cfg_.rand_seed, cfg_.num_threads);
    }
}

Manager::~Manager()
{
    try {
        close();  // finishes a recording in progress
    } catch (...) {
        // Nothing can be reported from a destructor; the file keeps its readable prefix.
    }
}

void Manager::check_open() const
{
    if (!backend_) throw Error("this SimManager is closed; create a new one");
}

void Manager::step(uintptr_t stream, int32_t repeat)
{
    StepRequest req;
    req.stream = stream;
    if (recorder_ || trajectory_) {  // both need the host between steps
        for (int32_t i = 0; i < repeat; ++i) step_from(req);
        return;
    }
    req.repeat = repeat;
    step_from(req);
}

void Manager::synchronize()
{
    check_open();
    backend_->synchronize();
}

int64_t Manager::step_with_actions(const void* data, bool int64, bool refuse_done, float* obs_copy)
{
    const int64_t code = check_actions(data, int64, refuse_done);
    if (code != -1) return code;
    StepRequest req;
    req.actions = data;
    req.int64 = int64;
    req.obs_copy = obs_copy;
    step_from(req);
    return -1;
}

template <class T>
const T* Manager::host_view(const T* src, size_t count, std::vector<T>& scratch)
{
    if (backend_->host_memory()) return src;
    scratch.resize(count);
    backend_->to_host(scratch.data(), src, count * sizeof(T));
    return scratch.data();
}

void Manager::step_from(StepRequest req)
{
    check_open();
    const SimState& s = backend_->state();
    if (req.actions && (recorder_ || trajectory_)) {  // both read the actions before the step
        backend_->set_actions(req.actions, req.int64);
        req.actions = nullptr;
    }
    const size_t W = (size_t)s.num_worlds, A = (size_t)s.num_agents;
    if (recorder_)
        recorder_->step(host_view(s.reset_in, W, host_reset_), host_view(s.action_in, W * A * kActionDims, host_actions_));
    int32_t action[3] = {0, 0, 0};
    const size_t traced = trajectory_ ? (size_t)trajectory_->world() * A + (size_t)trajectory_->agent() : 0;
    if (trajectory_) {  // the action as the step will use it: clamped
        std::vector<int32_t> row;
        const int32_t* a = host_view(s.action_in + traced * kActionDims, kActionDims, row);
        action[0] = clamp_i(a[0], 0, kNumMoveAmounts - 1);
        action[1] = clamp_i(a[1], 0, kNumMoveAngles - 1);
        action[2] = clamp_i(a[2], 0, kNumRotates - 1);
    }
    backend_->step(req);  // req.repeat is 1 while recording or logging
    step_count_ += (uint64_t)req.repeat;
    if (recorder_ && recorder_->num_steps() % recorder_->checksum_interval() == 0) {
        backend_->state_hashes(hashes_.data());
        recorder_->hash(recorder_->num_steps(), hashes_.data());
    }
    if (trajectory_) {
        Vec2 pos;
        float yaw, progress, reward;
        int32_t done;
        backend_->to_host(&pos, s.agent_pos + traced, sizeof(pos));
        backend_->to_host(&yaw, s.agent_yaw + traced, sizeof(yaw));
        backend_->to_host(&progress, s.progress_out + traced, sizeof(progress));
        backend_->to_host(&reward, s.reward_out + traced, sizeof(reward));
        backend_->to_host(&done, s.done_out + traced, sizeof(done));
        try {
            trajectory_->write(step_count_, pos.x, pos.y, yaw, progress, reward, done, action);
        } catch (...) {  // the step happened; the log stops here and says so
            trajectory_.reset();
            throw;
        }
    }
}

void Manager::disable_trajectory_logging()
{
    std::unique_ptr<TrajectoryLog> log = std::move(trajectory_);
    if (log) log->finish();
}

void Manager::reset_worlds(const uint8_t* mask, const uint64_t* seeds)
{
    check_open();
    bool any = false;
    for (int64_t w = 0; w < cfg_.num_worlds && !any; ++w) any = mask[w] != 0;
    if (!any) return;  // nothing to reset, nothing to record
    if (recorder_) recorder_->reset(mask, seeds);
    backend_->reset_worlds(mask, seeds);
}

void Manager::start_episodes(const uint64_t* seeds, const uint32_t* episodes)
{
    check_open();
    if (recorder_) throw Error("start_episodes() cannot run while recording");
    backend_->start_episodes(seeds, episodes);
}

void Manager::start_recording(const std::string& path, const std::string& config_json, uint32_t checksum_interval,
                              uint64_t created_unix_ns)
{
    check_open();
    if (recorder_) throw Error("already recording; call stop_recording() first");
    if (checksum_interval < 1) invalid("checksum_interval must be >= 1, got 0");
    const SimState& s = backend_->state();
    ReplayHeaderInfo info{(uint32_t)kRulesVersion,       (uint32_t)s.num_worlds, (uint32_t)s.num_agents,
                          (uint32_t)s.episode_len,       cfg_.rand_seed,         (uint32_t)s.autoreset_mode,
                          0u,                            created_unix_ns,        checksum_interval};
    auto recorder = std::make_unique<Recorder>(path, info, config_json);
    hashes_.resize((size_t)s.num_worlds);
    backend_->state_hashes(hashes_.data());
    recorder->hash(0, hashes_.data());
    recorder_ = std::move(recorder);
}

uint64_t Manager::stop_recording()
{
    if (!recorder_) throw Error("not recording");
    std::unique_ptr<Recorder> recorder = std::move(recorder_);
    const uint64_t steps = recorder->num_steps();
    if (backend_ && recorder->last_hash_step() != steps) {
        backend_->state_hashes(hashes_.data());
        recorder->hash(steps, hashes_.data());
    }
    recorder->finish();
    return steps;
}

void Manager::enable_trajectory_logging(int32_t world, int32_t agent, const std::string& path)
{
    check_open();
    if (world < 0 || world >= cfg_.num_worlds)
        invalid("world_idx must be between 0 and " + std::to_string(cfg_.num_worlds - 1) + ", got " + std::to_string(world));
    if (agent < 0 || agent >= cfg_.num_agents)
        invalid("agent_idx must be between 0 and " + std::to_string(cfg_.num_agents - 1) + ", got " + std::to_string(agent));
    trajectory_ = std::make_unique<TrajectoryLog>(world, agent, path);
}

void Manager::state_hashes(uint64_t* out)
{
    check_open();
    backend_->state_hashes(out);
}

int64_t Manager::check_actions(const void* data, bool int64, bool refuse_done) const
{
    check_open();
    return backend_->check_actions(data, int64, refuse_done);
}

int64_t Manager::set_actions(const void* data, bool int64, bool refuse_done)
{
    const int64_t code = check_actions(data, int64, refuse_done);
    if (code == -1) backend_->set_actions(data, int64);
    return code;
}

void Manager::to_host(void* dst, const void* src, size_t bytes)
{
    check_open();
    backend_->to_host(dst, src, bytes);
}

void Manager::from_host(void* dst, const void* src, size_t bytes)
{
    check_open();
    backend_->from_host(dst, src, bytes);
}

std::shared_ptr<Storage> Manager::storage() const
{
    check_open();
    return backend_->storage();
}

void Manager::close()
{
    // Free the simulation whatever happens; then report the first file that failed.
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
    backend_.reset();
    if (error) std::rethrow_exception(error);
}

const std::vector<std::string>& Manager::tensor_names()
{
    static const std::vector<std::string> names = {
        "reset", "action", "reward", "done", "termination_reason", "terminated", "truncated", "steps_remaining",
        "progress", "observation", "self_observation", "door_observation", "room_entity_observations", "lidar",
        "partner_observations", "final_observation", "elapsed_steps", "doors_opened", "final_progress",
        "final_elapsed_steps", "final_doors_opened"};
    return names;
}

TensorDesc Manager::tensor(const std::string& name) const
{
    check_open();
    const SimState& s = backend_->state();
    const int64_t W = s.num_worlds, A = s.num_agents, D = s.obs_dim;
    // A view of observation[..., offset : offset + prod(tail)] shaped [W, A, *tail].
    auto obs_view = [&](float* base, int64_t offset, std::vector<int64_t> tail) {
        TensorDesc t{base + offset, DType::Float32, {W, A}, {A * D, D}};
        int64_t stride = 1;
        std::vector<int64_t> tail_strides(tail.size());
        for (size_t i = tail.size(); i-- > 0;) {
            tail_strides[i] = stride;
            stride *= tail[i];
        }
        t.shape.insert(t.shape.end(), tail.begin(), tail.end());
        t.strides.insert(t.strides.end(), tail_strides.begin(), tail_strides.end());
        return t;
    };
    auto per_agent = [&](void* data, DType dtype, bool trailing_one) {
        TensorDesc t{data, dtype, {W, A}, {A, 1}};
        if (trailing_one) {
            t.shape.push_back(1);
            t.strides.push_back(1);
        }
        return t;
    };
    if (name == "reset") return {s.reset_in, DType::Int32, {W}, {1}};
    if (name == "action") return {s.action_in, DType::Int32, {W, A, kActionDims}, {A * kActionDims, kActionDims, 1}};
    if (name == "reward") return per_agent(s.reward_out, DType::Float32, true);
    if (name == "done") return per_agent(s.done_out, DType::Int32, true);
    if (name == "termination_reason") return per_agent(s.reason_out, DType::Int32, true);
    if (name == "terminated") return per_agent(s.terminated_out, DType::Bool, false);
    if (name == "truncated") return per_agent(s.truncated_out, DType::Bool, false);
    if (name == "steps_remaining") return per_agent(s.steps_out, DType::Int32, true);
    if (name == "progress") return per_agent(s.progress_out, DType::Float32, true);
    if (name == "observation") return obs_view(s.obs_out, 0, {D});
    if (name == "final_observation") return obs_view(s.final_obs_out, 0, {D});
    if (name == "elapsed_steps") return per_agent(s.elapsed_out, DType::Int32, true);
    if (name == "doors_opened") return per_agent(s.doors_out, DType::Int32, true);
    if (name == "final_progress") return per_agent(s.final_progress_out, DType::Float32, true);
    if (name == "final_elapsed_steps") return per_agent(s.final_elapsed_out, DType::Int32, true);
    if (name == "final_doors_opened") return per_agent(s.final_doors_out, DType::Int32, true);
    if (name == "rgb" || name == "depth") {
        if (s.render_width == 0)
            throw Error(name + "_tensor() needs the batch renderer: pass enable_batch_renderer=True");
        const int64_t H = s.render_height, Wp = s.render_width;
        if (name == "rgb") return {s.rgb_out, DType::UInt8, {W, A, H, Wp, 3}, {A * H * Wp * 3, H * Wp * 3, Wp * 3, 3, 1}};
        return {s.depth_out, DType::Float32, {W, A, H, Wp, 1}, {A * H * Wp, H * Wp, Wp, 1, 1}};
    }
    if (name == "self_observation") return obs_view(s.obs_out, kObsSelf, {5});
    if (name == "door_observation") return obs_view(s.obs_out, kObsDoor, {3});
    if (name == "room_entity_observations") return obs_view(s.obs_out, kObsEntities, {kEntitySlots, 3});
    if (name == "lidar") return obs_view(s.obs_out, kObsLidar, {kLidarRays, 2});
    if (name == "partner_observations") return obs_view(s.obs_out, kObsPartners, {A - 1, kObsPartnerDim});
    invalid("unknown tensor '" + name + "'");
}

const std::vector<std::string>& Manager::state_names()
{
    static const std::vector<std::string> names = {
        "seed", "episode", "steps_left", "status", "agent_pos", "agent_yaw", "agent_max_y", "agent_escaped",
        "cube_pos", "door_open", "level_counts", "level_statics", "level_static_door", "level_door_centre",
        "level_door_group", "level_momentary_groups", "level_button_pos", "level_button_group", "level_cube_start",
        "level_band_y", "level_band_door", "level_exit_y", "level_exit_target", "level_norm_length", "level_exits"};
    return names;
}

TensorDesc Manager::state_view(const std::string& name) const
{
    check_open();
    const SimState& s = backend_->state();
    const int64_t W = s.num_worlds, A = s.num_agents;
    // Views into the per-world LevelData structs: stride between worlds in elements of 4 bytes or 1 byte.
    static_assert(sizeof(LevelData) % 4 == 0, "LevelData strides are counted in 4-byte elements");
    const int64_t lv4 = (int64_t)(sizeof(LevelData) / 4), lv1 = (int64_t)sizeof(LevelData);
    LevelData* lv = s.level;
    if (name == "seed") return {s.seed, DType::UInt64, {W}, {1}};
    if (name == "episode") return {s.episode, DType::UInt32, {W}, {1}};
    if (name == "steps_left") return {s.steps_left, DType::Int32, {W}, {1}};
    if (name == "status") return {s.status, DType::UInt8, {W}, {1}};
    if (name == "agent_pos") return {s.agent_pos, DType::Float32, {W, A, 2}, {A * 2, 2, 1}};
    if (name == "agent_yaw") return {s.agent_yaw, DType::Float32, {W, A}, {A, 1}};
    if (name == "agent_max_y") return {s.agent_max_y, DType::Float32, {W, A}, {A, 1}};
    if (name == "agent_escaped") return {s.agent_escaped, DType::UInt8, {W, A}, {A, 1}};
    if (name == "cube_pos") return {s.cube_pos, DType::Float32, {W, kMaxCubes, 2}, {kMaxCubes * 2, 2, 1}};
    if (name == "door_open") return {s.door_open, DType::UInt8, {W, kMaxDoors}, {kMaxDoors, 1}};
    if (name == "level_counts") return {&lv->num_statics, DType::Int32, {W, 6}, {lv4, 1}};
    if (name == "level_statics") return {lv->statics, DType::Float32, {W, kMaxStatics, 4}, {lv4, 4, 1}};
    if (name == "level_static_door") return {lv->static_door, DType::Int8, {W, kMaxStatics}, {lv1, 1}};
    if (name == "level_door_centre") return {lv->door_centre, DType::Float32, {W, kMaxDoors, 2}, {lv4, 2, 1}};
    if (name == "level_door_group") return {lv->door_group, DType::Int8, {W, kMaxDoors}, {lv1, 1}};
    if (name == "level_momentary_groups") return {&lv->momentary_groups, DType::UInt8, {W}, {lv1}};
    if (name == "level_button_pos") return {lv->button_pos, DType::Float32, {W, kMaxButtons, 2}, {lv4, 2, 1}};
    if (name == "level_button_group") return {lv->button_group, DType::Int8, {W, kMaxButtons}, {lv1, 1}};
    if (name == "level_cube_start") return {lv->cube_start, DType::Float32, {W, kMaxCubes, 2}, {lv4, 2, 1}};
    if (name == "level_band_y") return {lv->band_y, DType::Float32, {W, kMaxRooms + 1}, {lv4, 1}};
    if (name == "level_band_door") return {lv->band_door, DType::Int8, {W, kMaxRooms}, {lv1, 1}};
    if (name == "level_exit_y") return {&lv->exit_y, DType::Float32, {W}, {lv4}};
    if (name == "level_exit_target") return {&lv->exit_target, DType::Float32, {W, 2}, {lv4, 1}};
    if (name == "level_norm_length") return {&lv->norm_length, DType::Float32, {W}, {lv4}};
    if (name == "level_exits") return {lv->exits, DType::Float32, {W, kMaxExits, 4}, {lv4, 4, 1}};
    invalid("unknown state array '" + name + "'");
}

}  // namespace er
