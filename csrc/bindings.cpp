// The _core extension: marshalling only. Tensors are exported once with the simulation's
// storage as owner; step() releases the GIL and takes no array arguments.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <optional>

#include "manager.hpp"
#include "without_gil.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using er::DType;
using er::Manager;

nb::dlpack::dtype to_dlpack(DType t)
{
    switch (t) {
    case DType::Int32: return nb::dtype<int32_t>();
    case DType::Float32: return nb::dtype<float>();
    case DType::Bool: return nb::dtype<bool>();
    case DType::Int8: return nb::dtype<int8_t>();
    case DType::UInt32: return nb::dtype<uint32_t>();
    case DType::UInt64: return nb::dtype<uint64_t>();
    default: return nb::dtype<uint8_t>();
    }
}

const char* dtype_name(DType t)
{
    switch (t) {
    case DType::Int32: return "int32";
    case DType::Float32: return "float32";
    case DType::Bool: return "bool";
    case DType::Int8: return "int8";
    case DType::UInt32: return "uint32";
    case DType::UInt64: return "uint64";
    default: return "uint8";
    }
}

// A tensor of a manager: the seed's madrona.Tensor, zero-copy into the simulation's storage.
struct Tensor {
    er::TensorDesc desc;
    std::shared_ptr<er::Storage> storage;

    bool on_gpu() const { return storage->device_type == 2; }
    int32_t gpu_id() const { return on_gpu() ? storage->device_id : -1; }

    nb::capsule owner() const
    {
        return nb::capsule(new std::shared_ptr<er::Storage>(storage),
                           [](void* p) noexcept { delete static_cast<std::shared_ptr<er::Storage>*>(p); });
    }

    template <class Framework>
    nb::ndarray<Framework> view() const
    {
        std::vector<size_t> shape(desc.shape.begin(), desc.shape.end());
        return nb::ndarray<Framework>(desc.data, shape.size(), shape.data(), owner(), desc.strides.data(),
                                      to_dlpack(desc.dtype), storage->device_type, storage->device_id);
    }
};

// Arrays on the host (numpy, CPU torch) for a CPU manager, on the manager's GPU (CUDA torch) for a CUDA one.
using ActionArray = nb::ndarray<nb::ro, nb::ndim<2>, nb::c_contig>;  // read-only accepted
using ObsArray = nb::ndarray<float, nb::ndim<2>, nb::c_contig>;

std::string device_name(int32_t type, int32_t id)
{
    if (type == nb::device::cpu::value) return "cpu";
    if (type == nb::device::cuda::value) return "cuda:" + std::to_string(id);
    return "DLPack device type " + std::to_string(type);
}

// Refuses an array that is not where the manager's simulation lives.
template <class Array>
void check_device(const Manager& mgr, const Array& array, const char* what)
{
    const bool gpu = mgr.on_gpu();
    const int32_t type = gpu ? nb::device::cuda::value : nb::device::cpu::value, id = gpu ? mgr.config().gpu_id : 0;
    if (array.device_type() != type || (gpu && array.device_id() != id))
        throw std::invalid_argument(std::string(what) + ": the array is on " +
                                    device_name(array.device_type(), array.device_id()) + ", the simulation on " +
                                    device_name(type, id) + "; move it there first");
}

// Checks the shape, dtype and device of (num_worlds * num_agents, 3) actions; true for int64.
bool action_rows_wide(const Manager& mgr, const ActionArray& actions, const char* what)
{
    const int64_t rows = (int64_t)mgr.config().num_worlds * mgr.config().num_agents;
    if (actions.shape(0) != (size_t)rows || actions.shape(1) != 3)
        throw std::invalid_argument(std::string(what) + ": expected shape (" + std::to_string(rows) + ", 3)");
    check_device(mgr, actions, what);
    const bool wide = actions.dtype() == nb::dtype<int64_t>();
    if (!wide && actions.dtype() != nb::dtype<int32_t>())
        throw nb::type_error((std::string(what) + ": expected int32 or int64 actions").c_str());
    return wide;
}

