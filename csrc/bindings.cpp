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
#include "marshal.hpp"
#include "without_gil.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using er::Manager;
using er::py::Actions;
using er::py::Array;
using er::py::Host;
using er::py::interruptible;
using er::py::path_of;
using er::py::per_world;
using er::py::sized;
using er::py::wide_actions;

// `with manager.exclusive():` the calls inside are one operation no other thread interleaves.
struct Exclusive {
    Manager* manager;
    std::optional<Manager::Claim> claim;
};

// rollout(): B initial states and T steps of actions in; every step's outputs and the final (or
// every) state out (escape_room_env/rollout.py allocates them).
int64_t rollout(Manager& mgr, Host<const uint8_t> states, Host<const int32_t> actions, int64_t steps,
                std::optional<Host<float>> obs, Host<float> reward, Host<bool> done, Host<uint8_t> out)
{
    const size_t B = (size_t)mgr.config().num_worlds, A = (size_t)mgr.config().num_agents, T = (size_t)steps;
    const size_t record = mgr.state_record_bytes(), every = out.size() == B * T * record;
    const Manager::RolloutIO io{sized(states, B * record, "states"),
                                sized(actions, B * T * A * 3, "actions"),
                                steps,
                                obs ? sized(*obs, B * T * A * (size_t)mgr.obs_dim(), "observation") : nullptr,
                                sized(reward, B * T * A, "reward"),
                                (uint8_t*)sized(done, B * T * A, "done"),
                                sized(out, (every ? T : 1) * B * record, "states_out"),
                                (bool)every};
    return interruptible([&](const Manager::Poll& poll) { return mgr.rollout(io, poll); });
}

}  // namespace

void bind_values(nb::module_& m);  // bind_values.cpp

