// Marshalling helpers of the _core extension (bindings.cpp): argument checks nanobind's types
// cannot express, paths, new numpy results, and calls that run without the GIL.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <string>
#include <vector>

#include "manager.hpp"
#include "without_gil.hpp"

namespace er::py {

namespace nb = nanobind;

// Actions of num_worlds * num_agents rows of 3, int32 or int64, where the simulation is; with
// `flat`, one Discrete index per row instead (shape (num_worlds * num_agents,)).
using Actions = nb::ndarray<nb::ro, nb::c_contig>;
inline bool wide_actions(const er::Manager& m, const Actions& a, bool flat = false)
{
    const bool gpu = m.on_gpu();
    const size_t rows = (size_t)m.config().num_worlds * (size_t)m.config().num_agents;
    const bool wide = a.dtype() == nb::dtype<int64_t>();
    const bool shaped =
        flat ? a.ndim() == 1 && a.shape(0) == rows : a.ndim() == 2 && a.shape(0) == rows && a.shape(1) == 3;
    if (!shaped || (!wide && a.dtype() != nb::dtype<int32_t>()) ||
        a.device_type() != (gpu ? nb::device::cuda::value : nb::device::cpu::value) ||
        (gpu && a.device_id() != m.config().gpu_id))
        throw nb::type_error(
            flat ? "actions must be a C-contiguous int32/int64 array of shape (num_worlds * num_agents,) "
                   "where the simulation runs"
                 : "actions must be a C-contiguous int32/int64 array of shape (num_worlds * "
                   "num_agents, 3) where the simulation runs");
    return wide;
}

// Host arrays the manager reads or fills: C-contiguous, of exactly the size it needs.
template <class T>
using Host = nb::ndarray<T, nb::c_contig, nb::device::cpu>;
template <class T>
T* sized(Host<T>& a, size_t n, const char* what)
{
    if (a.size() != n)
        throw std::invalid_argument(std::string(what) + " has " + std::to_string(a.size()) + " values, expected " +
                                    std::to_string(n));
    return a.data();
}

// A path from Python as bytes (os.fsencode): any name the file system allows.
inline std::string path_of(const nb::bytes& path) { return std::string(path.c_str(), path.size()); }

// A new numpy array of `shape` whose values `fill(data)` writes.
template <class T, class Fill>
nb::ndarray<nb::numpy, T> filled(std::vector<size_t> shape, Fill&& fill)
{
    size_t n = 1;
    for (size_t d : shape) n *= d;
    T* out = new T[n];
    nb::capsule owner(out, [](void* p) noexcept { delete[] static_cast<T*>(p); });
    fill(out);
    return nb::ndarray<nb::numpy, T>(out, shape.size(), shape.data(), owner);
}

// Runs `call(poll)` without the GIL, polling for Ctrl-C (every 10 ms, between steps): a signal
// stops it after a whole step and raises KeyboardInterrupt.
template <class Call>
int64_t interruptible(Call&& call)
{
    bool interrupted = false;
    int64_t done = 0;
    {
        er::WithoutGil nogil;
        if (er::WithoutGil::exiting()) return 0;  // the interpreter is exiting: no new steps
        done = call([&] { return nogil.with_gil([&] { return !(interrupted = PyErr_CheckSignals() != 0); }); });
    }
    if (interrupted) throw nb::python_error();
    return done;
}

// One value per world, filled by `fill`, as a new numpy array.
template <class T, class Fill>
nb::ndarray<nb::numpy, T> per_world(const er::Manager& mgr, Fill&& fill)
{
    return er::py::filled<T>({(size_t)mgr.config().num_worlds}, fill);
}

}  // namespace er::py