nb::list box_list(const er::Box* boxes, int32_t first, int32_t end)
{
    nb::list out;
    for (int32_t i = first; i < end; ++i) out.append(nb::make_tuple(boxes[i].min_x, boxes[i].min_y, boxes[i].max_x, boxes[i].max_y));
    return out;
}

nb::list point_list(const er::Vec2* points, int32_t n)
{
    nb::list out;
    for (int32_t i = 0; i < n; ++i) out.append(nb::make_tuple(points[i].x, points[i].y));
    return out;
}

template <class T>
nb::list int_list(const T* values, int32_t n)
{
    nb::list out;
    for (int32_t i = 0; i < n; ++i) out.append((int32_t)values[i]);
    return out;
}

nb::dict compiled_level_dict(const er::LevelSource& src, int32_t num_agents)
{
    const er::CompiledLevel c = er::compile_level(src, num_agents);
    const er::LevelData& lv = c.data;
    nb::dict d;
    d["rows"] = c.rows;
    d["cols"] = c.cols;
    d["bounds"] = nb::make_tuple(lv.min_x, lv.min_y, c.max_x, c.max_y);
    d["norm_length"] = lv.norm_length;
    d["walls"] = box_list(lv.statics, 0, c.num_walls);
    d["doors"] = box_list(lv.statics, c.num_walls, lv.num_statics);
    d["door_groups"] = int_list(lv.door_group, lv.num_doors);
    d["momentary_groups"] = (int32_t)lv.momentary_groups;
    d["buttons"] = point_list(lv.button_pos, lv.num_buttons);
    d["button_groups"] = int_list(lv.button_group, lv.num_buttons);
    d["cubes"] = point_list(lv.cube_start, lv.num_cubes);
    d["spawns"] = point_list(lv.spawn, c.num_spawns < er::kMaxAgents ? c.num_spawns : er::kMaxAgents);
    d["num_spawns"] = c.num_spawns;
    d["exits"] = box_list(lv.exits, 0, lv.num_exits);
    nb::list band_y;
    for (int32_t k = 0; k <= lv.num_bands; ++k) band_y.append(lv.band_y[k]);
    d["band_y"] = band_y;
    d["band_doors"] = int_list(lv.band_door, lv.num_bands);
    d["exit_y"] = lv.exit_y;
    d["exit_target"] = nb::make_tuple(lv.exit_target.x, lv.exit_target.y);
    nb::list warnings;
    for (const std::string& w : c.warnings) warnings.append(w);
    d["warnings"] = warnings;
    return d;
}

// DLPack's stream argument (1: the legacy default stream, 2: per-thread default, -1: no
// synchronisation wanted, else a cudaStream_t) as a cudaStream_t, or 0 for none.
uintptr_t consumer_stream(nb::handle stream)
{
    if (stream.is_none()) return 1;  // the array API's default for CUDA: the legacy default stream
    const int64_t value = nb::cast<int64_t>(stream);
    if (value == -1) return 0;
    if (value == 0) throw std::invalid_argument("__dlpack__: stream=0 is ambiguous for CUDA; pass 1 or 2");
    return (uintptr_t)value;
}

const size_t kItemBytes[] = {4, 4, 1, 1, 1, 4, 8};  // by DType

// An exported array (a tensor, or a state view) by name, and the bytes from its first element
// to the end of its last: what a copy must move.
er::TensorDesc named_array(const Manager& m, const std::string& name, size_t& span, bool& contiguous)
{
    const std::vector<std::string>& names = Manager::tensor_names();
    const bool is_tensor = std::find(names.begin(), names.end(), name) != names.end() || name == "rgb" || name == "depth";
    er::TensorDesc d = is_tensor ? m.tensor(name) : m.state_view(name);
    int64_t last = 0, expected = 1;
    contiguous = true;
    for (size_t i = d.shape.size(); i-- > 0;) {
        last += (d.shape[i] - 1) * d.strides[i];
        contiguous = contiguous && (d.shape[i] == 1 || d.strides[i] == expected);
        expected *= d.shape[i];
    }
    span = (size_t)(last + 1) * kItemBytes[(int32_t)d.dtype];
    return d;
}