NB_MODULE(_core, m)
{
    m.doc() = "escape_room_env native core (private; use the escape_room_env package)";

    auto base = nb::exception<er::Error>(m, "EscapeRoomError", PyExc_RuntimeError);
    nb::exception<er::CudaUnavailable>(m, "CudaUnavailableError", base);
    nb::exception<er::ReplayFormat>(m, "ReplayFormatError", base);
    nb::exception<er::ReplayDivergence>(m, "ReplayDivergenceError", base);

    bind_values(m);

    // At exit, before finalisation: stop calls still running without the GIL and finish every
    // manager's files. Daemon threads still alive keep their objects, and so do a fork child's
    // copies of its parent's threads: nanobind's leak report would only be noise then.
    m.def("_exit_hook", [] {
        er::ExitGate::instance().close_at_exit(std::chrono::seconds(10));
        if (er::fork_generation() > 0 || nb::len(nb::module_::import_("threading").attr("enumerate")()) > 1)
            nb::set_leak_warnings(false);
    });
    nb::module_::import_("atexit").attr("register")(m.attr("_exit_hook"));

    nb::class_<Array>(m, "Array", "A zero-copy view of one simulation array (escape_room_env.Tensor wraps it).")
        .def_prop_ro("shape", [](const Array& a) { return nb::tuple(nb::cast(a.desc.shape)); })
        .def_prop_ro("dtype", [](const Array& a) { return er::py::dtype_name(a.desc.dtype); })
        .def_prop_ro("data_ptr", [](const Array& a) { return (uintptr_t)a.desc.data; })
        .def("numpy", &Array::as<nb::numpy>, nb::rv_policy::reference)
        .def("torch", &Array::as<nb::pytorch>, nb::rv_policy::reference)
        .def("__dlpack__", &Array::dlpack)
        .def("__dlpack_device__",
             [](const Array& a) { return nb::make_tuple(a.storage->device_type, a.storage->device_id); });

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
        .def(
            "step",
            [](Manager& mgr, int64_t nstep, uintptr_t stream) {
                interruptible([&](const Manager::Poll& poll) { return mgr.step(nstep, stream, poll); });
            },
            "nstep"_a = 1, "stream"_a = 0)
        .def("synchronize", &Manager::synchronize, nb::call_guard<er::WithoutGil>())
        .def(
            "exclusive", [](Manager& mgr) { return Exclusive{&mgr, std::nullopt}; }, nb::keep_alive<0, 1>())
        .def_static(
            "arrays",
            [] {
                nb::list out;
                for (const er::ArraySpec& spec : Manager::arrays())
                    out.append(nb::make_tuple(spec.name, (int32_t)spec.kind));
                return out;
            },
            "The catalogue: (name, kind) of every array; kind 0 a tensor, 1 an image, 2 internal state.")
        .def("array", [](const Manager& mgr, const std::string& name) { return Array{mgr.array(name), mgr.storage()}; })
        .def("host_copy", &er::py::host_copy, "name"_a, "A numpy copy of an array, from wherever the simulation runs.")
        .def("host_write", &er::py::host_write, "name"_a, "values"_a, "Overwrites a contiguous array from host values.")
        .def(
            "reset_worlds",
            [](Manager& mgr, Host<const uint8_t> mask, std::optional<Host<const uint64_t>> seeds) {
                const size_t W = (size_t)mgr.config().num_worlds;
                mgr.reset_worlds(sized(mask, W, "mask"), seeds ? sized(*seeds, W, "seeds") : nullptr);
            },
            "mask"_a, "seeds"_a = nb::none(), nb::call_guard<er::WithoutGil>())
        .def(
            "set_actions",
            [](Manager& mgr, Actions a, bool refuse_done, bool flat) {
                return mgr.set_actions(a.data(), wide_actions(mgr, a, flat), flat, refuse_done);
            },
            "actions"_a, "refuse_done"_a = false, "flat"_a = false,
            "Returns -1, the flat index of the first bad value, or -2 - w. flat: Discrete indices, one per row.")
        .def(
            "check_actions",
            [](Manager& mgr, Actions a, bool refuse_done, bool flat) {
                return mgr.check_actions(a.data(), wide_actions(mgr, a, flat), flat, refuse_done);
            },
            "actions"_a, "refuse_done"_a = false, "flat"_a = false)
        .def(
            "step_actions",
            [](Manager& mgr, Actions a, bool refuse_done,
               std::optional<nb::ndarray<float, nb::ndim<2>, nb::c_contig>> obs, bool flat) {
                const bool wide = wide_actions(mgr, a, flat);
                const size_t rows = (size_t)mgr.config().num_worlds * mgr.config().num_agents;
                if (obs && (obs->shape(0) != rows || obs->shape(1) != (size_t)mgr.obs_dim() ||
                            obs->device_type() != (mgr.on_gpu() ? nb::device::cuda::value : nb::device::cpu::value)))
                    throw std::invalid_argument("step_actions: obs_out must have shape (" + std::to_string(rows) +
                                                ", " + std::to_string(mgr.obs_dim()) + ") where the simulation runs");
                er::WithoutGil nogil;
                return mgr.step_with_actions(a.data(), wide, flat, refuse_done, obs ? obs->data() : nullptr);
            },
            "actions"_a, "refuse_done"_a = false, "obs_out"_a = nb::none(), "flat"_a = false)
        .def(
            "start_recording",
            [](Manager& mgr, const nb::bytes& path, const std::string& config_json, int64_t interval, uint64_t created,
               std::optional<uint64_t> seed) {
                return mgr.start_recording(path_of(path), config_json, interval, created, seed ? &*seed : nullptr);
            },
            "path"_a, "config_json"_a, "checksum_interval"_a, "created_unix_ns"_a, "seed"_a = nb::none())
        .def("stop_recording", &Manager::stop_recording)
        .def(
            "enable_trajectory_logging",
            [](Manager& mgr, int32_t world, int32_t agent, const nb::bytes& path) {
                mgr.enable_trajectory_logging(world, agent, path_of(path));
            },
            "world"_a, "agent"_a, "path"_a)
        .def("disable_trajectory_logging", &Manager::disable_trajectory_logging)
        .def(
            "start_episodes",
            [](Manager& mgr, Host<const uint64_t> seeds, Host<const uint32_t> episodes) {
                const size_t W = (size_t)mgr.config().num_worlds;
                mgr.start_episodes(sized(seeds, W, "start_episodes: seeds"),
                                   sized(episodes, W, "start_episodes: episodes"));
            },
            "seeds"_a, "episodes"_a)
        .def("state_hashes",
             [](Manager& mgr) { return per_world<uint64_t>(mgr, [&](uint64_t* out) { mgr.state_hashes(out); }); })
        .def(
            "output_digests",
            [](Manager& mgr, bool replay) {
                const auto chain = replay ? er::OutputChain::Replay : er::OutputChain::Recording;
                return per_world<uint64_t>(mgr, [&](uint64_t* out) { mgr.output_digests(chain, out); });
            },
            "replay"_a = false, "Output chains of the recording (or the replay) while kept, else the outputs' digests.")
        .def("chain_outputs_for_replay", &Manager::chain_outputs_for_replay, "on"_a)
        .def("set_replay_state",
             [](Manager& mgr, Host<const uint8_t> records, Host<const uint64_t> chains) {
                 const size_t W = (size_t)mgr.config().num_worlds;
                 mgr.set_replay_state(sized(records, W * mgr.state_record_bytes(), "records"),
                                      sized(chains, W, "chains"));
             })
        .def("rollout", &rollout, "states"_a, "actions"_a, "steps"_a, "observation"_a.none(), "reward"_a, "done"_a,
             "states_out"_a)
        .def(
            "pressed_buttons",
            [](Manager& mgr) { return per_world<uint16_t>(mgr, [&](uint16_t* out) { mgr.pressed_buttons(out); }); },
            "Each world's pressed buttons as a bit mask (bit k: button k).")
        .def(
            "state_fields",
            [](const Manager& mgr) {
                nb::list out;
                for (const er::StateField& f : mgr.state_layout())
                    out.append(
                        nb::make_tuple(f.name, er::py::dtype_name(f.dtype), nb::tuple(nb::cast(f.shape)), f.offset));
                return nb::make_tuple(out, mgr.state_record_bytes());
            },
            "The state record's fields (name, dtype, shape, offset) and its size in bytes.")
        .def(
            "get_state",
            [](Manager& mgr, Host<const int32_t> worlds) {
                return er::py::filled<uint8_t>({worlds.size(), mgr.state_record_bytes()}, [&](uint8_t* out) {
                    er::WithoutGil nogil;
                    mgr.get_state(worlds.data(), worlds.size(), out);
                });
            },
            "worlds"_a)
        .def(
            "set_state",
            [](Manager& mgr, Host<const int32_t> worlds, Host<const uint8_t> records) {
                const size_t n = worlds.size();
                mgr.set_state(worlds.data(), n, sized(records, n * mgr.state_record_bytes(), "records"));
            },
            "worlds"_a, "records"_a, nb::call_guard<er::WithoutGil>())
        .def("close", &Manager::close);
}
