// The _core extension: marshalling only. Arrays are exported zero-copy with the simulation's
// storage as owner; calls that run the simulation release the GIL (and park at interpreter
// exit: without_gil.hpp). Validation, errors and threads are the manager's.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <optional>

#include "exported_array.hpp"
#include "manager.hpp"
#include "sim/render.hpp"
#include "without_gil.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using er::Manager;
using er::py::Array;
using er::py::view;

// Actions of num_worlds * num_agents rows of 3, int32 or int64, where the simulation is.
using Actions = nb::ndarray<nb::ro, nb::ndim<2>, nb::c_contig>;
bool wide_actions(const Manager& m, const Actions& a)
{
    const bool gpu = m.on_gpu();
    const size_t rows = (size_t)m.config().num_worlds * (size_t)m.config().num_agents;
    const bool wide = a.dtype() == nb::dtype<int64_t>();
    if (a.shape(0) != rows || a.shape(1) != 3 || (!wide && a.dtype() != nb::dtype<int32_t>()) ||
        a.device_type() != (gpu ? nb::device::cuda::value : nb::device::cpu::value) ||
        (gpu && a.device_id() != m.config().gpu_id))
        throw nb::type_error("actions must be a C-contiguous int32/int64 array of shape (num_worlds * num_agents, 3) "
                             "where the simulation runs");
    return wide;
}

// A path from Python as bytes (os.fsencode): any name the file system allows.
std::string path_of(const nb::bytes& path) { return std::string(path.c_str(), path.size()); }

// `with manager.exclusive():` the calls inside are one operation no other thread interleaves.
struct Exclusive {
    Manager* manager;
    std::optional<Manager::Claim> claim;
};

// Runs nstep steps without the GIL; Ctrl-C (checked every 10 ms) stops it after a whole step.
void step(Manager& m, int64_t nstep, uintptr_t stream)
{
    bool interrupted = false;
    {
        er::WithoutGil nogil;
        if (er::WithoutGil::exiting()) return;  // the interpreter is exiting: no new steps
        m.step(nstep, stream, [&] {
            return nogil.with_gil([&] { return !(interrupted = PyErr_CheckSignals() != 0); });
        });
    }
    if (interrupted) throw nb::python_error();
}

}  // namespace