// A uint64 per world from `fill`, as a numpy array.
template <class Fill>
nb::ndarray<nb::numpy, uint64_t, nb::ndim<1>> per_world_u64(Manager& mgr, Fill&& fill)
{
    const size_t W = (size_t)mgr.config().num_worlds;
    auto* out = new uint64_t[W];
    nb::capsule owner(out, [](void* p) noexcept { delete[] static_cast<uint64_t*>(p); });
    fill(out);
    return nb::ndarray<nb::numpy, uint64_t, nb::ndim<1>>(out, {W}, owner);
}

// A path from Python as bytes (os.fsencode), so any name the file system allows, UTF-8 or not.
std::string path_of(const nb::bytes& path) { return std::string(path.c_str(), path.size()); }

// `with manager.exclusive():` makes the calls inside one operation that no other thread can
// interleave with (they raise, as for any call made while another thread runs one).
struct Exclusive {
    Manager* manager;
    std::optional<Manager::Claim> claim;
};

// Runs nstep steps without the GIL, checking for Ctrl-C at most every 10 ms: on a signal it
// stops after a whole step and raises KeyboardInterrupt.
void step_many(Manager& m, int64_t nstep, uintptr_t stream)
{
    bool interrupted = false;
    {
        er::WithoutGil nogil;
        if (er::WithoutGil::exiting()) return;  // the interpreter is exiting: no new steps
        m.step(nstep, stream, [&] {
            return nogil.with_gil([&] {
                interrupted = PyErr_CheckSignals() != 0;
                return !interrupted;
            });
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

    m.attr("RULES_VERSION") = er::kRulesVersion;
    m.attr("MAX_AGENTS") = er::kMaxAgents;
    m.attr("NUM_LIDAR_RAYS") = er::kLidarRays;
    m.def("cuda_device_count", &er::cuda_device_count);
    m.def("cuda_unavailable_reason", &er::cuda_unavailable_reason,
          "Why no GPU is usable: the CUDA runtime's error, or '' when one is.");
    // Before finalisation: stop calls still running without the GIL, finish every manager's
    // files. Daemon threads still alive keep their objects, and so do the threads of a parent
    // that a fork child never had: nanobind's leak report would only be noise then.
    m.def("_exit_hook", [] {
        er::ExitGate::instance().close_at_exit(std::chrono::seconds(10));
        if (er::fork_generation() > 0 || nb::len(nb::module_::import_("threading").attr("enumerate")()) > 1)
            nb::set_leak_warnings(false);
    });
    nb::module_::import_("atexit").attr("register")(m.attr("_exit_hook"));
    m.attr("CUDA_BUILT") = er::cuda_built();
    m.attr("CUDA_SETTING") = ER_CUDA_SETTING;  // ESCAPE_ROOM_CUDA at build time: AUTO, ON or OFF
    m.def("default_rooms", &er::default_rooms, "num_agents"_a);

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

    m.def("validate_config", &er::validate_config, "config"_a, "Raises ValueError naming the first field a Manager would refuse (nothing is allocated).");

    m.def("compile_level", &compiled_level_dict, "source"_a, "num_agents"_a,
          "Compiles a custom level; returns its geometry as plain lists (escape_room_env.levels wraps them).");

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

    nb::class_<Tensor>(m, "Tensor",
                       "A zero-copy view of one simulation array (the seed's madrona.Tensor).\n\n"
                       ">>> import escape_room_env as er\n"
                       ">>> t = er.SimManager(num_worlds=2).action_tensor()\n"
                       ">>> t.shape, t.dtype, t.isOnGPU()\n"
                       "((2, 1, 3), dtype('int32'), False)")
        .def_prop_ro("shape", [](const Tensor& t) {
            nb::list dims;
            for (int64_t d : t.desc.shape) dims.append(d);
            return nb::tuple(dims);
        })
        .def_prop_ro("dtype", [](const Tensor& t) {
            return nb::module_::import_("numpy").attr("dtype")(dtype_name(t.desc.dtype));
        })
        .def_prop_ro("ndim", [](const Tensor& t) { return t.desc.shape.size(); })
        .def("isOnGPU", &Tensor::on_gpu)
        .def("is_on_gpu", &Tensor::on_gpu)
        .def("gpuID", &Tensor::gpu_id)
        .def("gpu_id", &Tensor::gpu_id)
        .def("data_ptr", [](const Tensor& t) { return (uintptr_t)t.desc.data; },
             "Address of the first element (it never changes for the manager's lifetime).")
        .def("to_numpy", [](const Tensor& t) {
            if (t.on_gpu()) throw er::Error("to_numpy() needs a CPU tensor; this one is on the GPU (use to_torch())");
            return t.view<nb::numpy>();
        }, nb::rv_policy::reference, "A numpy array sharing memory with the simulation (CPU only).")
        .def("to_torch", [](const Tensor& t) { return t.view<nb::pytorch>(); }, nb::rv_policy::reference,
             "A torch tensor sharing memory with the simulation, on the simulation's device.")
        .def("to_jax", [](const Tensor& t) {
            if (t.on_gpu()) throw er::Error("to_jax() of a GPU tensor is not supported by this version; use to_torch()");
            // A copy: JAX arrays are immutable and reject strided views.
            return nb::module_::import_("jax.numpy").attr("array")(t.view<nb::numpy>(), "copy"_a = true);
        }, "A JAX array holding a copy of the tensor's current values.")
        .def("__dlpack__", [](nb::handle self, nb::kwargs kwargs) {
            const Tensor& t = nb::cast<const Tensor&>(self);
            if (kwargs.contains("stream")) {
                // A GPU consumer names its stream: make it wait for the simulation's last write.
                nb::object stream = kwargs.attr("pop")("stream");
                if (t.on_gpu() && t.storage->wait_for_writes) {
                    const uintptr_t consumer = consumer_stream(stream);
                    if (consumer) t.storage->wait_for_writes(consumer);
                }
            }
            nb::object arr = nb::cast(t.view<nb::array_api>());
            return arr.attr("__dlpack__")(**kwargs);
        })
        .def("__dlpack_device__", [](const Tensor& t) { return nb::make_tuple(t.storage->device_type, t.storage->device_id); })
        .def("__repr__", [](const Tensor& t) {
            std::string shape;
            for (size_t i = 0; i < t.desc.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(t.desc.shape[i]);
            return "Tensor(shape=(" + shape + "), dtype=" + dtype_name(t.desc.dtype) + ", device=" +
                   (t.on_gpu() ? "cuda:" + std::to_string(t.gpu_id()) : std::string("cpu")) + ")";
        });

    nb::class_<Exclusive>(m, "Exclusive")
        .def("__enter__", [](Exclusive& e) { e.claim.emplace(*e.manager); })
        .def("__exit__", [](Exclusive& e, nb::args) { e.claim.reset(); });

    nb::class_<Manager>(m, "Manager")
        .def(nb::init<const er::Config&>(), "config"_a)
        .def("step", &step_many, "nstep"_a = 1, "stream"_a = 0)
        .def("exclusive", [](Manager& mgr) { return Exclusive{&mgr, std::nullopt}; }, nb::keep_alive<0, 1>(),
             "A context manager: the calls inside it are one operation no other thread interleaves with.")
        .def("synchronize", [](Manager& mgr) {
            er::WithoutGil nogil;
            mgr.synchronize();
        }, "Waits for every queued step (CUDA; a no-op on CPU).")
        .def("host_copy", [](Manager& mgr, const std::string& name) {
            size_t span = 0;
            bool contiguous = true;
            const er::TensorDesc d = named_array(mgr, name, span, contiguous);
            auto* out = new uint8_t[span];
            nb::capsule owner(out, [](void* p) noexcept { delete[] static_cast<uint8_t*>(p); });
            mgr.to_host(out, d.data, span);
            std::vector<size_t> shape(d.shape.begin(), d.shape.end());
            return nb::ndarray<nb::numpy>(out, shape.size(), shape.data(), owner, d.strides.data(), to_dlpack(d.dtype));
        }, "name"_a, "A numpy copy of a tensor or state array (with its strides), from wherever the simulation runs.")
        .def("host_write",
             [](Manager& mgr, const std::string& name, nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu> values) {
                 size_t bytes = 0;
                 bool contiguous = true;
                 const er::TensorDesc d = named_array(mgr, name, bytes, contiguous);
                 if (!contiguous) throw std::invalid_argument("host_write: '" + name + "' is a strided view");
                 if (values.dtype() != to_dlpack(d.dtype) || values.nbytes() != bytes)
                     throw std::invalid_argument("host_write: '" + name + "' needs " + std::to_string(bytes) +
                                                 " bytes of " + dtype_name(d.dtype));
                 mgr.from_host(d.data, values.data(), bytes);
             },
             "name"_a, "values"_a, "Overwrites a contiguous tensor or state array from a host array of its dtype and size.")
        .def("reset_worlds",
             [](Manager& mgr, nb::ndarray<const uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> mask,
                std::optional<nb::ndarray<const uint64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>> seeds) {
                 const size_t W = (size_t)mgr.config().num_worlds;
                 if (mask.shape(0) != W || (seeds && seeds->shape(0) != W))
                     throw std::invalid_argument("reset_worlds: mask and seeds need num_worlds entries");
                 er::WithoutGil nogil;
                 mgr.reset_worlds(mask.data(), seeds ? seeds->data() : nullptr);
             },
             "mask"_a, "seeds"_a = nb::none())
        .def("set_actions",
             [](Manager& mgr, ActionArray actions, bool refuse_done) {
                 const bool wide = action_rows_wide(mgr, actions, "set_actions");
                 return mgr.set_actions(actions.data(), wide, refuse_done);
             },
             "actions"_a, "refuse_done"_a = false,
             "Validates and copies (num_worlds * num_agents, 3) int32/int64 actions; returns -1, the flat "
             "index of the first out-of-range value, or -2 - w for a world frozen in DISABLED mode.")
        .def("check_actions",
             [](Manager& mgr, ActionArray actions, bool refuse_done) {
                 const bool wide = action_rows_wide(mgr, actions, "check_actions");
                 return mgr.check_actions(actions.data(), wide, refuse_done);
             },
             "actions"_a, "refuse_done"_a = false, "set_actions's validation alone (nothing written).")
        .def("step_actions",
             [](Manager& mgr, ActionArray actions, bool refuse_done, std::optional<ObsArray> obs_out) {
                 const bool wide = action_rows_wide(mgr, actions, "step_actions");
                 const int64_t rows = (int64_t)mgr.config().num_worlds * mgr.config().num_agents;
                 if (obs_out && (obs_out->shape(0) != (size_t)rows || obs_out->shape(1) != (size_t)mgr.obs_dim()))
                     throw std::invalid_argument("step_actions: obs_out must have shape (" + std::to_string(rows) +
                                                 ", " + std::to_string(mgr.obs_dim()) + ")");
                 if (obs_out) check_device(mgr, *obs_out, "step_actions: obs_out");
                 er::WithoutGil nogil;
                 return mgr.step_with_actions(actions.data(), wide, refuse_done, obs_out ? obs_out->data() : nullptr);
             },
             "actions"_a, "refuse_done"_a = false, "obs_out"_a = nb::none(),
             "set_actions and one step in a single call (the step copies each world's rows as it "
             "steps it, and with obs_out each world's observations after it); returns -1 when it "
             "stepped, else set_actions's code (nothing stepped).")
        .def("start_recording",
             [](Manager& mgr, const nb::bytes& path, const std::string& config_json, int64_t interval,
                uint64_t created_unix_ns, std::optional<uint64_t> seed) {
                 return mgr.start_recording(path_of(path), config_json, interval, created_unix_ns, seed ? &*seed : nullptr);
             },
             "path"_a, "config_json"_a, "checksum_interval"_a, "created_unix_ns"_a, "seed"_a = nb::none())
        .def("stop_recording", &Manager::stop_recording)
        .def_prop_ro("is_recording", &Manager::is_recording)
        .def("enable_trajectory_logging",
             [](Manager& mgr, int32_t world, int32_t agent, const nb::bytes& path) {
                 mgr.enable_trajectory_logging(world, agent, path_of(path));
             },
             "world"_a, "agent"_a, "path"_a)
        .def("disable_trajectory_logging", &Manager::disable_trajectory_logging)
        .def_prop_ro("is_trajectory_logging", &Manager::is_trajectory_logging)
        .def_prop_ro("step_count", &Manager::step_count)
        .def("start_episodes",
             [](Manager& mgr, nb::ndarray<const uint64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> seeds,
                nb::ndarray<const uint32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> episodes) {
                 const size_t W = (size_t)mgr.config().num_worlds;
                 if (seeds.shape(0) != W || episodes.shape(0) != W)
                     throw std::invalid_argument("start_episodes: seeds and episodes need num_worlds entries");
                 mgr.start_episodes(seeds.data(), episodes.data());
             },
             "seeds"_a, "episodes"_a)
        .def("state_hashes", [](Manager& mgr) { return per_world_u64(mgr, [&](uint64_t* out) { mgr.state_hashes(out); }); })
        .def("output_digests",
             [](Manager& mgr, bool replay) {
                 const er::OutputChain chain = replay ? er::OutputChain::Replay : er::OutputChain::Recording;
                 return per_world_u64(mgr, [&](uint64_t* out) { mgr.output_digests(chain, out); });
             },
             "replay"_a = false,
             "Each world's output chain of the recording (or with replay=True, of the replay) while one is "
             "kept: what checkpoints verify besides the state; else the digest of its current outputs.")
        .def("chain_outputs_for_replay", &Manager::chain_outputs_for_replay, "on"_a)
        .def("tensor", [](const Manager& mgr, const std::string& name) { return Tensor{mgr.tensor(name), mgr.storage()}; },
             "name"_a)
        .def_static("tensor_names", &Manager::tensor_names)
        .def("state_view", [](const Manager& mgr, const std::string& name) { return Tensor{mgr.state_view(name), mgr.storage()}; },
             "name"_a)
        .def_static("state_names", &Manager::state_names)
        .def("close", &Manager::close)
        .def_prop_ro("closed", &Manager::closed)
        .def_prop_ro("on_gpu", &Manager::on_gpu)
        .def_prop_ro("num_worlds", [](const Manager& mgr) { return mgr.config().num_worlds; })
        .def_prop_ro("num_agents", [](const Manager& mgr) { return mgr.config().num_agents; })
        .def_prop_ro("num_threads", [](const Manager& mgr) { return mgr.config().num_threads; })
        .def_prop_ro("episode_len", [](const Manager& mgr) { return mgr.config().episode_len; })
        .def_prop_ro("autoreset_mode", [](const Manager& mgr) { return mgr.config().autoreset_mode; })
        .def_prop_ro("rooms", [](const Manager& mgr) { return mgr.config().rooms; })
        .def_prop_ro("obs_dim", &Manager::obs_dim)
        .def_prop_ro("render_size", [](const Manager& mgr) -> std::optional<std::pair<int32_t, int32_t>> {
            const er::Config& c = mgr.config();
            if (!c.enable_batch_renderer) return std::nullopt;
            return std::make_pair(c.render_height, c.render_width);
        });
}
