// The _core extension's values: constants from their one definition (csrc/sim/consts.hpp), the
// configuration structs and compiled levels. Marshalling only, as in bindings.cpp.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "exported_array.hpp"
#include "manager.hpp"
#include "sim/render.hpp"  // kRenderRange

namespace nb = nanobind;
using namespace nb::literals;

void bind_values(nb::module_& m)
{
    nb::enum_<er::ExecMode>(m, "ExecMode", "Where the simulation runs.")
        .value("CPU", er::ExecMode::CPU)
        .value("CUDA", er::ExecMode::CUDA);

    m.attr("RULES_VERSION") = er::kRulesVersion;
    m.attr("MAX_AGENTS") = er::kMaxAgents;
    m.attr("DEFAULT_EPISODE_LEN") = er::kDefaultEpisodeLen;
    m.attr("NUM_LIDAR_RAYS") = er::kLidarRays;
    m.attr("LIDAR_RANGE") = er::kLidarRange;
    m.attr("DEPTH_RANGE") = er::kRenderRange;
    m.attr("ENTITY_SLOTS") = er::kEntitySlots;
    m.attr("BODY_SIZES") = nb::make_tuple(er::kAgentRadius, er::kCubeHalf, er::kButtonHalf);  // metres
    m.attr("ENTITY_TYPES") = er::kEntityTypeCount;
    m.attr("ACTION_CHOICES") = nb::make_tuple(er::kNumMoveAmounts, er::kNumMoveAngles, er::kNumRotates);
    // Offsets of the observation's parts (SPEC §3), and the floats per partner.
    m.attr("OBS_LAYOUT") = nb::make_tuple(er::kObsSelf, er::kObsSteps, er::kObsDoor, er::kObsEntities, er::kObsLidar,
                                          er::kObsPartners, er::kObsPartnerDim);
    m.def("obs_dim", &er::obs_dim, "num_agents"_a);
    m.attr("ROOM_TYPES") =
        nb::tuple(nb::cast(std::vector<std::string>(er::kRoomNames, er::kRoomNames + er::kNumRoomTypes)));
    m.def("default_rooms", &er::default_rooms, "num_agents"_a);
    m.attr("CUDA_BUILT") = er::cuda_built();
    m.attr("CUDA_SETTING") = ER_CUDA_SETTING;  // ESCAPE_ROOM_CUDA at build time: AUTO, ON or OFF
    m.def("cuda_device_count", &er::cuda_device_count);
    m.def("cuda_unavailable_reason", &er::cuda_unavailable_reason, "Why no GPU is usable; '' when one is.");

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
        .def(
            "arrays",
            [](nb::handle self) {
                // The level's fields as the catalogue's level_* views of a single world.
                er::SimState one{};
                one.num_worlds = 1;
                one.level = &nb::cast<er::CompiledLevel&>(self).data;
                nb::dict out;
                for (const er::ArraySpec& spec : er::Manager::arrays())
                    if (std::string(spec.name).rfind("level_", 0) == 0)
                        out[spec.name + 6] = er::py::view<nb::numpy>(spec.view(one), self);
                return out;
            },
            "The geometry as numpy views shaped [1, ...] (counts in 'counts'; see Manager.arrays()).");
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
}