NB_MODULE(_core, m)
{
    m.doc() = "escape_room_env native core (private; use the escape_room_env package)";

    auto base = nb::exception<er::Error>(m, "EscapeRoomError", PyExc_RuntimeError);
    nb::exception<er::CudaUnavailable>(m, "CudaUnavailableError", base);
    nb::exception<er::ReplayFormat>(m, "ReplayFormatError", base);
    nb::exception<er::ReplayDivergence>(m, "ReplayDivergenceError", base);

    nb::enum_<er::ExecMode>(m, "ExecMode", "Where the simulation runs.")
        .value("CPU", er::ExecMode::CPU)
        .value("CUDA", er::ExecMode::CUDA);

    // The constants the Python layer needs, from their one definition (csrc/sim/consts.hpp).
    m.attr("RULES_VERSION") = er::kRulesVersion;
    m.attr("MAX_AGENTS") = er::kMaxAgents;
    m.attr("DEFAULT_EPISODE_LEN") = er::kDefaultEpisodeLen;
    m.attr("NUM_LIDAR_RAYS") = er::kLidarRays;
    m.attr("LIDAR_RANGE") = er::kLidarRange;
    m.attr("DEPTH_RANGE") = er::kRenderRange;
    m.attr("ENTITY_SLOTS") = er::kEntitySlots;
    m.attr("ENTITY_TYPES") = er::kEntityTypeCount;
    m.attr("ACTION_CHOICES") = nb::make_tuple(er::kNumMoveAmounts, er::kNumMoveAngles, er::kNumRotates);
    // Offsets of the observation's parts (SPEC §3), and the floats per partner.
    m.attr("OBS_LAYOUT") = nb::make_tuple(er::kObsSelf, er::kObsSteps, er::kObsDoor, er::kObsEntities, er::kObsLidar,
                                          er::kObsPartners, er::kObsPartnerDim);
    m.def("obs_dim", &er::obs_dim, "num_agents"_a);
    m.attr("ROOM_TYPES") = nb::tuple(nb::cast(std::vector<std::string>(er::kRoomNames, er::kRoomNames + er::kNumRoomTypes)));
    m.def("default_rooms", &er::default_rooms, "num_agents"_a);
    m.attr("CUDA_BUILT") = er::cuda_built();
    m.attr("CUDA_SETTING") = ER_CUDA_SETTING;  // ESCAPE_ROOM_CUDA at build time: AUTO, ON or OFF
    m.def("cuda_device_count", &er::cuda_device_count);
    m.def("cuda_unavailable_reason", &er::cuda_unavailable_reason, "Why no GPU is usable; '' when one is.");

    // At exit, before finalisation: stop calls still running without the GIL and finish every
    // manager's files. Daemon threads still alive keep their objects, and so do a fork child's
    // copies of its parent's threads: nanobind's leak report would only be noise then.
    m.def("_exit_hook", [] {
        er::ExitGate::instance().close_at_exit(std::chrono::seconds(10));
        if (er::fork_generation() > 0 || nb::len(nb::module_::import_("threading").attr("enumerate")()) > 1)
            nb::set_leak_warnings(false);
    });
    nb::module_::import_("atexit").attr("register")(m.attr("_exit_hook"));

    nb::class_<er::RewardConfig>(m, "RewardConfig")
        .def(nb::init<>())
        .def_rw("progress_scale", &er::RewardConfig::progress_scale)
        .def_rw("slack_penalty", &er::RewardConfig::slack_penalty)
        .def_rw("group_bonus", &er::RewardConfig::group_bonus)
        .def_rw("group_radius", &er::RewardConfig::group_radius)
        .def_rw("escape_bonus", &er::RewardConfig::escape_bonus);

    nb::class_<er::LevelSource>(m, "LevelSource")
        .def(nb::init<>())
        .def_rw("name", &er::LevelSource::name)
        .def_rw("ascii", &er::LevelSource::ascii)
        .def_rw("momentary", &er::LevelSource::momentary)
        .def_rw("cell_size", &er::LevelSource::cell_size);

    nb::class_<er::CompiledLevel>(m, "CompiledLevel")
        .def_ro("rows", &er::CompiledLevel::rows)
        .def_ro("cols", &er::CompiledLevel::cols)
        .def_ro("num_walls", &er::CompiledLevel::num_walls)
        .def_ro("num_spawns", &er::CompiledLevel::num_spawns)
        .def_ro("max_x", &er::CompiledLevel::max_x)
        .def_ro("max_y", &er::CompiledLevel::max_y)
        .def_ro("warnings", &er::CompiledLevel::warnings)
        .def("arrays", [](nb::handle self) {
            // The level's fields as the catalogue's level_* views of a single world.
            er::SimState one{};
            one.num_worlds = 1;
            one.level = &nb::cast<er::CompiledLevel&>(self).data;
            nb::dict out;
            for (const er::ArraySpec& spec : Manager::arrays())
                if (std::string(spec.name).rfind("level_", 0) == 0) out[spec.name + 6] = view<nb::numpy>(spec.view(one), self);
            return out;
        }, "The geometry as numpy views shaped [1, ...] (counts in 'counts'; see Manager.arrays()).");
    m.def("compile_level", &er::compile_level, "source"_a, "num_agents"_a,
          "Compiles a custom level (escape_room_env.levels wraps the result).");
    m.def("validate_config", &er::validate_config, "config"_a,
          "Raises ValueError naming the first field a Manager would refuse (nothing is allocated).");

    nb::class_<er::Config>(m, "Config")
        .def(nb::init<>())
        .def_rw("exec_mode", &er::Config::exec_mode)
        .def_rw("gpu_id", &er::Config::gpu_id)
        .def_rw("num_worlds", &er::Config::num_worlds)
        .def_rw("rand_seed", &er::Config::rand_seed)
        .def_rw("num_agents", &er::Config::num_agents)
        .def_rw("autoreset_mode", &er::Config::autoreset_mode)
        .def_rw("num_threads", &er::Config::num_threads)
        .def_rw("rooms", &er::Config::rooms)
        .def_rw("levels", &er::Config::levels)
        .def_rw("episode_len", &er::Config::episode_len)
        .def_rw("reward", &er::Config::reward)
        .def_rw("enable_batch_renderer", &er::Config::enable_batch_renderer)
        .def_rw("render_width", &er::Config::render_width)
        .def_rw("render_height", &er::Config::render_height);

    nb::class_<Array>(m, "Array", "A zero-copy view of one simulation array (escape_room_env.Tensor wraps it).")
        .def_prop_ro("shape", [](const Array& a) { return nb::tuple(nb::cast(a.desc.shape)); })
        .def_prop_ro("dtype", [](const Array& a) { return er::py::dtype_name(a.desc.dtype); })
        .def_prop_ro("data_ptr", [](const Array& a) { return (uintptr_t)a.desc.data; })
        .def("numpy", &Array::as<nb::numpy>, nb::rv_policy::reference)
        .def("torch", &Array::as<nb::pytorch>, nb::rv_policy::reference)
        .def("__dlpack__", &Array::dlpack)
        .def("__dlpack_device__", [](const Array& a) { return nb::make_tuple(a.storage->device_type, a.storage->device_id); });

    nb::class_<Exclusive>(m, "Exclusive")
        .def("__enter__", [](Exclusive& e) { e.claim.emplace(*e.manager); })
        .def("__exit__", [](Exclusive& e, nb::args) { e.claim.reset(); });

    nb::class_<Manager>(m, "Manager")
        .def(nb::init<const er::Config&>(), "config"_a)
        .def_prop_ro("config", &Manager::config)
        .def_prop_ro("closed", &Manager::closed)
        .def_prop_ro("on_gpu", &Manager::on_gpu)
        .def_prop_ro("step_count", &Manager::step_count)
        .def_prop_ro("is_recording", &Manager::is_recording)
        .def_prop_ro("is_trajectory_logging", &Manager::is_trajectory_logging)
        .def_prop_ro("observation_radius", &Manager::observation_radius)
        .def_prop_ro("level_warnings", &Manager::level_warnings)
        .def("step", &step, "nstep"_a = 1, "stream"_a = 0)
        .def("synchronize", [](Manager& mgr) {
            er::WithoutGil nogil;
            mgr.synchronize();
        })
        .def("exclusive", [](Manager& mgr) { return Exclusive{&mgr, std::nullopt}; }, nb::keep_alive<0, 1>())
        .def_static("arrays", [] {
            nb::list out;
            for (const er::ArraySpec& spec : Manager::arrays()) out.append(nb::make_tuple(spec.name, (int32_t)spec.kind));
            return out;
        }, "The catalogue: (name, kind) of every array; kind 0 a tensor, 1 an image, 2 internal state.")
        .def("array", [](const Manager& mgr, const std::string& name) { return Array{mgr.array(name), mgr.storage()}; })
        .def("host_copy", &er::py::host_copy, "name"_a, "A numpy copy of an array, from wherever the simulation runs.")
        .def("host_write", &er::py::host_write, "name"_a, "values"_a, "Overwrites a contiguous array from host values.")
        .def("reset_worlds",
             [](Manager& mgr, nb::ndarray<const uint8_t, nb::shape<-1>, nb::c_contig, nb::device::cpu> mask,
                std::optional<nb::ndarray<const uint64_t, nb::shape<-1>, nb::c_contig, nb::device::cpu>> seeds) {
                 const size_t W = (size_t)mgr.config().num_worlds;
                 if (mask.shape(0) != W || (seeds && seeds->shape(0) != W))
                     throw std::invalid_argument("reset_worlds: mask and seeds need num_worlds entries");
                 er::WithoutGil nogil;
                 mgr.reset_worlds(mask.data(), seeds ? seeds->data() : nullptr);
             }, "mask"_a, "seeds"_a = nb::none())
        .def("set_actions", [](Manager& mgr, Actions a, bool refuse_done) {
            return mgr.set_actions(a.data(), wide_actions(mgr, a), refuse_done);
        }, "actions"_a, "refuse_done"_a = false, "Returns -1, the flat index of the first bad value, or -2 - w.")
        .def("check_actions", [](Manager& mgr, Actions a, bool refuse_done) {
            return mgr.check_actions(a.data(), wide_actions(mgr, a), refuse_done);
        }, "actions"_a, "refuse_done"_a = false)
        .def("step_actions",
             [](Manager& mgr, Actions a, bool refuse_done, std::optional<nb::ndarray<float, nb::ndim<2>, nb::c_contig>> obs) {
                 const bool wide = wide_actions(mgr, a);
                 const size_t rows = (size_t)mgr.config().num_worlds * mgr.config().num_agents;
                 if (obs && (obs->shape(0) != rows || obs->shape(1) != (size_t)mgr.obs_dim() ||
                             obs->device_type() != (mgr.on_gpu() ? nb::device::cuda::value : nb::device::cpu::value)))
                     throw std::invalid_argument("step_actions: obs_out must have shape (" + std::to_string(rows) + ", " +
                                                 std::to_string(mgr.obs_dim()) + ") where the simulation runs");
                 er::WithoutGil nogil;
                 return mgr.step_with_actions(a.data(), wide, refuse_done, obs ? obs->data() : nullptr);
             }, "actions"_a, "refuse_done"_a = false, "obs_out"_a = nb::none())
        .def("start_recording",
             [](Manager& mgr, const nb::bytes& path, const std::string& config_json, int64_t interval, uint64_t created,
                std::optional<uint64_t> seed) {
                 return mgr.start_recording(path_of(path), config_json, interval, created, seed ? &*seed : nullptr);
             }, "path"_a, "config_json"_a, "checksum_interval"_a, "created_unix_ns"_a, "seed"_a = nb::none())
        .def("stop_recording", &Manager::stop_recording)
        .def("enable_trajectory_logging", [](Manager& mgr, int32_t world, int32_t agent, const nb::bytes& path) {
            mgr.enable_trajectory_logging(world, agent, path_of(path));
        }, "world"_a, "agent"_a, "path"_a)
        .def("disable_trajectory_logging", &Manager::disable_trajectory_logging)
        .def("start_episodes",
             [](Manager& mgr, nb::ndarray<const uint64_t, nb::shape<-1>, nb::c_contig, nb::device::cpu> seeds,
                nb::ndarray<const uint32_t, nb::shape<-1>, nb::c_contig, nb::device::cpu> episodes) {
                 const size_t W = (size_t)mgr.config().num_worlds;
                 if (seeds.shape(0) != W || episodes.shape(0) != W)
                     throw std::invalid_argument("start_episodes: seeds and episodes need num_worlds entries");
                 mgr.start_episodes(seeds.data(), episodes.data());
             }, "seeds"_a, "episodes"_a)
        .def("state_hashes", [](Manager& mgr) { return er::py::per_world(mgr, [&](uint64_t* out) { mgr.state_hashes(out); }); })
        .def("output_digests", [](Manager& mgr, bool replay) {
            const auto chain = replay ? er::OutputChain::Replay : er::OutputChain::Recording;
            return er::py::per_world(mgr, [&](uint64_t* out) { mgr.output_digests(chain, out); });
        }, "replay"_a = false, "Output chains of the recording (or the replay) while kept, else the outputs' digests.")
        .def("chain_outputs_for_replay", &Manager::chain_outputs_for_replay, "on"_a)
        .def("close", &Manager::close);
}
